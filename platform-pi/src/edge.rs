//! `tessera edge`: an edge of a cluster described by a TOML file; a data source when given
//! frames (files, a spool directory or a list of paths), fed with back-pressure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::cluster::{per_start_frame_number, CodedRole, NodeOptions};
use tessera_backends::coded::tail::{worker_model, TailPlace};
use tessera_backends::coded::CodedModel;
use tessera_backends::driver::{Finished, NodeStats, SourceFrame};
use tessera_backends::frame_source::{FrameSource, Next, SOURCE_QUEUE};
use tessera_core::model::Network;
use tessera_core::wire::NodeId;

use crate::config::Cluster;
use crate::drop_log::DropLog;
use crate::node::{node_counters, own_model, start, StatsClock};
use crate::signals::Signals;

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
    /// Feed every image that appears in this directory (a camera's spool), in name order,
    /// deleting each once read; names starting with `.` or ending in `.tmp` are skipped
    /// (write there, then rename). Runs until stopped.
    #[arg(long, conflicts_with_all = ["input", "input_list"])]
    pub input_dir: Option<PathBuf>,
    /// Feed the image paths read from this file, one per line, as they arrive (`-`: stdin;
    /// a FIFO works); the source ends at end of file.
    #[arg(long, conflicts_with = "input")]
    pub input_list: Option<PathBuf>,
    /// Run this many seconds, then stop (default: until its frames are done, or forever
    /// when it feeds none).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Straggler factor for experiments (2.0: every job takes twice as long).
    #[arg(long, default_value_t = 1.0)]
    pub slowdown: f64,
    /// Frames this source keeps submitted and unfinished at once (1: the next frame enters
    /// when the previous is done, as in the simulator's default).
    #[arg(long, default_value_t = SOURCE_QUEUE, value_parser = inflight_parser())]
    pub inflight: usize,
    /// Print a counters line every this many seconds (also on SIGUSR1, and at exit).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub stats_every: Option<u64>,
}

/// `--inflight`: 1..=SOURCE_QUEUE.
fn inflight_parser() -> impl clap::builder::TypedValueParser<Value = usize> {
    use clap::builder::TypedValueParser;
    clap::value_parser!(u64)
        .range(1..=SOURCE_QUEUE as u64)
        .map(|v| v as usize)
}

/// Edge `id`'s share of the cluster's coded tail (`None`: the tail runs on the gateway): the
/// shards assigned to it only, made one tail layer at a time from that layer's parameters.
fn worker_tail(
    cluster: &Cluster,
    net: &Network,
    id: NodeId,
) -> Result<Option<Arc<CodedModel>>, Error> {
    let TailPlace::Coded(scheme) = cluster.tail else {
        return Ok(None);
    };
    let workers = cluster.workers();
    let split = scheme.layer_scheme(workers.len())?;
    let mut source = cluster.model.layers(net)?;
    let model = worker_model(net, cluster.layers, split, &workers, id, |j| {
        source.layer(j)
    })
    .with_context(|| format!("the cluster file's tail = \"{scheme}\""))?;
    Ok(Some(Arc::new(model)))
}

/// What a data-source edge's frames became.
#[derive(Clone, Copy, Debug, Default)]
struct SourceCounts {
    fed: usize,
    done: usize,
    failed: usize,
    /// Frames from a live source (directory, list) that did not load or decode.
    skipped: usize,
}

/// Counts and prints a frame finished at a source.
fn report(c: &mut SourceCounts, f: &Finished) {
    if f.complete {
        c.done += 1;
    } else {
        c.failed += 1;
    }
    println!(
        "frame {}.{}: {} in {} ms",
        f.frame.origin,
        f.frame.number,
        if f.complete { "done" } else { "FAILED" },
        f.latency.total_millis()
    );
}

