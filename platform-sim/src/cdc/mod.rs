//! Coded distributed computing experiments (docs/design.md §6), run by `tessera-sim cdc …`:
//!
//! 1. [`latency`]: layer latency p50/p99/p99.9 under the Pi 3 WiFi reply-time model for an
//!    uncoded split, 2MR, CDC r = 1 and r = 2, and the extra devices each needs.
//! 2. [`failures`]: `f` devices killed with `r = f` parities: every kill pattern decoded,
//!    integer mode bit-exact, float within the bound, decode time vs the layer's compute.
//! 3. [`accuracy`]: the digits MLP's hidden layer over 8 actors; accuracy vs packet loss for
//!    uncoded, CDC r = 1/2, and the two deadline allocators.
//!
//! All three are Monte Carlo over `tessera_core::deadline` delay models with seeded generators
//! (not the packet-level smoltcp simulator: a coded layer is not yet dispatched by the
//! runtime's gateway, see the report). Experiment 2's decode times are measured on this host and scaled to a Pi 3 by the same
//! layer's compute time on both (`on_pi`).

mod accuracy_model;
mod failures_model;
mod latency_model;
mod qla;
mod reply;
mod rt_accuracy;
mod rt_failures;
mod rt_latency;
mod runtime_setup;
mod scheme;
mod train_digits;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use accuracy_model::{
    accuracy, accuracy_rows, budgets, digits_links, AccuracyCase, AccuracyRow, ActorBudgets,
    Budget, ACCURACY_CASES, ACCURACY_REPS, ACTORS, RHO, WCET,
};
pub use failures_model::{failure_rows, failures, FailureRow, LayerShape, FAILURE_LAYERS};
pub use latency_model::{latency, latency_rows, LatencyRow, LATENCY_TRIALS};
pub use qla::{qla, qla_rows, random_graph, QlaRow};
pub use reply::{pi3_wifi_reply_model, PI3_FC_MS};
pub use rt_accuracy::{
    digits_model, rt_accuracy, rt_accuracy_rows, RtAccuracyCase, RtAccuracyCell, RtAccuracyRow,
    RtAccuracyRun, DIGITS_K, RT_ACCURACY_CASES, RT_DIGITS_DEADLINE_MS, RT_LOSSES,
};
pub use rt_failures::{rt_failure_rows, rt_failures, RtFailureRow, RT_FAILURE_FRAMES};
pub use rt_latency::{rt_latency, rt_latency_rows, RtLatencyRow, RT_LATENCY_FRAMES};
pub use runtime_setup::{RT_FC, RT_K};
pub use scheme::Scheme;
pub use train_digits::train_digits;

/// `tessera-sim cdc` arguments.
#[derive(clap::Args, Debug)]
pub struct CdcArgs {
    /// Which experiment.
    #[command(subcommand)]
    pub what: CdcCmd,
}

/// The CDC experiments: `latency`, `failures`, `accuracy` run the coded stage through the
/// runtime in the simulator (`coded_world`); the `*-model` ones are the earlier Monte Carlo
/// models (cheap, kept for comparison).
#[derive(clap::Subcommand, Debug)]
pub enum CdcCmd {
    /// Trains the digits MLP (fixed seeds, stated split) and prints its accuracy.
    TrainDigits(DataArgs),
    /// Experiment a (runtime): layer latency under the Pi 3 WiFi reply-time model.
    Latency(RunArgs),
    /// Experiment b (runtime): f workers killed mid-layer with r = f; exactness, decode cost.
    Failures(RunArgs),
    /// Experiment c (runtime): digits accuracy vs packet loss, both allocators.
    Accuracy(RunArgs),
    /// Experiment 1 as a Monte Carlo model of the reply times (no runtime).
    LatencyModel(OutArgs),
    /// Experiment 2 on the host: every kill pattern decoded, decode time (no runtime).
    FailuresModel(OutArgs),
    /// Experiment 3 as a Monte Carlo model (no runtime).
    AccuracyModel(DataArgs),
    /// Experiment 3b: uniform vs quality-aware budgets on random dataflow graphs (model).
    Qla(OutArgs),
    /// The runtime experiments, the models, and the report page `cdc.html` in `--out`.
    All(RunArgs),
}

/// Output directory for CSVs.
#[derive(clap::Args, Debug, Clone)]
pub struct OutArgs {
    /// Directory the CSV files are written to.
    #[arg(long, default_value = "out/cdc")]
    pub out: PathBuf,
}

