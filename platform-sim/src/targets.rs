//! Issue 14's simulator targets, run and judged: six Pi 3 on WiFi, YOLOv2's fused layers, one
//! source. At the papers' device rate ([`PI3_GFLOPS`]), per grid (3x3, 5x5): WST-S under the
//! DeepThings evaluation's 6.8 s, and reuse (WST-S, strips kept local, edge to edge by the link
//! model, or through the gateway's cache: the fastest) faster than none (WST); MoDNN within ±25 % of the paper's 8.1 s. At the
//! rate of our own NEON kernel on a Pi 3 ([`pi3_neon_gflops`]): WST-S 3x3 at most 1.4 s per
//! frame, `f16` transfer allowed. `tessera-sim report` prints them and tables them in
//! `report.html` and `targets.csv`; `tessera-sim targets` runs only these.

use std::fmt::Write as _;

use tessera_core::wire::{Policy, Precision};

use crate::compute::{pi3_neon_gflops, PI3_GFLOPS};
use crate::experiments::{mean, quantile, OutArgs};
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

/// Where WST-S overlap strips go (`reuse` in scenario and cluster files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strips {
    /// Kept where they were made; thieves recompute the overlap.
    Local,
    /// Kept where they were made; fetched edge to edge when the link model says so.
    Link,
    /// Through the gateway's cache.
    Gateway,
}

impl Strips {
    /// The name in files and tables.
    pub fn label(self) -> &'static str {
        match self {
            Strips::Local => "local",
            Strips::Link => "link",
            Strips::Gateway => "gateway",
        }
    }

    /// Sets `cfg`'s reuse keys.
    pub fn apply(self, cfg: &mut SimConfig) {
        cfg.local_reuse = self != Strips::Gateway;
        cfg.link_reuse = self == Strips::Link;
    }
}

/// One measured configuration.
#[derive(Clone, Debug)]
pub struct Run {
    /// Policy.
    pub policy: Policy,
    /// Tile grid.
    pub grid: (u32, u32),
    /// Where WST-S strips go.
    pub strips: Strips,
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

/// One configuration of the target setup ([`DEVICES`] edges, WiFi).
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Policy.
    pub policy: Policy,
    /// Tile grid.
    pub grid: (u32, u32),
    /// Where WST-S strips go.
    pub strips: Strips,
    /// Device rate, GFLOP/s.
    pub gflops: f64,
    /// Wire precision of results and strips.
    pub transfer: Precision,
}

impl Setup {
    /// `policy grid strips rate transfer`, as the progress lines and timelines name a setup.
    pub fn label(&self) -> String {
        format!(
            "{} {}x{} strips {} {:.2} GFLOP/s {}",
            self.policy.label(),
            self.grid.0,
            self.grid.1,
            self.strips.label(),
            self.gflops,
            self.transfer.label()
        )
    }
}

/// The simulator configuration of `s` (10 frames, 3 with `--quick`).
pub fn config(a: &OutArgs, s: Setup) -> SimConfig {
    let mut cfg = SimConfig::yolo(s.policy, s.grid, DEVICES);
    cfg.seed = a.seed;
    cfg.gflops = s.gflops;
    cfg.net = NetModel::wifi();
    s.strips.apply(&mut cfg);
    cfg.transfer = s.transfer;
    // The deployed node's bytes: the captured JPEG once per peer.
    cfg.picture = true;
    cfg.frames = if a.quick { 3 } else { 10 };
    cfg
}

