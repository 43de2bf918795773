//! The papers' experiments as `tessera-sim` subcommands writing CSV, and the HTML report.

use std::path::PathBuf;

use clap::Args;
use tessera_core::time::Duration;
use tessera_core::wire::Policy;

use std::fmt::Write as _;

use tessera_core::ftp::{FusedStack, Grid, MemoryPlan, Mode, Partition, TilePlan};
use tessera_core::model::weights::layer_param_count;

use crate::compute::PI3_GFLOPS;
use crate::medium::NetModel;
use crate::models::{self, Net};
use crate::world::{run, Fault, Outcome, SimConfig};

/// Output directory argument.
#[derive(Args, Clone, Debug)]
pub struct OutArgs {
    /// Directory for CSV (and HTML) files.
    #[arg(long, default_value = "out/sim")]
    pub out: PathBuf,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Device rate, GFLOP/s [default: 1.53, calibrated to the papers' Pi 3].
    #[arg(long)]
    pub gflops: Option<f64>,
    /// Network preset: wifi or ethernet.
    #[arg(long, default_value = "wifi")]
    pub net: String,
    /// Fewer configurations (CI smoke).
    #[arg(long)]
    pub quick: bool,
    /// `report`: a calibration CSV of the testbed (`tessera-testbed calibrate`) to table beside
    /// the simulator, e.g. `testbed/scenarios/calibration/results.csv`.
    #[arg(long)]
    pub testbed: Option<PathBuf>,
}

/// Arguments of `bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Frames in total.
    #[arg(long, default_value_t = 100)]
    pub frames: usize,
    /// Clusters (each a gateway and `edges` edges).
    #[arg(long, default_value_t = 4)]
    pub clusters: usize,
    /// Edges per cluster (at most 16, the runtime's MAX_EDGES).
    #[arg(long, default_value_t = 15)]
    pub edges: u16,
    /// Policy.
    #[arg(long, default_value = "wst-s")]
    pub policy: Policy,
    /// Network preset.
    #[arg(long, default_value = "ethernet")]
    pub net: String,
    /// Authenticate links (ChaCha20-Poly1305) as in production.
    #[arg(long)]
    pub secure: bool,
}

/// One line naming a configuration.
pub fn describe(cfg: &SimConfig) -> String {
    format!(
        "{:?} {}x{} grid, {} cluster(s) of 1 gateway + {} edges, sources {:?}, {} frame(s) each, net {}, {:.2} GFLOP/s, {:?} kernels ({}), seed {}, {} fault(s)",
        cfg.policy,
        cfg.grid.0,
        cfg.grid.1,
        cfg.clusters,
        cfg.edges,
        cfg.sources,
        cfg.frames,
        cfg.net.name,
        cfg.gflops,
        cfg.kernels,
        if cfg.kernels == crate::compute::Kernels::CostOnly { "zero-filled outputs, timing only" } else { "results checked" },
        cfg.seed,
        cfg.faults.len()
    )
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The 64-node × 100-frame speed run.
pub fn bench(a: &BenchArgs) -> Res<()> {
    let policy = a.policy;
    let mut cfg = SimConfig::yolo(policy, (3, 3), a.edges);
    cfg.clusters = a.clusters;
    cfg.frames = a.frames.div_ceil(a.clusters);
    cfg.net = crate::medium::NetModel::preset(&a.net).ok_or("unknown net")?;
    cfg.secure = a.secure;
    cfg.inflight = 2;
    let t0 = std::time::Instant::now();
    let out = run(&cfg);
    let wall = t0.elapsed().as_secs_f64();
    let nodes = a.clusters * (a.edges as usize + 1);
    println!("{}", describe(&cfg));
    println!(
        "{nodes} nodes, {} of {} frames complete, {:.1} s virtual in {:.2} s wall ({:.0}x real time), {} node steps ({:.0}/s), {} trace events, {} packets, hash {:016x}",
        out.completed(),
        out.submitted,
        out.virtual_us as f64 / 1e6,
        wall,
        out.virtual_us as f64 / 1e6 / wall,
        out.steps,
        out.steps as f64 / wall,
        out.events,
        out.medium.iter().map(|m| m.1).sum::<u64>(),
        out.trace_hash
    );
    Ok(())
}

fn base(a: &OutArgs, policy: Policy, grid: (u32, u32), edges: u16) -> Res<SimConfig> {
    let mut cfg = SimConfig::yolo(policy, grid, edges);
    cfg.seed = a.seed;
    cfg.gflops = a.gflops.unwrap_or(PI3_GFLOPS);
    cfg.net = NetModel::preset(&a.net).ok_or("unknown net preset")?;
    // As a deployed node: the captured JPEG once per peer, WST-S strips kept where they were
    // made (a cluster file's default).
    cfg.picture = true;
    cfg.local_reuse = true;
    if policy == Policy::Bodp {
        // Whole stripes cross the gateway every layer (see the report): give them time.
        cfg.tile_timeout = tessera_core::time::Duration::from_secs(600);
        cfg.frame_deadline = Duration::from_secs(3000);
    }
    Ok(cfg)
}

fn write(a: &OutArgs, name: &str, csv: &str) -> Res<()> {
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join(name), csv)?;
    println!("wrote {}", a.out.join(name).display());
    Ok(())
}

