//! `tessera coded`: the coded (CDC) stage on a loopback cluster — a gateway and W workers on
//! 127.0.0.x, each its own thread with real authenticated TCP links — running a chain of fully
//! connected layers split into data and parity shards (or replicated, or uncoded), with
//! workers that can be absent from the start, or stop answering mid-run.
//!
//! Every frame's output is compared with the centralised computation of the same model:
//! bit-exact in int8 mode (any `r` losses are decoded exactly), within the decode error bound
//! in float mode. The run prints per-frame latency and quality, then p50/p99, the shard
//! parameters each worker holds against the whole model, and the gateway's counters.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use clap::Args as ClapArgs;
use tessera_backends::coded::{
    Activation, CodedFinished, CodedModel, CodedNode, InlineShards, LayerScheme, LinearLayer,
    Numeric,
};
use tessera_backends::link::LinkConfig;
use tessera_backends::nal_std::StdStack;
use tessera_core::runtime::coded::{Allocator, CodedConfig, Protection};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Key, Limits, NodeId};

use crate::error::{error, Context, Error};
use crate::rng::SplitMix64;

/// Arguments of `tessera coded`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Workers (node ids 1..=W).
    #[arg(long, default_value_t = 8)]
    pub workers: u16,
    /// Protection: cdc (k data + r parity), 2mr (k = W/2, every shard twice) or uncoded (k = W).
    #[arg(long, default_value = "cdc")]
    pub scheme: String,
    /// Parity shards for cdc (k = W − r).
    #[arg(long, default_value_t = 2)]
    pub r: usize,
    /// Layer widths, input first: "1024,1024,1000" is two FC layers 1024→1024 (ReLU) and
    /// 1024→1000.
    #[arg(long, default_value = "1024,1024,1000")]
    pub dims: String,
    /// Float arithmetic instead of exact int8.
    #[arg(long)]
    pub float: bool,
    /// Frames to run.
    #[arg(long, default_value_t = 20)]
    pub frames: usize,
    /// Frame deadline, ms.
    #[arg(long, default_value_t = 2000)]
    pub deadline_ms: u64,
    /// Timeout allocator: uniform or quality.
    #[arg(long, default_value = "uniform")]
    pub allocator: String,
    /// Workers never started (comma-separated ids).
    #[arg(long, default_value = "")]
    pub absent: String,
    /// Workers that stop answering after the first frame (comma-separated ids).
    #[arg(long, default_value = "")]
    pub stall: String,
    /// Seed of the generated weights and inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn ids(list: &str, workers: u16) -> Result<Vec<NodeId>, Error> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<NodeId>() {
            Ok(id) if (1..=workers).contains(&id) => Ok(id),
            _ => Err(error(
                "reading worker ids",
                format!("'{s}' is not a worker id 1..={workers}"),
            )),
        })
        .collect()
}

/// The model of `args`: layers with generated weights, split as asked over the workers.
pub fn model(args: &Args) -> Result<CodedModel, Error> {
    let dims: Vec<usize> = args
        .dims
        .split(',')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .context(|| format!("reading --dims '{}'", args.dims))?;
    if dims.len() < 2 || dims.contains(&0) {
        return Err(error(
            "reading --dims",
            "need at least two positive widths (input, then each layer's output)",
        ));
    }
    let w = args.workers as usize;
    let scheme = match args.scheme.as_str() {
        "cdc" if args.r < w => LayerScheme {
            k: w - args.r,
            r: args.r,
            protection: Protection::Coded,
        },
        "2mr" if w >= 2 => LayerScheme {
            k: w / 2,
            r: 0,
            protection: Protection::Replicated,
        },
        "uncoded" => LayerScheme {
            k: w,
            r: 0,
            protection: Protection::Coded,
        },
        s => {
            return Err(error(
                "reading --scheme",
                format!(
                    "'{s}' with {w} workers and r = {}: use cdc (r < W), 2mr or uncoded",
                    args.r
                ),
            ))
        }
    };
    let mut rng = SplitMix64::new(args.seed);
    let layers: Vec<LinearLayer> = dims
        .windows(2)
        .enumerate()
        .map(|(i, d)| {
            let (in_len, rows) = (d[0], d[1]);
            // He-style scale keeps activations in a stable range through the chain.
            let s = (2.0 / in_len as f32).sqrt();
            let weights = (0..rows * in_len).map(|_| rng.uniform(-s, s)).collect();
            let bias = (0..rows).map(|_| rng.uniform(-0.1, 0.1)).collect();
            let last = i + 2 == dims.len();
            LinearLayer {
                in_len,
                rows,
                weights,
                bias,
                activation: if last {
                    Activation::Linear
                } else {
                    Activation::Relu
                },
                numeric: if args.float {
                    Numeric::Float
                } else {
                    Numeric::Int8 {
                        in_scale: 1.0 / 32.0,
                        w_scale: s / 127.0,
                    }
                },
            }
        })
        .collect();
    let schemes = vec![scheme; layers.len()];
    let workers: Vec<NodeId> = (1..=args.workers).collect();
    CodedModel::new(layers, &schemes, &workers).context(|| "building the coded model")
}

