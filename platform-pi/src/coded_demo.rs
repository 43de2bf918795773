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

use std::sync::Arc;

use anyhow::{anyhow, Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::coded::loopback::{run_loopback, LoopbackSpec, Transport};
use tessera_backends::coded::loopback_report::{dgram_line, report};
use tessera_backends::coded::tail::TailScheme;
use tessera_backends::coded::{generated_chain, CodedModel};
use tessera_core::runtime::coded::{Allocator, CodedConfig};
use tessera_core::time::Duration;
use tessera_core::wire::NodeId;

use tessera_core::rng::SplitMix64;

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

/// `list` checked against the workers 1..=`workers`.
fn ids(list: &[NodeId], workers: u16) -> Result<Vec<NodeId>, Error> {
    match list.iter().find(|id| !(1..=workers).contains(id)) {
        Some(id) => Err(anyhow!(
            "reading worker ids: '{id}' is not a worker id 1..={workers}"
        )),
        None => Ok(list.to_vec()),
    }
}

/// The model of `args`: layers with generated weights, split as asked over the workers.
pub fn model(args: &Args) -> Result<CodedModel, Error> {
    let dims = &args.dims;
    if dims.len() < 2 || dims.contains(&0) {
        return Err(anyhow!(
            "reading --dims: need at least two positive widths (input, then each layer's output)"
        ));
    }
    let w = args.workers as usize;
    let (name, scheme) = match args.scheme {
        Scheme::Cdc => ("cdc", TailScheme::Cdc(args.r)),
        Scheme::TwoMr => ("2mr", TailScheme::TwoMr),
        Scheme::Uncoded => ("uncoded", TailScheme::Uncoded),
    };
    let scheme = scheme.layer_scheme(w).map_err(|_| {
        anyhow!(
            "reading --scheme: '{name}' with {w} workers and r = {}: use cdc (r < W), 2mr or uncoded",
            args.r
        )
    })?;
    let workers: Vec<NodeId> = (1..=args.workers).collect();
    generated_chain(dims, scheme, &workers, args.float, args.seed)
        .context("building the coded model")
}

/// Runs `tessera coded`.
pub fn run(args: &Args) -> Result<(), Error> {
    let model = Arc::new(model(args)?);
    let absent = ids(&args.absent, args.workers)?;
    let stall = ids(&args.stall, args.workers)?;
    let allocator = match args.allocator {
        AllocatorArg::Uniform => Allocator::Uniform,
        AllocatorArg::Quality => Allocator::QualityAware,
    };
    let config = CodedConfig {
        allocator,
        ..CodedConfig::new(Duration::from_millis(args.deadline_ms))
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port();
    let transport = match args.transport {
        _ if !(0.0..=1.0).contains(&args.loss) => {
            return Err(anyhow!(
                "reading --loss: '{}' is not a fraction 0..1",
                args.loss
            ));
        }
        TransportArg::Tcp if args.loss > 0.0 => {
            return Err(anyhow!(
                "reading --loss: loss is injected on the datagram transport only (--transport datagram)"
            ));
        }
        TransportArg::Tcp => Transport::Tcp,
        TransportArg::Datagram => Transport::Datagram { loss: args.loss },
    };
    let mut key = [0u8; 32];
    let mut rng = SplitMix64::new(args.seed ^ 0x006b_6579);
    key.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
    let spec = LoopbackSpec {
        workers: args.workers,
        absent,
        stall,
        frames: args.frames,
        config,
        seed: args.seed,
        key,
        port,
        transport,
    };
    let run = run_loopback(model.clone(), &spec).context("running the coded cluster")?;
    print!(
        "{}",
        report(&model, args.float, args.workers, &run.gateway, &run.frames)
            .context("computing the reference")?
    );
    if let Some(d) = run.dgram {
        println!("{}", dgram_line(&d));
    }
    Ok(())
}