/// One point of experiment 1 (and 3).
#[derive(Clone, Debug)]
pub struct Point {
    /// Policy.
    pub policy: Policy,
    /// Grid.
    pub grid: (u32, u32),
    /// Edge devices.
    pub devices: u16,
    /// Mean latency, s.
    pub latency: f64,
    /// 10th and 90th percentile of the frames' latencies, s (NaN: none completed).
    pub spread: (f64, f64),
    /// Frames completed of submitted.
    pub completed: (usize, usize),
    /// IP bytes on the medium per frame.
    pub medium_bytes: f64,
    /// Link payload bytes sent per frame (all nodes).
    pub link_bytes: f64,
    /// The run.
    pub outcome: Outcome,
}

/// Device counts of experiment 1.
pub fn device_counts(quick: bool) -> Vec<u16> {
    if quick {
        vec![1, 2, 4, 6]
    } else {
        vec![1, 2, 3, 4, 5, 6, 16]
    }
}

/// Frames per point of experiment 1.
pub const SWEEP_FRAMES: usize = 10;

/// The mean of `v`, NaN when empty.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// The `q` quantile (nearest rank) of `v`, NaN when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
}

/// Runs the sweep of experiment 1 ([`SWEEP_FRAMES`] frames per point, one source).
pub fn sweep(a: &OutArgs) -> Res<Vec<Point>> {
    let grids: &[(u32, u32)] = if a.quick {
        &[(3, 3)]
    } else {
        &[(3, 3), (5, 5)]
    };
    let mut pts = Vec::new();
    for &grid in grids {
        for policy in Policy::ALL {
            for &d in &device_counts(a.quick) {
                let mut cfg = base(a, policy, grid, d)?;
                cfg.frames = SWEEP_FRAMES;
                let t0 = std::time::Instant::now();
                let out = run(&cfg);
                let done = out.latencies_s();
                let latency = mean(&done);
                let n = out.submitted.max(1) as f64;
                let medium: u64 = out.medium.iter().map(|m| m.0).sum();
                let link: u64 = out.nodes.iter().map(|n| n.2.link.bytes_sent).sum();
                eprintln!(
                    "  {:5} {}x{} {:2} devices: {:7.2} s ({} of {}) {:7.1} MiB/frame [{:.1} s wall]",
                    policy.label(), grid.0, grid.1, d, latency, done.len(), out.submitted,
                    medium as f64 / n / 1048576.0, t0.elapsed().as_secs_f64()
                );
                pts.push(Point {
                    policy,
                    grid,
                    devices: d,
                    latency,
                    spread: (quantile(&done, 0.1), quantile(&done, 0.9)),
                    completed: (done.len(), out.submitted),
                    medium_bytes: medium as f64 / n,
                    link_bytes: link as f64 / n,
                    outcome: out,
                });
            }
        }
    }
    Ok(pts)
}

/// Single-device compute time of the unpartitioned fused layers at the configured rate, s.
pub fn single_device_s(gflops: f64) -> f64 {
    let m = models::model(Net::Yolo16, (1, 1));
    let stack = m.stack().expect("stack");
    2.0 * stack.macs() as f64 / (gflops * 1e9)
}