/// Runs an edge until its frames are done (or `--seconds` pass, or SIGTERM/SIGINT; then it
/// feeds no new frame and waits for the ones in flight, at most their deadline, reports them,
/// prints the counters and exits 0).
pub fn edge(args: &EdgeArgs) -> Result<(), Error> {
    tessera_backends::driver::heap::tune_heap();
    let signals = Signals::install().context("installing signal handlers")?;
    let cluster = Cluster::load(&args.cluster)?;
    let Some(me) = cluster.node(args.id).filter(|_| args.id != 0) else {
        return Err(anyhow!(
            "edge: no edge with id {} in {}",
            args.id,
            args.cluster.display()
        ));
    };
    let feeds = !args.input.is_empty() || args.input_dir.is_some() || args.input_list.is_some();
    if feeds && !me.source {
        return Err(anyhow!(
            "edge: edge {} is given --input frames but is no source in {} (set source = true)",
            args.id,
            args.cluster.display()
        ));
    }
    if !(args.slowdown >= 1.0 && args.slowdown <= 1000.0) {
        return Err(anyhow!("edge: --slowdown must be in 1..=1000"));
    }
    for p in &args.input {
        // Inputs are decoded lazily: check now that each is there, not mid-run.
        std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
    }
    let (net, model, coded) = if cluster.tail == TailPlace::Gateway {
        let (net, params) = cluster.model.load(cluster.layers)?;
        let model = own_model(&net, params, cluster.layers, cluster.grid)?;
        (net, model, None)
    } else {
        // A coded worker holds the fused layers' parameters and its own shards of the tail,
        // made one tail layer at a time (never every tail layer at once).
        let (net, params) = cluster.model.load(cluster.layers)?;
        let coded = worker_tail(&cluster, &net, args.id)?;
        if let Some(m) = &coded {
            println!(
                "edge {}: coded tail shards held, {} bytes",
                args.id,
                m.worker_param_bytes(args.id)
            );
        }
        let model = own_model(&net, params, cluster.layers, cluster.grid)?;
        (net, model, coded)
    };
    let fingerprint = cluster.fingerprint()?;
    let options = NodeOptions {
        model_fingerprint: fingerprint,
        slowdown: args.slowdown,
        // A device reboots: its frames must not be mistaken for its previous life's.
        first_frame: Some(per_start_frame_number()),
        coded: coded.map(CodedRole::Worker),
        ..NodeOptions::default()
    };
    let node = start(&cluster, args.id, model, options)?;
    let shape = net.input();
    let (mut source, feeding) = match (&args.input_dir, &args.input_list) {
        (Some(dir), _) => (
            FrameSource::dir(dir).with_context(|| format!("reading {}", dir.display()))?,
            format!("frames from {}", dir.display()),
        ),
        (None, Some(list)) => (
            FrameSource::list(list),
            format!("frames listed in {}", list.display()),
        ),
        (None, None) => {
            let source = FrameSource::files(args.input.clone(), args.repeat);
            let total = source.total().unwrap_or(0);
            (source, format!("{total} frames"))
        }
    };
    // The source has no more frames (a live one: until stopped).
    let mut ended = false;
    println!(
        "edge {} up, feeding {feeding}, model {fingerprint:016x}",
        args.id
    );
    let start = Instant::now();
    // A frame in flight ends (done or failed) within the source's frame deadline.
    let drain = cluster.timeouts.frame + cluster.timeouts.tile + Duration::from_secs(1);
    let mut stopping: Option<Instant> = None;
    let mut c = SourceCounts::default();
    let mut stats = StatsClock::new(args.stats_every);
    let (mut drops, who) = (DropLog::default(), format!("edge {}", args.id));
    let line = |c: &SourceCounts, s: &NodeStats| {
        format!(
            "edge {}: fed {}, done {}, failed {}, skipped {}, computed {}, lent {}, \
             re-dispatched {}, {}",
            args.id,
            c.fed,
            c.done,
            c.failed,
            c.skipped,
            s.runtime.tiles_computed,
            s.runtime.tiles_lent,
            s.runtime.tiles_redispatched,
            node_counters(s)
        )
    };
    loop {
        // The link gave up after a run of refused Hellos (wrong key, unknown id...): say why.
        if let Some(r) = node.stats().link.gave_up {
            return Err(anyhow!("edge {}: {}", args.id, r));
        }
        let timed_out = args
            .seconds
            .is_some_and(|s| start.elapsed() >= Duration::from_secs(s));
        if stopping.is_none() && (timed_out || signals.stop_requested()) {
            stopping = Some(Instant::now());
        }
        let finished = c.done + c.failed;
        match stopping {
            // Frames the node never took (no gateway) are not waited for: none is in flight.
            Some(at)
                if c.fed == finished
                    || node.stats().frames_in_flight == 0
                    || at.elapsed() >= drain =>
            {
                break
            }
            None if ended && c.fed > 0 && finished == c.fed => break,
            _ => {}
        }
        if stats.due(&signals) {
            println!("{}", line(&c, &node.stats()));
        }
        drops.report(&who, &node.stats().link.dropped);
        if stopping.is_none() && !ended && c.fed - finished < args.inflight {
            match source.poll() {
                Next::Frame(p) => {
                    let (w, h) = (shape.w as usize, shape.h as usize);
                    // The file's bytes go to the nodes that compute its tiles; they decode them
                    // as this node does.
                    let img = std::fs::read(&p)
                        .map_err(Error::from)
                        .and_then(|bytes| Ok(SourceFrame::captured(bytes, w, h)?))
                        .with_context(|| format!("loading {}", p.display()));
                    if let Err(e) = source.consumed(&p) {
                        eprintln!("removing {}: {e}", p.display());
                    }
                    match img {
                        Ok(img) => {
                            node.submit(img)
                                .map_err(|e| anyhow!("feeding frames: {}", e))?;
                            c.fed += 1;
                        }
                        // A camera's bad frame costs that frame, not the edge.
                        Err(e) if source.live() => {
                            eprintln!("edge {}: skipped a frame: {e:#}", args.id);
                            c.skipped += 1;
                        }
                        Err(e) => return Err(e),
                    }
                    continue;
                }
                Next::NotYet => {}
                Next::Unreadable(why) => {
                    eprintln!("{why}");
                    ended = true;
                }
                Next::Done => ended = true,
            }
        }
        if let Some(f) = node.next_finished(Duration::from_millis(200)) {
            report(&mut c, &f);
        }
    }
    // Frames reported finished before the node's counters said none is in flight.
    for f in node.try_finished() {
        report(&mut c, &f);
    }
    let s = node.stop();
    let unfinished = c.fed - (c.done + c.failed);
    if unfinished > 0 {
        println!(
            "edge {}: {unfinished} frames unfinished at stop (not taken by the node, or past \
             the wait)",
            args.id
        );
    }
    println!("{}", line(&c, &s));
    Ok(())
}
