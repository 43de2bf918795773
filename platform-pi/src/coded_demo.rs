//! `tessera coded`: the coded (CDC) stage on a loopback cluster — a gateway and W workers on
//! 127.0.0.x, each its own thread with real authenticated TCP links (or, with
//! `--transport datagram`, authenticated UDP datagrams, `--loss` of them dropped) — running a
//! chain of fully connected layers split into data and parity shards (or replicated, or
//! uncoded), with workers that can be absent from the start, or stop answering mid-run.
//!
//! Every frame's output is compared with the centralised computation of the same model:
//! bit-exact in int8 mode (any `r` losses are decoded exactly), within the decode error bound
//! in float mode. The run prints per-frame latency and quality, then p50/p99, the shard
//! parameters each worker holds against the whole model, and the gateway's counters.

use anyhow::Error;
use clap::Args as ClapArgs;

use tessera_backends::coded::tail::TailScheme;
use tessera_backends::coded_demo::CodedDemo;
use tessera_core::runtime::coded::Allocator;
use tessera_core::time::Duration;
use tessera_core::wire::NodeId;

/// Arguments of `tessera coded`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Workers (node ids 1..=W).
    #[arg(long, default_value_t = 8)]
    pub workers: u16,
    /// Protection: cdc (k data + r parity), 2mr (k = W/2, every shard twice) or uncoded (k = W).
    #[arg(long, value_enum, default_value_t = Scheme::Cdc)]
    pub scheme: Scheme,
    /// Parity shards for cdc (k = W − r).
    #[arg(long, default_value_t = 2)]
    pub r: usize,
    /// Layer widths, input first: "1024,1024,1000" is two FC layers 1024→1024 (ReLU) and
    /// 1024→1000.
    #[arg(long, value_delimiter = ',', default_value = "1024,1024,1000")]
    pub dims: Vec<usize>,
    /// Float arithmetic instead of exact int8.
    #[arg(long)]
    pub float: bool,
    /// Frames to run.
    #[arg(long, default_value_t = 20)]
    pub frames: usize,
    /// Frame deadline, ms.
    #[arg(long, default_value_t = 2000)]
    pub deadline_ms: u64,
    /// Timeout allocator.
    #[arg(long, value_enum, default_value_t = AllocatorArg::Uniform)]
    pub allocator: AllocatorArg,
    /// Workers never started (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    pub absent: Vec<NodeId>,
    /// Workers that stop answering after the first frame (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    pub stall: Vec<NodeId>,
    /// Seed of the generated weights and inputs (and of the datagram loss).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// What carries shards and results: tcp (authenticated links) or datagram (authenticated
    /// UDP datagrams, never retransmitted).
    #[arg(long, value_enum, default_value_t = TransportArg::Tcp)]
    pub transport: TransportArg,
    /// Fraction of datagrams every node drops on send (datagram transport only), 0..1.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
}

/// What carries the coded stage's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportArg {
    /// Authenticated TCP links.
    Tcp,
    /// Authenticated UDP datagrams.
    Datagram,
}

/// How `tessera coded` protects its layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheme {
    /// k data + r parity shards.
    Cdc,
    /// Every shard twice (k = W/2).
    #[value(name = "2mr")]
    TwoMr,
    /// k = W data shards, no protection.
    Uncoded,
}

/// The coded stage's timeout allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AllocatorArg {
    /// The same budget for every worker.
    Uniform,
    /// Budgets that maximise the expected quality.
    Quality,
}

/// Runs `tessera coded` (`tessera_backends::coded_demo`).
pub fn run(args: &Args) -> Result<(), Error> {
    let transport = CodedDemo::transport(args.transport == TransportArg::Datagram, args.loss)?;
    let demo = CodedDemo {
        workers: args.workers,
        scheme: match args.scheme {
            Scheme::Cdc => TailScheme::Cdc(args.r),
            Scheme::TwoMr => TailScheme::TwoMr,
            Scheme::Uncoded => TailScheme::Uncoded,
        },
        dims: args.dims.clone(),
        float: args.float,
        frames: args.frames,
        deadline: Duration::from_millis(args.deadline_ms),
        allocator: match args.allocator {
            AllocatorArg::Uniform => Allocator::Uniform,
            AllocatorArg::Quality => Allocator::QualityAware,
        },
        absent: args.absent.clone(),
        stall: args.stall.clone(),
        seed: args.seed,
        transport,
    };
    print!("{}", demo.run()?);
    Ok(())
}
