//! `tessera gateway`: the gateway of a cluster described by a TOML file
//! (`tessera_backends::node::run_gateway`), with its result files and printing.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::coded::tail::TailPlace;
use tessera_backends::coded::CodedFinished;
use tessera_backends::driver::{Finished, NodeStats};
use tessera_backends::frame_result::{FrameResult, ResultError};
use tessera_backends::node::{
    run_gateway, GatewayCounts, GatewayHost, GatewayRun, GatewayTail, Saved,
};

use crate::config::Cluster;
use crate::node::NodeLog;
use crate::result_file::{write_new, WriteError};

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

/// The gateway process: prints, writes result files, hears signals.
struct Host<'a> {
    cluster: &'a Cluster,
    args: &'a GatewayArgs,
    log: NodeLog,
    /// Network input side, for the boxes' JSON.
    input: (usize, usize),
}

impl Host<'_> {
    /// Writes a result under `--out` (nothing without it), atomically and never over an
    /// earlier file: frame numbers carry their source's start time, so a restarted source's
    /// frames have new names.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let Some(dir) = self.args.out.as_deref() else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_new(&dir.join(name), bytes).context("saving the result")
    }
}

impl GatewayHost for Host<'_> {
    fn stop_requested(&self) -> bool {
        self.log.signals.stop_requested()
    }

    fn started(&mut self, fingerprint: u64) {
        let c = self.cluster;
        println!(
            "gateway up: {:?}, grid {}x{}, {} edges, tail {}, model {fingerprint:016x}",
            c.deployment.spec.policy,
            c.deployment.spec.grid.0,
            c.deployment.spec.grid.1,
            c.edges().count(),
            match self.args.tail {
                Tail::None => "none".to_string(),
                Tail::Run => c.deployment.tail.to_string(),
            }
        );
    }

    fn turn(&mut self, counts: &GatewayCounts, stats: &NodeStats) {
        self.log.turn("gateway", stats, || counts.line(stats));
    }

    fn result(
        &mut self,
        f: &Finished,
        tail: Option<&CodedFinished>,
        result: Result<FrameResult<'_>, ResultError>,
    ) -> Saved {
        let key = f.frame;
        let made = match result {
            Err(e) => {
                println!("frame {}.{} FAILED", key.origin, key.number);
                if !matches!(e, ResultError::Abandoned) {
                    eprintln!("frame {}.{}: {e}", key.origin, key.number);
                }
                return Saved::Failed;
            }
            Ok(r) => {
                println!("{}", r.line(f, tail));
                r.file(f, self.input)
                    .context("writing JSON")
                    .and_then(|(name, bytes)| self.write(&name, &bytes))
            }
        };
        let Err(e) = made else {
            return Saved::Made;
        };
        eprintln!("frame {}.{}: {e:#}", key.origin, key.number);
        match e.downcast_ref::<WriteError>() {
            Some(WriteError::Exists(_)) => Saved::AlreadyThere,
            _ => Saved::Failed,
        }
    }
}

/// Runs the gateway until `--frames` frames are finished, or SIGTERM/SIGINT (see
/// [`run_gateway`]); on a stop signal the counters are printed and the exit status is 0.
pub fn gateway(args: &GatewayArgs) -> Result<(), Error> {
    let (log, cluster, input) = NodeLog::start_node(&args.cluster, args.stats_every)?;
    if cluster.deployment.tail != TailPlace::Gateway && args.tail == Tail::None {
        return Err(anyhow!(
            "gateway: --tail none, but {} runs the tail coded (tail = \"{}\")",
            args.cluster.display(),
            cluster.deployment.tail
        ));
    }
    let mut host = Host {
        cluster: &cluster,
        args,
        log,
        input,
    };
    let run = GatewayRun {
        tail: match args.tail {
            Tail::Run => GatewayTail::Run,
            Tail::None => GatewayTail::None,
        },
        frames: args.frames,
    };
    let end = run_gateway(&cluster.deployment, run, &mut host)?;
    if end.stopped {
        println!(
            "gateway: stopped by signal; {} frames abandoned in flight",
            end.stats.frames_in_flight
        );
    }
    println!("{}", end.counts.line(&end.stats));
    Ok(())
}
