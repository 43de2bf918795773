//! The gateway side of the coded stage: frames in flight layer after layer, the round trips
//! the budgets are fitted from, and the actions for the driver.

use heapless::{Deque, Vec};
use tessera_log::{debug, trace, warn};

use crate::code::dispatch::{CodedLayer, LayerAction, ResultVerdict};
use crate::code::MAX_SHARDS;
use crate::deadline::LinkDelay;
use crate::runtime::{Verdict, MAX_EDGES};
use crate::time::{earliest, Duration, Instant};
use crate::wire::{FrameKey, NodeId};

use super::budget::{best_timeout, Allocator};
use super::trips::{RttLog, Trip};
use super::{CodedError, CodedPlan, MAX_CODED_FRAMES, MAX_CODED_LAYERS};

/// Capacity of a coded machine's action queue.
const QUEUE: usize = 2 * MAX_SHARDS + 8;

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
    /// Times every task and result is sent on a datagram transport (a stream transport sends
    /// once): a message of one datagram on a link losing a fraction `p` then arrives with
    /// probability `1 − p^copies`, with no retransmission to wait for. Duplicates are
    /// dropped by the receiver (the worker's queue, the layer's `Duplicate` verdict).
    pub copies: u8,
}

impl CodedConfig {
    /// `frame_deadline` with the uniform allocator, 8 samples before fitting, no data grace,
    /// one copy of each message.
    pub const fn new(frame_deadline: Duration) -> CodedConfig {
        CodedConfig {
            frame_deadline,
            allocator: Allocator::Uniform,
            min_samples: 8,
            data_grace: Duration::from_micros(0),
            copies: 1,
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
    /// [`crate::code::Decoder::from_mask`] or [`replicate::assemble`](crate::code::replicate::assemble)), apply the layer's
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
/// and as censored if nothing came by its frame's deadline: longer than the time the shard
/// could still count (its budget, or less if its layer ended first), see `trips`.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    frame: FrameKey,
    layer: u8,
    shard: u8,
    worker: NodeId,
    sent_at: Instant,
    expires: Instant,
    /// The shard's budget (the worker stops computing past it).
    budget: Duration,
    /// How long its layer had been open when it ended (decoded or expired).
    waited: Option<Duration>,
}

impl Outstanding {
    /// The unanswered round trip as a censored observation at `now`: it was longer than the
    /// time the gateway waited, at most the budget after which the worker stopped.
    fn censored(&self, now: Instant) -> Trip {
        let waited = self
            .waited
            .unwrap_or_else(|| now.saturating_duration_since(self.sent_at))
            .min(self.budget);
        Trip::Censored(waited.total_micros() as f32 / 1000.0)
    }
}

/// Outstanding tasks tracked for round trips (the oldest is counted lost when full).
const OUTSTANDING: usize = MAX_CODED_FRAMES * MAX_SHARDS;

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
            self.log_rtt(from, layer as usize, Trip::Delivered(ms));
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
            self.log_rtt(o.worker, o.layer as usize, o.censored(now));
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
        earliest(flights, lost)
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
                    budget,
                    waited: None,
                };
                if let Err(o) = self.outstanding.push_back(o) {
                    if let Some(old) = self.outstanding.pop_front() {
                        self.log_rtt(old.worker, old.layer as usize, old.censored(now));
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

    /// Flight `i`'s layer ended: note how long its unanswered shards were waited for (their
    /// censoring point), start the next layer or finish the frame (its actions queue behind the
    /// current one).
    fn next_layer(&mut self, now: Instant, i: usize) {
        let f = &self.flights[i];
        let (key, deadline, next) = (f.key, f.deadline, f.layer as usize + 1);
        for o in self
            .outstanding
            .iter_mut()
            .filter(|o| o.frame == key && o.layer as usize + 1 == next && o.waited.is_none())
        {
            o.waited = Some(now.saturating_duration_since(o.sent_at));
        }
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

    fn log_rtt(&mut self, worker: NodeId, layer: usize, sample: Trip) {
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

    /// The quality-aware timeout of layer `layer`: `None` when some worker lacks a fitted
    /// model.
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
        Some(best_timeout(layers, &models, remaining_ms, layer))
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