fn speedup_csv(a: &OutArgs, pts: &[Point]) -> String {
    let t1 = single_device_s(a.gflops.unwrap_or(PI3_GFLOPS));
    let mut s = String::from("policy,grid,devices,latency_s,p10_s,p90_s,completed,submitted,speedup_vs_unpartitioned_1dev,speedup_vs_own_1dev\n");
    for p in pts {
        let own = pts
            .iter()
            .find(|q| q.policy == p.policy && q.grid == p.grid && q.devices == 1)
            .map_or(f64::NAN, |q| q.latency);
        let _ = writeln!(
            s,
            "{},{}x{},{},{:.3},{:.3},{:.3},{},{},{:.2},{:.2}",
            p.policy.label(),
            p.grid.0,
            p.grid.1,
            p.devices,
            p.latency,
            p.spread.0,
            p.spread.1,
            p.completed.0,
            p.completed.1,
            t1 / p.latency,
            own / p.latency
        );
    }
    s
}

fn comm_csv(pts: &[Point]) -> String {
    let mut s = String::from(
        "policy,grid,devices,medium_mib_per_frame,link_payload_mib_per_frame,latency_s\n",
    );
    for p in pts {
        let _ = writeln!(
            s,
            "{},{}x{},{},{:.2},{:.2},{:.3}",
            p.policy.label(),
            p.grid.0,
            p.grid.1,
            p.devices,
            p.medium_bytes / 1048576.0,
            p.link_bytes / 1048576.0,
            p.latency
        );
    }
    s
}

/// Experiment 1: latency and speedup vs device count.
pub fn speedup(a: &OutArgs) -> Res<Vec<Point>> {
    let pts = sweep(a)?;
    write(a, "speedup.csv", &speedup_csv(a, &pts))?;
    Ok(pts)
}

/// Experiment 3: communication per frame per policy (and latency with/without reuse).
pub fn comm(a: &OutArgs) -> Res<Vec<Point>> {
    let pts = sweep(a)?;
    write(a, "comm.csv", &comm_csv(&pts))?;
    Ok(pts)
}

/// One row of experiment 2.
#[derive(Clone, Debug)]
pub struct MemRow {
    /// Configuration.
    pub config: String,
    /// Peak per device (in + out + weights), bytes.
    pub peak: u64,
    /// Single device peak.
    pub full_peak: u64,
    /// Mean over layers of per-layer reduction.
    pub avg_reduction: f64,
    /// Driver: largest compute buffer set seen in a sim run, bytes.
    pub driver_compute: usize,
    /// Driver: largest tensor store seen, bytes.
    pub driver_store: usize,
}