/// Data file and output directory.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// The digits CSV.
    #[arg(long, default_value = "data/digits.csv")]
    pub data: PathBuf,
    /// Directory the CSV files are written to.
    #[arg(long, default_value = "out/cdc")]
    pub out: PathBuf,
    /// Deadline tightness ρ of experiment 3 (0 = every link's 0.1 % quantile, 1 = 99.9 %).
    #[arg(long, default_value_t = RHO)]
    pub rho: f64,
}

/// Runs a `cdc` subcommand, printing its tables.
pub fn run(a: &CdcArgs) -> Result<(), Box<dyn Error>> {
    match &a.what {
        CdcCmd::TrainDigits(d) => print!("{}", train_digits(&d.data)?),
        CdcCmd::Latency(r) => print!("{}", rt_latency(r)?.0),
        CdcCmd::Failures(r) => print!("{}", rt_failures(r)?.0),
        CdcCmd::Accuracy(r) => print!("{}", rt_accuracy(r)?.0),
        CdcCmd::LatencyModel(o) => print!("{}", latency(&o.out, LATENCY_TRIALS)?),
        CdcCmd::FailuresModel(o) => print!("{}", failures(&o.out)?),
        CdcCmd::Qla(o) => print!("{}", qla(&o.out)?),
        CdcCmd::AccuracyModel(d) => {
            print!("{}", accuracy(&d.data, &d.out, d.rho, ACCURACY_REPS)?)
        }
        CdcCmd::All(r) => all(r)?,
    }
    Ok(())
}

/// `tessera-sim cdc all`: everything, and `cdc.html` in `--out`.
pub fn all(r: &RunArgs) -> Result<(), Box<dyn Error>> {
    let t = train_digits(&r.data)?;
    print!("{t}");
    let (a, lat) = rt_latency(r)?;
    print!("{a}");
    let (b, fail) = rt_failures(r)?;
    print!("{b}");
    let (c, acc) = rt_accuracy(r)?;
    print!("{c}");
    let mut models = latency(&r.out, LATENCY_TRIALS)?;
    models.push_str(&failures(&r.out)?);
    models.push_str(&accuracy(&r.data, &r.out, RHO, ACCURACY_REPS)?);
    models.push_str(&qla(&r.out)?);
    print!("{models}");
    let html = crate::report::cdc_html(&crate::report::CdcReport {
        args: r,
        train: &t,
        latency: (&a, &lat),
        failures: (&b, &fail),
        accuracy: (&c, &acc),
        models: &models,
    })?;
    let p = write_csv(&r.out, "cdc.html", &html)?;
    println!("(report: {})", p.display());
    Ok(())
}

// The three experiments through the runtime (coded_world): CodedNode gateway and workers over
// smoltcp on the simulated Pi 3 WiFi medium.

/// Arguments of the runtime experiments.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The digits CSV (accuracy).
    #[arg(long, default_value = "data/digits.csv")]
    pub data: PathBuf,
    /// Directory the CSV files (and tables) are written to.
    #[arg(long, default_value = "out/cdc")]
    pub out: PathBuf,
    /// Frames per configuration (default: 2000 latency, 24 failures, the whole test split
    /// for accuracy).
    #[arg(long)]
    pub frames: Option<usize>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Accuracy: frame deadline, ms (default [`RT_DIGITS_DEADLINE_MS`]).
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    /// How shards and results travel: `datagram` (authenticated UDP, a lost fragment is an
    /// erasure) or `tcp` (the authenticated link, a lost segment is a retransmission delay).
    #[arg(long, value_enum, default_value_t = TransportArg::Datagram)]
    pub transport: TransportArg,
    /// Sends of every task and result on the datagram transport (see `CodedConfig::copies`).
    #[arg(long, default_value_t = 3)]
    pub copies: u8,
}

/// `--transport` of the runtime experiments.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportArg {
    /// Authenticated datagrams.
    Datagram,
    /// The authenticated TCP link.
    Tcp,
}

impl From<TransportArg> for crate::coded_world::Transport {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Datagram => crate::coded_world::Transport::Datagram,
            TransportArg::Tcp => crate::coded_world::Transport::Tcp,
        }
    }
}

pub(super) fn write_csv(dir: &Path, name: &str, text: &str) -> Result<PathBuf, Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p)
}

/// A time measured on this host for work that a simulated Pi 3 does in `pi_ref_ms` and this
/// host did in `host_ref_ms` (the same layer's compute): the host time scaled by that ratio,
/// so decode costs read in the simulated device's time, the cost kernels' own mix included.
pub(super) fn on_pi(host_ms: f64, host_ref_ms: f64, pi_ref_ms: f64) -> f64 {
    host_ms * pi_ref_ms / host_ref_ms
}

pub(super) fn time_ms<F: FnMut()>(mut f: F) -> f64 {
    let t0 = Instant::now();
    f();
    t0.elapsed().as_secs_f64() * 1e3
}
