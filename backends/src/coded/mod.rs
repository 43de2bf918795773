//! The coded (CDC) stage driver: binds `runtime::coded`'s gateway and worker machines to a
//! [`Link`] over any embedded-nal stack, to a [`CodedModel`] and to a [`ShardExecutor`].
//!
//! The gateway takes a frame's input ([`CodedNode::submit`]), sends each layer's shards as
//! `CodedTask`s, keeps the `CodedResult`s the machine accepts, decodes (or zero-fills on
//! expiry), applies the activation and feeds the next layer; a finished frame comes out of
//! [`CodedNode::take_finished`] with its output, [`Quality`] and per-layer times. A worker
//! computes the shards it is sent with the parameters of its shards and answers within the
//! task's budget, or drops the work. Like the FTP driver, it takes time as an argument, so
//! the same code runs over Linux sockets and over smoltcp in the simulator.
//!
//! [`tail`] maps a network's tail (YOLOv2's layers 16–31) onto coded layers; with `std`,
//! [`ThreadShards`] computes a worker's shards on its own thread.

extern crate alloc;

pub mod model;
pub mod tail;
#[cfg(feature = "std")]
mod thread_shards;

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use embedded_nal::TcpFullStack;
use tessera_core::runtime::coded::{
    CodedAction, CodedConfig, CodedError, CodedGateway, CodedStats, CodedWorker, Quality,
    ShardWork, WorkerAction, WorkerStats,
};
use tessera_core::runtime::Verdict;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Body, FrameKey, Message, NodeId, Tensor, GATEWAY};
use tessera_core::Region;

pub use model::{
    Activation, CodedModel, CodedModelError, ConvGeom, LayerScheme, LinearLayer, Numeric,
};
#[cfg(feature = "std")]
pub use thread_shards::ThreadShards;

use crate::driver::DriverError;
use crate::link::{Link, LinkConfig, LinkEvent, LinkStats};

/// What the gateway computes itself between coded layers: a network's non-linear or
/// data-movement layers (pooling, routes, reorg, the detection head), so a coded chain can be
/// the weight-heavy layers of a CNN tail rather than a plain stack.
pub trait Glue {
    /// Coded layer `layer` of `frame` produced `output` (activated, `rows × cols`): return the
    /// input of coded layer `layer + 1`.
    fn between(&mut self, frame: FrameKey, layer: usize, output: Vec<f32>) -> Vec<f32>;
    /// The last coded layer produced `output`: return the frame's output.
    fn finish(&mut self, frame: FrameKey, output: Vec<f32>) -> Vec<f32>;
}

/// No glue: each layer's output is the next one's input, the last one's the frame's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chain;

impl Glue for Chain {
    fn between(&mut self, _: FrameKey, _: usize, output: Vec<f32>) -> Vec<f32> {
        output
    }

    fn finish(&mut self, _: FrameKey, output: Vec<f32>) -> Vec<f32> {
        output
    }
}

/// One shard computation, owning its input.
#[derive(Clone, Debug)]
pub struct ShardJob {
    /// What to compute.
    pub work: ShardWork,
    /// Columns of the input.
    pub cols: usize,
    /// `in_len × cols` wire words.
    pub input: Vec<u32>,
}

/// A finished shard computation.
#[derive(Clone, Debug)]
pub struct ShardDone {
    /// What was computed.
    pub work: ShardWork,
    /// The result words, or why the input was refused.
    pub output: Result<Vec<u32>, CodedModelError>,
}

/// Runs shard computations (one at a time): inline, on a thread, or in virtual time.
pub trait ShardExecutor {
    /// Starts `job` with `model`'s parameters.
    fn start(&mut self, model: &Arc<CodedModel>, job: ShardJob);
    /// The finished job, once.
    fn poll(&mut self) -> Option<ShardDone>;
}

/// Computes at [`ShardExecutor::start`], convolutions with `K`.
#[derive(Debug, Default)]
pub struct InlineShards<K = tessera_core::kernel::Portable> {
    kernels: K,
    done: Option<ShardDone>,
}

impl<K> InlineShards<K> {
    /// Computing with `kernels`.
    pub fn new(kernels: K) -> Self {
        InlineShards {
            kernels,
            done: None,
        }
    }
}

impl<K: tessera_core::kernel::Kernels> ShardExecutor for InlineShards<K> {
    fn start(&mut self, model: &Arc<CodedModel>, job: ShardJob) {
        let output = model.compute_shard_with(&self.kernels, job.work, job.cols, &job.input);
        self.done = Some(ShardDone {
            work: job.work,
            output,
        });
    }

