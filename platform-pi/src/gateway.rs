//! `tessera gateway`: the gateway of a cluster described by a TOML file. It runs the layers
//! after the fused ones (or waits for the coded stage), writes each frame's result and tells
//! the source once the result is made.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::cluster::{CodedRole, NodeOptions};
use tessera_backends::coded::tail::{CodedTail, TailJoin, TailPlace};
use tessera_backends::coded::CodedFinished;
use tessera_backends::detections_json::to_json;
use tessera_backends::driver::{Finished, Model, NodeStats, ParamSource};
use tessera_backends::frame_result::{FrameResult, ResultError, TailWork};
use tessera_backends::pipeline::AnyKernel;
use tessera_core::ftp::Partition;
use tessera_core::model::weights::Weights;
use tessera_core::model::Network;

use crate::config::Cluster;
use crate::drop_log::DropLog;
use crate::node::{node_counters, own_model, start, StatsClock};
use crate::result_file::{write_new, WriteError};
use crate::signals::Signals;

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
    /// Print a counters line every this many seconds (also on SIGUSR1, and at exit).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub stats_every: Option<u64>,
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

/// The fused layers' model of a gateway without the tail: it computes tiles only when no edge
/// is left, so their parameters are read (or generated) then, not at start. A weights file is
/// still checked now (header, and size from its metadata), so a wrong one is loud at start.
fn deferred_model(cluster: &Cluster) -> Result<Arc<Model>, Error> {
    let net = cluster.model.network()?;
    cluster.model.check_weights(&net)?;
    let (files, layers) = (cluster.model.clone(), cluster.layers);
    let source = ParamSource(Arc::new(move || match files.load(layers) {
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
    .map_err(|e| anyhow!("model: {}", e))
}

/// What the gateway did with the frames it finished.
#[derive(Clone, Copy, Debug, Default)]
struct GatewayCounts {
    /// Frames finished here (complete or not).
    finished: usize,
    /// Complete with their final result (boxes, or the fused output with `--tail none`),
    /// written when `--out` is given.
    done: usize,
    /// Abandoned by the cluster, or whose tail or output failed.
    failed: usize,
    /// Of `done`: results not written because a file of that name exists, left as it was.
    /// Frame numbers are unique per source start, so that file is this frame's result from
    /// an earlier gateway (one that wrote it, then died before telling the source, which
    /// re-submitted the frame here).
    exists: usize,
}

impl GatewayCounts {
    fn line(&self, s: &NodeStats) -> String {
        format!(
            "gateway: {} frames, {} done, {} failed, {} already on disk, {}",
            self.finished,
            self.done,
            self.failed,
            self.exists,
            node_counters(s)
        )
    }
}

/// The gateway's per-frame work after the cluster: the final result, the result file.
struct Results<'a> {
    net: &'a Network,
    cluster: &'a Cluster,
    work: TailWork<'a>,
    out: Option<&'a Path>,
}

impl Results<'_> {
    /// Makes frame `f`'s final result (`tail`: its coded tail, with a coded tail); false
    /// (said on stderr) when it could not be made. A result file already there counts as made
    /// (see [`GatewayCounts::exists`]).
    fn make(&self, f: &Finished, tail: Option<&CodedFinished>, counts: &mut GatewayCounts) -> bool {
        let key = f.frame;
        let name = |ext: &str| format!("frame-{}-{}.{ext}", key.origin, key.number);
        let made = match self.work.result(self.net, self.cluster.layers, f, tail) {
            Err(e) => {
                println!("frame {}.{} FAILED", key.origin, key.number);
                if !matches!(e, ResultError::Abandoned) {
                    eprintln!("frame {}.{}: {e}", key.origin, key.number);
                }
                return false;
            }
            Ok(FrameResult::Fused(out)) => {
                println!(
                    "frame {}.{}: {} ms in the cluster, fused output {} values, tiles {:?}",
                    key.origin,
                    key.number,
                    f.latency.total_millis(),
                    out.len(),
                    f.tiles_by
                );
                let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.write(&name("f32"), &bytes)
            }
            Ok(FrameResult::Boxes(dets)) => {
                let how = tail.map_or(String::new(), |t| {
                    format!(", coded tail {} ms", t.latency.total_millis())
                });
                println!(
                    "frame {}.{}: {} ms in the cluster{how}, {} boxes, tiles {:?}",
                    key.origin,
                    key.number,
                    f.latency.total_millis(),
                    dets.len(),
                    f.tiles_by
                );
                let (w, h) = (self.net.input().w as usize, self.net.input().h as usize);
                to_json(&dets, w, h)
                    .context("writing JSON")
                    .and_then(|j| self.write(&name("json"), j.as_bytes()))
            }
        };
        let Err(e) = made else {
            return true;
        };
        eprintln!("frame {}.{}: {e:#}", key.origin, key.number);
        let exists = matches!(e.downcast_ref::<WriteError>(), Some(WriteError::Exists(_)));
        counts.exists += usize::from(exists);
        exists
    }

    /// Writes a result under `--out` (nothing without it), atomically and never over an
    /// earlier file: frame numbers carry their source's start time, so a restarted source's
    /// frames have new names.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let Some(dir) = self.out else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_new(&dir.join(name), bytes).context("saving the result")
    }
}

