//! The gateway's main loop ([`run_gateway`]): it runs the layers after the fused ones (or
//! waits for the coded stage), hands each frame's result to its host and tells the source once
//! the result is made.

extern crate alloc;
extern crate std;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::time::Duration;

use tessera_core::model::weights::Weights;

use super::{node_counters, set_up, Deployment, SetupError};
use crate::cluster::{tail_kernels, CodedRole, NodeOptions};
use crate::coded::tail::{TailJoin, TailPlace};
use crate::coded::CodedFinished;
use crate::driver::{Finished, NodeStats};
use crate::frame_result::{FrameResult, ResultError, TailWork};

/// Whether the gateway runs the layers after the fused ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayTail {
    /// Run them (here, or coded over the edges) and decode boxes: the gateway holds every
    /// layer's parameters, or with a coded tail none of the tail's (the workers hold them).
    Run,
    /// Stop at the fused output: the gateway loads the fused layers' parameters only if it
    /// computes a tile itself (no edge left).
    None,
}

/// What became of a frame's result at the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// Made (and written, where the host writes results).
    Made,
    /// Not written because the host holds this frame's result already (an earlier gateway
    /// wrote it, then died before telling the source, which re-submitted the frame): made.
    AlreadyThere,
    /// Not made (no result, or it could not be kept).
    Failed,
}

/// What the gateway did with the frames it finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayCounts {
    /// Frames finished here (complete or not).
    pub finished: usize,
    /// Complete with their final result (boxes, or the fused output without the tail).
    pub done: usize,
    /// Abandoned by the cluster, or whose tail or output failed.
    pub failed: usize,
    /// Of `done`: results the host held already ([`Saved::AlreadyThere`]).
    pub exists: usize,
}

impl GatewayCounts {
    /// The gateway's counters line.
    pub fn line(&self, s: &NodeStats) -> String {
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

/// The process around a gateway: stop requests, results, counters.
pub trait GatewayHost {
    /// A graceful stop was asked for (a signal).
    fn stop_requested(&self) -> bool;
    /// The node started (listening, with this model fingerprint).
    fn started(&mut self, fingerprint: u64);
    /// Each turn of the loop (at least every 50 ms): the counters, to print when due.
    fn turn(&mut self, counts: &GatewayCounts, stats: &NodeStats);
    /// Frame `f`'s final result, or why there is none (`tail`: its coded tail's report, with a
    /// coded tail): the host prints and keeps it.
    fn result(
        &mut self,
        f: &Finished,
        tail: Option<&CodedFinished>,
        result: Result<FrameResult<'_>, ResultError>,
    ) -> Saved;
}

/// How the gateway runs.
#[derive(Clone, Copy, Debug)]
pub struct GatewayRun {
    /// Whether it runs the tail.
    pub tail: GatewayTail,
    /// Stop after this many frames (`None`: until asked to stop).
    pub frames: Option<usize>,
}

/// How a gateway run ended.
#[derive(Clone, Debug)]
pub struct GatewayEnd {
    /// What became of its frames.
    pub counts: GatewayCounts,
    /// The node's last counters.
    pub stats: NodeStats,
    /// Whether it stopped on request (the frames in flight then were abandoned).
    pub stopped: bool,
}

/// Runs the gateway of `d` until `run.frames` frames are finished, or the host asks to stop.
///
/// A source hears that a frame is done only once its final result is made here (boxes, or
/// the fused output without the tail): the frame holds its slot until then, so a source
/// (holding each frame until done) feeds no faster than the tail runs. With a coded tail the
/// result waits for the frame to leave the coded stage. On a stop request the frames already
/// collected get their results; the frames still in the cluster are abandoned (their sources
/// fail them, or re-submit them to a restarted gateway).
pub fn run_gateway(
    d: &Deployment,
    run: GatewayRun,
    host: &mut dyn GatewayHost,
) -> Result<GatewayEnd, SetupError> {
    // On a thread of its own, whose stack is handed back when it ends (`set_up`).
    let (model, coded_tail, fingerprint, node) = set_up(|| {
        let (model, coded) = match (run.tail, d.tail) {
            (GatewayTail::Run, TailPlace::Gateway) => {
                // The model owns the one parameter buffer; the tail views its layers past the
                // fused ones.
                let (net, params) = d.model.load(usize::MAX)?;
                (d.own_model(&net, params)?, None)
            }
            // A coded gateway holds no tail parameters (the workers hold the shards), and the
            // fused layers' only when it computes a tile itself, as without the tail.
            (GatewayTail::Run, TailPlace::Coded(_)) => {
                let model = d.deferred_model()?;
                let coded = d.gateway_tail(&model.net)?;
                (model, coded)
            }
            (GatewayTail::None, _) => (d.deferred_model()?, None),
        };
        let fingerprint = d.fingerprint()?;
        let coded_tail = coded.is_some();
        let options = NodeOptions {
            confirm_done: true,
            model_fingerprint: fingerprint,
            coded: coded.map(|t| CodedRole::Gateway {
                tail: Arc::new(t),
                config: d.coded,
            }),
            tail_transport: d.tail_transport,
            dev_loss: d.dev_loss(0)?,
            ..NodeOptions::default()
        };
        let node = d.start(0, model.clone(), options)?;
        Ok::<_, SetupError>((model, coded_tail, fingerprint, node))
    })?;
    let net = model.net.clone();
    let work = match (coded_tail, run.tail) {
        (true, _) => TailWork::Coded,
        (false, GatewayTail::Run) => TailWork::Here {
            kernel: tail_kernels(&d.spec),
            weights: Box::new(
                Weights::new(&net, net.layers().len(), &model.params)
                    .map_err(SetupError::Weights)?,
            ),
        },
        (false, GatewayTail::None) => TailWork::None,
    };
    // What ran only to set up no longer counts in the resident set.
    super::release_set_up_code();
    host.started(fingerprint);
    let coded_run = matches!(work, TailWork::Coded);
    let mut counts = GatewayCounts::default();
    let handle = |f: Finished,
                  t: Option<CodedFinished>,
                  counts: &mut GatewayCounts,
                  host: &mut dyn GatewayHost| {
        counts.finished += 1;
        let result = work.result(&net, d.spec.layers, &f, t.as_ref());
        let saved = host.result(&f, t.as_ref(), result);
        counts.exists += usize::from(saved == Saved::AlreadyThere);
        let ok = saved != Saved::Failed;
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
    let mut join = coded_run.then(TailJoin::new);
    let mut step = |f: Option<Finished>, counts: &mut GatewayCounts, host: &mut dyn GatewayHost| {
        let Some(join) = &mut join else {
            if let Some(f) = f {
                handle(f, None, counts, host);
            }
            return;
        };
        let mut joined: Vec<_> = f.and_then(|f| join.frame(f)).into_iter().collect();
        joined.extend(node.try_tails().into_iter().filter_map(|t| join.tail(t)));
        for j in joined {
            handle(j.frame, j.tail, counts, host);
        }
    };
    let mut stopped = false;
    while run.frames.is_none_or(|n| counts.finished < n) {
        if host.stop_requested() {
            stopped = true;
            break;
        }
        host.turn(&counts, &node.stats());
        let f = node.next_finished(Duration::from_millis(50));
        step(f, &mut counts, host);
    }
    if stopped {
        for f in node.try_finished() {
            step(Some(f), &mut counts, host);
        }
        step(None, &mut counts, host);
    }
    let stats = node.stop();
    Ok(GatewayEnd {
        counts,
        stats,
        stopped,
    })
}
