//! `tessera edge`: an edge of a cluster described by a TOML file
//! (`tessera_backends::node::run_edge`); a data source when given frames (files, a spool
//! directory or a list of paths), read and letterboxed here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::driver::{Finished, NodeStats, SourceFrame};
use tessera_backends::frame_source::{FrameSource, SOURCE_QUEUE};
use tessera_backends::node::{run_edge, EdgeHost, EdgeRun, EdgeUp, FrameError, SourceCounts};

use tessera_core::wire::Policy;

use crate::node::NodeLog;

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

/// The edge process: prints, reads frames, hears signals.
struct Host {
    id: u16,
    /// What it feeds, for the start line.
    feeding: String,
    log: NodeLog,
    who: String,
    /// Network input side (frames are letterboxed to it).
    input: (usize, usize),
    /// The cluster's policy (whether this source needs frames' float inputs).
    policy: Policy,
}

impl EdgeHost for Host {
    fn stop_requested(&self) -> bool {
        self.log.signals.stop_requested()
    }

    fn started(&mut self, up: &EdgeUp) {
        if let Some(bytes) = up.shard_bytes {
            println!("edge {}: coded tail shards held, {bytes} bytes", self.id);
        }
        println!(
            "edge {} up, feeding {}, model {:016x}",
            self.id, self.feeding, up.fingerprint
        );
    }

    fn turn(&mut self, counts: &SourceCounts, stats: &NodeStats) {
        let id = self.id;
        self.log.turn(&self.who, stats, || counts.line(id, stats));
    }

    fn load(&mut self, path: &Path) -> Result<SourceFrame, FrameError> {
        let (w, h) = self.input;
        // The file's bytes go to the nodes that compute its tiles; they decode them as this
        // node does (and, under WST and WST-S, this node too, tile by tile).
        Ok(SourceFrame::for_policy(
            self.policy,
            std::fs::read(path)?,
            w,
            h,
        )?)
    }

    fn finished(&mut self, f: &Finished) {
        println!(
            "frame {}.{}: {} in {} ms",
            f.frame.origin,
            f.frame.number,
            if f.complete { "done" } else { "FAILED" },
            f.latency.total_millis()
        );
    }

    fn warn(&mut self, message: &str) {
        eprintln!("{message}");
    }
}

/// Runs an edge until its frames are done (or `--seconds` pass, or SIGTERM/SIGINT; then it
/// feeds no new frame and waits for the ones in flight, at most their deadline, reports them,
/// prints the counters and exits 0).
pub fn edge(args: &EdgeArgs) -> Result<(), Error> {
    let (log, cluster, input) = NodeLog::start_node(&args.cluster, args.stats_every)?;
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
    let (source, feeding) = match (&args.input_dir, &args.input_list) {
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
    let mut host = Host {
        id: args.id,
        feeding,
        log,
        who: format!("edge {}", args.id),
        input,
        policy: cluster.deployment.spec.policy,
    };
    let run = EdgeRun {
        id: args.id,
        slowdown: args.slowdown,
        inflight: args.inflight,
        seconds: args.seconds.map(Duration::from_secs),
    };
    let end = run_edge(&cluster.deployment, run, source, &mut host)?;
    if end.unfinished > 0 {
        println!(
            "edge {}: {} frames unfinished at stop (not taken by the node, or past the wait)",
            args.id, end.unfinished
        );
    }
    println!("{}", end.counts.line(args.id, &end.stats));
    Ok(())
}