/// Experiment 2: per-device memory (model of docs/design.md §2.6, and the driver's peaks).
pub fn memory(a: &OutArgs) -> Res<Vec<MemRow>> {
    let model = models::model(Net::Yolo16, (1, 1));
    let net = &model.net;
    let stack = FusedStack::new(net, models::YOLO_FUSED)?;
    let layers = stack.layers();
    let full: Vec<u64> = layers
        .iter()
        .enumerate()
        .map(|(l, x)| {
            4 * (x.input.elements().unwrap_or(0) + x.output.elements().unwrap_or(0)) as u64
                + 4 * layer_param_count(net, l).unwrap_or(0) as u64
        })
        .collect();
    let full_peak = *full.iter().max().unwrap_or(&0);
    let mut rows = Vec::new();
    for grid in [(3u32, 3u32), (5, 5)] {
        let g = Grid::new(grid.0, grid.1, Partition::Darknet, &stack)?;
        let mp = MemoryPlan::new(&stack, &g, Mode::Plain)?;
        let mut per_layer = vec![0u64; layers.len()];
        for t in 0..g.tile_count() {
            let plan = TilePlan::new(&stack, &g, t, Mode::Plain)?;
            for (l, x) in layers.iter().enumerate() {
                let b = 4
                    * (plan.input(l).area() * x.input.c as u64
                        + plan.output(l).area() * x.output.c as u64)
                    + 4 * layer_param_count(net, l).unwrap_or(0) as u64;
                per_layer[l] = per_layer[l].max(b);
            }
        }
        let avg = per_layer
            .iter()
            .zip(&full)
            .map(|(t, f)| 1.0 - *t as f64 / *f as f64)
            .sum::<f64>()
            / full.len() as f64;
        let mut cfg = base(a, Policy::WstS, grid, 4)?;
        cfg.frames = 1;
        let out = run(&cfg);
        let edges = out.nodes.iter().filter(|n| n.1 != 0);
        let (dc, ds) = edges.fold((0, 0), |(c, s), n| {
            (c.max(n.2.peak_compute_bytes), s.max(n.2.peak_store_bytes))
        });
        rows.push(MemRow {
            config: format!("FTP {}x{}", grid.0, grid.1),
            peak: mp.tile_peak_with_weights_bytes,
            full_peak: mp.full_peak_with_weights_bytes,
            avg_reduction: avg,
            driver_compute: dc,
            driver_store: ds,
        });
    }
    // BODP n-way: each device holds 1/n of every output's rows (largest stripe), the input
    // rows they need (plus halo), and the full weights.
    for n in [4u32] {
        let mut per_layer = Vec::new();
        for (l, x) in layers.iter().enumerate() {
            let rows_out = x.output.h.div_ceil(n);
            let out_region = tessera_core::Region::new(
                tessera_core::region::Span::new(0, x.output.w),
                tessera_core::region::Span::new(rows_out, (2 * rows_out).min(x.output.h)),
            );
            let inr = stack.back(l, out_region);
            per_layer.push(
                4 * (inr.area() * x.input.c as u64 + out_region.area() * x.output.c as u64)
                    + 4 * layer_param_count(net, l).unwrap_or(0) as u64,
            );
        }
        let avg = per_layer
            .iter()
            .zip(&full)
            .map(|(t, f)| 1.0 - *t as f64 / *f as f64)
            .sum::<f64>()
            / full.len() as f64;
        let mut cfg = base(a, Policy::Bodp, (3, 3), n as u16)?;
        cfg.frames = 1;
        let out = run(&cfg);
        let edges = out.nodes.iter().filter(|x| x.1 != 0);
        let (dc, ds) = edges.fold((0, 0), |(c, s), x| {
            (c.max(x.2.peak_compute_bytes), s.max(x.2.peak_store_bytes))
        });
        rows.push(MemRow {
            config: format!("BODP {n}-way"),
            peak: *per_layer.iter().max().unwrap_or(&0),
            full_peak,
            avg_reduction: avg,
            driver_compute: dc,
            driver_store: ds,
        });
    }
    let mut s = String::from("config,peak_mib,single_device_peak_mib,peak_reduction_pct,avg_layer_reduction_pct,driver_peak_compute_mib,driver_peak_store_mib\n");
    for r in &rows {
        let _ = writeln!(
            s,
            "{},{:.2},{:.2},{:.1},{:.1},{:.2},{:.2}",
            r.config,
            r.peak as f64 / 1048576.0,
            r.full_peak as f64 / 1048576.0,
            100.0 * (1.0 - r.peak as f64 / r.full_peak as f64),
            100.0 * r.avg_reduction,
            r.driver_compute as f64 / 1048576.0,
            r.driver_store as f64 / 1048576.0
        );
    }
    write(a, "memory.csv", &s)?;
    Ok(rows)
}

/// One row of experiment 4.
#[derive(Clone, Debug)]
pub struct FaultRow {
    /// Scenario.
    pub scenario: String,
    /// Completed of submitted (YOLO, cost model).
    pub completed: (usize, usize),
    /// Latency p50 of the completed frames, s (`None`: no frame completed).
    pub p50: Option<f64>,
    /// p99 of the completed frames, s (`None`: no frame completed).
    pub p99: Option<f64>,
    /// Small net, real kernels: correct of completed (of submitted).
    pub correct: (usize, usize, usize),
    /// Re-dispatched tiles (YOLO run).
    pub redispatched: u32,
}

/// Percentile `p` of `xs` (nearest rank), `None` for no samples.
fn percentile(xs: &mut [f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (xs.len() - 1) as f64).round() as usize;
    Some(xs[i.min(xs.len() - 1)])
}

/// A latency for a CSV cell: empty when no frame completed (never `NaN`).
fn csv_seconds(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:.3}"))
}

/// TCP socket buffers (each way) of the fault runs: about one bandwidth-delay product of a
/// Pi-to-Pi WiFi stream (12 Mbit/s × ≈ 5 ms ≈ 7.5 KB) plus room for a burst. smoltcp resends
/// everything from the first hole after a timeout, starts again from a one-segment window
/// and takes no RTT sample until it is past the rewound data, so each further loss in that
/// flight doubles the timeout (1, 2, 4 … s). A small window keeps that flight short: at 10 %
/// loss 12 KiB completed 99–100 of 100 YOLO frames per seed where 32 KiB completed 37
/// (docs/loss.md has the sweep); without loss it costs nothing measurable.
pub const FAULT_SOCKET_BUFFER: usize = 12 * 1024;