    fn poll(&mut self) -> Option<ShardDone> {
        self.done.take()
    }
}

/// One layer of a finished frame, as the gateway saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerRecord {
    /// From the layer's first send to its decode or expiry.
    pub latency: Duration,
    /// Decoded in full (false: expired with rows missing).
    pub decoded: bool,
    /// Results used (bit `i` = shard `i`).
    pub present: u32,
}

/// A frame that left the coded stage.
#[derive(Clone, Debug)]
pub struct CodedFinished {
    /// The frame.
    pub frame: FrameKey,
    /// The last layer's output (`rows × cols`, zeros where rows were lost).
    pub output: Vec<f32>,
    /// How much of it is real.
    pub quality: Quality,
    /// From submission to completion.
    pub latency: Duration,
    /// Per layer.
    pub layers: Vec<LayerRecord>,
}

/// Why a frame could not be submitted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CodedSubmitError {
    /// Only the gateway submits frames.
    NotGateway,
    /// The input is not `in_len × cols` values (or `cols` is 0).
    Length {
        /// Values needed.
        need: usize,
        /// Values given.
        have: usize,
    },
    /// The stage refused (too many frames in flight).
    Stage(CodedError),
}

impl core::fmt::Display for CodedSubmitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CodedSubmitError::NotGateway => f.write_str("only the gateway submits frames"),
            CodedSubmitError::Length { need, have } => {
                write!(f, "input has {have} values, {need} needed")
            }
            CodedSubmitError::Stage(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for CodedSubmitError {}

/// Counters of a coded node.
#[derive(Clone, Copy, Debug, Default)]
pub struct CodedNodeStats {
    /// Gateway machine counters.
    pub gateway: Option<CodedStats>,
    /// Worker machine counters.
    pub worker: Option<WorkerStats>,
    /// Link counters.
    pub link: LinkStats,
    /// Messages refused (wrong sender, bad length, unexpected kind); their peers dropped.
    pub refused: u64,
    /// Shard computations that failed.
    pub failed_jobs: u64,
    /// Bytes of shard parameters this node holds.
    pub param_bytes: usize,
}

/// The gateway's data of one frame.
#[derive(Debug)]
struct GatewayFrame {
    cols: usize,
    /// The current layer's input words.
    input: Vec<u32>,
    results: BTreeMap<u8, Vec<u32>>,
    output: Vec<f32>,
    started: Instant,
    layer_started: Option<Instant>,
    layers: Vec<LayerRecord>,
}

type TaskKey = (u16, u32, u8, u8);

fn task_key(w: &ShardWork) -> TaskKey {
    (w.frame.origin, w.frame.number, w.layer, w.shard)
}

/// One per node for its lifetime: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Role {
    Gateway {
        machine: CodedGateway,
        frames: BTreeMap<FrameKey, GatewayFrame>,
        next: u32,
    },
    Worker {
        machine: CodedWorker,
        /// Inputs (and then results) of accepted tasks: (cols, words).
        tasks: BTreeMap<TaskKey, (usize, Vec<u32>)>,
    },
}

/// A message copied out of the link's buffer.
enum Incoming {
    Task {
        work: ShardWork,
        budget: Duration,
        cols: usize,
        words: Vec<u32>,
    },
    Result {
        work: ShardWork,
        words: Vec<u32>,
    },
    Other,
}

