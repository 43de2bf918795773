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
use tessera_backends::coded::tail::{bit_identical, max_abs_diff, CodedTail, TailScheme};
use tessera_backends::driver::{Finished, Model, NodeStats};
use tessera_backends::pipeline::{boxes, run_tail, AnyKernel};
use tessera_core::detect::Detection;
use tessera_core::ftp::Partition;
use tessera_core::kernel::Kernels;
use tessera_core::model::weights::{param_count, Weights};
use tessera_core::model::Network;
use tessera_core::wire::{FrameKey, NodeId, Policy};

use crate::cluster::{NodeSpec, RunningNode};
use crate::coded_tail::{CodedTailStage, StageSpec, TailDone};
use crate::config::{parse_grid, parse_policy, Cluster, Node, NodeKernel, Timeouts};
use crate::detections::{class_name, to_json, write_annotated};
use crate::error::{error, Context, Error};
use crate::image::Image;
use crate::{files, gen_weights};

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
    /// Run the tail's convolutions as coded layers across the edges: cdc:R (edges − R data
    /// shards + R parity), 2mr or uncoded [default: the whole tail on the gateway].
    #[arg(long, value_name = "SCHEME", value_parser = TailScheme::parse)]
    pub coded_tail: Option<TailScheme>,
    /// Port of the coded tail's nodes [default: --port + 1].
    #[arg(long)]
    pub coded_port: Option<u16>,
    /// Coded tail frame deadline, ms (a frame leaves the coded stage by then, complete or not).
    #[arg(long, default_value_t = 120_000)]
    pub coded_deadline_ms: u64,
    /// Once parity could decode a coded tail layer, wait this long (ms) for its data shards
    /// still computing: then the layer is exact (bit-identical to the centralised run) rather
    /// than a float decode. 0: decode from the first results, as CDC does.
    #[arg(long, default_value_t = 250)]
    pub coded_grace_ms: u64,
    /// Stop edge ID (its FTP node and its coded worker) SECS seconds after the start: ID@SECS.
    #[arg(long, value_name = "ID@SECS")]
    pub kill: Option<String>,
    /// Make edge ID F times slower (FTP tiles and coded shards): ID:F; repeatable.
    #[arg(long, value_name = "ID:F")]
    pub slow: Vec<String>,
    /// Do not start edge ID (FTP node nor coded worker); repeatable.
    #[arg(long, value_name = "ID")]
    pub absent: Vec<u16>,
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
    /// Coded tails of the frames (by FTP key), when the run had a coded stage.
    pub tails: BTreeMap<FrameKey, TailDone>,
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
    /// With `kill`: the kill also waits until this many frames left the coded tail (a kill in
    /// the middle of the coded stage, whatever the timing of the fused stack).
    pub kill_after_tails: usize,
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
    run_local_with(cluster, model, images, faults, timeout, None)
}

