//! The coded (CDC) stage of the runtime, sans-IO: a chain of output-split linear layers run on
//! workers under a frame deadline (docs/design.md §6.6, §7).
//!
//! [`CodedGateway`] runs each frame through the layers of a [`CodedPlan`] one after the other.
//! For a layer it sends every shard once ([`CodedAction::Send`], the layer input broadcast to
//! the shard's worker), accepts the first results in time, decodes as soon as they determine
//! the output ([`CodedAction::Decode`]: any `k` for a code, one copy of every data shard for
//! 2MR), ignores stragglers, turns a timeout or a lost worker into an erasure that parity
//! covers without re-sending work, re-sends only when parity can no longer cover and the
//! deadline still allows, and otherwise ends the layer at its budget with the rows that came
//! ([`CodedAction::Expired`]; the driver zero-fills the rest). Each frame ends with
//! [`CodedAction::FrameDone`] and its [`Quality`].
//!
//! # Budgets
//!
//! A frame must finish `frame_deadline` after it starts; when a layer starts, its timeout
//! (every shard's budget, sent to the worker in the task) is chosen from what remains:
//!
//! * [`Allocator::Uniform`] (the baseline): the remaining time split evenly over the layers
//!   left.
//! * [`Allocator::QualityAware`]: per (worker, layer) a shifted-gamma delay model
//!   ([`LinkDelay`]) is fitted from the round trips this gateway observed (send to result,
//!   compute included; results that never came count as losses). The layer's timeout `t` maximises the expected
//!   quality of the frame, `E[q_l(t)] · Π_{later} E[q_j((R − t)/(L − 1))]`, where `E[q]` is the
//!   expected fraction of output rows the layer delivers (decoded, or the data shards that
//!   arrived) under the fitted models. Until every worker involved has
//!   [`CodedConfig::min_samples`] round trips, it falls back to uniform.
//!
//! Workers ([`CodedWorker`]) drop a task they cannot start within its budget and a result
//! finished after it: late data is discarded at the source instead of loading the network.
//! State is bounded: [`MAX_CODED_LAYERS`], [`MAX_CODED_FRAMES`], `MAX_EDGES` round-trip logs of
//! [`RTT_WINDOW`] samples per layer; nothing allocates.

use heapless::{Deque, Vec};
use tessera_log::{debug, trace, warn};

use crate::code::dispatch::{CodedLayer, LayerAction, ResultVerdict};
use crate::code::{replicate, Code, CodeError, MAX_SHARDS};
use crate::deadline::{FitError, LinkDelay};
use crate::time::{Duration, Instant};
use crate::wire::{FrameKey, NodeId};

use super::{Verdict, MAX_EDGES};

/// Most coded layers in a plan.
pub const MAX_CODED_LAYERS: usize = 12;
/// Most frames in the coded stage at once.
pub const MAX_CODED_FRAMES: usize = 8;
/// Round trips kept per (worker, layer) for the delay model.
pub const RTT_WINDOW: usize = 32;
/// Most tasks a worker holds (one computing, the rest waiting).
pub const MAX_WORKER_TASKS: usize = 8;
/// Capacity of a coded machine's action queue.
const QUEUE: usize = 2 * MAX_SHARDS + 8;
/// Points of the quality-aware timeout search.
const SEARCH_POINTS: usize = 48;

/// How a layer's output rows are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// `k` data shards plus the code's `r` parity shards (`r = 0`: the uncoded split).
    Coded,
    /// 2MR: every data shard on two workers (`2k` shards), the code's parity unused.
    Replicated,
}

/// One coded layer of a plan: its code, protection and the worker of every shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodedLayerSpec {
    code: Code,
    protection: Protection,
    workers: [NodeId; MAX_SHARDS],
}

impl CodedLayerSpec {
    /// Shard `i` runs on `workers[i]`; `workers.len()` must be `n` ([`Protection::Coded`]) or
    /// `2k` ([`Protection::Replicated`]), at most [`MAX_SHARDS`]; worker ids must not be the
    /// gateway's (0).
    pub fn new(
        code: Code,
        protection: Protection,
        workers: &[NodeId],
    ) -> Result<CodedLayerSpec, CodedError> {
        let need = match protection {
            Protection::Coded => code.n(),
            Protection::Replicated => replicate::devices(code.k()),
        };
        if need > MAX_SHARDS || workers.len() != need {
            return Err(CodedError::Workers {
                need,
                have: workers.len(),
            });
        }
        if workers.contains(&crate::wire::GATEWAY) {
            return Err(CodedError::Workers {
                need,
                have: workers.len(),
            });
        }
        let mut w = [0; MAX_SHARDS];
        w[..need].copy_from_slice(workers);
        Ok(CodedLayerSpec {
            code,
            protection,
            workers: w,
        })
    }

