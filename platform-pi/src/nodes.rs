//! `tessera gateway` and `tessera edge`: one node of a cluster described by a TOML file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use tessera_backends::driver::{Model, ParamSource};
use tessera_backends::kernels::Fma;
use tessera_backends::pipeline::{boxes, run_tail};
use tessera_core::ftp::Partition;
use tessera_core::kernel::Portable;
use tessera_core::model::weights::Weights;

use crate::cluster::{per_start_frame_number, NodeSpec, RunningNode};
use crate::config::{Cluster, NodeKernel};
use crate::demo::own_model;
use crate::detections::to_json;
use crate::error::{error, Context, Error};
use crate::image::Image;
use crate::{files, gen_weights};

/// Arguments of `tessera gateway`.
#[derive(ClapArgs, Debug)]
pub struct GatewayArgs {
    /// Cluster file (see cluster.example.toml).
    #[arg(long)]
    pub cluster: PathBuf,
    /// Stop after this many frames (default: run until killed).
    #[arg(long)]
    pub frames: Option<usize>,
    /// Write each frame's boxes (network-input coordinates) as JSON here; with `--tail none`,
    /// the fused layers' output as raw little-endian f32 (`frame-O-N.f32`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `run`: run the layers after the fused ones here and decode boxes; `none`: report the
    /// fused output only, and load the fused layers' parameters only when computing a tile
    /// itself (no edge left).
    #[arg(long, value_enum, default_value_t = Tail::Run)]
    pub tail: Tail,
}

/// Whether the gateway runs the layers after the fused ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Tail {
    /// Run them and decode boxes (the gateway holds every layer's parameters).
    Run,
    /// Stop at the fused output (the gateway loads the fused layers' parameters only if it
    /// computes a tile itself).
    None,
}

/// Frames a data-source edge keeps submitted and unfinished at once. Each is decoded just
/// before it is submitted; past this bound the source waits for a frame to finish
/// (back-pressure), so its memory does not grow with `--repeat` or the number of inputs.
pub const SOURCE_QUEUE: usize = 2;

/// Arguments of `tessera edge`.
#[derive(ClapArgs, Debug)]
pub struct EdgeArgs {
    /// Cluster file (see cluster.example.toml).
    #[arg(long)]
    pub cluster: PathBuf,
    /// This edge's id in the cluster file.
    #[arg(long)]
    pub id: u16,
    /// Frames to feed when this edge is a data source (JPEG/PNG), in order.
    #[arg(long)]
    pub input: Vec<PathBuf>,
    /// Feed the inputs this many times.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Run this many seconds, then stop (default: until its frames are done, or forever
    /// when it feeds none).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Straggler factor for experiments (2.0: every job takes twice as long).
    #[arg(long, default_value_t = 1.0)]
    pub slowdown: f64,
}

/// The network and the parameters of its layers `[0, upto)`, read (validating the whole file)
/// or generated from the cluster's seed; nothing past `upto` is kept.
fn load(cluster: &Cluster, upto: usize) -> Result<(tessera_core::model::Network, Vec<f32>), Error> {
    let net = files::load_network(cluster.cfg.as_deref())?;
    let upto = upto.min(net.layers().len());
    let params = match &cluster.weights {
        Some(p) => files::load_weights(p, &net, upto)?,
        None => gen_weights::params(&net, upto, cluster.seed),
    };
    Ok((net, params))
}

/// The fused layers' model of a gateway without the tail: it computes tiles only when no edge
/// is left, so their parameters are read (or generated) then, not at start. A weights file is
/// still checked now (header, and size from its metadata), so a wrong one is loud at start.
fn deferred_model(cluster: &Cluster) -> Result<Arc<Model>, Error> {
    let net = files::load_network(cluster.cfg.as_deref())?;
    if let Some(p) = &cluster.weights {
        files::load_weights(p, &net, 0)?;
    }
    let c = cluster.clone();
    let source = ParamSource(Arc::new(move || match load(&c, c.layers) {
        Ok((_, params)) => Some(params),
        Err(e) => {
            eprintln!("gateway: loading the fused layers' parameters: {e}");
            None
        }
    }));
    Model::deferred(
        net,
        cluster.layers,
        cluster.grid,
        Partition::Darknet,
        source,
    )
    .map(Arc::new)
    .map_err(|e| error("model", e.to_string()))
}

