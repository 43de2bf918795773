//! `tessera gateway` and `tessera edge`: one node of a cluster described by a TOML file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use tessera_backends::cluster::{per_start_frame_number, start_node, CodedRole, NodeOptions};
use tessera_backends::coded::tail::{worker_model, CodedTail, TailJoin, TailPlace};
use tessera_backends::coded::{CodedFinished, CodedModel};
use tessera_backends::driver::node_thread::NodeThread;
use tessera_backends::driver::{Finished, Model, NodeStats, ParamSource};
use tessera_backends::frame_result::{FrameResult, ResultError, TailWork};
use tessera_backends::pipeline::AnyKernel;
use tessera_core::ftp::Partition;
use tessera_core::model::weights::Weights;
use tessera_core::model::Network;
use tessera_core::wire::NodeId;

use crate::config::Cluster;
use crate::demo::own_model;
use crate::drop_log::DropLog;
use crate::image::{Image, ImageFiles};
use crate::result_file::{write_new, WriteError};
use crate::signals::Signals;
use anyhow::{anyhow, Context, Error};
use tessera_backends::detections_json::to_json;
use tessera_backends::frame_source::{FrameSource, Next, SOURCE_QUEUE};

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

/// When a node command prints its counters line: every `--stats-every` seconds, on SIGUSR1.
struct StatsClock {
    every: Option<Duration>,
    last: Instant,
}

impl StatsClock {
    fn new(every: Option<u64>) -> Self {
        StatsClock {
            every: every.map(Duration::from_secs),
            last: Instant::now(),
        }
    }

    /// True when a line is due now (SIGUSR1 arrived, or the period passed).
    fn due(&mut self, signals: &Signals) -> bool {
        let asked = signals.take_report();
        let periodic = self.every.is_some_and(|e| self.last.elapsed() >= e);
        if asked || periodic {
            self.last = Instant::now();
        }
        asked || periodic
    }
}

/// The link's and the node's counters, for the stats lines.
fn node_counters(s: &NodeStats) -> String {
    format!(
        "{} in flight, {} refused, {} sends refused, link {:?}",
        s.frames_in_flight, s.refused, s.sends_refused, s.link
    )
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

/// Starts node `id` of `cluster` on its own threads.
fn start(
    cluster: &Cluster,
    id: NodeId,
    model: Arc<Model>,
    options: NodeOptions,
) -> Result<NodeThread, Error> {
    start_node(&cluster.spec(), id, model, options).with_context(|| format!("starting node {id}"))
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
                    let img = Image::load_letterboxed(&p, w, h)
                        .with_context(|| format!("loading {}", p.display()));
                    if let Err(e) = source.consumed(&p) {
                        eprintln!("removing {}: {e}", p.display());
                    }
                    match img {
                        Ok(img) => {
                            node.submit(img.data)
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