fn words_of(t: &Tensor<'_>) -> Vec<u32> {
    t.data
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn bytes_of(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

impl Incoming {
    fn capture(msg: &Message<'_>) -> Incoming {
        match *msg {
            Message::CodedTask {
                frame,
                layer,
                shard,
                budget_us,
                input,
            } => Incoming::Task {
                work: ShardWork {
                    frame,
                    layer,
                    shard,
                },
                budget: Duration::from_micros(u64::from(budget_us)),
                cols: input.region.width() as usize * input.region.height() as usize,
                words: words_of(&input),
            },
            Message::CodedResult {
                frame,
                layer,
                shard,
                output,
            } => Incoming::Result {
                work: ShardWork {
                    frame,
                    layer,
                    shard,
                },
                words: words_of(&output),
            },
            _ => Incoming::Other,
        }
    }
}

/// One node of a coded run: link + gateway or worker machine + model + executor (+ the
/// gateway's glue between layers).
pub struct CodedNode<S: TcpFullStack, X: ShardExecutor, G: Glue = Chain> {
    link: Link<S>,
    role: Role,
    model: Arc<CodedModel>,
    exec: X,
    glue: G,
    finished: Vec<CodedFinished>,
    stats: CodedNodeStats,
}

impl<S: TcpFullStack, X: ShardExecutor> CodedNode<S, X, Chain> {
    /// A node running as `link.me` (0: the gateway, with `config`) over `stack`; each layer
    /// feeds the next.
    pub fn new(
        stack: S,
        link: LinkConfig,
        model: Arc<CodedModel>,
        config: CodedConfig,
        exec: X,
    ) -> Result<Self, DriverError> {
        Self::with_glue(stack, link, model, config, exec, Chain)
    }
}

impl<S: TcpFullStack, X: ShardExecutor, G: Glue> CodedNode<S, X, G> {
    /// As [`CodedNode::new`], with `glue` computing between the gateway's layers.
    pub fn with_glue(
        stack: S,
        link: LinkConfig,
        model: Arc<CodedModel>,
        config: CodedConfig,
        exec: X,
        glue: G,
    ) -> Result<Self, DriverError> {
        let me = link.me;
        let link = Link::new(stack, link).map_err(DriverError::Link)?;
        let role = if me == GATEWAY {
            let machine = CodedGateway::new(model.plan().clone(), config)
                .map_err(|e| DriverError::Coded(CodedModelError::Coded(e)))?;
            Role::Gateway {
                machine,
                frames: BTreeMap::new(),
                next: 0,
            }
        } else {
            Role::Worker {
                machine: CodedWorker::new(),
                tasks: BTreeMap::new(),
            }
        };
        let stats = CodedNodeStats {
            param_bytes: model.worker_param_bytes(me),
            ..Default::default()
        };
        Ok(CodedNode {
            link,
            role,
            model,
            exec,
            glue,
            finished: Vec::new(),
            stats,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.link.me()
    }

    /// The link.
    pub fn link(&self) -> &Link<S> {
        &self.link
    }

    /// The gateway machine (e.g. for its fitted link models), on the gateway.
    pub fn gateway(&self) -> Option<&CodedGateway> {
        match &self.role {
            Role::Gateway { machine, .. } => Some(machine),
            Role::Worker { .. } => None,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> CodedNodeStats {
        let mut s = self.stats;
        s.link = self.link.stats();
        match &self.role {
            Role::Gateway { machine, .. } => s.gateway = Some(machine.stats()),
            Role::Worker { machine, .. } => s.worker = Some(machine.stats()),
        }
        s
    }

    /// Frames finished since the last call.
    pub fn take_finished(&mut self) -> Vec<CodedFinished> {
        core::mem::take(&mut self.finished)
    }

    /// Frames in the stage (gateway).
    pub fn in_flight(&self) -> usize {
        match &self.role {
            Role::Gateway { frames, .. } => frames.len(),
            Role::Worker { .. } => 0,
        }
    }

    /// True while a worker computes.
    pub fn computing(&self) -> bool {
        match &self.role {
            Role::Worker { machine, .. } => machine.is_computing(),
            Role::Gateway { .. } => false,
        }
    }

    /// Gateway: starts a frame on `input` (`in_len × cols` values, row-major).
    pub fn submit(
        &mut self,
        now: Instant,
        input: &[f32],
        cols: usize,
    ) -> Result<FrameKey, CodedSubmitError> {
        let need = self.model.in_len().saturating_mul(cols);
        if input.len() != need || cols == 0 || self.model.layer_cols(0, cols) != cols {
            return Err(CodedSubmitError::Length {
                need,
                have: input.len(),
            });
        }
        let Role::Gateway {
            machine,
            frames,
            next,
        } = &mut self.role
        else {
            return Err(CodedSubmitError::NotGateway);
        };
        let key = FrameKey::new(GATEWAY, *next);
        machine
            .start_frame(now, key)
            .map_err(CodedSubmitError::Stage)?;
        *next = next.wrapping_add(1);
        frames.insert(
            key,
            GatewayFrame {
                cols,
                input: self.model.input_words(0, input),
                results: BTreeMap::new(),
                output: Vec::new(),
                started: now,
                layer_started: None,
                layers: Vec::new(),
            },
        );
        self.pump(now);
        Ok(key)
    }

    /// When the node next needs a poll without I/O.
    pub fn poll_at(&self) -> Option<Instant> {
        let m = match &self.role {
            Role::Gateway { machine, .. } => machine.poll_at(),
            Role::Worker { machine, .. } => machine.poll_at(),
        };
        match (m, self.link.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Does all pending work: network I/O, a finished computation, due timers, actions.
    pub fn poll(&mut self, now: Instant) {
        let mut events: Vec<(NodeId, bool)> = Vec::new();
        let mut incoming: Vec<(NodeId, Incoming)> = Vec::new();
        self.link.poll(now, |_, ev| match ev {
            LinkEvent::Up(p) => events.push((p, true)),
            LinkEvent::Down(p, _) => events.push((p, false)),
            LinkEvent::Message(p, msg) => incoming.push((p, Incoming::capture(&msg))),
            LinkEvent::Refused(_) => {}
        });
        if let Role::Gateway { machine, .. } = &mut self.role {
            for (p, up) in events {
                if up {
                    machine.on_worker_up(p);
                } else {
                    machine.on_worker_lost(p);
                }
            }
        }
        for (from, m) in incoming {
            self.on_message(now, from, m);
        }
        loop {
            self.pump(now);
            // An inline executor finishes within `start`: hand the result on at once.
            match self.exec.poll() {
                Some(done) => self.on_done(now, done),
                None => break,
            }
        }
    }

    fn refuse(&mut self, peer: NodeId) {
        self.stats.refused += 1;
        self.link.disconnect(peer);
        if let Role::Gateway { machine, .. } = &mut self.role {
            machine.on_worker_lost(peer);
        }
    }

    fn on_message(&mut self, now: Instant, from: NodeId, m: Incoming) {
        match (m, &mut self.role) {
            (Incoming::Other, _) => {}
            (
                Incoming::Task {
                    work,
                    budget,
                    cols,
                    words,
                },
                Role::Worker { machine, tasks },
            ) => {
                let fits = self
                    .model
                    .layer(work.layer as usize)
                    .is_some_and(|l| l.in_len.saturating_mul(cols) == words.len() && cols > 0);
                if from != GATEWAY || !fits {
                    self.refuse(from);
                    return;
                }
                if machine.on_task(now, work, budget) == Verdict::Accept {
                    tasks.insert(task_key(&work), (cols, words));
                }
            }
            (
                Incoming::Result { work, words },
                Role::Gateway {
                    machine, frames, ..
                },
            ) => {
                let Some(f) = frames.get_mut(&work.frame) else {
                    // The frame already left the stage (a straggler): the machine still logs
                    // its round trip for the delay model, then discards it.
                    let fault = machine
                        .on_result(now, from, work.frame, work.layer, work.shard)
                        .is_err_and(|e| e.peer_fault());
                    if fault {
                        self.refuse(from);
                    }
                    return;
                };
                let need = self
                    .model
                    .result_len(work.layer as usize, work.shard as usize, f.cols);
                if need != Some(words.len()) {
                    self.refuse(from);
                    return;
                }
                match machine.on_result(now, from, work.frame, work.layer, work.shard) {
                    Ok(Verdict::Accept) => {
                        f.results.insert(work.shard, words);
                    }
                    Ok(Verdict::Discard) => {}
                    Err(e) if e.peer_fault() => self.refuse(from),
                    Err(_) => {}
                }
            }
            // A task at the gateway or a result at a worker.
            _ => self.refuse(from),
        }
    }

    fn on_done(&mut self, now: Instant, done: ShardDone) {
        let Role::Worker { machine, tasks } = &mut self.role else {
            return;
        };
        let key = task_key(&done.work);
        match done.output {
            Ok(out) => {
                if let Some(t) = tasks.get_mut(&key) {
                    t.1 = out;
                }
            }
            Err(_) => {
                self.stats.failed_jobs += 1;
                tasks.remove(&key);
            }
        }
        let _ = machine.on_computed(now);
    }

    /// Carries out every queued action.
    fn pump(&mut self, now: Instant) {
        loop {
            match &mut self.role {
                Role::Gateway { machine, .. } => match machine.poll(now) {
                    Some(a) => self.gateway_act(now, a),
                    None => break,
                },
                Role::Worker { machine, .. } => match machine.poll(now) {
                    Some(a) => self.worker_act(now, a),
                    None => break,
                },
            }
        }
    }

    fn gateway_act(&mut self, now: Instant, action: CodedAction) {
        let Role::Gateway {
            machine, frames, ..
        } = &mut self.role
        else {
            return;
        };
        match action {
            CodedAction::Send {
                to,
                frame,
                layer,
                shard,
                budget,
            } => {
                let Some(f) = frames.get_mut(&frame) else {
                    return;
                };
                f.layer_started.get_or_insert(now);
                let in_len = self.model.layer(layer as usize).map_or(0, |l| l.in_len);
                let data = bytes_of(&f.input);
                // A convolution's input travels as its map; other layers as `cols × 1`.
                let region = match self.model.conv(layer as usize) {
                    Some(g) => Region::full(g.width, g.height),
                    None => Region::full(f.cols as u32, 1),
                };
                let Ok(input) = Tensor::new(region, in_len as u32, &data) else {
                    return;
                };
                let msg = Message::CodedTask {
                    frame,
                    layer,
                    shard,
                    budget_us: budget.total_micros().min(u64::from(u32::MAX)) as u32,
                    input,
                };
                if self.link.send(now, to, &msg, Body::Message).is_err() {
                    // Not connected: an erasure now rather than at the timeout.
                    machine.on_worker_lost(to);
                }
            }
            CodedAction::Decode {
                frame,
                layer,
                present,
            } => self.finish_layer(now, frame, layer, present, true),
            CodedAction::Expired {
                frame,
                layer,
                present,
                ..
            } => self.finish_layer(now, frame, layer, present, false),
            CodedAction::FrameDone { frame, quality } => {
                if let Some(f) = frames.remove(&frame) {
                    self.finished.push(CodedFinished {
                        frame,
                        output: f.output,
                        quality,
                        latency: now.saturating_duration_since(f.started),
                        layers: f.layers,
                    });
                }
            }
        }
    }

    /// Decode (or zero-fill) layer `layer` of `frame`, then make its output the next layer's
    /// input (or the frame's output).
    fn finish_layer(&mut self, now: Instant, frame: FrameKey, layer: u8, present: u32, ok: bool) {
        let Role::Gateway { frames, .. } = &mut self.role else {
            return;
        };
        let Some(f) = frames.get_mut(&frame) else {
            return;
        };
        let l = layer as usize;
        let shards = self.model.plan().layers().get(l).map_or(0, |s| s.shards());
        let results = core::mem::take(&mut f.results);
        let views: Vec<Option<&[u32]>> = (0..shards)
            .map(|s| {
                let s = s as u8;
                results
                    .get(&s)
                    .filter(|_| present >> s & 1 == 1)
                    .map(|v| &v[..])
            })
            .collect();
        let cols = self.model.layer_cols(l, f.cols);
        let out = match self.model.finish_layer(l, &views, cols, ok) {
            Ok(o) => o,
            Err(_) => {
                // Cannot happen for results the machine accepted with checked lengths.
                self.stats.failed_jobs += 1;
                let rows = self.model.layer(l).map_or(0, |x| x.rows);
                alloc::vec![0.0; rows * cols]
            }
        };
        f.layers.push(LayerRecord {
            latency: f
                .layer_started
                .take()
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
            decoded: ok,
            present,
        });
        if l + 1 < self.model.len() {
            let next = self.glue.between(frame, l, out);
            let need = self.model.layer(l + 1).map_or(0, |x| x.in_len)
                * self.model.layer_cols(l + 1, f.cols);
            if next.len() != need {
                // The glue does not fit the model: the workers will refuse this input, the
                // layer expires, and the frame reports the loss.
                self.stats.failed_jobs += 1;
            }
            f.input = self.model.input_words(l + 1, &next);
        } else {
            f.input = Vec::new();
            f.output = self.glue.finish(frame, out);
        }
    }

    fn worker_act(&mut self, now: Instant, action: WorkerAction) {
        let Role::Worker { tasks, .. } = &mut self.role else {
            return;
        };
        match action {
            WorkerAction::Compute(work) => {
                let Some((cols, input)) = tasks.get_mut(&task_key(&work)) else {
                    // Unreachable: every accepted task stored its input. Unblock the machine.
                    self.stats.failed_jobs += 1;
                    if let Role::Worker { machine, .. } = &mut self.role {
                        let _ = machine.on_computed(now);
                    }
                    return;
                };
                let job = ShardJob {
                    work,
                    cols: *cols,
                    input: core::mem::take(input),
                };
                self.exec.start(&self.model, job);
            }
            WorkerAction::SendResult(work) => {
                let Some((cols, out)) = tasks.remove(&task_key(&work)) else {
                    return;
                };
                let rows = (out.len() / cols.max(1)) as u32;
                let data = bytes_of(&out);
                let Ok(output) = Tensor::new(Region::full(cols as u32, 1), rows, &data) else {
                    return;
                };
                let msg = Message::CodedResult {
                    frame: work.frame,
                    layer: work.layer,
                    shard: work.shard,
                    output,
                };
                let _ = self.link.send(now, GATEWAY, &msg, Body::Message);
            }
            WorkerAction::Drop(work) => {
                tasks.remove(&task_key(&work));
            }
        }
    }
}