/// Runs the gateway.
pub fn gateway(args: &GatewayArgs) -> Result<(), Error> {
    let cluster = Cluster::load(&args.cluster)?;
    let model = match args.tail {
        Tail::Run => {
            let (net, params) = load(&cluster, usize::MAX)?;
            // The model owns the one parameter buffer; the tail views its layers past the
            // fused ones.
            own_model(&net, params, cluster.layers, cluster.grid)?
        }
        Tail::None => deferred_model(&cluster)?,
    };
    let net = model.net.clone();
    let node = RunningNode::start(NodeSpec {
        id: 0,
        cluster: cluster.clone(),
        model: model.clone(),
        slowdown: 1.0,
        key_override: None,
        first_frame: None,
    })?;
    println!(
        "gateway up: {:?}, grid {}x{}, {} edges, tail {:?}",
        cluster.policy,
        cluster.grid.0,
        cluster.grid.1,
        cluster.edges().count(),
        args.tail
    );
    let weights = match args.tail {
        Tail::Run => Some(
            Weights::new(&net, net.layers().len(), &model.params)
                .context(|| "viewing the weights")?,
        ),
        Tail::None => None,
    };
    let mut done = 0;
    while args.frames.is_none_or(|n| done < n) {
        let Some(f) = node.next_finished(Duration::from_secs(1)) else {
            continue;
        };
        done += 1;
        let Some(out) = f.output.filter(|_| f.complete) else {
            println!("frame {}.{} FAILED", f.frame.origin, f.frame.number);
            continue;
        };
        let Some(weights) = &weights else {
            println!(
                "frame {}.{}: {} ms in the cluster, fused output {} values, tiles {:?}",
                f.frame.origin,
                f.frame.number,
                f.latency.total_millis(),
                out.len(),
                f.tiles_by
            );
            if let Some(dir) = &args.out {
                std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
                let name = format!("frame-{}-{}.f32", f.frame.origin, f.frame.number);
                files::write_raw(&dir.join(name), &out)?;
            }
            continue;
        };
        let t = match cluster.kernel {
            NodeKernel::Simd => run_tail(&Fma::new(), &net, weights, cluster.layers, &out, &[])?,
            NodeKernel::Portable => run_tail(&Portable, &net, weights, cluster.layers, &out, &[])?,
        };
        let (w, h) = (net.input().w as usize, net.input().h as usize);
        let dets = boxes(&net, &t.output, w, h, 0.24, 0.45)?;
        println!(
            "frame {}.{}: {} ms in the cluster, {} boxes, tiles {:?}",
            f.frame.origin,
            f.frame.number,
            f.latency.total_millis(),
            dets.len(),
            f.tiles_by
        );
        if let Some(dir) = &args.out {
            std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(format!("frame-{}-{}.json", f.frame.origin, f.frame.number));
            std::fs::write(&path, to_json(&dets, w, h)?)
                .context(|| format!("writing {}", path.display()))?;
        }
    }
    let s = node.stop();
    println!(
        "gateway: {} frames, {} B sent, {} B received, {} forged, {} replayed, {} refused",
        done, s.link.bytes_sent, s.link.bytes_received, s.link.forged, s.link.replayed, s.refused
    );
    Ok(())
}

/// Runs an edge.
pub fn edge(args: &EdgeArgs) -> Result<(), Error> {
    let cluster = Cluster::load(&args.cluster)?;
    if args.id == 0 || cluster.node(args.id).is_none() {
        return Err(error(
            "edge",
            format!("no edge with id {} in {}", args.id, args.cluster.display()),
        ));
    }
    if !(args.slowdown >= 1.0 && args.slowdown <= 1000.0) {
        return Err(error("edge", "--slowdown must be in 1..=1000"));
    }
    for p in &args.input {
        // Inputs are decoded lazily: check now that each is there, not mid-run.
        std::fs::metadata(p).context(|| format!("reading {}", p.display()))?;
    }
    let (net, params) = load(&cluster, cluster.layers)?;
    let model = own_model(&net, params, cluster.layers, cluster.grid)?;
    let node = RunningNode::start(NodeSpec {
        id: args.id,
        cluster: cluster.clone(),
        model,
        slowdown: args.slowdown,
        key_override: None,
        // A device reboots: its frames must not be mistaken for its previous life's.
        first_frame: Some(per_start_frame_number()),
    })?;
    let shape = net.input();
    let total = args.input.len() * args.repeat;
    let mut inputs = (0..args.repeat).flat_map(|_| args.input.iter());
    println!("edge {} up, feeding {total} frames", args.id);
    let start = Instant::now();
    let (mut fed, mut done) = (0usize, 0usize);
    loop {
        if let Some(s) = args.seconds {
            if start.elapsed() >= Duration::from_secs(s) {
                break;
            }
        } else if total > 0 && done == total {
            break;
        }
        if fed.saturating_sub(done) < SOURCE_QUEUE {
            if let Some(p) = inputs.next() {
                let (w, h) = (shape.w as usize, shape.h as usize);
                let img = Image::load_letterboxed(p, w, h)
                    .context(|| format!("loading {}", p.display()))?;
                node.submit(img.data)
                    .map_err(|e| error("feeding frames", e.to_string()))?;
                fed += 1;
                continue;
            }
        }
        if let Some(f) = node.next_finished(Duration::from_millis(200)) {
            done += 1;
            println!(
                "frame {}.{}: {} in {} ms",
                f.frame.origin,
                f.frame.number,
                if f.complete { "done" } else { "FAILED" },
                f.latency.total_millis()
            );
        }
    }
    let s = node.stop();
    println!(
        "edge {}: computed {}, lent {}, re-dispatched {}, {} B sent",
        args.id,
        s.runtime.tiles_computed,
        s.runtime.tiles_lent,
        s.runtime.tiles_redispatched,
        s.link.bytes_sent
    );
    Ok(())
}