/// As [`run_local`], with each complete frame's fused-stack output fed to a coded tail stage
/// (whose workers the faults hit too: a killed edge's worker is stopped with it); returns also
/// when every such frame left the stage.
pub fn run_local_with(
    cluster: &Cluster,
    model: Arc<Model>,
    images: &[Vec<f32>],
    faults: &Faults,
    timeout: StdDuration,
    mut stage: Option<&mut CodedTailStage>,
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
            // In-process runs never restart a node: frames numbered from 0 per source.
            first_frame: None,
            confirm_done: false,
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
            n.submit(img.clone())
                .map_err(|e| error("feeding frames", e.to_string()))?;
        }
    }
    let mut gateway = BTreeMap::new();
    let mut source_latency = BTreeMap::new();
    let mut stats = BTreeMap::new();
    let mut killed = false;
    let mut tails = BTreeMap::new();
    let tails_pending =
        |stage: &Option<&mut CodedTailStage>| stage.as_ref().is_some_and(|s| s.outstanding() > 0);
    while gateway.len() < images.len()
        || source_latency.len() < images.len()
        || tails_pending(&stage)
    {
        if start.elapsed() > timeout {
            break;
        }
        if let Some((victim, after)) = faults.kill {
            if !killed && start.elapsed() >= after && tails.len() >= faults.kill_after_tails {
                if let Some(i) = nodes.iter().position(|n| n.id() == victim) {
                    stats.insert(victim, nodes.remove(i).stop());
                }
                if let Some(s) = stage.as_mut() {
                    s.kill(victim);
                }
                killed = true;
            }
        }
        if let Some(s) = stage.as_mut() {
            for t in s.poll()? {
                tails.insert(t.frame, t);
            }
        }
        for n in &nodes {
            for f in n.try_finished() {
                if n.id() == 0 {
                    if let (Some(s), Some(out), true) = (stage.as_mut(), &f.output, f.complete) {
                        s.submit(f.frame, out.clone());
                    }
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
        tails,
    })
}

/// The model every node of a run shares: a copy of the fused layers' parameters of `params`
/// (for runs that keep the whole network's parameters for a tail; a node uses [`own_model`]).
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
    own_model(net, fused, layers, grid)
}

/// The model of a node that owns `params` (the fused layers' parameters, or more when the node
/// also runs layers after them): no copy is made.
pub fn own_model(
    net: &Network,
    params: Vec<f32>,
    layers: usize,
    grid: (u32, u32),
) -> Result<Arc<Model>, Error> {
    Model::new(net.clone(), params, layers, grid, Partition::Darknet)
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
    let t0 = std::time::Instant::now();
    let t = run_tail(kernels, net, &weights, layers, fused_out, &[])?;
    println!(
        "    tail (gateway alone) {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    write_outputs(net, &t.output, img, stem).map(|d| d.len())
}

/// Decodes, NMS, prints the first boxes and writes the annotated PNG and the JSON of one
/// frame's region output.
fn write_outputs(
    net: &Network,
    region_out: &[f32],
    img: &Image,
    stem: &Path,
) -> Result<Vec<Detection>, Error> {
    let dets = boxes(net, region_out, img.w, img.h, 0.24, 0.45)?;
    let classes = match &net.layers().last().map(|l| &l.kind) {
        Some(tessera_core::model::LayerKind::Region(r)) => r.classes,
        _ => 80,
    };
    write_annotated(img, &dets, classes, &stem.with_extension("png"))?;
    let json = stem.with_extension("json");
    std::fs::write(&json, to_json(&dets, img.w, img.h)?)
        .context(|| format!("writing {}", json.display()))?;
    for d in dets.iter().take(5) {
        println!("    {:<14} {:>5.1} %", class_name(d.class), 100.0 * d.prob);
    }
    Ok(dets)
}

/// Same boxes (in any order): equal count, classes and anchors, probabilities and coordinates within
/// `10⁻³·max(1, |v|)` (float rounding — folded batch norm, parity decoding — moves them by about
/// `10⁻⁵` here; a box whose probability sits at the threshold could still flip).
pub fn detections_match(a: &[Detection], b: &[Detection]) -> bool {
    // Sorted by anchor and class: boxes of near-equal probability may swap places.
    let sorted = |d: &[Detection]| {
        let mut v = d.to_vec();
        v.sort_by_key(|x| (x.index, x.class));
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            let close = |p: f32, q: f32| (p - q).abs() <= 1e-3 * p.abs().max(q.abs()).max(1.0);
            x.class == y.class
                && x.index == y.index
                && close(x.prob, y.prob)
                && close(x.x, y.x)
                && close(x.y, y.y)
                && close(x.w, y.w)
                && close(x.h, y.h)
        })
}

