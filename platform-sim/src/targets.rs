//! Issue 14's simulator targets, run and judged: six Pi 3 on WiFi, YOLOv2's fused layers, one
//! source. At the papers' device rate ([`PI3_GFLOPS`]): WST-S 3x3 under the DeepThings
//! evaluation's 6.8 s, reuse (WST-S) faster than none (WST), and MoDNN within ±25 % of the
//! paper's 8.1 s. At the rate of our own NEON kernel on a Pi 3 ([`pi3_neon_gflops`]): WST-S
//! 3x3 at most 1.4 s per frame, `f16` transfer allowed. `tessera-sim report` prints them and
//! tables them in `report.html` and `targets.csv`.

use std::fmt::Write as _;

use tessera_core::wire::{Policy, Precision};

use crate::compute::{pi3_neon_gflops, PI3_GFLOPS};
use crate::experiments::{quantile, OutArgs};
use crate::medium::NetModel;
use crate::models::{self, Net};
use crate::world::{run, SimConfig};

/// The DeepThings evaluation's FTP-WST-S latency on six Pi 3, s.
pub const PAPER_WST_S_S: f64 = 6.8;
/// The same evaluation's MoDNN latency on six Pi 3, s.
pub const PAPER_MODNN_S: f64 = 8.1;
/// MoDNN's tolerance around the paper's figure.
pub const MODNN_TOLERANCE: f64 = 0.25;
/// Issue 14's bound for the fused layers at our NEON kernels' Pi 3 rate, s.
pub const NEON_BOUND_S: f64 = 1.4;
/// Edges of every target run.
pub const DEVICES: u16 = 6;

/// One measured configuration.
#[derive(Clone, Debug)]
pub struct Run {
    /// Policy.
    pub policy: Policy,
    /// Device rate, GFLOP/s.
    pub gflops: f64,
    /// Wire precision of results and strips.
    pub transfer: Precision,
    /// Mean latency of the completed frames, s (NaN: none).
    pub latency: f64,
    /// 10th and 90th percentile, s.
    pub spread: (f64, f64),
    /// Frames completed of submitted.
    pub completed: (usize, usize),
    /// Link payload bytes every node sent, per frame, MiB.
    pub link_mib: f64,
}

/// One target and its verdict.
#[derive(Clone, Debug)]
pub struct Target {
    /// What is measured.
    pub what: String,
    /// The figure, s.
    pub figure: f64,
    /// The bound, as text.
    pub bound: String,
    /// Met.
    pub met: bool,
}

/// Runs `policy` on the target setup (3x3, [`DEVICES`] edges, WiFi, strips kept local as a
/// cluster file has it) at `gflops` with `transfer`.
pub fn measure(a: &OutArgs, policy: Policy, gflops: f64, transfer: Precision) -> Run {
    let mut cfg = SimConfig::yolo(policy, (3, 3), DEVICES);
    cfg.seed = a.seed;
    cfg.gflops = gflops;
    cfg.net = NetModel::wifi();
    cfg.local_reuse = true;
    cfg.transfer = transfer;
    cfg.frames = if a.quick { 3 } else { 10 };
    let out = run(&cfg);
    let done: Vec<f64> = out
        .frames
        .iter()
        .filter(|f| f.complete)
        .map(|f| f.latency_s())
        .collect();
    let latency = if done.is_empty() {
        f64::NAN
    } else {
        done.iter().sum::<f64>() / done.len() as f64
    };
    let sent: u64 = out.nodes.iter().map(|n| n.2.link.bytes_sent).sum();
    let r = Run {
        policy,
        gflops,
        transfer,
        latency,
        spread: (quantile(&done, 0.1), quantile(&done, 0.9)),
        completed: (done.len(), out.submitted),
        link_mib: sent as f64 / out.submitted.max(1) as f64 / 1048576.0,
    };
    eprintln!(
        "  target run {} {:.2} GFLOP/s {:?}: {:.2} s ({} of {}), {:.2} MiB/frame",
        policy.label(),
        gflops,
        transfer,
        r.latency,
        r.completed.0,
        r.completed.1,
        r.link_mib
    );
    r
}