    /// The layer's code.
    pub const fn code(&self) -> &Code {
        &self.code
    }

    /// Coded or replicated.
    pub const fn protection(&self) -> Protection {
        self.protection
    }

    /// Shards sent per frame.
    pub const fn shards(&self) -> usize {
        match self.protection {
            Protection::Coded => self.code.n(),
            Protection::Replicated => replicate::devices(self.code.k()),
        }
    }

    /// The worker of every shard.
    pub fn workers(&self) -> &[NodeId] {
        &self.workers[..self.shards()]
    }

    /// Output rows computed by shard `shard` (its result's length per column).
    pub fn shard_rows(&self, shard: usize) -> Result<usize, CodeError> {
        match self.protection {
            Protection::Coded => self.code.result_rows(shard),
            Protection::Replicated if shard < self.shards() => self
                .code
                .data_rows(replicate::replica_of(&self.code, shard))
                .map(|r| r.len()),
            Protection::Replicated => Err(CodeError::Index {
                index: shard,
                count: self.shards(),
            }),
        }
    }

    fn layer(&self, deadline: Instant, budgets: &[Duration]) -> Result<CodedLayer, CodeError> {
        match self.protection {
            Protection::Coded => CodedLayer::new(self.code, deadline, budgets),
            Protection::Replicated => CodedLayer::replicated(self.code, deadline, budgets),
        }
    }
}

/// The coded layers a frame runs through, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodedPlan {
    layers: Vec<CodedLayerSpec, MAX_CODED_LAYERS>,
}

impl CodedPlan {
    /// A plan of `layers` (1 to [`MAX_CODED_LAYERS`]).
    pub fn new(layers: &[CodedLayerSpec]) -> Result<CodedPlan, CodedError> {
        if layers.is_empty() || layers.len() > MAX_CODED_LAYERS {
            return Err(CodedError::Layers { have: layers.len() });
        }
        let mut v = Vec::new();
        for l in layers {
            let _ = v.push(*l);
        }
        Ok(CodedPlan { layers: v })
    }

    /// The layers.
    pub fn layers(&self) -> &[CodedLayerSpec] {
        &self.layers
    }
}

/// How a frame's deadline is turned into per-layer timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// The remaining time split evenly over the layers left.
    Uniform,
    /// Timeouts maximising expected quality under per-link delay models fitted from observed
    /// round trips (uniform until enough are observed).
    QualityAware,
}

/// Settings of the coded stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodedConfig {
    /// A frame finishes this long after it enters the stage, complete or not.
    pub frame_deadline: Duration,
    /// Timeout allocator.
    pub allocator: Allocator,
    /// Round trips needed per (worker, layer) before the quality-aware allocator uses them.
    pub min_samples: usize,
    /// Once parity could decode a layer, how long to wait for its data shards still pending
    /// (within their timeouts): zero decodes from the first results (CDC); a small grace makes
    /// float layers bit-identical to a centralised run whenever the data shards come.
    pub data_grace: Duration,
}

impl CodedConfig {
    /// `frame_deadline` with the uniform allocator, 8 samples before fitting, no data grace.
    pub const fn new(frame_deadline: Duration) -> CodedConfig {
        CodedConfig {
            frame_deadline,
            allocator: Allocator::Uniform,
            min_samples: 8,
            data_grace: Duration::from_micros(0),
        }
    }
}

/// What a frame got: rows delivered per layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quality {
    /// Layers decoded in full.
    pub decoded: u8,
    /// Layers that ended at their budget with rows missing (zero-filled).
    pub expired: u8,
    /// Product over the layers of the fraction of output rows delivered (1.0: exact).
    pub fraction: f32,
}

impl Quality {
    const FULL: Quality = Quality {
        decoded: 0,
        expired: 0,
        fraction: 1.0,
    };

    /// True when every layer was decoded in full.
    pub fn is_complete(&self) -> bool {
        self.expired == 0
    }
}