/// Runs `s` (10 frames, 3 with `--quick`).
pub fn measure(a: &OutArgs, s: Setup) -> Run {
    let Setup {
        policy,
        grid,
        strips,
        gflops,
        transfer,
    } = s;
    let out = run(&config(a, s));
    let done = out.latencies_s();
    let latency = mean(&done);
    let sent: u64 = out.nodes.iter().map(|n| n.2.link.bytes_sent).sum();
    let r = Run {
        policy,
        grid,
        strips,
        gflops,
        transfer,
        latency,
        spread: (quantile(&done, 0.1), quantile(&done, 0.9)),
        completed: (done.len(), out.submitted),
        link_mib: sent as f64 / out.submitted.max(1) as f64 / 1048576.0,
    };
    eprintln!(
        "  target run {}: {:.2} s ({} of {}), {:.2} MiB/frame",
        s.label(),
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

/// Every target run: per grid WST and WST-S (strips local, edge to edge, and through the
/// gateway) and MoDNN at the papers' rate; WST-S 3x3 in `f32` and `f16` at the NEON rate.
pub fn runs(a: &OutArgs) -> Vec<Run> {
    let at = |policy, grid, strips, gflops, transfer| Setup {
        policy,
        grid,
        strips,
        gflops,
        transfer,
    };
    let (local, link, gateway) = (Strips::Local, Strips::Link, Strips::Gateway);
    let (paper, neon, f32) = (PI3_GFLOPS, neon_gflops(), Precision::F32);
    let mut setups = Vec::new();
    for grid in [(3, 3), (5, 5)] {
        setups.push(at(Policy::Wst, grid, local, paper, f32));
        setups.push(at(Policy::WstS, grid, local, paper, f32));
        setups.push(at(Policy::WstS, grid, link, paper, f32));
        setups.push(at(Policy::WstS, grid, gateway, paper, f32));
    }
    setups.push(at(Policy::Modnn, (3, 3), local, paper, f32));
    setups.push(at(Policy::WstS, (3, 3), local, neon, f32));
    setups.push(at(Policy::WstS, (3, 3), local, neon, Precision::F16));
    setups.into_iter().map(|s| measure(a, s)).collect()
}

/// The verdicts on `runs`.
pub fn judge(runs: &[Run]) -> Vec<Target> {
    let at_paper = |r: &&Run| r.gflops == PI3_GFLOPS && r.transfer == Precision::F32;
    let find = |p: Policy, grid: (u32, u32), strips: Option<Strips>| {
        runs.iter()
            .filter(at_paper)
            .filter(|r| r.policy == p && r.grid == grid && strips.is_none_or(|s| s == r.strips))
            .map(|r| r.latency)
            .fold(f64::NAN, f64::min)
    };
    let modnn = find(Policy::Modnn, (3, 3), None);
    let neon = runs
        .iter()
        .find(|r| r.gflops != PI3_GFLOPS && r.transfer == Precision::F16)
        .map_or(f64::NAN, |r| r.latency);
    let (lo, hi) = (
        PAPER_MODNN_S * (1.0 - MODNN_TOLERANCE),
        PAPER_MODNN_S * (1.0 + MODNN_TOLERANCE),
    );
    let mut v = Vec::new();
    for grid in [(3, 3), (5, 5)] {
        // The fastest way of moving strips (NaN, a run with no frame, never wins).
        let (wst_s, how) = [Strips::Local, Strips::Link, Strips::Gateway]
            .into_iter()
            .map(|s| (find(Policy::WstS, grid, Some(s)), s))
            .filter(|(l, _)| !l.is_nan())
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or((f64::NAN, "none"), |(l, s)| (l, s.label()));
        let how = format!("strips {how}");
        let wst = find(Policy::Wst, grid, None);
        let g = format!("{}x{}", grid.0, grid.1);
        v.push(Target {
            what: format!("WST-S {g} ({how}), paper's rate"),
            figure: wst_s,
            bound: format!("< {PAPER_WST_S_S} s (paper)"),
            met: wst_s < PAPER_WST_S_S,
        });
        v.push(Target {
            what: format!("WST {g} (no reuse), paper's rate"),
            figure: wst,
            bound: format!("> WST-S's {wst_s:.2} s (reuse faster)"),
            met: wst_s < wst,
        });
    }
    v.extend([
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
    ]);
    v
}

/// The runs as CSV.
pub fn csv(runs: &[Run]) -> String {
    let mut s = String::from(
        "policy,grid,strips,gflops,transfer,devices,latency_s,p10_s,p90_s,completed,submitted,link_mib_per_frame\n",
    );
    for r in runs {
        let _ = writeln!(
            s,
            "{},{}x{},{},{:.2},{},{},{:.3},{:.3},{:.3},{},{},{:.3}",
            r.policy.label(),
            r.grid.0,
            r.grid.1,
            r.strips.label(),
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