struct Running {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

fn start_worker(
    node: CodedNode<StdStack, InlineShards>,
    stall_after: Option<Arc<AtomicBool>>,
) -> Result<Running, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let clock = StdInstant::now();
    let mut node = node;
    let thread = std::thread::Builder::new()
        .name(format!("tessera-coded-{}", node.id()))
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                // A stalled worker keeps its sockets open and stops answering.
                if !stall_after
                    .as_ref()
                    .is_some_and(|s| s.load(Ordering::Relaxed))
                {
                    node.poll(Instant::from_micros(clock.elapsed().as_micros() as u64));
                }
                std::thread::sleep(StdDuration::from_micros(200));
            }
        })
        .context(|| "spawning a worker thread")?;
    Ok(Running { stop, thread })
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `tessera coded`.
pub fn run(args: &Args) -> Result<(), Error> {
    let model = Arc::new(model(args)?);
    let absent = ids(&args.absent, args.workers)?;
    let stall = ids(&args.stall, args.workers)?;
    let allocator = match args.allocator.as_str() {
        "uniform" => Allocator::Uniform,
        "quality" => Allocator::QualityAware,
        s => {
            return Err(error(
                "reading --allocator",
                format!("'{s}': use uniform or quality"),
            ))
        }
    };
    let config = CodedConfig {
        allocator,
        ..CodedConfig::new(Duration::from_millis(args.deadline_ms))
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context(|| "finding a free port")?
        .port();
    let addr = |id: NodeId| {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (id % 250) as u8)),
            port,
        )
    };
    let peers: Vec<(NodeId, SocketAddr)> = (0..=args.workers).map(|id| (id, addr(id))).collect();
    let mut key = [0u8; 32];
    let mut rng = SplitMix64::new(args.seed ^ 0x006b_6579);
    key.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
    let first_seq = crate::cluster::epoch_micros().max(1);
    let make = |id: NodeId| {
        let link = LinkConfig {
            me: id,
            port,
            peers: peers.iter().copied().filter(|(q, _)| *q != id).collect(),
            key: Some(Key::new(key)),
            limits: Limits::LARGE,
            first_seq,
            peer_dead: Duration::from_secs(3),
            retry: Duration::from_millis(20),
            max_backoff: tessera_backends::link::MAX_BACKOFF,
            connect: Duration::from_secs(2),
            backlog: tessera_backends::link::DEFAULT_BACKLOG,
            handshake: Default::default(),
        };
        CodedNode::new(
            StdStack::new(addr(id).ip()),
            link,
            model.clone(),
            config,
            InlineShards::default(),
        )
        .map_err(|e| error(format!("starting coded node {id}"), e.to_string()))
    };
    let mut gateway = make(0)?;
    let stalled = Arc::new(AtomicBool::new(false));
    let mut running = Vec::new();
    for id in (1..=args.workers).filter(|id| !absent.contains(id)) {
        let s = stall.contains(&id).then(|| stalled.clone());
        running.push(start_worker(make(id)?, s)?);
    }
    let result = drive(args, &model, &mut gateway, absent.len(), &stalled);
    for r in &running {
        r.stop.store(true, Ordering::Relaxed);
    }
    for r in running {
        let _ = r.thread.join();
    }
    let done = result?;
    report(args, &model, &gateway, &done)
}