/// What the driver must do next (gateway side).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CodedAction {
    /// Send `CodedTask { frame, layer, shard, budget_us: budget }` with the layer's input to
    /// `to`.
    Send {
        /// The worker.
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// Coded layer index.
        layer: u8,
        /// Shard index.
        shard: u8,
        /// How long the gateway waits for the result.
        budget: Duration,
    },
    /// Decode layer `layer`'s output from the results in `present` (bit `i` = shard `i`;
    /// [`crate::code::Decoder::from_mask`] or [`replicate::assemble`]), apply the layer's
    /// bias and activation: that is the next layer's input. Drop the layer's results.
    Decode {
        /// The frame.
        frame: FrameKey,
        /// Coded layer index.
        layer: u8,
        /// Results to decode from.
        present: u32,
    },
    /// Layer `layer` ended at its budget: keep the data shards in `present`, zero the other
    /// rows (`rows` of the layer's rows are real), then as for `Decode`.
    Expired {
        /// The frame.
        frame: FrameKey,
        /// Coded layer index.
        layer: u8,
        /// Results that arrived in time.
        present: u32,
        /// Output rows available.
        rows: usize,
    },
    /// The frame left the stage: the last layer's output is the frame's.
    FrameDone {
        /// The frame.
        frame: FrameKey,
        /// How much of it is real.
        quality: Quality,
    },
}

/// Why a coded-stage call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodedError {
    /// A plan needs 1 to [`MAX_CODED_LAYERS`] layers.
    Layers {
        /// Layers given.
        have: usize,
    },
    /// A layer's worker list does not match its shard count, or names the gateway.
    Workers {
        /// Workers needed.
        need: usize,
        /// Workers given.
        have: usize,
    },
    /// [`MAX_CODED_FRAMES`] frames are already in the stage.
    TooManyFrames,
    /// The frame is already in the stage.
    DuplicateFrame,
    /// A result names a layer or shard that does not exist.
    OutOfRange,
    /// A result came from a node that is not the shard's worker.
    WrongWorker {
        /// The sender.
        from: NodeId,
    },
    /// The worker's task queue is full.
    Busy,
    /// `on_computed` without a computation running.
    NotComputing,
    /// The code refused (see [`CodeError`]).
    Code(CodeError),
}

impl core::fmt::Display for CodedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            CodedError::Layers { have } => {
                write!(f, "{have} coded layers; 1..={MAX_CODED_LAYERS} allowed")
            }
            CodedError::Workers { need, have } => write!(
                f,
                "{have} workers for {need} shards (one non-gateway worker per shard needed)"
            ),
            CodedError::TooManyFrames => {
                write!(f, "{MAX_CODED_FRAMES} frames already in the coded stage")
            }
            CodedError::DuplicateFrame => f.write_str("frame already in the coded stage"),
            CodedError::OutOfRange => f.write_str("coded layer or shard out of range"),
            CodedError::WrongWorker { from } => {
                write!(f, "node {from} is not the worker of that shard")
            }
            CodedError::Busy => write!(f, "{MAX_WORKER_TASKS} coded tasks already queued"),
            CodedError::NotComputing => f.write_str("no coded task is computing"),
            CodedError::Code(e) => write!(f, "code: {e}"),
        }
    }
}

impl core::error::Error for CodedError {}

impl From<CodeError> for CodedError {
    fn from(e: CodeError) -> Self {
        CodedError::Code(e)
    }
}

impl CodedError {
    /// True when the error shows the peer broke the protocol (the driver may drop it).
    pub fn peer_fault(&self) -> bool {
        matches!(
            self,
            CodedError::OutOfRange | CodedError::WrongWorker { .. }
        )
    }
}

/// A frame in the stage.
#[derive(Clone, Debug)]
struct Flight {
    key: FrameKey,
    deadline: Instant,
    layer: u8,
    state: CodedLayer,
    /// Shards of the current layer sent at least once.
    sent: u32,
    quality: Quality,
    done: bool,
}

/// A task sent and not yet answered: its round trip is logged when the result comes, even
/// after the layer ended (stragglers must count, or the model would only see the fastest `k`),
/// and as a loss if nothing came by its frame's deadline.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    frame: FrameKey,
    layer: u8,
    shard: u8,
    worker: NodeId,
    sent_at: Instant,
    expires: Instant,
}

/// Outstanding tasks tracked for round trips (the oldest is counted lost when full).
const OUTSTANDING: usize = MAX_CODED_FRAMES * MAX_SHARDS;

/// Round trips observed from one worker for one layer, a ring of the last [`RTT_WINDOW`]
/// (`None`: the result never came while its frame was in the stage).
#[derive(Clone, Copy, Debug)]
struct RttLog {
    samples: [Option<f32>; RTT_WINDOW],
    len: u8,
    next: u8,
}