/// What the coded tail did to one frame, against the centralised and the plain runs.
#[derive(Clone, Debug)]
pub struct CodedCheck {
    /// The coded output has the bits of the centralised run with the same arithmetic.
    pub bit_identical: bool,
    /// Largest difference from that run.
    pub vs_reference: f64,
    /// Largest difference from the plain tail (batch norm not folded).
    pub vs_plain: f64,
    /// The detections equal the plain tail's ([`detections_match`]).
    pub detections_match: bool,
    /// Coded layers decoded with parity or replicas standing in for a data shard.
    pub recovered_layers: usize,
}

/// Checks a coded tail output of `fused_out` against [`CodedTail::reference`] (same kernels)
/// and the plain tail; writes the outputs of the coded one.
#[allow(clippy::too_many_arguments)]
pub fn check_coded<K: Kernels + Clone>(
    kernels: &K,
    net: &Network,
    params: &[f32],
    coded: &CodedTail,
    fused_out: &[f32],
    done: &TailDone,
    img: &Image,
    stem: Option<&Path>,
) -> Result<(CodedCheck, Vec<Detection>), Error> {
    let weights =
        Weights::new(net, net.layers().len(), params).context(|| "viewing the weights")?;
    let reference = coded
        .reference(kernels, fused_out)
        .context(|| "the centralised coded tail")?;
    let plain = run_tail(kernels, net, &weights, coded.from(), fused_out, &[])?;
    let out = &done.finished.output;
    let dets = match stem {
        Some(stem) => write_outputs(net, out, img, stem)?,
        None => boxes(net, out, img.w, img.h, 0.24, 0.45)?,
    };
    let plain_dets = boxes(net, &plain.output, img.w, img.h, 0.24, 0.45)?;
    let k = coded.scheme().k;
    let recovered_layers = done
        .finished
        .layers
        .iter()
        .filter(|l| (0..k).any(|d| l.present >> d & 1 == 0))
        .count();
    Ok((
        CodedCheck {
            bit_identical: bit_identical(out, &reference),
            vs_reference: max_abs_diff(out, &reference),
            vs_plain: max_abs_diff(out, &plain.output),
            detections_match: detections_match(&dets, &plain_dets),
            recovered_layers,
        },
        dets,
    ))
}

fn parse_kill(s: &str, edges: u16) -> Result<(NodeId, StdDuration), Error> {
    let bad = || {
        error(
            "reading --kill",
            format!("'{s}' is not ID@SECS with an edge ID 1..={edges}"),
        )
    };
    let (id, secs) = s.split_once('@').ok_or_else(bad)?;
    let id: NodeId = id.trim().parse().map_err(|_| bad())?;
    let secs: f64 = secs.trim().parse().map_err(|_| bad())?;
    if !(1..=edges).contains(&id) || !secs.is_finite() || secs < 0.0 {
        return Err(bad());
    }
    Ok((id, StdDuration::from_secs_f64(secs)))
}

fn parse_slow(s: &str, edges: u16) -> Result<(NodeId, f64), Error> {
    let bad = || {
        error(
            "reading --slow",
            format!("'{s}' is not ID:FACTOR with an edge ID 1..={edges} and FACTOR >= 1"),
        )
    };
    let (id, f) = s.split_once(':').ok_or_else(bad)?;
    let id: NodeId = id.trim().parse().map_err(|_| bad())?;
    let f: f64 = f.trim().parse().map_err(|_| bad())?;
    if !(1..=edges).contains(&id) || !f.is_finite() || f < 1.0 {
        return Err(bad());
    }
    Ok((id, f))
}

