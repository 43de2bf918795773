//! `tessera bench cluster`: the policies measured on a loopback cluster in one run, then the
//! peak resident memory of real node processes (`tessera_backends::cluster_bench`). This
//! module takes the arguments and prints.

use anyhow::{Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::cluster_bench::ClusterBench;

use crate::config::NodeKernel;

/// Arguments of `tessera bench cluster`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Frames per configuration (run one after another).
    #[arg(long, default_value_t = 2)]
    pub frames: usize,
    /// Network input side (multiple of 32); 608 is YOLOv2's.
    #[arg(long, default_value_t = 608)]
    pub size: u32,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Conv kernel of every node: auto, portable or simd.
    #[arg(long, default_value = "auto", value_parser = NodeKernel::parse)]
    pub kernel: NodeKernel,
    /// First port (each configuration takes the next; the node processes all use it, on
    /// 127.0.60-62.x).
    #[arg(long, default_value_t = 7800)]
    pub port: u16,
    /// Only the peak resident memory of real node processes (skip the policy runs).
    #[arg(long)]
    pub memory_only: bool,
}

/// Runs the benchmark.
pub fn run(args: &Args) -> Result<(), Error> {
    let bench = ClusterBench {
        frames: args.frames,
        size: args.size,
        json: args.json,
        kernel: args.kernel,
        port: args.port,
        memory_only: args.memory_only,
        exe: std::env::current_exe().context("finding the tessera executable")?,
    };
    print!("{}", bench.run(|line| eprintln!("{line}"))?);
    Ok(())
}