/// The rate of our NEON kernel on a Pi 3 for YOLOv2's fused layers, GFLOP/s.
pub fn neon_gflops() -> f64 {
    pi3_neon_gflops(&models::model(Net::Yolo16, (1, 1)))
}

/// Every target run: WST-S, WST and MoDNN at the papers' rate; WST-S in `f32` and `f16` at the
/// NEON rate.
pub fn runs(a: &OutArgs) -> Vec<Run> {
    let neon = neon_gflops();
    vec![
        measure(a, Policy::WstS, PI3_GFLOPS, Precision::F32),
        measure(a, Policy::Wst, PI3_GFLOPS, Precision::F32),
        measure(a, Policy::Modnn, PI3_GFLOPS, Precision::F32),
        measure(a, Policy::WstS, neon, Precision::F32),
        measure(a, Policy::WstS, neon, Precision::F16),
    ]
}

/// The verdicts on `runs` (as [`runs`] orders them).
pub fn judge(runs: &[Run]) -> Vec<Target> {
    let find = |p: Policy, paper: bool, t: Precision| {
        runs.iter()
            .find(|r| r.policy == p && (r.gflops == PI3_GFLOPS) == paper && r.transfer == t)
            .map_or(f64::NAN, |r| r.latency)
    };
    let wst_s = find(Policy::WstS, true, Precision::F32);
    let wst = find(Policy::Wst, true, Precision::F32);
    let modnn = find(Policy::Modnn, true, Precision::F32);
    let neon = find(Policy::WstS, false, Precision::F16);
    let (lo, hi) = (
        PAPER_MODNN_S * (1.0 - MODNN_TOLERANCE),
        PAPER_MODNN_S * (1.0 + MODNN_TOLERANCE),
    );
    vec![
        Target {
            what: "WST-S 3x3, paper's rate".into(),
            figure: wst_s,
            bound: format!("< {PAPER_WST_S_S} s (paper)"),
            met: wst_s < PAPER_WST_S_S,
        },
        Target {
            what: "WST 3x3 (no reuse), paper's rate".into(),
            figure: wst,
            bound: format!("> WST-S's {wst_s:.2} s (reuse faster)"),
            met: wst_s < wst,
        },
        Target {
            what: "MoDNN 1x6 stripes, paper's rate".into(),
            figure: modnn,
            bound: format!("{lo:.2}–{hi:.2} s (paper 8.1 s ± 25 %)"),
            met: (lo..=hi).contains(&modnn),
        },
        Target {
            what: "WST-S 3x3, f16 transfer, NEON rate".into(),
            figure: neon,
            bound: format!("≤ {NEON_BOUND_S} s"),
            met: neon <= NEON_BOUND_S,
        },
    ]
}

/// The runs as CSV.
pub fn csv(runs: &[Run]) -> String {
    let mut s = String::from(
        "policy,gflops,transfer,devices,latency_s,p10_s,p90_s,completed,submitted,link_mib_per_frame\n",
    );
    for r in runs {
        let _ = writeln!(
            s,
            "{},{:.2},{},{},{:.3},{:.3},{:.3},{},{},{:.3}",
            r.policy.label(),
            r.gflops,
            r.transfer.label(),
            DEVICES,
            r.latency,
            r.spread.0,
            r.spread.1,
            r.completed.0,
            r.completed.1,
            r.link_mib
        );
    }
    s
}

/// The verdicts as printed lines (a Markdown table).
pub fn text(targets: &[Target]) -> String {
    let mut s = String::from("| target | figure | bound | met |\n|---|---|---|---|\n");
    for t in targets {
        let _ = writeln!(
            s,
            "| {} | {:.2} s | {} | {} |",
            t.what,
            t.figure,
            t.bound,
            if t.met { "yes" } else { "MISSED" }
        );
    }
    s
}
