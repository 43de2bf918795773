//! The coded stage's half of a node, without a link of its own ([`CodedPart`]): the gateway
//! or worker machine, the model, the shard executor and the glue. Its owner polls the link
//! and hands it the coded messages and peer events; every send goes through the owner's link
//! (passed to each call). [`super::CodedNode`] owns one with a link of its own (a node that
//! only runs the coded stage); the FTP driver's [`crate::driver::Node`] owns one beside its
//! FTP machine, so both stages share the node's one link, port, key and liveness.

extern crate alloc;

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;

use tessera_core::runtime::coded::{
    CodedAction, CodedConfig, CodedError, CodedGateway, CodedWorker, Quality, ShardWork,
    WorkerAction,
};
use tessera_core::runtime::Verdict;
use tessera_core::time::{earliest, Duration, Instant};
use tessera_core::wire::{FrameKey, Message, NodeId, Tensor, GATEWAY};
use tessera_core::Region;
use tessera_log::{debug, warn};

use super::CodedTransport;
use super::{
    CodedFinished, CodedModel, CodedModelError, CodedNodeStats, CodedSubmitError, Glue,
    LayerRecord, ShardDone, ShardExecutor, ShardJob,
};
use crate::link::Received;

/// Frames a gateway's [`CodedPart::queue`] holds while the stage is full
/// (`MAX_CODED_FRAMES` in flight); past that a frame leaves at once with nothing decoded.
pub const CODED_QUEUE: usize = tessera_core::runtime::coded::MAX_CODED_FRAMES;

/// A shard executor chosen at run time (a node's coded part, whatever executes it).
pub type BoxedShards = Box<dyn ShardExecutor + Send>;
/// Glue chosen at run time.
pub type BoxedGlue = Box<dyn Glue + Send>;

impl ShardExecutor for BoxedShards {
    fn start(&mut self, model: &Arc<CodedModel>, job: ShardJob) {
        (**self).start(model, job)
    }

    fn poll(&mut self) -> Option<ShardDone> {
        (**self).poll()
    }

    fn can_cancel(&self) -> bool {
        (**self).can_cancel()
    }

    fn cancel(&mut self) -> bool {
        (**self).cancel()
    }
}

impl Glue for BoxedGlue {
    fn between(&mut self, frame: FrameKey, layer: usize, output: Vec<f32>) -> Vec<f32> {
        (**self).between(frame, layer, output)
    }

    fn finish(&mut self, frame: FrameKey, output: Vec<f32>) -> Vec<f32> {
        (**self).finish(frame, output)
    }

    fn failed_steps(&self) -> u64 {
        (**self).failed_steps()
    }
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

/// A frame waiting for a slot in the stage: key, columns, first layer's input words, queued at.
type Waiting = (FrameKey, usize, Vec<u32>, Instant);

type TaskKey = (u16, u32, u8, u8);

fn task_key(w: &ShardWork) -> TaskKey {
    (w.frame.origin, w.frame.number, w.layer, w.shard)
}

/// A worker's accepted tasks: (cols, input and then result words, end of budget).
type Tasks = BTreeMap<TaskKey, (usize, Vec<u32>, Instant)>;

/// Frees, as `work` arrives at `now`, the inputs of queued tasks the worker machine will only
/// drop: those past their budget, and those of `work`'s frame at an earlier layer (superseded:
/// the gateway went on without this worker's shard). A worker busy with a long computation
/// (its fused tiles share the cores) would otherwise hold each of them until it reached the
/// head of the queue; a 5x5 YOLOv2 worker held 8.5–10 MB of received inputs at its peak.
/// The entries stay until the machine's `Drop` names them. No entry holds an unsent result
/// here (a result is sent in the same poll that computed it), and a computing task's input
/// was already taken.
fn release_stale(tasks: &mut Tasks, now: Instant, work: &ShardWork) {
    let frame = (work.frame.origin, work.frame.number);
    for (k, (_, words, ends)) in tasks.iter_mut() {
        let superseded = (k.0, k.1) == frame && k.2 < work.layer;
        if superseded || *ends < now {
            *words = Vec::new();
        }
    }
}

/// `work` came again (the gateway re-sends a shard whose budget ran out when parity cannot
/// cover) while its first copy is here: that copy counts until `ends` now, as the worker
/// machine's does, and gets its input back if it was freed as stale and waits to compute.
/// Not an accepted task (a full queue): nothing to do, the words are dropped.
fn sent_again(
    tasks: &mut Tasks,
    work: &ShardWork,
    ends: Instant,
    words: Vec<u32>,
    computing: Option<ShardWork>,
) {
    if let Some(t) = tasks.get_mut(&task_key(work)) {
        t.2 = t.2.max(ends);
        if t.1.is_empty() && computing != Some(*work) {
            t.1 = words;
        }
    }
}

/// A task the gateway machine asked to send, held while its worker still has an earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    to: NodeId,
    work: ShardWork,
    /// The machine's budget for it, counted from `asked`.
    budget: Duration,
    asked: Instant,
}