impl RttLog {
    const EMPTY: RttLog = RttLog {
        samples: [None; RTT_WINDOW],
        len: 0,
        next: 0,
    };

    fn push(&mut self, s: Option<f32>) {
        self.samples[self.next as usize] = s;
        self.next = ((self.next as usize + 1) % RTT_WINDOW) as u8;
        self.len = (self.len as usize + 1).min(RTT_WINDOW) as u8;
    }

    fn fit(&self, min: usize) -> Option<LinkDelay> {
        let mut d = [0.0f64; RTT_WINDOW];
        let mut n = 0;
        let mut lost = 0;
        for s in &self.samples[..self.len as usize] {
            match s {
                Some(v) => {
                    d[n] = f64::from(*v);
                    n += 1;
                }
                None => lost += 1,
            }
        }
        if (self.len as usize) < min.max(2) {
            return None;
        }
        match LinkDelay::fit(&d[..n], lost) {
            Ok(m) => Some(m),
            // A link whose results (almost) never came, or always came after the same delay,
            // has no moment fit, yet it is what the allocator must know about: without a model
            // the quality-aware search fell back to uniform for as long as such a worker stayed
            // in the plan (a dead worker; a fixed-delay link). Model it as a step at the
            // observed delay (1 µs gamma part) with the observed loss; nothing ever delivered
            // is loss 1. (Found by tests/coded_runtime.rs.)
            Err(FitError::TooFewSamples { .. } | FitError::Degenerate) => {
                let loc = d[..n].iter().copied().fold(f64::INFINITY, f64::min);
                Some(LinkDelay {
                    loc: if loc.is_finite() { loc } else { 0.0 },
                    shape: 1.0,
                    scale: 1e-3,
                    loss: lost as f64 / (n + lost) as f64,
                })
            }
            Err(_) => None,
        }
    }
}

/// Counters of the coded stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodedStats {
    /// Frames that left the stage.
    pub frames: u32,
    /// Layers decoded in full.
    pub decoded: u32,
    /// Layers decoded with at least one erased data shard recovered from parity or a replica.
    pub recovered: u32,
    /// Layers that expired with rows missing.
    pub expired: u32,
    /// Shards sent again because parity could not cover.
    pub resent: u32,
    /// Results dropped: stragglers after decode, late, duplicates, unknown frames.
    pub discarded: u32,
    /// Layer timeouts chosen by the quality-aware search (not the uniform fallback).
    pub fitted_budgets: u32,
}

/// The gateway side of the coded stage.
#[derive(Clone, Debug)]
pub struct CodedGateway {
    plan: CodedPlan,
    config: CodedConfig,
    flights: Vec<Flight, MAX_CODED_FRAMES>,
    rtt: [[RttLog; MAX_CODED_LAYERS]; MAX_EDGES],
    /// Worker node id of each `rtt` row.
    rtt_nodes: Vec<NodeId, MAX_EDGES>,
    /// Bit `i`: worker `rtt_nodes[i]` is known to be down (no task is sent to it).
    down: u32,
    outstanding: Deque<Outstanding, OUTSTANDING>,
    actions: Deque<CodedAction, QUEUE>,
    stats: CodedStats,
}

impl CodedGateway {
    /// A gateway running `plan` under `config`. At most `MAX_EDGES` distinct workers.
    pub fn new(plan: CodedPlan, config: CodedConfig) -> Result<CodedGateway, CodedError> {
        let mut nodes: Vec<NodeId, MAX_EDGES> = Vec::new();
        for l in plan.layers() {
            for &w in l.workers() {
                if !nodes.contains(&w) && nodes.push(w).is_err() {
                    return Err(CodedError::Workers {
                        need: MAX_EDGES + 1,
                        have: MAX_EDGES,
                    });
                }
            }
        }
        Ok(CodedGateway {
            plan,
            config,
            flights: Vec::new(),
            rtt: [[RttLog::EMPTY; MAX_CODED_LAYERS]; MAX_EDGES],
            rtt_nodes: nodes,
            down: 0,
            outstanding: Deque::new(),
            actions: Deque::new(),
            stats: CodedStats::default(),
        })
    }

    /// The plan.
    pub fn plan(&self) -> &CodedPlan {
        &self.plan
    }

    /// Counters so far.
    pub fn stats(&self) -> CodedStats {
        self.stats
    }

