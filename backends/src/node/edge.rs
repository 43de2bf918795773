//! An edge's main loop ([`run_edge`]): it computes tiles (and its coded-tail shards) for the
//! cluster and, as a data source, feeds its frames with back-pressure.

extern crate alloc;
extern crate std;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tessera_core::wire::NodeId;

use super::{node_counters, set_up, Deployment, SetupError};
use crate::cluster::{per_start_frame_number, CodedRole, NodeOptions};
use crate::coded::tail::TailPlace;
use crate::driver::node_thread::SubmitError;
use crate::driver::{Finished, NodeStats, SourceFrame};
use crate::frame_source::{FrameSource, Next};
use crate::link::Refusal;

/// Why a frame file could not be read as the network's input (the host's error).
pub type FrameError = Box<dyn std::error::Error + Send + Sync>;

/// What a data-source edge's frames became.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceCounts {
    /// Frames submitted to the cluster.
    pub fed: usize,
    /// Finished complete.
    pub done: usize,
    /// Finished failed (abandoned by the cluster).
    pub failed: usize,
    /// Frames from a live source (directory, list) that did not load or decode.
    pub skipped: usize,
}

impl SourceCounts {
    /// Edge `id`'s counters line.
    pub fn line(&self, id: NodeId, s: &NodeStats) -> String {
        format!(
            "edge {id}: fed {}, done {}, failed {}, skipped {}, computed {}, lent {}, \
             re-dispatched {}, {}",
            self.fed,
            self.done,
            self.failed,
            self.skipped,
            s.runtime.tiles_computed,
            s.runtime.tiles_lent,
            s.runtime.tiles_redispatched,
            node_counters(s)
        )
    }

    fn count(&mut self, f: &Finished) {
        if f.complete {
            self.done += 1;
        } else {
            self.failed += 1;
        }
    }
}

/// What an edge holds once started.
#[derive(Clone, Copy, Debug)]
pub struct EdgeUp {
    /// Its model fingerprint.
    pub fingerprint: u64,
    /// With a coded tail: the bytes of the shard weights it holds.
    pub shard_bytes: Option<u64>,
}

/// The process around an edge: stop requests, frames from disk, what is printed.
pub trait EdgeHost {
    /// A graceful stop was asked for (a signal).
    fn stop_requested(&self) -> bool;
    /// The node started.
    fn started(&mut self, up: &EdgeUp);
    /// Each turn of the loop (at least every 200 ms): the counters, to print when due.
    fn turn(&mut self, counts: &SourceCounts, stats: &NodeStats);
    /// Reads the frame file `path`: the network's input tensor (decoded, letterboxed) and,
    /// to ship instead of tile inputs, the picture as captured (see [`SourceFrame`]).
    fn load(&mut self, path: &Path) -> Result<SourceFrame, FrameError>;
    /// A frame of this source finished (done or failed).
    fn finished(&mut self, f: &Finished);
    /// Something the operator should hear about that does not stop the edge.
    fn warn(&mut self, message: &str);
}

/// How an edge runs.
#[derive(Clone, Copy, Debug)]
pub struct EdgeRun {
    /// Its id in the cluster.
    pub id: NodeId,
    /// Straggler factor (1.0: normal speed).
    pub slowdown: f64,
    /// Frames this source keeps submitted and unfinished at once.
    pub inflight: usize,
    /// Run this long, then stop (`None`: until its frames are done, or asked to stop).
    pub seconds: Option<Duration>,
}

/// How an edge run ended.
#[derive(Clone, Debug)]
pub struct EdgeEnd {
    /// What became of its frames.
    pub counts: SourceCounts,
    /// The node's last counters.
    pub stats: NodeStats,
    /// Frames fed but not finished at the stop (not taken by the node, or past the wait).
    pub unfinished: usize,
}

/// Why an edge ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// Its model or node could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The link gave up after a run of refused Hellos (wrong key, unknown id...).
    #[error("edge {id}: {refusal}")]
    GaveUp {
        /// The edge.
        id: NodeId,
        /// The last refusal.
        refusal: Refusal,
    },
    /// The node stopped taking frames.
    #[error("feeding frames: {0}")]
    Submit(SubmitError),
    /// A frame of a fixed list could not be read.
    #[error("loading {}: {error}", path.display())]
    Frame {
        /// The file.
        path: PathBuf,
        /// Why.
        error: FrameError,
    },
}

