//! `tessera demo`: a gateway and K edges on 127.0.0.x in one process, running the sample
//! frames through the cluster, then the tail, decoding and NMS on the gateway.
//!
//! Every node is the real thing — its own address, TCP links authenticated with the cluster
//! key, a compute thread — so the demo exercises exactly what runs on a Pi cluster.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use clap::Args as ClapArgs;
use tessera_backends::driver::{Finished, Model, NodeStats};
use tessera_backends::kernels::Fma;
use tessera_core::ftp::Partition;
use tessera_core::kernel::{Kernels, Portable};
use tessera_core::model::weights::{param_count, Weights};
use tessera_core::model::Network;
use tessera_core::wire::{FrameKey, NodeId, Policy};

use crate::cluster::{NodeSpec, RunningNode};
use crate::config::{parse_grid, parse_policy, Cluster, Node, NodeKernel, Timeouts};
use crate::detections::{class_name, to_json, write_annotated};
use crate::error::{error, Context, Error};
use crate::image::Image;
use crate::{detect, files, gen_weights, tail};

/// The second bundled sample frame.
const SECOND_IMAGE: &[u8] = include_bytes!("../../data/images/1.jpg");

/// Arguments of `tessera demo`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Number of edges.
    #[arg(long, default_value_t = 3)]
    pub edges: u16,
    /// Policy: wsh, wst, wst-s or bodp.
    #[arg(long, default_value = "wst-s", value_parser = parse_policy)]
    pub policy: Policy,
    /// Tile grid NxM.
    #[arg(long, default_value = "3x3", value_parser = parse_grid)]
    pub grid: (u32, u32),
    /// Frames to run (the images are cycled).
    #[arg(long, default_value_t = 2)]
    pub frames: usize,
    /// Data sources: edges 1..=S each get frames (a camera on each).
    #[arg(long, default_value_t = 1)]
    pub sources: u16,
    /// Input images [default: the two bundled samples].
    #[arg(long)]
    pub input: Vec<PathBuf>,
    /// Darknet cfg [default: the built-in yolov2-608.cfg].
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// Seed of the generated weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Conv kernel of every node: auto (SIMD on x86_64/aarch64), portable or simd.
    #[arg(long, default_value = "auto", value_parser = NodeKernel::parse)]
    pub kernel: NodeKernel,
    /// Run without authentication (measurements only).
    #[arg(long)]
    pub insecure: bool,
    /// Port every node listens on (each has its own 127.0.0.x address).
    #[arg(long, default_value_t = 7700)]
    pub port: u16,
    /// Where to write the annotated PNGs and JSON boxes.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Skip the tail and detection (fused layers only).
    #[arg(long)]
    pub no_tail: bool,
    /// Longest wait for all frames, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// The result of a local cluster run.
#[derive(Debug)]
pub struct LocalRun {
    /// Frames the gateway finished, by key.
    pub gateway: BTreeMap<FrameKey, Finished>,
    /// Latency seen by the data sources (submit → FrameDone), by key.
    pub source_latency: BTreeMap<FrameKey, StdDuration>,
    /// Counters of each node, by id.
    pub stats: BTreeMap<NodeId, NodeStats>,
    /// Wall time of the whole run.
    pub elapsed: StdDuration,
}

/// Faults injected into a local cluster run.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Edges that run `factor` times slower (stragglers).
    pub slow: Vec<(NodeId, f64)>,
    /// An edge stopped (threads joined, sockets closed) this long after the start.
    pub kill: Option<(NodeId, StdDuration)>,
    /// Nodes of the cluster file that are not started (an outside peer may pose as one).
    pub absent: Vec<NodeId>,
    /// Nodes started with a different cluster key.
    pub wrong_key: Vec<NodeId>,
}

/// A loopback cluster description: gateway on 127.0.0.1, edge i on 127.0.0.(1+i).
pub fn local_cluster(
    policy: Policy,
    grid: (u32, u32),
    edges: u16,
    sources: u16,
    port: u16,
    key: Option<[u8; 32]>,
    layers: usize,
) -> Cluster {
    let nodes = (0..=edges)
        .map(|id| Node {
            id,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + id as u8)), port),
            source: id >= 1 && id <= sources,
        })
        .collect();
    Cluster {
        policy,
        grid,
        layers,
        key,
        kernel: NodeKernel::Portable,
        cfg: None,
        weights: None,
        seed: 1,
        timeouts: Timeouts {
            tile: StdDuration::from_secs(20),
            frame: StdDuration::from_secs(300),
            steal_backoff: StdDuration::from_millis(20),
            peer_dead: StdDuration::from_secs(3),
            connect: StdDuration::from_secs(2),
        },
        nodes,
    }
}