    /// Frames in the stage.
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The delay model fitted for `worker` on `layer`, if enough round trips were seen.
    pub fn link_model(&self, worker: NodeId, layer: usize) -> Option<LinkDelay> {
        let i = self.rtt_nodes.iter().position(|&n| n == worker)?;
        self.rtt[i].get(layer)?.fit(self.config.min_samples)
    }

    /// `frame` enters the stage at `now` (its input is the first layer's input).
    pub fn start_frame(&mut self, now: Instant, frame: FrameKey) -> Result<(), CodedError> {
        if self.flights.iter().any(|f| f.key == frame) {
            return Err(CodedError::DuplicateFrame);
        }
        if self.flights.is_full() {
            return Err(CodedError::TooManyFrames);
        }
        let deadline = now.saturating_add(self.config.frame_deadline);
        let state = self.layer_state(now, deadline, 0)?;
        let _ = self.flights.push(Flight {
            key: frame,
            deadline,
            layer: 0,
            state,
            sent: 0,
            quality: Quality::FULL,
            done: false,
        });
        Ok(())
    }

    /// A `CodedResult` for (`frame`, `layer`, `shard`) arrived from `from` at `now`. Accept:
    /// keep the result until the layer's `Decode`/`Expired`; Discard: drop it.
    pub fn on_result(
        &mut self,
        now: Instant,
        from: NodeId,
        frame: FrameKey,
        layer: u8,
        shard: u8,
    ) -> Result<Verdict, CodedError> {
        let spec = self
            .plan
            .layers()
            .get(layer as usize)
            .ok_or(CodedError::OutOfRange)?;
        let worker = *spec
            .workers()
            .get(shard as usize)
            .ok_or(CodedError::OutOfRange)?;
        if worker != from {
            return Err(CodedError::WrongWorker { from });
        }
        let sent = self
            .outstanding
            .iter()
            .position(|o| o.frame == frame && o.layer == layer && o.shard == shard);
        if let Some(o) = sent.and_then(|i| remove_at(&mut self.outstanding, i)) {
            let ms = now.saturating_duration_since(o.sent_at).total_micros() as f32 / 1000.0;
            self.log_rtt(from, layer as usize, Some(ms));
        }
        let Some(f) = self
            .flights
            .iter_mut()
            .find(|f| f.key == frame && f.layer == layer && !f.done)
        else {
            self.stats.discarded += 1;
            return Ok(Verdict::Discard);
        };
        let verdict = f.state.on_result(now, shard as usize)?;
        Ok(match verdict {
            ResultVerdict::Accept => Verdict::Accept,
            _ => {
                self.stats.discarded += 1;
                Verdict::Discard
            }
        })
    }

    /// `node` is (back) up: tasks may be sent to it again.
    pub fn on_worker_up(&mut self, node: NodeId) {
        if let Some(i) = self.rtt_nodes.iter().position(|&n| n == node) {
            self.down &= !(1 << i);
        }
    }

    fn is_down(&self, node: NodeId) -> bool {
        self.rtt_nodes
            .iter()
            .position(|&n| n == node)
            .is_some_and(|i| self.down >> i & 1 == 1)
    }

    /// `node` is gone (its connection dropped, or a send to it failed): its pending shards
    /// become erasures now, and no task goes to it until [`on_worker_up`](Self::on_worker_up).
    pub fn on_worker_lost(&mut self, node: NodeId) {
        if let Some(i) = self.rtt_nodes.iter().position(|&n| n == node) {
            self.down |= 1 << i;
        }
        for f in self.flights.iter_mut().filter(|f| !f.done) {
            let spec = &self.plan.layers()[f.layer as usize];
            for (i, _) in spec
                .workers()
                .iter()
                .enumerate()
                .filter(|(_, &w)| w == node)
            {
                f.state.on_worker_lost(i);
            }
        }
    }