/// Gateway, on a connected transport: a worker is sent one coded task at a time, the next
/// only once its result came (or its budget ended, or the worker went down). A worker then
/// holds one received input, not the input it computes plus the ones queued behind it (YOLOv2's
/// tail inputs are up to 1.8 MB each). A held task keeps the machine's timing: the machine
/// counts it sent when it asked, so its budget shrinks by the wait, and a late or lost result
/// is the erasure parity covers, as before; a task whose layer ended while held is not sent.
/// The cost is a round trip per task in which the worker's link carries no next input (its
/// compute thread has its tiles to do meanwhile). A datagram transport has no such pacing: a
/// lost result would hold the worker's next task until its budget ends.
#[derive(Debug, Default)]
struct Pacer {
    /// Per worker: the task it was last sent, with no result yet, and when its budget ends.
    busy: BTreeMap<NodeId, (TaskKey, Instant)>,
    /// Tasks held, in the order the machine asked for them.
    held: VecDeque<Held>,
}

impl Pacer {
    fn is_busy(&self, to: NodeId, now: Instant) -> bool {
        self.busy.get(&to).is_some_and(|&(_, until)| now < until)
    }

    /// True when a task is held for `to`.
    fn holds(&self, to: NodeId) -> bool {
        self.held.iter().any(|h| h.to == to)
    }

    /// `work` went to `to`; its budget ends at `until`.
    fn sent(&mut self, to: NodeId, work: &ShardWork, until: Instant) {
        self.busy.insert(to, (task_key(work), until));
    }

    /// `from` answered `work`: free for its next task if that was the one in its hands.
    fn answered(&mut self, from: NodeId, work: &ShardWork) {
        if self.busy.get(&from).is_some_and(|b| b.0 == task_key(work)) {
            self.busy.remove(&from);
        }
    }

    /// `peer` is gone: nothing in its hands, nothing held for it.
    fn forget(&mut self, peer: NodeId) {
        self.busy.remove(&peer);
        self.held.retain(|h| h.to != peer);
    }

    /// The first held task whose worker is free at `now`, taken out.
    fn next_due(&mut self, now: Instant) -> Option<Held> {
        let i = self.held.iter().position(|h| !self.is_busy(h.to, now))?;
        self.held.remove(i)
    }

    /// When a worker with held tasks is free at the latest (its budget ends).
    fn poll_at(&self) -> Option<Instant> {
        self.held
            .iter()
            .filter_map(|h| self.busy.get(&h.to).map(|b| b.1))
            .min()
    }
}

/// One per node for its lifetime: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Role {
    Gateway {
        machine: CodedGateway,
        frames: BTreeMap<FrameKey, GatewayFrame>,
        waiting: VecDeque<Waiting>,
        next: u32,
        pacer: Pacer,
    },
    Worker {
        machine: CodedWorker,
        /// Inputs (and then results) of accepted tasks: (cols, words, end of budget).
        tasks: Tasks,
    },
}

/// A coded message copied out of the link's receive buffer ([`CodedMessage::capture`]), so
/// the owner may hand it over once the link's poll returned.
#[derive(Debug)]
pub struct CodedMessage(Incoming);

#[derive(Debug)]
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
}

fn words_of(t: &Tensor<'_>) -> Vec<u32> {
    t.data
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Words as the wire's little-endian bytes: the words' own memory where that is their layout
/// (no copy of a shard's input or result beside the link's), a copy elsewhere.
fn bytes_of(words: &[u32]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(words))
    } else {
        Cow::Owned(words.iter().flat_map(|w| w.to_le_bytes()).collect())
    }
}

/// A coded message's tensor, shard and (a task's) budget.
fn coded_parts<'m>(msg: &Message<'m>) -> Option<(Tensor<'m>, ShardWork, Option<Duration>)> {
    let (t, frame, layer, shard, budget) = match *msg {
        Message::CodedTask {
            frame,
            layer,
            shard,
            budget_us,
            input,
        } => (
            input,
            frame,
            layer,
            shard,
            Some(Duration::from_micros(u64::from(budget_us))),
        ),
        Message::CodedResult {
            frame,
            layer,
            shard,
            output,
        } => (output, frame, layer, shard, None),
        _ => return None,
    };
    let work = ShardWork {
        frame,
        layer,
        shard,
    };
    Some((t, work, budget))
}