/// Runs `images` (network inputs) through a loopback cluster, spreading them over the sources
/// round-robin; returns when every frame finished at the gateway and its source, or after
/// `timeout`.
pub fn run_local(
    cluster: &Cluster,
    model: Arc<Model>,
    images: &[Vec<f32>],
    faults: &Faults,
    timeout: StdDuration,
) -> Result<LocalRun, Error> {
    let start = StdInstant::now();
    let mut nodes: Vec<RunningNode> = Vec::new();
    for n in cluster
        .nodes
        .iter()
        .filter(|n| !faults.absent.contains(&n.id))
    {
        let slowdown = faults
            .slow
            .iter()
            .find(|(id, _)| *id == n.id)
            .map_or(1.0, |&(_, f)| f);
        nodes.push(RunningNode::start(NodeSpec {
            id: n.id,
            cluster: cluster.clone(),
            model: model.clone(),
            slowdown,
            key_override: faults.wrong_key.contains(&n.id).then_some(Some([0x5a; 32])),
        })?);
    }
    let sources: Vec<NodeId> = cluster
        .nodes
        .iter()
        .filter(|n| n.source)
        .map(|n| n.id)
        .collect();
    if sources.is_empty() {
        return Err(error("running the cluster", "no data source"));
    }
    for (i, img) in images.iter().enumerate() {
        let src = sources[i % sources.len()];
        if let Some(n) = nodes.iter().find(|n| n.id() == src) {
            n.submit(img.clone());
        }
    }
    let mut gateway = BTreeMap::new();
    let mut source_latency = BTreeMap::new();
    let mut stats = BTreeMap::new();
    let mut killed = false;
    while gateway.len() < images.len() || source_latency.len() < images.len() {
        if start.elapsed() > timeout {
            break;
        }
        if let Some((victim, after)) = faults.kill {
            if !killed && start.elapsed() >= after {
                if let Some(i) = nodes.iter().position(|n| n.id() == victim) {
                    stats.insert(victim, nodes.remove(i).stop());
                }
                killed = true;
            }
        }
        for n in &nodes {
            for f in n.try_finished() {
                if n.id() == 0 {
                    gateway.insert(f.frame, f);
                } else {
                    source_latency
                        .insert(f.frame, StdDuration::from_micros(f.latency.total_micros()));
                }
            }
        }
        std::thread::sleep(StdDuration::from_millis(2));
    }
    for n in nodes {
        let id = n.id();
        stats.insert(id, n.stop());
    }
    Ok(LocalRun {
        gateway,
        source_latency,
        stats,
        elapsed: start.elapsed(),
    })
}

/// The model every node of a run shares: the fused layers' parameters of `params`.
pub fn fused_model(
    net: &Network,
    params: &[f32],
    layers: usize,
    grid: (u32, u32),
) -> Result<Arc<Model>, Error> {
    let n = param_count(net, layers).context(|| "sizing the fused weights")?;
    let fused = params
        .get(..n)
        .ok_or_else(|| error("weights", "too few parameters"))?
        .to_vec();
    Model::new(net.clone(), fused, layers, grid, Partition::Darknet)
        .map(Arc::new)
        .map_err(|e| error("model", e.to_string()))
}

fn load_images(paths: &[PathBuf]) -> Result<Vec<(String, Image)>, Error> {
    if paths.is_empty() {
        return Ok(vec![
            (
                "0".into(),
                Image::decode(files::DEFAULT_IMAGE).context(|| "bundled sample 0")?,
            ),
            (
                "1".into(),
                Image::decode(SECOND_IMAGE).context(|| "bundled sample 1")?,
            ),
        ]);
    }
    paths
        .iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "frame".into());
            Image::load(p)
                .context(|| format!("loading {}", p.display()))
                .map(|i| (name, i))
        })
        .collect()
}

/// Tail, decoding and outputs of one frame the gateway finished; returns the box count.
pub fn postprocess<K: Kernels>(
    kernels: &K,
    net: &Network,
    params: &[f32],
    layers: usize,
    fused_out: &[f32],
    img: &Image,
    stem: &Path,
) -> Result<usize, Error> {
    let weights =
        Weights::new(net, net.layers().len(), params).context(|| "viewing the weights")?;
    let t = tail::run_tail(kernels, net, &weights, layers, fused_out, &[])?;
    let dets = detect::boxes(net, &t.output, img.w, img.h, 0.24, 0.45)?;
    let classes = match &net.layers().last().map(|l| &l.kind) {
        Some(tessera_core::model::LayerKind::Region(r)) => r.classes,
        _ => 80,
    };
    write_annotated(img, &dets, classes, &stem.with_extension("png"))?;
    let json = stem.with_extension("json");
    std::fs::write(&json, to_json(&dets, img.w, img.h))
        .context(|| format!("writing {}", json.display()))?;
    for d in dets.iter().take(5) {
        println!("    {:<14} {:>5.1} %", class_name(d.class), 100.0 * d.prob);
    }
    Ok(dets.len())
}