    /// Next action at `now`, or `None` (then sleep until [`poll_at`](Self::poll_at)).
    pub fn poll(&mut self, now: Instant) -> Option<CodedAction> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        while let Some(o) = self.outstanding.front().copied() {
            if o.expires > now {
                break;
            }
            self.outstanding.pop_front();
            self.log_rtt(o.worker, o.layer as usize, None);
        }
        let mut i = 0;
        while i < self.flights.len() {
            if let Some(a) = self.step(now, i) {
                return Some(a);
            }
            if self.flights[i].done {
                self.flights.swap_remove(i);
                continue;
            }
            i += 1;
        }
        self.actions.pop_front()
    }

    /// When to call [`poll`](Self::poll) next if nothing arrives.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.actions.is_empty() || self.flights.iter().any(|f| f.done) {
            return Some(Instant::ZERO);
        }
        let flights = self.flights.iter().filter_map(|f| f.state.poll_at()).min();
        let lost = self.outstanding.front().map(|o| o.expires);
        match (flights, lost) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One action of flight `i`, advancing it to its next layer when one ends.
    fn step(&mut self, now: Instant, i: usize) -> Option<CodedAction> {
        if self.flights[i].done {
            return None;
        }
        let layer = self.flights[i].layer;
        let spec = self.plan.layers()[layer as usize];
        let down = spec
            .workers()
            .iter()
            .enumerate()
            .filter(|(_, &w)| self.is_down(w))
            .fold(0u32, |m, (s, _)| m | 1 << s);
        let f = &mut self.flights[i];
        let action = loop {
            match f.state.poll(now)? {
                // A shard for a worker known to be down is an erasure at once (each shard is
                // re-sent at most once, so this ends).
                LayerAction::Send { shard } if down >> shard & 1 == 1 => {
                    f.state.on_worker_lost(shard);
                }
                a => break a,
            }
        };
        match action {
            LayerAction::Send { shard } => {
                if f.sent >> shard & 1 == 1 {
                    self.stats.resent += 1;
                    debug!(
                        "coded: frame {} layer {}: shard {} re-sent to node {}",
                        f.key,
                        layer,
                        shard,
                        spec.workers()[shard]
                    );
                }
                f.sent |= 1 << shard;
                let budget = f
                    .state
                    .budget(shard)
                    .min(f.deadline.saturating_duration_since(now));
                let to = spec.workers()[shard];
                let frame = f.key;
                let o = Outstanding {
                    frame,
                    layer,
                    shard: shard as u8,
                    worker: to,
                    sent_at: now,
                    expires: f.deadline,
                };
                if let Err(o) = self.outstanding.push_back(o) {
                    if let Some(old) = self.outstanding.pop_front() {
                        self.log_rtt(old.worker, old.layer as usize, None);
                    }
                    let _ = self.outstanding.push_back(o);
                }
                Some(CodedAction::Send {
                    to,
                    frame,
                    layer,
                    shard: shard as u8,
                    budget,
                })
            }
            LayerAction::Decode { present } => {
                self.stats.decoded += 1;
                let k = spec.code().k();
                let missing = (0..k).filter(|d| present >> d & 1 == 0).count();
                if missing > 0 {
                    self.stats.recovered += 1;
                    // Per layer: a worker that is down costs one line per layer and frame.
                    debug!(
                        "coded: frame {} layer {}: {} of {} data shards missing, recovered from parity or replicas",
                        f.key, layer, missing, k
                    );
                } else {
                    trace!("coded: frame {} layer {}: decoded", f.key, layer);
                }
                f.quality.decoded += 1;
                let a = CodedAction::Decode {
                    frame: f.key,
                    layer,
                    present,
                };
                self.next_layer(now, i);
                Some(a)
            }
            LayerAction::Expired { present, rows } => {
                self.stats.expired += 1;
                warn!(
                    "coded: frame {} layer {}: budget over with {} of {} shards in, {} of {} rows kept (the rest zero)",
                    f.key,
                    layer,
                    present.count_ones(),
                    spec.shards(),
                    rows,
                    spec.code().rows()
                );
                f.quality.expired += 1;
                f.quality.fraction *= rows as f32 / spec.code().rows() as f32;
                let a = CodedAction::Expired {
                    frame: f.key,
                    layer,
                    present,
                    rows,
                };
                self.next_layer(now, i);
                Some(a)
            }
        }
    }

    /// Flight `i`'s layer ended: log the round trips that never came, start the next layer or
    /// finish the frame (its actions queue behind the current one).
    fn next_layer(&mut self, now: Instant, i: usize) {
        let f = &self.flights[i];
        let (key, deadline, next) = (f.key, f.deadline, f.layer as usize + 1);
        if next < self.plan.layers().len() {
            match self.layer_state(now, deadline, next) {
                Ok(state) => {
                    let f = &mut self.flights[i];
                    f.layer = next as u8;
                    f.state = state;
                    f.sent = 0;
                    return;
                }
                Err(_) => {
                    // Cannot happen for a plan that built its first layer; end the frame.
                    self.flights[i].quality.fraction = 0.0;
                }
            }
        }
        let f = &mut self.flights[i];
        f.done = true;
        self.stats.frames += 1;
        let _ = self.actions.push_back(CodedAction::FrameDone {
            frame: key,
            quality: f.quality,
        });
    }

    fn log_rtt(&mut self, worker: NodeId, layer: usize, sample: Option<f32>) {
        if let Some(i) = self.rtt_nodes.iter().position(|&n| n == worker) {
            if let Some(log) = self.rtt[i].get_mut(layer) {
                log.push(sample);
            }
        }
    }

    /// The state of layer `layer` starting at `now` with its budgets allocated.
    fn layer_state(
        &mut self,
        now: Instant,
        deadline: Instant,
        layer: usize,
    ) -> Result<CodedLayer, CodedError> {
        let spec = self.plan.layers()[layer];
        let t = self.timeout(now, deadline, layer);
        let budgets = [t; MAX_SHARDS];
        let mut state = spec.layer(deadline, &budgets[..spec.shards()])?;
        state.set_data_grace(self.config.data_grace);
        Ok(state)
    }

    /// The timeout of layer `layer` starting at `now`.
    fn timeout(&mut self, now: Instant, deadline: Instant, layer: usize) -> Duration {
        let remaining = deadline.saturating_duration_since(now).total_micros();
        let left = (self.plan.layers().len() - layer) as u64;
        let uniform = Duration::from_micros(remaining / left);
        if self.config.allocator == Allocator::Uniform || left == 0 {
            return uniform;
        }
        match self.best_timeout(remaining as f64 / 1000.0, layer) {
            Some(ms) => {
                self.stats.fitted_budgets += 1;
                let t = Duration::from_micros((ms * 1000.0) as u64);
                trace!("coded: layer {} budget {} (fitted)", layer, t);
                t
            }
            None => {
                debug!(
                    "coded: layer {} budget {} (uniform: some worker has no fitted delay yet)",
                    layer, uniform
                );
                uniform
            }
        }
    }

    /// The quality-aware search: `None` when some worker lacks a fitted model.
    fn best_timeout(&self, remaining_ms: f64, layer: usize) -> Option<f64> {
        let layers = self.plan.layers();
        let mut models = [[LinkDelay::REFERENCE; MAX_SHARDS]; MAX_CODED_LAYERS];
        for (l, spec) in layers.iter().enumerate().skip(layer) {
            for (s, &w) in spec.workers().iter().enumerate() {
                // A worker known to be down delivers nothing, samples or not.
                models[l][s] = if self.is_down(w) {
                    LinkDelay {
                        loss: 1.0,
                        ..LinkDelay::REFERENCE
                    }
                } else {
                    self.link_model(w, l)?
                };
            }
        }
        let later = layers.len() - layer - 1;
        let mut best = (f64::NEG_INFINITY, remaining_ms / (later + 1) as f64);
        for p in 1..=SEARCH_POINTS {
            let t = remaining_ms * p as f64 / SEARCH_POINTS as f64;
            let rest = if later == 0 {
                0.0
            } else {
                (remaining_ms - t) / later as f64
            };
            let mut q = expected_quality(&layers[layer], &models[layer], t);
            for (l, spec) in layers.iter().enumerate().skip(layer + 1) {
                q *= expected_quality(spec, &models[l], rest);
            }
            if q > best.0 + 1e-12 {
                best = (q, t);
            }
        }
        Some(best.1)
    }
}

