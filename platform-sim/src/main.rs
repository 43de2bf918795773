//! `tessera-sim`: runs simulated Tessera clusters, the papers' experiments, and the report.

#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_sim::experiments;
use tessera_sim::scenario;
use tessera_sim::world::run;

#[derive(Parser)]
#[command(
    name = "tessera-sim",
    about = "Deterministic simulator of Tessera clusters"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs one scenario file (TOML) and prints its frames.
    Run {
        /// The scenario.
        scenario: PathBuf,
        /// Print where the time went instead: each node's jobs per frame (as `timeline`).
        #[arg(long)]
        timeline: bool,
    },
    /// 64 nodes (4 clusters of a gateway and 15 edges) × 100 YOLOv2 frames, cost model: speed.
    Bench(experiments::BenchArgs),
    /// Experiment 1: latency and speedup vs device count per policy and grid (CSV).
    Speedup(experiments::OutArgs),
    /// Experiment 2: per-device memory vs single device (CSV).
    Memory(experiments::OutArgs),
    /// Experiment 3: communication per frame per policy, and reuse's effect on latency (CSV).
    Comm(experiments::OutArgs),
    /// Experiment 4: crashes, stragglers, loss (CSV).
    Faults(experiments::OutArgs),
    /// Experiment 5: several data sources: max latency and throughput vs devices (CSV).
    Sources(experiments::OutArgs),
    /// Every experiment, CSVs and an HTML report with SVG plots and a Gantt chart.
    Report(experiments::OutArgs),
    /// Issue 14's targets alone: WST-S, WST and MoDNN on 6 Pi 3 over WiFi at the papers'
    /// rate, WST-S at our NEON kernel's Pi 3 rate (targets.csv and a printed table).
    Targets(experiments::OutArgs),
    /// Where the time of one target configuration goes: per frame, each node's jobs and busy
    /// share, and the medium's bytes.
    Timeline(TimelineArgs),
    /// Coded distributed computing: train-digits, latency, failures, accuracy, all.
    Cdc(tessera_sim::cdc::CdcArgs),
}

/// `tessera-sim timeline`: one configuration of the targets' setup (6 Pi 3 on WiFi).
#[derive(clap::Args)]
struct TimelineArgs {
    #[command(flatten)]
    out: experiments::OutArgs,
    /// Policy: wst, wst-s, ...
    #[arg(long, default_value = "wst-s")]
    policy: tessera_core::wire::Policy,
    /// Tile grid, e.g. 3x3.
    #[arg(long, default_value = "3x3")]
    grid: tessera_core::ftp::GridShape,
    /// WST-S strips: local, link or gateway.
    #[arg(long, default_value = "local")]
    strips: String,
}

fn main() -> ExitCode {
    // Library log lines (links, re-dispatch, coded recovery) go to stderr as `RUST_LOG` asks;
    // errors only when it is unset, so the command's own output is unchanged.
    env_logger::init();
    let cli = Cli::parse();
    let r: Result<(), Box<dyn std::error::Error>> = match cli.cmd {
        Cmd::Run {
            scenario: path,
            timeline,
        } => (|| {
            let text = std::fs::read_to_string(&path)?;
            let cfg = scenario::parse(&text)?;
            if timeline {
                let title = experiments::describe(&cfg);
                print!("{}", tessera_sim::timeline::timeline_of(&cfg, &title));
                return Ok(());
            }
            let t0 = std::time::Instant::now();
            let out = run(&cfg);
            println!("{}", experiments::describe(&cfg));
            for f in &out.frames {
                println!(
                    "frame {:>2}@{}: {} in {:.3} s, correct {:?}, tiles by {:?}",
                    f.frame.number,
                    f.frame.origin,
                    if f.complete { "complete" } else { "FAILED" },
                    f.latency_s(),
                    f.correct,
                    f.tiles_by
                );
            }
            println!(
                "{} of {} frames complete; {} events, trace hash {:016x}; {:.3} s virtual in {:.2} s wall",
                out.completed(),
                out.submitted,
                out.events,
                out.trace_hash,
                out.virtual_us as f64 / 1e6,
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        })(),
        Cmd::Bench(a) => experiments::bench(&a),
        Cmd::Speedup(a) => experiments::speedup(&a).map(|_| ()),
        Cmd::Memory(a) => experiments::memory(&a).map(|_| ()),
        Cmd::Comm(a) => experiments::comm(&a).map(|_| ()),
        Cmd::Faults(a) => experiments::faults(&a).map(|_| ()),
        Cmd::Sources(a) => experiments::sources(&a).map(|_| ()),
        Cmd::Report(a) => experiments::report(&a),
        Cmd::Targets(a) => experiments::targets(&a).map(|_| ()),
        Cmd::Timeline(a) => (|| {
            use tessera_sim::targets::{Setup, Strips};
            let strips = match a.strips.as_str() {
                "local" => Strips::Local,
                "link" => Strips::Link,
                "gateway" => Strips::Gateway,
                _ => return Err("--strips: local, link or gateway".into()),
            };
            let setup = Setup {
                policy: a.policy,
                grid: a.grid.into(),
                strips,
                gflops: a.out.gflops.unwrap_or(tessera_sim::compute::PI3_GFLOPS),
                transfer: tessera_core::wire::Precision::F32,
            };
            print!("{}", tessera_sim::timeline::timeline(&a.out, setup));
            Ok(())
        })(),
        Cmd::Cdc(a) => tessera_sim::cdc::run(&a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