/// Runs the command.
pub fn run(args: &Args) -> Result<(), Error> {
    if args.edges == 0 || args.edges as usize > crate::config::MAX_EDGES {
        return Err(error(
            "demo",
            format!(
                "--edges {} outside 1..={}",
                args.edges,
                crate::config::MAX_EDGES
            ),
        ));
    }
    if args.sources == 0 || args.sources > args.edges {
        return Err(error(
            "demo",
            format!("--sources {} outside 1..={}", args.sources, args.edges),
        ));
    }
    let net = files::load_network(args.cfg.as_deref())?;
    let layers = 16.min(net.layers().len());
    let all = net.layers().len();
    let params = gen_weights::params(&net, all, args.seed);
    let model = fused_model(&net, &params, layers, args.grid)?;
    let key = if args.insecure {
        None
    } else {
        Some(*b"tessera-demo-key-not-for-fields!")
    };
    let mut cluster = local_cluster(
        args.policy,
        args.grid,
        args.edges,
        args.sources,
        args.port,
        key,
        layers,
    );
    cluster.kernel = args.kernel;
    let images = load_images(&args.input)?;
    let shape = net.input();
    let inputs: Vec<Vec<f32>> = (0..args.frames)
        .map(|i| {
            images[i % images.len()]
                .1
                .letterbox(shape.w as usize, shape.h as usize)
                .data
        })
        .collect();
    println!(
        "demo: gateway + {} edges on 127.0.0.1..{} port {}, {:?}, grid {}x{}, {:?} kernel, {} frames from {} source(s){}",
        args.edges,
        1 + args.edges,
        args.port,
        args.policy,
        args.grid.0,
        args.grid.1,
        args.kernel,
        args.frames,
        args.sources,
        if args.insecure { ", INSECURE (no authentication)" } else { ", authenticated" }
    );
    let run = run_local(
        &cluster,
        model,
        &inputs,
        &Faults::default(),
        StdDuration::from_secs(args.timeout),
    )?;
    std::fs::create_dir_all(&args.out).context(|| format!("creating {}", args.out.display()))?;
    println!(
        "
frame         latency     done  tiles per node               boxes"
    );
    // Frames were spread round-robin over sources 1..=S, numbered per source from 0.
    let mut failed = 0;
    for (i, _) in inputs.iter().enumerate() {
        let s = args.sources as usize;
        let key = FrameKey::new(1 + (i % s) as u16, (i / s) as u32);
        let lat = run.source_latency.get(&key).map_or("-".to_string(), |d| {
            format!("{:.0} ms", d.as_secs_f64() * 1e3)
        });
        let Some(f) = run.gateway.get(&key) else {
            println!(
                "{:<10} {:>10} {:>8}",
                format!("{}.{}", key.origin, key.number),
                lat,
                "LOST"
            );
            failed += 1;
            continue;
        };
        let tiles: Vec<String> = f.tiles_by.iter().map(|(n, c)| format!("{n}:{c}")).collect();
        println!(
            "{:<10} {:>10} {:>8}  {:<28}",
            format!("{}.{}", key.origin, key.number),
            lat,
            if f.complete { "yes" } else { "FAILED" },
            tiles.join(" ")
        );
        if !f.complete {
            failed += 1;
        }
        if let (Some(out), false) = (&f.output, args.no_tail) {
            let (name, img) = &images[i % images.len()];
            let stem = args.out.join(format!("frame{i}-{name}"));
            let n = match args.kernel {
                NodeKernel::Simd => {
                    postprocess(&Fma::new(), &net, &params, layers, out, img, &stem)?
                }
                NodeKernel::Portable => {
                    postprocess(&Portable, &net, &params, layers, out, img, &stem)?
                }
            };
            println!("    {n} boxes -> {}.png / .json", stem.display());
        }
    }
    println!(
        "\n{:<6} {:>12} {:>12} {:>9} {:>6} {:>8} {:>8} {:>7} {:>10}",
        "node",
        "sent MiB",
        "recv MiB",
        "computed",
        "lent",
        "re-disp",
        "discard",
        "reuse",
        "peak MiB"
    );
    for (id, s) in &run.stats {
        println!(
            "{:<6} {:>12.2} {:>12.2} {:>9} {:>6} {:>8} {:>8} {:>7} {:>10.1}",
            if *id == 0 {
                "gw".to_string()
            } else {
                format!("edge{id}")
            },
            s.link.bytes_sent as f64 / (1 << 20) as f64,
            s.link.bytes_received as f64 / (1 << 20) as f64,
            s.runtime.tiles_computed,
            s.runtime.tiles_lent,
            s.runtime.tiles_redispatched,
            s.runtime.discarded,
            s.runtime.reuse_runs,
            s.peak_store_bytes as f64 / (1 << 20) as f64,
        );
    }
    println!(
        "\n{} frames in {:.2} s",
        inputs.len() - failed,
        run.elapsed.as_secs_f64()
    );
    if failed > 0 {
        return Err(error("demo", format!("{failed} frame(s) did not complete")));
    }
    Ok(())
}