/// Removes and returns element `i` of a deque, keeping the order of the others.
fn remove_at<T: Copy, const N: usize>(q: &mut Deque<T, N>, i: usize) -> Option<T> {
    let len = q.len();
    if i >= len {
        return None;
    }
    let mut found = None;
    for j in 0..len {
        let x = q.pop_front()?;
        if j == i {
            found = Some(x);
        } else {
            let _ = q.push_back(x);
        }
    }
    found
}

/// Expected fraction of `spec`'s output rows delivered within `t` ms when shard `s`'s result
/// arrives with probability `models[s].delivery(t)`, independently.
pub fn expected_quality(spec: &CodedLayerSpec, models: &[LinkDelay], t: f64) -> f64 {
    let code = spec.code();
    let n = spec.shards();
    let mut p = [0.0f64; MAX_SHARDS];
    for (s, m) in models.iter().take(n).enumerate() {
        p[s] = m.delivery(t).clamp(0.0, 1.0);
    }
    let rows = code.rows() as f64;
    let k = code.k();
    let share = |d: usize| code.data_rows(d).map_or(0.0, |r| r.len() as f64 / rows);
    match spec.protection() {
        Protection::Replicated => (0..k)
            .map(|d| share(d) * (1.0 - (1.0 - p[d]) * (1.0 - p[d + k])))
            .sum(),
        Protection::Coded => {
            // P(at least k arrive) + Σ_d share_d · P(d arrives and fewer than k in all).
            let all = arrivals(&p[..n], None);
            let decodable: f64 = all[k..=n].iter().sum();
            let partial: f64 = (0..k)
                .map(|d| {
                    let others = arrivals(&p[..n], Some(d));
                    share(d) * p[d] * others[..k.saturating_sub(1)].iter().sum::<f64>()
                })
                .sum();
            decodable + partial
        }
    }
}