impl CodedMessage {
    /// The message of `work` with `words`: a task (`cols` columns) when it has a budget.
    fn new(work: ShardWork, budget: Option<Duration>, cols: usize, words: Vec<u32>) -> Self {
        CodedMessage(match budget {
            Some(budget) => Incoming::Task {
                work,
                budget,
                cols,
                words,
            },
            None => Incoming::Result { work, words },
        })
    }

    /// `r`'s message when it is a coded one, its tensor's words made in the buffer it arrived
    /// in (no copy); else `r`, untouched.
    pub fn take(r: Received) -> Result<CodedMessage, Received> {
        let Some((t, work, budget)) = coded_parts(&r.message()) else {
            return Err(r);
        };
        let cols = t.region.width() as usize * t.region.height() as usize;
        let Some(span) = r.span(&t) else {
            // A tensor of the message always lies in its buffer; copied should it not.
            return Ok(CodedMessage::new(work, budget, cols, words_of(&t)));
        };
        // Same size and alignment: the words are made in the values' own allocation.
        let words: Vec<u32> = r.into_values(span).into_iter().map(f32::to_bits).collect();
        Ok(CodedMessage::new(work, budget, cols, words))
    }

    /// A copy of `msg` when it is a coded message, else `None`.
    pub fn capture(msg: &Message<'_>) -> Option<CodedMessage> {
        let (t, work, budget) = coded_parts(msg)?;
        let cols = t.region.width() as usize * t.region.height() as usize;
        Some(CodedMessage::new(work, budget, cols, words_of(&t)))
    }
}

/// The coded stage of one node (gateway or worker), driven by an owner that holds the link.
pub struct CodedPart<X: ShardExecutor, G: Glue = super::Chain> {
    me: NodeId,
    role: Role,
    model: Arc<CodedModel>,
    exec: X,
    glue: G,
    finished: Vec<CodedFinished>,
    stats: CodedNodeStats,
    /// [`CodedConfig::copies`]: sends per task or result on a datagram transport.
    copies: u8,
}

impl<X: ShardExecutor, G: Glue> CodedPart<X, G> {
    /// Sends per coded message on transport `L`: a stream transport delivers every message
    /// it accepts, so once.
    fn copies<L: CodedTransport>(&self) -> u8 {
        if L::CONNECTED {
            1
        } else {
            self.copies.max(1)
        }
    }

