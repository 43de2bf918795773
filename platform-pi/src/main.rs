//! The `tessera` command: distributed CNN inference on Raspberry Pi class devices.

#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use tessera_backends::model_files::ModelFiles;
use tessera_backends::weights_writer::write_weights;
use tessera_pi::{
    bench_cluster, bench_kernels, bench_transport, bench_winograd, check, coded_demo, demo, detect,
    edge, gateway, keygen, layers,
};

/// Tessera: run a CNN across a cluster of small devices.
#[derive(Parser, Debug)]
#[command(name = "tessera", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write deterministic random weights in Darknet format for a cfg.
    GenWeights {
        /// Darknet cfg file [default: the built-in yolov2-608.cfg].
        #[arg(long)]
        cfg: Option<PathBuf>,
        /// Seed of the generator (same seed, same file).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output weights file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run layers [0, L) on this machine, full frame or tile by tile, and dump the output.
    Layers(layers::Args),
    /// Run one frame through the whole network (fused stack tiled, then the tail), decode and
    /// NMS the boxes, print them and write an annotated PNG and a JSON of boxes.
    Detect(detect::Args),
    /// Start a gateway and K edges on 127.0.0.x and run sample frames through the cluster.
    Demo(demo::Args),
    /// Coded computing (CDC) on a loopback cluster: FC layers split into data and parity
    /// shards over W workers, some absent or stalling; outputs checked against the
    /// centralised run.
    Coded(coded_demo::Args),
    /// Run the gateway of a cluster file.
    Gateway(gateway::GatewayArgs),
    /// Run an edge of a cluster file (a data source when given --input frames).
    Edge(edge::EdgeArgs),
    /// Print a fresh cluster key (64 hex digits) for a cluster file's `key = "..."`.
    Keygen(keygen::Args),
    /// Check a cluster file and probe every node (reachable? same key? right id? same
    /// model?); prints a table, exits 1 when anything is wrong.
    Check(check::Args),
    /// Benchmarks that print figures measured in one run.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Policies on a loopback cluster: s/frame, bytes per frame, edge buffers, two sources.
    Cluster(bench_cluster::Args),
    /// FMA peak, then YOLOv2's fused layers through the reference, portable and SIMD kernels
    /// (1 and 2 threads), and a tiled run against the full frame.
    Kernels(bench_kernels::Args),
    /// Winograd kernels: per-layer worst error against exact sums (and the direct kernel's),
    /// and how much block-aligned tiles grow the overlap (3x3, 5x5, plain and reuse).
    Winograd(bench_winograd::Args),
    /// The TCP link against datagrams on a lossy wire (smoltcp, virtual time): messages in
    /// time and latency per size and loss.
    Transport(bench_transport::Args),
}

fn main() -> ExitCode {
    // Library log lines (links, re-dispatch, coded recovery) go to stderr as `RUST_LOG` asks;
    // errors only when it is unset, so the command's own output is unchanged.
    env_logger::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::GenWeights { cfg, seed, out } => {
            let model_files = ModelFiles {
                cfg,
                ..ModelFiles::default()
            };
            model_files.network().map_err(Into::into).and_then(|net| {
                let bytes = write_weights(&net, seed, &out)
                    .with_context(|| format!("writing {}", out.display()))?;
                println!("wrote {} ({bytes} bytes, seed {seed})", out.display());
                Ok(())
            })
        }
        Command::Layers(args) => layers::run(&args),
        Command::Detect(args) => detect::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Coded(args) => coded_demo::run(&args),
        Command::Gateway(args) => gateway::gateway(&args),
        Command::Edge(args) => edge::edge(&args),
        Command::Keygen(args) => keygen::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Bench(Bench::Cluster(args)) => bench_cluster::run(&args),
        Command::Bench(Bench::Kernels(args)) => bench_kernels::run(&args),
        Command::Bench(Bench::Winograd(args)) => bench_winograd::run(&args),
        Command::Bench(Bench::Transport(args)) => bench_transport::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