/// The coded tail of a cluster file with `tail = SCHEME` (`None`: the tail runs on the
/// gateway): every convolution after the fused layers split over every edge.
fn coded_tail_of(
    cluster: &Cluster,
    net: &Network,
    params: &[f32],
) -> Result<Option<CodedTail>, Error> {
    let TailPlace::Coded(scheme) = cluster.tail else {
        return Ok(None);
    };
    let workers = cluster.workers();
    let split = scheme.layer_scheme(workers.len())?;
    let weights = Weights::new(net, net.layers().len(), params).context("viewing the weights")?;
    let tail = CodedTail::new(net, &weights, cluster.layers, split, &workers)
        .with_context(|| format!("the cluster file's tail = \"{scheme}\""))?;
    Ok(Some(tail))
}

/// Runs the gateway until `--frames` frames are finished, or SIGTERM/SIGINT.
///
/// A source hears that a frame is done only once its final result is made here (boxes, or
/// the fused output with `--tail none`; written when `--out` is given): the frame holds its
/// slot until then, so at most `MAX_GATEWAY_FRAMES` finished frames wait for the tail, and
/// a source (holding each frame until done) feeds no faster than the tail runs. With a coded
/// tail (`tail = SCHEME` in the cluster file) the result waits for the frame to leave the
/// coded stage. On a stop signal the frames already collected get their results, the frames
/// still in the cluster are counted as abandoned (their sources fail them, or re-submit them
/// to a restarted gateway), the counters are printed and the exit status is 0.
pub fn gateway(args: &GatewayArgs) -> Result<(), Error> {
    tessera_backends::driver::heap::tune_heap();
    let signals = Signals::install().context("installing signal handlers")?;
    let cluster = Cluster::load(&args.cluster)?;
    if cluster.tail != TailPlace::Gateway && args.tail == Tail::None {
        return Err(anyhow!(
            "gateway: --tail none, but {} runs the tail coded (tail = \"{}\")",
            args.cluster.display(),
            cluster.tail
        ));
    }
    let (model, coded) = match args.tail {
        Tail::Run => {
            let (net, params) = cluster.model.load(usize::MAX)?;
            let coded = coded_tail_of(&cluster, &net, &params)?;
            // The model owns the one parameter buffer; the tail views its layers past the
            // fused ones.
            (
                own_model(&net, params, cluster.layers, cluster.grid)?,
                coded,
            )
        }
        Tail::None => (deferred_model(&cluster)?, None),
    };
    let net = model.net.clone();
    let work = match (&coded, args.tail) {
        (Some(_), _) => TailWork::Coded,
        (None, Tail::Run) => TailWork::Here {
            kernel: AnyKernel::of(cluster.kernel),
            weights: Box::new(
                Weights::new(&net, net.layers().len(), &model.params)
                    .context("viewing the weights")?,
            ),
        },
        (None, Tail::None) => TailWork::None,
    };
    let fingerprint = cluster.fingerprint()?;
    let options = NodeOptions {
        confirm_done: true,
        model_fingerprint: fingerprint,
        coded: coded.map(|t| CodedRole::Gateway {
            tail: Arc::new(t),
            config: cluster.coded,
        }),
        ..NodeOptions::default()
    };
    let node = start(&cluster, 0, model.clone(), options)?;
    println!(
        "gateway up: {:?}, grid {}x{}, {} edges, tail {}, model {fingerprint:016x}",
        cluster.policy,
        cluster.grid.0,
        cluster.grid.1,
        cluster.edges().count(),
        match args.tail {
            Tail::None => "none".to_string(),
            Tail::Run => cluster.tail.to_string(),
        }
    );
    let results = Results {
        net: &net,
        cluster: &cluster,
        work,
        out: args.out.as_deref(),
    };
    let mut counts = GatewayCounts::default();
    let handle = |f: Finished, t: Option<CodedFinished>, counts: &mut GatewayCounts| {
        counts.finished += 1;
        let ok = results.make(&f, t.as_ref(), counts);
        if ok {
            counts.done += 1;
        } else {
            counts.failed += 1;
        }
        if f.complete {
            node.frame_done(f.frame, ok);
        }
    };
    // With a coded tail, a frame's result waits for both of its reports.
    let mut join = matches!(results.work, TailWork::Coded).then(TailJoin::new);
    let mut step = |f: Option<Finished>, counts: &mut GatewayCounts| {
        let Some(join) = &mut join else {
            if let Some(f) = f {
                handle(f, None, counts);
            }
            return;
        };
        let mut joined: Vec<_> = f.and_then(|f| join.frame(f)).into_iter().collect();
        joined.extend(node.try_tails().into_iter().filter_map(|t| join.tail(t)));
        for j in joined {
            handle(j.frame, j.tail, counts);
        }
    };
    let mut stats = StatsClock::new(args.stats_every);
    let mut drops = DropLog::default();
    while args.frames.is_none_or(|n| counts.finished < n) && !signals.stop_requested() {
        if stats.due(&signals) {
            println!("{}", counts.line(&node.stats()));
        }
        drops.report("gateway", &node.stats().link.dropped);
        let f = node.next_finished(Duration::from_millis(50));
        step(f, &mut counts);
    }
    if signals.stop_requested() {
        for f in node.try_finished() {
            step(Some(f), &mut counts);
        }
        step(None, &mut counts);
    }
    let s = node.stop();
    if signals.stop_requested() {
        println!(
            "gateway: stopped by signal; {} frames abandoned in flight",
            s.frames_in_flight
        );
    }
    println!("{}", counts.line(&s));
    Ok(())
}