/// Runs edge `run.id` of `d`, feeding `source`'s frames (none: a compute-only edge), until
/// its frames are done (or `run.seconds` pass, or the host asks to stop: then it feeds no new
/// frame and waits for the ones in flight, at most their deadline).
pub fn run_edge(
    d: &Deployment,
    run: EdgeRun,
    mut source: FrameSource,
    host: &mut dyn EdgeHost,
) -> Result<EdgeEnd, EdgeError> {
    let id = run.id;
    // On a thread of its own, whose stack is handed back when it ends (`set_up`).
    let (node, fingerprint, shard_bytes) = set_up(|| {
        let (net, params) = d.model.load(d.spec.layers).map_err(SetupError::from)?;
        // A coded worker holds the fused layers' parameters and its own shards of the tail,
        // made one tail layer at a time (never every tail layer at once).
        let coded = match d.tail {
            TailPlace::Gateway => None,
            TailPlace::Coded(_) => d.worker_tail(&net, id)?,
        };
        let shard_bytes = coded.as_ref().map(|m| m.worker_param_bytes(id) as u64);
        let model = d.own_model(&net, params)?;
        let fingerprint = d.fingerprint().map_err(SetupError::from)?;
        let options = NodeOptions {
            model_fingerprint: fingerprint,
            slowdown: run.slowdown,
            // A device reboots: its frames must not be mistaken for its previous life's.
            first_frame: Some(per_start_frame_number()),
            coded: coded.map(CodedRole::Worker),
            tail_transport: d.tail_transport,
            worker_copies: d.coded.copies,
            dev_loss: d.dev_loss(id)?,
            ..NodeOptions::default()
        };
        Ok::<_, EdgeError>((d.start(id, model, options)?, fingerprint, shard_bytes))
    })?;
    // What ran only to set up no longer counts in the resident set.
    super::release_set_up_code();
    host.started(&EdgeUp {
        fingerprint,
        shard_bytes,
    });
    // The source has no more frames (a live one: until stopped).
    let mut ended = false;
    let start = Instant::now();
    // A frame in flight ends (done or failed) within the source's frame deadline.
    let t = d.spec.timeouts;
    let drain = t.frame + t.tile + Duration::from_secs(1);
    let mut stopping: Option<Instant> = None;
    let mut c = SourceCounts::default();
    loop {
        if let Some(refusal) = node.stats().link.gave_up {
            return Err(EdgeError::GaveUp { id, refusal });
        }
        let timed_out = run.seconds.is_some_and(|s| start.elapsed() >= s);
        if stopping.is_none() && (timed_out || host.stop_requested()) {
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
        host.turn(&c, &node.stats());
        if stopping.is_none() && !ended && c.fed - finished < run.inflight {
            match source.poll() {
                Next::Frame(p) => {
                    let img = host.load(&p);
                    if let Err(e) = source.consumed(&p) {
                        host.warn(&format!("removing {}: {e}", p.display()));
                    }
                    match img {
                        Ok(img) => {
                            node.submit(img).map_err(EdgeError::Submit)?;
                            c.fed += 1;
                        }
                        // A camera's bad frame costs that frame, not the edge.
                        Err(e) if source.live() => {
                            host.warn(&format!(
                                "edge {id}: skipped a frame: loading {}: {e}",
                                p.display()
                            ));
                            c.skipped += 1;
                        }
                        Err(error) => return Err(EdgeError::Frame { path: p, error }),
                    }
                    continue;
                }
                Next::NotYet => {}
                Next::Unreadable(why) => {
                    host.warn(&why);
                    ended = true;
                }
                Next::Done => ended = true,
            }
        }
        if let Some(f) = node.next_finished(Duration::from_millis(200)) {
            c.count(&f);
            host.finished(&f);
        }
    }
    // Frames reported finished before the node's counters said none is in flight.
    for f in node.try_finished() {
        c.count(&f);
        host.finished(&f);
    }
    let stats = node.stop();
    Ok(EdgeEnd {
        counts: c,
        stats,
        unfinished: c.fed - (c.done + c.failed),
    })
}