/// `cfg` moving the bytes the deployed node moves: the captured JPEG once per peer instead of
/// `f32` tile inputs, WST-S strips kept where they were made (`reuse = "local"`, the cluster
/// file's default), over sockets sized by [`FAULT_SOCKET_BUFFER`].
pub fn as_deployed(cfg: &mut SimConfig) {
    cfg.picture = true;
    cfg.local_reuse = true;
    cfg.socket_buffer = FAULT_SOCKET_BUFFER;
}

/// Experiment 4: faults (YOLO cost model for latency, small net with real kernels for
/// correctness under the same scenario scaled to its frame time), both with the deployed
/// node's bytes ([`as_deployed`]).
pub fn faults(a: &OutArgs) -> Res<Vec<FaultRow>> {
    let frames = if a.quick { 4 } else { 100 };
    let yolo_mid = 4_000_000; // µs: mid-way through a ~10 s YOLO frame
    let small_mid = 20_000; // µs: mid-way through a small-net frame
    let scen: Vec<(String, Vec<Fault>, f64, Vec<Fault>)> = vec![
        ("none".into(), vec![], 0.0, vec![]),
        (
            "1 edge crashed mid-frame".into(),
            vec![Fault::Crash {
                node: 3,
                at: yolo_mid,
            }],
            0.0,
            vec![Fault::Crash {
                node: 3,
                at: small_mid,
            }],
        ),
        (
            "2 edges crashed mid-frame".into(),
            vec![
                Fault::Crash {
                    node: 3,
                    at: yolo_mid,
                },
                Fault::Crash {
                    node: 4,
                    at: yolo_mid,
                },
            ],
            0.0,
            vec![
                Fault::Crash {
                    node: 3,
                    at: small_mid,
                },
                Fault::Crash {
                    node: 4,
                    at: small_mid,
                },
            ],
        ),
        (
            "straggler x4 (edge 2)".into(),
            vec![Fault::Straggler {
                node: 2,
                at: 0,
                factor: 4.0,
            }],
            0.0,
            vec![Fault::Straggler {
                node: 2,
                at: 0,
                factor: 4.0,
            }],
        ),
        ("loss 1%".into(), vec![], 0.01, vec![]),
        ("loss 5%".into(), vec![], 0.05, vec![]),
        ("loss 10%".into(), vec![], 0.10, vec![]),
        ("loss 20%".into(), vec![], 0.20, vec![]),
    ];
    let mut rows = Vec::new();
    for (name, yf, loss, sf) in scen {
        let mut cfg = base(a, Policy::WstS, (3, 3), 4)?;
        as_deployed(&mut cfg);
        cfg.frames = frames;
        cfg.faults = yf;
        cfg.net.loss = loss;
        // Every frame gets its whole deadline: a run cut short would hide frames unsubmitted.
        cfg.limit = Duration::from_micros(cfg.frame_deadline.total_micros() * (frames as u64 + 1));
        let out = run(&cfg);
        let mut lat = out.latencies_s();
        let redispatched = out
            .nodes
            .iter()
            .map(|n| n.2.runtime.tiles_redispatched)
            .sum();
        let mut sc = SimConfig::small(Policy::WstS, (3, 3), 4);
        as_deployed(&mut sc);
        sc.seed = a.seed;
        sc.frames = frames;
        sc.faults = sf;
        sc.net.loss = loss;
        sc.limit = Duration::from_micros(sc.frame_deadline.total_micros() * (frames as u64 + 1));
        let so = run(&sc);
        let ok = so.frames.iter().filter(|f| f.correct == Some(true)).count();
        let row = FaultRow {
            scenario: name,
            completed: (out.completed(), out.submitted),
            p50: percentile(&mut lat, 50.0),
            p99: percentile(&mut lat, 99.0),
            correct: (ok, so.completed(), so.submitted),
            redispatched,
        };
        eprintln!("  {row:?}");
        rows.push(row);
    }
    let mut s = String::from("scenario,completed,submitted,completion_pct,p50_s,p99_s,redispatched,small_net_correct,small_net_completed,small_net_submitted\n");
    for r in &rows {
        let _ = writeln!(
            s,
            "{},{},{},{:.1},{},{},{},{},{},{}",
            r.scenario,
            r.completed.0,
            r.completed.1,
            100.0 * r.completed.0 as f64 / r.completed.1.max(1) as f64,
            csv_seconds(r.p50),
            csv_seconds(r.p99),
            r.redispatched,
            r.correct.0,
            r.correct.1,
            r.correct.2
        );
    }
    write(a, "faults.csv", &s)?;
    Ok(rows)
}