/// Submits the frames one after another from the gateway's own loop; returns them finished.
fn drive(
    args: &Args,
    model: &CodedModel,
    gateway: &mut CodedNode<StdStack, InlineShards>,
    absent: usize,
    stalled: &AtomicBool,
) -> Result<Vec<(CodedFinished, Vec<f32>)>, Error> {
    let clock = StdInstant::now();
    let now = || Instant::from_micros(clock.elapsed().as_micros() as u64);
    let want = args.workers as usize - absent;
    let mut rng = SplitMix64::new(args.seed.wrapping_add(7));
    let mut inputs = std::collections::BTreeMap::new();
    let mut done = Vec::new();
    let limit = StdDuration::from_millis(10_000 + args.deadline_ms * (args.frames as u64 + 1));
    while done.len() < args.frames {
        if clock.elapsed() > limit {
            return Err(error(
                "running the coded cluster",
                format!(
                    "{} of {} frames finished after {:?} ({} of {want} workers connected)",
                    done.len(),
                    args.frames,
                    limit,
                    gateway.link().peers_up().count()
                ),
            ));
        }
        let t = now();
        gateway.poll(t);
        // Wait for the whole cluster once; after that a worker that went silent (and was
        // dropped by the link) is the stage's business, not a reason to stop submitting.
        let ready = !inputs.is_empty() || gateway.link().peers_up().count() >= want;
        if ready && gateway.in_flight() == 0 && inputs.len() == done.len() {
            if done.len() == 1 {
                stalled.store(true, Ordering::Relaxed);
            }
            let x: Vec<f32> = (0..model.in_len()).map(|_| rng.uniform(0.0, 1.0)).collect();
            let key = gateway
                .submit(t, &x, 1)
                .map_err(|e| error("submitting a frame", e.to_string()))?;
            inputs.insert(key, x);
        }
        for f in gateway.take_finished() {
            let x = inputs.get(&f.frame).cloned().unwrap_or_default();
            done.push((f, x));
        }
        std::thread::sleep(StdDuration::from_micros(200));
    }
    Ok(done)
}

fn report(
    args: &Args,
    model: &CodedModel,
    gateway: &CodedNode<StdStack, InlineShards>,
    done: &[(CodedFinished, Vec<f32>)],
) -> Result<(), Error> {
    let mut lat = Vec::new();
    let mut exact = 0;
    let mut worst: f64 = 0.0;
    for (f, x) in done {
        let expect = model
            .reference(x, 1)
            .context(|| "computing the reference")?;
        let same = f
            .output
            .iter()
            .zip(&expect)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        let err = f
            .output
            .iter()
            .zip(&expect)
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        worst = worst.max(if f.quality.is_complete() { err } else { 0.0 });
        exact += same as usize;
        let layers: Vec<String> = f
            .layers
            .iter()
            .map(|l| {
                format!(
                    "{:.1} ms {}{}",
                    l.latency.total_micros() as f64 / 1000.0,
                    if l.decoded { "decoded" } else { "expired" },
                    format_args!(" from {:#x}", l.present)
                )
            })
            .collect();
        println!(
            "frame {:>3}: {:>8.1} ms  quality {:.3}{}  {}  [{}]",
            f.frame.number,
            f.latency.total_micros() as f64 / 1000.0,
            f.quality.fraction,
            if f.quality.is_complete() {
                ""
            } else {
                " (rows lost)"
            },
            if same {
                "= reference".to_string()
            } else {
                format!("max |err| {err:.3e}")
            },
            layers.join(", ")
        );
        lat.push(f.latency.total_micros() as f64 / 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let full: usize = (0..model.len())
        .filter_map(|l| model.layer(l))
        .map(|l| {
            let w = if args.float { 4 } else { 1 };
            l.weights.len() * w + l.bias.len() * 4
        })
        .sum();
    let per_worker = (1..=args.workers)
        .map(|id| model.worker_param_bytes(id))
        .max()
        .unwrap_or(0);
    println!(
        "{} frames: p50 {:.1} ms, p99 {:.1} ms; {exact} bit-identical to the centralised run{}",
        done.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        if args.float {
            format!(", complete frames within {worst:.3e}")
        } else {
            String::new()
        }
    );
    println!(
        "parameters: {:.2} MiB for the whole model, at most {:.2} MiB on one worker ({:.0}%)",
        full as f64 / 1048576.0,
        per_worker as f64 / 1048576.0,
        100.0 * per_worker as f64 / full.max(1) as f64
    );
    if let Some(s) = gateway.stats().gateway {
        println!(
            "gateway: {} layers decoded ({} recovered from parity or replicas), {} expired, \
             {} shards re-sent, {} results discarded, {} budgets from fitted link models",
            s.decoded, s.recovered, s.expired, s.resent, s.discarded, s.fitted_budgets
        );
    }
    Ok(())
}