/// The faults of `args`: edges only, never a data source (its frames would never start).
fn faults_of(args: &Args) -> Result<Faults, Error> {
    let kill = args
        .kill
        .as_deref()
        .map(|s| parse_kill(s, args.edges))
        .transpose()?;
    let slow = args
        .slow
        .iter()
        .map(|s| parse_slow(s, args.edges))
        .collect::<Result<Vec<_>, _>>()?;
    for &id in &args.absent {
        if !(1..=args.edges).contains(&id) {
            return Err(error(
                "reading --absent",
                format!("{id} is not an edge ID 1..={}", args.edges),
            ));
        }
    }
    let hit: Vec<NodeId> = kill
        .iter()
        .map(|k| k.0)
        .chain(args.absent.iter().copied())
        .collect();
    if let Some(id) = hit.iter().find(|&&id| id <= args.sources) {
        return Err(error(
            "demo",
            format!(
                "edge {id} is a data source (1..={}): it cannot be killed or absent",
                args.sources
            ),
        ));
    }
    Ok(Faults {
        slow,
        kill,
        absent: args.absent.clone(),
        ..Faults::default()
    })
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
    let faults = faults_of(args)?;
    // Scheme errors before the (slow) weight generation.
    let split = match (args.coded_tail, args.no_tail) {
        (Some(_), true) => {
            return Err(error(
                "demo",
                "--coded-tail and --no-tail exclude each other",
            ))
        }
        (Some(scheme), false) => Some((
            scheme,
            scheme
                .layer_scheme(args.edges as usize)
                .context(|| "--coded-tail")?,
        )),
        (None, _) => None,
    };
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
    let coded = match split {
        Some((scheme, split)) => {
            let weights = Weights::new(&net, all, &params).context(|| "viewing the weights")?;
            let workers: Vec<NodeId> = (1..=args.edges).collect();
            Some(
                CodedTail::new(&net, &weights, layers, split, &workers)
                    .context(|| format!("--coded-tail {scheme}"))?,
            )
        }
        None => None,
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
    let mut stage = match &coded {
        Some(c) => {
            let port = args.coded_port.unwrap_or(args.port.wrapping_add(1));
            let s = c.scheme();
            println!(
                "coded tail: {} ({} data + {} {} shards per layer) over {} coded layers (network layers {:?}), port {port}",
                args.coded_tail.map_or(String::new(), |t| t.to_string()),
                s.k,
                if s.protection == tessera_core::runtime::coded::Protection::Replicated { s.k } else { s.r },
                if s.protection == tessera_core::runtime::coded::Protection::Replicated { "replica" } else { "parity" },
                c.conv_layers().len(),
                c.conv_layers(),
            );
            Some(CodedTailStage::start(
                c,
                &StageSpec {
                    edges: args.edges,
                    port,
                    key,
                    kernel: args.kernel,
                    deadline: StdDuration::from_millis(args.coded_deadline_ms),
                    data_grace: StdDuration::from_millis(args.coded_grace_ms),
                    slow: faults.slow.clone(),
                    absent: faults.absent.clone(),
                },
            )?)
        }
        None => None,
    };
    let run = run_local_with(
        &cluster,
        model,
        &inputs,
        &faults,
        StdDuration::from_secs(args.timeout),
        stage.as_mut(),
    );
    let stage_stats = stage.map(CodedTailStage::stop);
    let run = run?;
    std::fs::create_dir_all(&args.out).context(|| format!("creating {}", args.out.display()))?;
    println!(
        "
frame         latency     done  tiles per node               boxes"
    );
    // Frames were spread round-robin over sources 1..=S, numbered per source from 0.
    let mut failed = 0;
    let mut checks: Vec<CodedCheck> = Vec::new();
    let mut tail_ms: Vec<f64> = Vec::new();
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
        let (Some(out), false) = (&f.output, args.no_tail) else {
            continue;
        };
        let (name, img) = &images[i % images.len()];
        let stem = args.out.join(format!("frame{i}-{name}"));
        let kernel = AnyKernel::of(args.kernel);
        let n = match &coded {
            None => postprocess(&kernel, &net, &params, layers, out, img, &stem)?,
            Some(c) => {
                let Some(done) = run.tails.get(&key) else {
                    println!("    coded tail LOST");
                    failed += 1;
                    continue;
                };
                let fin = &done.finished;
                let layer_ms: Vec<String> = fin
                    .layers
                    .iter()
                    .map(|l| format!("{:.0}", l.latency.total_micros() as f64 / 1e3))
                    .collect();
                println!(
                    "    coded tail {:.0} ms (in stage {:.0} ms; per layer ms: {}), quality {:.3}{}",
                    done.wall.as_secs_f64() * 1e3,
                    fin.latency.total_micros() as f64 / 1e3,
                    layer_ms.join(" "),
                    fin.quality.fraction,
                    if fin.quality.is_complete() { "" } else { " (rows lost)" }
                );
                tail_ms.push(fin.latency.total_micros() as f64 / 1e3);
                let (check, dets) =
                    check_coded(&kernel, &net, &params, c, out, done, img, Some(&stem))?;
                println!(
                    "    {}; {} of {} layers decoded with parity/replicas; vs plain tail max |d| {:.2e}, detections {}",
                    if check.bit_identical {
                        "= centralised coded run (bit-identical)".to_string()
                    } else {
                        format!("max |d| {:.2e} from the centralised coded run", check.vs_reference)
                    },
                    check.recovered_layers,
                    fin.layers.len(),
                    check.vs_plain,
                    if check.detections_match { "match the plain tail's" } else { "DIFFER from the plain tail's" }
                );
                if !fin.quality.is_complete() {
                    failed += 1;
                }
                checks.push(check);
                dets.len()
            }
        };
        println!("    {n} boxes -> {}.png / .json", stem.display());
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
    if let (Some(c), Some(st)) = (&coded, &stage_stats) {
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        let whole = c.whole_tail_bytes();
        let per: Vec<String> = (1..=args.edges)
            .map(|id| {
                let b = c.model().worker_param_bytes(id);
                format!(
                    "edge{id} {:.1} MiB ({:.0}%)",
                    mib(b),
                    100.0 * b as f64 / whole.max(1) as f64
                )
            })
            .collect();
        println!(
            "\ncoded tail weights: whole tail {:.1} MiB (BN folded, f32) on one device without coding; held per edge: {}",
            mib(whole),
            per.join(", ")
        );
        let exact = checks.iter().filter(|c| c.bit_identical).count();
        let same_dets = checks.iter().filter(|c| c.detections_match).count();
        let worst_ref = checks.iter().map(|c| c.vs_reference).fold(0.0, f64::max);
        let worst_plain = checks.iter().map(|c| c.vs_plain).fold(0.0, f64::max);
        let recovered: usize = checks.iter().map(|c| c.recovered_layers).sum();
        tail_ms.sort_by(f64::total_cmp);
        println!(
            "coded tail: {} frames, {:.0} ms median in the stage; {exact} of {} bit-identical to the centralised coded run{}; max |d| vs plain tail {:.2e}; detections match the plain tail in {same_dets} of {}",
            checks.len(),
            tail_ms.get(tail_ms.len() / 2).copied().unwrap_or(f64::NAN),
            checks.len(),
            if exact < checks.len() {
                format!(" (others within {worst_ref:.2e}: {recovered} layers decoded from parity/replicas, float decode is not bit-exact)")
            } else {
                String::new()
            },
            worst_plain,
            checks.len()
        );
        if let Some(g) = st.nodes.get(&0).and_then(|s| s.gateway) {
            println!(
                "coded gateway: {} layers decoded ({} recovered), {} expired, {} shards re-sent, {} results discarded; glue failures {}",
                g.decoded, g.recovered, g.expired, g.resent, g.discarded, st.glue_failures
            );
        }
        for (id, s) in st.nodes.iter().filter(|(id, _)| **id != 0) {
            if let Some(w) = s.worker {
                println!(
                    "coded edge{id}: {} shards received, {} sent, {} late; sent {:.2} MiB, received {:.2} MiB",
                    w.received,
                    w.sent,
                    w.late,
                    mib(s.link.bytes_sent as usize),
                    mib(s.link.bytes_received as usize)
                );
            }
        }
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