/// Distribution of the number of arrivals (Poisson binomial), shard `skip` left out.
fn arrivals(p: &[f64], skip: Option<usize>) -> [f64; MAX_SHARDS + 1] {
    let mut dist = [0.0f64; MAX_SHARDS + 1];
    dist[0] = 1.0;
    let mut len = 0;
    for (i, &q) in p.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        len += 1;
        for c in (1..=len).rev() {
            dist[c] = dist[c] * (1.0 - q) + dist[c - 1] * q;
        }
        dist[0] *= 1.0 - q;
    }
    dist
}

/// A shard to compute (worker side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardWork {
    /// The frame.
    pub frame: FrameKey,
    /// Coded layer index.
    pub layer: u8,
    /// Shard index.
    pub shard: u8,
}

/// What the driver must do next (worker side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerAction {
    /// Compute `work` on the task's input with this worker's weights of the shard; report
    /// with [`CodedWorker::on_computed`].
    Compute(ShardWork),
    /// Send the computed result of `work` to the gateway as `CodedResult`.
    SendResult(ShardWork),
    /// Drop the task's input (and result, if any): it is past its budget.
    Drop(ShardWork),
}

#[derive(Clone, Copy, Debug)]
struct Task {
    work: ShardWork,
    expires: Instant,
}

/// Counters of a worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Tasks received.
    pub received: u32,
    /// Results sent.
    pub sent: u32,
    /// Tasks or results dropped past their budget.
    pub late: u32,
}

/// The worker side: a bounded FIFO of shard tasks with budgets, one computing at a time.
#[derive(Clone, Debug, Default)]
pub struct CodedWorker {
    queue: Deque<Task, MAX_WORKER_TASKS>,
    computing: Option<Task>,
    actions: Deque<WorkerAction, { 2 * MAX_WORKER_TASKS + 2 }>,
    stats: WorkerStats,
}

impl CodedWorker {
    /// An idle worker.
    pub fn new() -> CodedWorker {
        CodedWorker::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> WorkerStats {
        self.stats
    }

    /// A `CodedTask` arrived at `now` with `budget`. Accept: keep its input until `Compute`
    /// or `Drop` names it; `Busy`: the queue is full (the gateway's timeout covers it).
    pub fn on_task(&mut self, now: Instant, work: ShardWork, budget: Duration) -> Verdict {
        let dup = self
            .computing
            .iter()
            .chain(self.queue.iter())
            .any(|t| t.work == work);
        if dup {
            return Verdict::Discard;
        }
        self.stats.received += 1;
        let task = Task {
            work,
            expires: now.saturating_add(budget),
        };
        match self.queue.push_back(task) {
            Ok(()) => Verdict::Accept,
            Err(_) => {
                self.stats.late += 1;
                Verdict::Discard
            }
        }
    }

    /// The computation of the running task finished at `now`.
    pub fn on_computed(&mut self, now: Instant) -> Result<(), CodedError> {
        let t = self.computing.take().ok_or(CodedError::NotComputing)?;
        let a = if now <= t.expires {
            self.stats.sent += 1;
            WorkerAction::SendResult(t.work)
        } else {
            self.stats.late += 1;
            WorkerAction::Drop(t.work)
        };
        let _ = self.actions.push_back(a);
        Ok(())
    }

    /// True while a task computes.
    pub fn is_computing(&self) -> bool {
        self.computing.is_some()
    }

    /// Next action at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<WorkerAction> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        if self.computing.is_some() {
            return None;
        }
        let t = self.queue.pop_front()?;
        if now > t.expires {
            self.stats.late += 1;
            return Some(WorkerAction::Drop(t.work));
        }
        self.computing = Some(t);
        Some(WorkerAction::Compute(t.work))
    }

    /// When a queued task expires (the next `Drop`), if nothing else happens first.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.actions.is_empty() {
            return Some(Instant::ZERO);
        }
        if self.computing.is_some() {
            return None;
        }
        self.queue.front().map(|_| Instant::ZERO)
    }
}