/// One row of experiment 5.
#[derive(Clone, Debug)]
pub struct SourceRow {
    /// Policy.
    pub policy: Policy,
    /// Devices (each a source).
    pub devices: u16,
    /// Max latency, s.
    pub max_latency: f64,
    /// Frames per second.
    pub throughput: f64,
}

/// Experiment 5: a camera on each of 1–6 edges.
pub fn sources(a: &OutArgs) -> Res<Vec<SourceRow>> {
    let mut rows = Vec::new();
    let counts: Vec<u16> = if a.quick {
        vec![1, 2, 4]
    } else {
        (1..=6).collect()
    };
    for policy in [Policy::WstS, Policy::Wsh] {
        for &d in &counts {
            let mut cfg = base(a, policy, (3, 3), d)?;
            cfg.sources = (1..=d).collect();
            cfg.frames = 3;
            let out = run(&cfg);
            let max = out.latencies_s().into_iter().fold(0.0, f64::max);
            let span = out
                .frames
                .iter()
                .map(|f| f.finished)
                .max()
                .unwrap_or(0)
                .saturating_sub(out.ready_at);
            let thr = out.completed() as f64 / (span as f64 / 1e6).max(1e-9);
            eprintln!(
                "  {} {d} sources: max {max:.2} s, {thr:.3} frames/s ({} of {})",
                policy.label(),
                out.completed(),
                out.submitted
            );
            rows.push(SourceRow {
                policy,
                devices: d,
                max_latency: max,
                throughput: thr,
            });
        }
    }
    let mut s = String::from("policy,devices_and_sources,max_latency_s,throughput_fps\n");
    for r in &rows {
        let _ = writeln!(
            s,
            "{},{},{:.3},{:.4}",
            r.policy.label(),
            r.devices,
            r.max_latency,
            r.throughput
        );
    }
    write(a, "sources.csv", &s)?;
    Ok(rows)
}

/// Issue 14's targets (`crate::targets`): runs them, writes `targets.csv`, prints the verdicts.
pub fn targets(a: &OutArgs) -> Res<(Vec<crate::targets::Run>, Vec<crate::targets::Target>)> {
    let runs = crate::targets::runs(a);
    write(a, "targets.csv", &crate::targets::csv(&runs))?;
    let verdicts = crate::targets::judge(&runs);
    println!(
        "targets (6 Pi 3, WiFi; NEON rate {:.2} GFLOP/s):\n{}",
        crate::targets::neon_gflops(),
        crate::targets::text(&verdicts)
    );
    Ok((runs, verdicts))
}

/// Every experiment, and the HTML report.
pub fn report(a: &OutArgs) -> Res<()> {
    let targets = targets(a)?;
    let pts = sweep(a)?;
    write(a, "speedup.csv", &speedup_csv(a, &pts))?;
    write(a, "comm.csv", &comm_csv(&pts))?;
    let mem = memory(a)?;
    let flt = faults(a)?;
    let src = sources(a)?;
    // The Gantt frame: WST-S 3x3 on 6 edges, one edge crashed and one straggler, so steals
    // and re-dispatches show.
    let mut g = base(a, Policy::WstS, (3, 3), 6)?;
    g.frames = 1;
    g.faults = vec![
        Fault::Crash {
            node: 4,
            at: 4_000_000,
        },
        Fault::Straggler {
            node: 5,
            at: 0,
            factor: 3.0,
        },
    ];
    let gantt = run(&g);
    let testbed = match &a.testbed {
        Some(p) => Some((crate::calibration::read(p)?, p.display().to_string())),
        None => None,
    };
    let html = crate::report::html(&crate::report::SimReport {
        args: a,
        points: &pts,
        memory: &mem,
        faults: &flt,
        sources: &src,
        gantt: (&g, &gantt),
        testbed: testbed.as_ref().map(|(r, p)| (&r[..], p.clone())),
        targets: (&targets.0, &targets.1),
    })?;
    write(a, "report.html", &html)?;
    Ok(())
}