    /// The coded part of node `me` (0: the gateway, with `config` and `glue` between its
    /// layers; a worker uses only `config.copies`).
    pub fn new(
        me: NodeId,
        model: Arc<CodedModel>,
        config: CodedConfig,
        exec: X,
        glue: G,
    ) -> Result<Self, CodedModelError> {
        let role = if me == GATEWAY {
            let machine =
                CodedGateway::new(model.plan().clone(), config).map_err(CodedModelError::Coded)?;
            Role::Gateway {
                machine,
                frames: BTreeMap::new(),
                waiting: VecDeque::new(),
                next: 0,
                pacer: Pacer::default(),
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
        Ok(CodedPart {
            me,
            role,
            model,
            exec,
            glue,
            finished: Vec::new(),
            stats,
            copies: config.copies,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// The model.
    pub fn model(&self) -> &Arc<CodedModel> {
        &self.model
    }

    /// The gateway machine (e.g. for its fitted link models), on the gateway.
    pub fn gateway(&self) -> Option<&CodedGateway> {
        match &self.role {
            Role::Gateway { machine, .. } => Some(machine),
            Role::Worker { .. } => None,
        }
    }

    /// Counters so far (`link` left at zero: the owner's link counts the bytes).
    pub fn stats(&self) -> CodedNodeStats {
        let mut s = self.stats;
        s.glue_failures = self.glue.failed_steps();
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

    /// Frames in the stage or waiting for it (gateway).
    pub fn in_flight(&self) -> usize {
        match &self.role {
            Role::Gateway {
                frames, waiting, ..
            } => frames.len() + waiting.len(),
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

    /// When the part next needs a poll without I/O.
    pub fn poll_at(&self) -> Option<Instant> {
        match &self.role {
            Role::Gateway { machine, pacer, .. } => earliest(machine.poll_at(), pacer.poll_at()),
            Role::Worker { machine, .. } => {
                // A computation past its budget is abandoned when the executor can stop it.
                let overdue = machine.overdue_at().filter(|_| self.exec.can_cancel());
                earliest(machine.poll_at(), overdue)
            }
        }
    }

    /// Peer `p` is connected (the gateway may send it shards again).
    pub fn on_peer_up(&mut self, p: NodeId) {
        if let Role::Gateway { machine, .. } = &mut self.role {
            machine.on_worker_up(p);
        }
    }

    /// Peer `p` is gone: its pending shards are erasures now.
    pub fn on_peer_down(&mut self, p: NodeId) {
        if let Role::Gateway { machine, pacer, .. } = &mut self.role {
            machine.on_worker_lost(p);
            pacer.forget(p);
        }
    }

    /// Checks `input` for `cols` and returns its first layer's words.
    fn first_words(&self, input: &[f32], cols: usize) -> Result<Vec<u32>, CodedSubmitError> {
        let need = self.model.in_len().saturating_mul(cols);
        if input.len() != need || cols == 0 || self.model.layer_cols(0, cols) != cols {
            return Err(CodedSubmitError::Length {
                need,
                have: input.len(),
            });
        }
        if !matches!(self.role, Role::Gateway { .. }) {
            return Err(CodedSubmitError::NotGateway);
        }
        Ok(self.model.input_words(0, input))
    }

    /// Gateway: starts a frame on `input` (`in_len × cols` values, row-major), numbered by
    /// this part (frames `(0, n)`).
    pub fn submit<L: CodedTransport>(
        &mut self,
        now: Instant,
        link: &mut L,
        input: &[f32],
        cols: usize,
    ) -> Result<FrameKey, CodedSubmitError> {
        let words = self.first_words(input, cols)?;
        let Role::Gateway { next, .. } = &mut self.role else {
            return Err(CodedSubmitError::NotGateway);
        };
        let key = FrameKey::new(GATEWAY, *next);
        self.start(now, key, cols, words, now)
            .map_err(|(e, _)| CodedSubmitError::Stage(e))?;
        if let Role::Gateway { next, .. } = &mut self.role {
            *next = next.wrapping_add(1);
        }
        self.pump(now, link);
        Ok(key)
    }

    /// Gateway: starts `frame` (a key of the caller's, e.g. the FTP frame whose fused output
    /// `input` is) as soon as the stage has room: a frame that finds
    /// `MAX_CODED_FRAMES` in flight waits (at most [`CODED_QUEUE`] do; past that, or when
    /// `input` does not fit, it leaves at once, reported by [`CodedPart::take_finished`] with
    /// nothing decoded). Its latency counts the wait.
    pub fn queue<L: CodedTransport>(
        &mut self,
        now: Instant,
        link: &mut L,
        frame: FrameKey,
        input: &[f32],
        cols: usize,
    ) -> Result<(), CodedSubmitError> {
        let words = match self.first_words(input, cols) {
            Ok(w) => w,
            Err(e) => {
                self.lose(frame);
                return Err(e);
            }
        };
        if let Role::Gateway { waiting, .. } = &mut self.role {
            if waiting.len() >= CODED_QUEUE {
                self.lose(frame);
                return Err(CodedSubmitError::Stage(CodedError::TooManyFrames));
            }
            waiting.push_back((frame, cols, words, now));
        }
        self.admit(now);
        self.pump(now, link);
        Ok(())
    }

    /// Reports `frame` as finished with nothing decoded.
    fn lose(&mut self, frame: FrameKey) {
        self.stats.failed_jobs += 1;
        let layers = self.model.len().min(u8::MAX as usize) as u8;
        self.finished.push(CodedFinished {
            frame,
            output: Vec::new(),
            quality: Quality {
                decoded: 0,
                expired: layers,
                fraction: 0.0,
            },
            latency: Duration::ZERO,
            layers: Vec::new(),
        });
    }

    /// Starts waiting frames while the stage has room.
    fn admit(&mut self, now: Instant) {
        loop {
            let Role::Gateway { waiting, .. } = &mut self.role else {
                return;
            };
            let Some((key, cols, words, queued)) = waiting.pop_front() else {
                return;
            };
            match self.start(now, key, cols, words, queued) {
                Ok(()) => {}
                Err((CodedError::TooManyFrames, words)) => {
                    if let Role::Gateway { waiting, .. } = &mut self.role {
                        waiting.push_front((key, cols, words, queued));
                    }
                    return;
                }
                // A duplicate key: the frame is already in the stage.
                Err(_) => self.stats.failed_jobs += 1,
            }
        }
    }

    /// Starts `key` in the machine; on refusal the words come back.
    fn start(
        &mut self,
        now: Instant,
        key: FrameKey,
        cols: usize,
        words: Vec<u32>,
        started: Instant,
    ) -> Result<(), (CodedError, Vec<u32>)> {
        let Role::Gateway {
            machine, frames, ..
        } = &mut self.role
        else {
            return Ok(());
        };
        if let Err(e) = machine.start_frame(now, key) {
            return Err((e, words));
        }
        frames.insert(
            key,
            GatewayFrame {
                cols,
                input: words,
                results: BTreeMap::new(),
                output: Vec::new(),
                started,
                layer_started: None,
                layers: Vec::new(),
            },
        );
        Ok(())
    }

    /// Does all pending work: a finished computation, waiting frames, due timers, actions.
    pub fn poll<L: CodedTransport>(&mut self, now: Instant, link: &mut L) {
        self.abandon_overdue(now);
        loop {
            self.admit(now);
            self.pump(now, link);
            // An inline executor finishes within `start`: hand the result on at once.
            match self.exec.poll() {
                Some(done) => self.on_done(now, done),
                None => break,
            }
        }
        self.admit(now);
        self.pump(now, link);
        self.release_held(now, link);
        // A held task that could not be sent made its worker's shards erasures.
        self.pump(now, link);
    }

    /// Gateway: sends the held tasks whose workers are free now.
    fn release_held<L: CodedTransport>(&mut self, now: Instant, link: &mut L) {
        loop {
            let Role::Gateway { pacer, .. } = &mut self.role else {
                return;
            };
            let Some(h) = pacer.next_due(now) else {
                return;
            };
            // The oldest held for its worker, which is free.
            self.send_task(now, link, h, false);
        }
    }

    /// A worker's computation past its budget is stopped (when the executor can), so the
    /// tasks behind it are not held up for a result the worker would drop anyway.
    fn abandon_overdue(&mut self, now: Instant) {
        let Role::Worker { machine, .. } = &mut self.role else {
            return;
        };
        if machine.overdue(now).is_some() && self.exec.cancel() {
            let _ = machine.abandon(now);
        }
    }

    /// Counts a protocol violation by `peer` and drops it from `link`: its shards in flight
    /// are erasures; over a connected transport it is down until it comes back up.
    pub fn refuse_peer<L: CodedTransport>(&mut self, link: &mut L, peer: NodeId) {
        self.stats.refused += 1;
        link.refuse_peer(peer);
        self.lost::<L>(peer);
    }

    /// `peer`'s shards in flight are erasures now; it stays down only over a connected
    /// transport (which will report it up again).
    fn lost<L: CodedTransport>(&mut self, peer: NodeId) {
        if let Role::Gateway { machine, pacer, .. } = &mut self.role {
            machine.on_worker_lost(peer);
            pacer.forget(peer);
            if !L::CONNECTED {
                machine.on_worker_up(peer);
            }
        }
    }

    /// Handles a coded message from `from` (a task at a worker, a result at the gateway); a
    /// message that breaks the protocol drops its peer. The actions it leads to are carried
    /// out by the next [`CodedPart::poll`] (so a poll's messages all count before a decode).
    pub fn on_message<L: CodedTransport>(
        &mut self,
        now: Instant,
        link: &mut L,
        from: NodeId,
        m: CodedMessage,
    ) {
        match (m.0, &mut self.role) {
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
                    self.refuse_peer(link, from);
                    return;
                }
                machine.supersede(now, work);
                release_stale(tasks, now, &work);
                let ends = now.saturating_add(budget);
                if machine.on_task(now, work, budget) == Verdict::Accept {
                    tasks.insert(task_key(&work), (cols, words, ends));
                } else {
                    sent_again(tasks, &work, ends, words, machine.computing());
                }
            }
            (
                Incoming::Result { work, words },
                Role::Gateway {
                    machine,
                    frames,
                    pacer,
                    ..
                },
            ) => {
                pacer.answered(from, &work);
                let Some(f) = frames.get_mut(&work.frame) else {
                    // The frame already left the stage (a straggler): the machine still logs
                    // its round trip for the delay model, then discards it.
                    let fault = machine
                        .on_result(now, from, work.frame, work.layer, work.shard)
                        .is_err_and(|e| e.peer_fault());
                    if fault {
                        self.refuse_peer(link, from);
                    }
                    return;
                };
                let need = self
                    .model
                    .result_len(work.layer as usize, work.shard as usize, f.cols);
                if need != Some(words.len()) {
                    self.refuse_peer(link, from);
                    return;
                }
                match machine.on_result(now, from, work.frame, work.layer, work.shard) {
                    Ok(Verdict::Accept) => {
                        f.results.insert(work.shard, words);
                    }
                    Ok(Verdict::Discard) => {}
                    Err(e) if e.peer_fault() => self.refuse_peer(link, from),
                    Err(_) => {}
                }
            }
            // A task at the gateway or a result at a worker.
            _ => self.refuse_peer(link, from),
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
    fn pump<L: CodedTransport>(&mut self, now: Instant, link: &mut L) {
        loop {
            match &mut self.role {
                Role::Gateway { machine, .. } => match machine.poll(now) {
                    Some(a) => self.gateway_act(now, link, a),
                    None => break,
                },
                Role::Worker { machine, .. } => match machine.poll(now) {
                    Some(a) => self.worker_act(now, link, a),
                    None => break,
                },
            }
        }
    }

    fn gateway_act<L: CodedTransport>(&mut self, now: Instant, link: &mut L, action: CodedAction) {
        let Role::Gateway { frames, .. } = &mut self.role else {
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
                let work = ShardWork {
                    frame,
                    layer,
                    shard,
                };
                let held = Held {
                    to,
                    work,
                    budget,
                    asked: now,
                };
                self.send_task(now, link, held, true);
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

    /// Sends task `t` (as the machine asked at `t.asked`; `fresh`: just asked, not taken from
    /// the held ones) now, or holds it while its worker has an earlier one (see [`Pacer`]); drops it if its layer ended or its budget ran out while
    /// held (the machine counts it as an erasure then).
    fn send_task<L: CodedTransport>(&mut self, now: Instant, link: &mut L, t: Held, fresh: bool) {
        let copies = self.copies::<L>();
        let Role::Gateway { frames, pacer, .. } = &mut self.role else {
            return;
        };
        // Behind the tasks already held for the worker: in the order the machine asked, as
        // the worker's own queue took them (a frame's next layer, asked as the worker answers,
        // must not pass an earlier frame's task held meanwhile, whose budget runs).
        if L::CONNECTED && (pacer.is_busy(t.to, now) || (fresh && pacer.holds(t.to))) {
            pacer.held.push_back(t);
            return;
        }
        let Held {
            to,
            work,
            budget,
            asked,
        } = t;
        let ShardWork {
            frame,
            layer,
            shard,
        } = work;
        // The frame's layer `layer` still open: its input is the frame's current one.
        let Some(f) = frames
            .get_mut(&frame)
            .filter(|f| f.layers.len() == layer as usize)
        else {
            return;
        };
        let waited = now.saturating_duration_since(asked).total_micros();
        let budget = Duration::from_micros(budget.total_micros().saturating_sub(waited));
        if budget.is_zero() {
            return;
        }
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
        let sent = link.send_coded(now, to, &msg, Some(budget));
        if sent.is_ok() {
            for _ in 1..copies {
                let _ = link.send_coded(now, to, &msg, Some(budget));
            }
            if L::CONNECTED {
                pacer.sent(to, &work, now.saturating_add(budget));
            }
        }
        if let Err(e) = sent {
            // Not connected (or its backlog is full): an erasure now rather than at
            // the timeout.
            debug!(
                "coded: frame {} layer {} shard {}: an erasure: {}",
                frame, layer, shard, e
            );
            self.lost::<L>(to);
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
            Err(e) => {
                // Cannot happen for results the machine accepted with checked lengths.
                self.stats.failed_jobs += 1;
                warn!("coded: frame {} layer {}: zero-filled: {}", frame, l, e);
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
                warn!(
                    "coded: frame {} layer {}: glue made {} values, the next layer takes {}",
                    frame,
                    l,
                    next.len(),
                    need
                );
            }
            f.input = self.model.input_words(l + 1, &next);
        } else {
            f.input = Vec::new();
            f.output = self.glue.finish(frame, out);
        }
    }

    fn worker_act<L: CodedTransport>(&mut self, now: Instant, link: &mut L, action: WorkerAction) {
        let copies = self.copies::<L>();
        let Role::Worker { tasks, .. } = &mut self.role else {
            return;
        };
        match action {
            WorkerAction::Compute(work) => {
                let Some((cols, input, _)) = tasks.get_mut(&task_key(&work)) else {
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
                let Some((cols, out, ends)) = tasks.remove(&task_key(&work)) else {
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
                // A refused send is a lost result: the gateway's budget turns it into an
                // erasure. It is worth nothing after the task's budget.
                let lifetime = ends.saturating_duration_since(now);
                for _ in 0..copies {
                    let _ = link.send_coded(now, GATEWAY, &msg, Some(lifetime));
                }
            }
            WorkerAction::Drop(work) => {
                tasks.remove(&task_key(&work));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coded::{Activation, Chain, InlineShards, LayerScheme, LinearLayer, Numeric};
    use tessera_core::runtime::coded::Protection;

    #[test]
    fn a_task_sent_again_keeps_the_later_budget_and_an_input_to_compute() {
        let at = |ms: u64| Instant::from_micros(ms * 1000);
        let (queued, running, unknown) = (work(1, 0), work(2, 0), work(3, 0));
        let mut tasks = Tasks::new();
        tasks.insert(task_key(&queued), (1, Vec::new(), at(10))); // freed as stale
        tasks.insert(task_key(&running), (1, Vec::new(), at(10))); // input taken to compute
        sent_again(
            &mut tasks,
            &queued,
            at(30),
            alloc::vec![4, 5],
            Some(running),
        );
        sent_again(
            &mut tasks,
            &running,
            at(30),
            alloc::vec![4, 5],
            Some(running),
        );
        sent_again(
            &mut tasks,
            &unknown,
            at(30),
            alloc::vec![4, 5],
            Some(running),
        );
        assert_eq!(tasks[&task_key(&queued)], (1, alloc::vec![4, 5], at(30)));
        assert_eq!(tasks[&task_key(&running)], (1, Vec::new(), at(30)));
        assert_eq!(tasks.len(), 2, "a task the machine refused is not stored");
        // A shorter budget never cuts the one in hand.
        sent_again(&mut tasks, &queued, at(20), alloc::vec![6], None);
        assert_eq!(tasks[&task_key(&queued)], (1, alloc::vec![4, 5], at(30)));
    }

    fn work(frame: u32, layer: u8) -> ShardWork {
        ShardWork {
            frame: FrameKey::new(1, frame),
            layer,
            shard: 0,
        }
    }

    /// A new task frees the inputs of its frame's earlier layers and of tasks past their
    /// budget, and keeps every other input and every entry.
    #[test]
    fn a_task_frees_the_inputs_the_worker_will_only_drop() {
        let at = |ms: u64| Instant::from_micros(ms * 1000);
        let mut tasks = Tasks::new();
        let entries = [
            (work(7, 0), at(50)), // superseded by layer 2 of frame 7
            (work(7, 1), at(50)), // superseded too
            (work(8, 0), at(50)), // another frame, within budget: kept
            (work(9, 3), at(5)),  // past its budget: freed
            (work(7, 2), at(50)), // the same layer's other task: kept
        ];
        for (w, ends) in entries {
            tasks.insert(task_key(&w), (1, alloc::vec![1, 2, 3], ends));
        }
        release_stale(&mut tasks, at(10), &work(7, 2));
        let held: Vec<bool> = entries
            .iter()
            .map(|(w, _)| !tasks[&task_key(w)].1.is_empty())
            .collect();
        assert_eq!(held, [false, false, true, false, true]);
        assert_eq!(
            tasks.len(),
            entries.len(),
            "entries stay for the machine's Drop"
        );
    }

    /// A connected transport that records the tasks sent: (to, work, budget).
    #[derive(Default)]
    struct Recorder(Vec<(NodeId, ShardWork, Duration)>);

    impl CodedTransport for Recorder {
        type Error = &'static str;

        fn send_coded(
            &mut self,
            _: Instant,
            to: NodeId,
            msg: &Message<'_>,
            _: Option<Duration>,
        ) -> Result<(), &'static str> {
            if let Message::CodedTask {
                frame,
                layer,
                shard,
                budget_us,
                ..
            } = *msg
            {
                let work = ShardWork {
                    frame,
                    layer,
                    shard,
                };
                self.0
                    .push((to, work, Duration::from_micros(budget_us.into())));
            }
            Ok(())
        }

        const CONNECTED: bool = true;

        fn refuse_peer(&mut self, _: NodeId) {}
    }

    impl Recorder {
        /// The workers sent a task since the last call, with the tasks' frame numbers and
        /// budgets.
        fn take(&mut self) -> Vec<(NodeId, u32, u64)> {
            let mut v: Vec<_> = self
                .0
                .drain(..)
                .map(|(to, w, b)| (to, w.frame.number, b.total_millis()))
                .collect();
            v.sort();
            v
        }
    }

    /// A gateway of one linear layer over workers 1-3 (2 data shards and a parity shard), each
    /// frame given `deadline_ms` (the layer's budget).
    fn gateway(deadline_ms: u64) -> CodedPart<InlineShards> {
        let layer = LinearLayer {
            in_len: 4,
            rows: 4,
            weights: (0..16).map(|i| i as f32 / 16.0).collect(),
            bias: alloc::vec![0.0; 4],
            activation: Activation::Linear,
            numeric: Numeric::Float,
        };
        let scheme = LayerScheme {
            k: 2,
            r: 1,
            protection: Protection::Coded,
        };
        let model = Arc::new(CodedModel::new(alloc::vec![layer], &[scheme], &[1, 2, 3]).unwrap());
        let config = CodedConfig::new(Duration::from_millis(deadline_ms));
        CodedPart::new(GATEWAY, model, config, InlineShards::default(), Chain).unwrap()
    }

    /// Worker `from`'s result of shard `from − 1` of frame `number` (2 rows, 1 column).
    fn result(from: NodeId, number: u32) -> CodedMessage {
        let bytes = [0u8; 8];
        let msg = Message::CodedResult {
            frame: FrameKey::new(GATEWAY, number),
            layer: 0,
            shard: (from - 1) as u8,
            output: Tensor::new(Region::full(1, 1), 2, &bytes).unwrap(),
        };
        CodedMessage::capture(&msg).unwrap()
    }

    /// On a connected transport a worker has one task at a time: the next goes once its result
    /// came, or once its budget ended (with what is left of the machine's budget); a task whose
    /// layer ended while held is never sent.
    #[test]
    fn the_gateway_sends_a_worker_its_next_task_once_it_answered() {
        let at = |ms: u64| Instant::from_millis(ms);
        let mut gw = gateway(1000);
        let mut link = Recorder::default();
        let input = [1.0f32, 2.0, 3.0, 4.0];
        gw.submit(at(0), &mut link, &input, 1).unwrap();
        assert_eq!(link.take(), [(1, 0, 1000), (2, 0, 1000), (3, 0, 1000)]);
        // Frame 1 comes while every worker has frame 0's task: held.
        gw.submit(at(400), &mut link, &input, 1).unwrap();
        assert_eq!(link.take(), []);
        assert_eq!(gw.poll_at(), Some(at(1000)), "the first budget to end");
        // Worker 1 answers frame 0: it gets frame 1's task, 100 ms of its budget gone.
        gw.on_message(at(500), &mut link, 1, result(1, 0));
        gw.poll(at(500), &mut link);
        assert_eq!(link.take(), [(1, 1, 900)]);
        // Worker 2 answers: frame 0 decodes (2 of 3), worker 2 gets frame 1's task.
        gw.on_message(at(600), &mut link, 2, result(2, 0));
        gw.poll(at(600), &mut link);
        assert_eq!(link.take(), [(2, 1, 800)]);
        assert_eq!(gw.take_finished().len(), 1);
        // Worker 3 never answers: its budget for frame 0 ends at 1000 ms, and then it gets
        // frame 1's task with what is left of it (400 ms).
        gw.poll(at(999), &mut link);
        assert_eq!(link.take(), []);
        gw.poll(at(1000), &mut link);
        assert_eq!(link.take(), [(3, 1, 400)]);
        // Frame 2 is held for every worker (each has frame 1's task). Worker 1 answers frame 1
        // and, before the next poll, frame 3 asks for it: frame 3's task waits behind frame
        // 2's, held since before, whose budget runs.
        gw.submit(at(1010), &mut link, &input, 1).unwrap();
        assert_eq!(link.take(), []);
        gw.on_message(at(1020), &mut link, 1, result(1, 1));
        gw.submit(at(1030), &mut link, &input, 1).unwrap();
        assert_eq!(link.take(), [], "frame 3 does not pass frame 2");
        gw.poll(at(1040), &mut link);
        assert_eq!(link.take(), [(1, 2, 970)], "the older task first");

        // A held task whose layer ended meanwhile is not sent.
        let mut gw = gateway(1000);
        gw.submit(at(0), &mut link, &input, 1).unwrap();
        gw.submit(at(10), &mut link, &input, 1).unwrap();
        assert_eq!(link.take().len(), 3);
        gw.on_message(at(20), &mut link, 1, result(1, 0));
        gw.on_message(at(20), &mut link, 2, result(2, 0));
        gw.poll(at(20), &mut link);
        assert_eq!(link.take(), [(1, 1, 990), (2, 1, 990)]);
        gw.on_message(at(30), &mut link, 1, result(1, 1));
        gw.on_message(at(30), &mut link, 2, result(2, 1));
        gw.poll(at(30), &mut link);
        assert_eq!(gw.take_finished().len(), 2, "both frames decoded");
        gw.poll(at(1000), &mut link);
        assert_eq!(link.take(), [], "frame 1 no longer needs worker 3");
        // A worker that went down has nothing in its hands and nothing held for it.
        gw.submit(at(1100), &mut link, &input, 1).unwrap();
        assert_eq!(link.take().len(), 3);
        gw.submit(at(1110), &mut link, &input, 1).unwrap();
        gw.on_peer_down(3);
        gw.poll(at(1120), &mut link);
        assert_eq!(link.take(), [], "frame 3's task for worker 3 is dropped");
        gw.on_peer_up(3);
        gw.submit(at(1130), &mut link, &input, 1).unwrap();
        assert_eq!(
            link.take(),
            [(3, 4, 1000)],
            "worker 3 is free on its return"
        );
    }
}
