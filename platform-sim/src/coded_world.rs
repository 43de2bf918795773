//! The coded (CDC) stage run through the real runtime in the simulator: a gateway (node 0)
//! and workers `1..=n`, each a `backends::coded::CodedNode` (the driver platform-pi would
//! run) over its own smoltcp interface on the simulated [`Medium`], in virtual time.
//!
//! It runs on the event loop `world.rs` runs on (`sim_core`): the clock jumps to the earliest
//! of the next packet arrival, every node's wake-up (`CodedNode::poll_at`, the interface's
//! `poll_at`, the end of a running shard job), the next scripted fault and here also the next
//! periodic submission; nodes due at the same instant step in id order; every random draw
//! comes from a generator seeded from the run's seed, with a distinct stream per node and per
//! link. Same seed, same outcome (the trace hash covers every packet, job and finished frame).
//!
//! # Shard compute time ([`SimShards`])
//!
//! A worker computes the real result of its shard (`CodedModel::compute_shard`, so decoding
//! and the int8 bit-exactness are checked end to end) and delivers it after
//!
//! `time = shard FLOPs / rate × A × slowdown`
//!
//! * `rate`: [`CodedSimConfig::gflops`] (the worker's own FLOPs: parity and replica shards
//!   cost the same as a data shard of the layer).
//! * `A` ([`Arrival`]): with [`Arrival::Pi3Wifi`] a fresh draw per job of
//!   `D / D_min`, `D ~ cdc::pi3_wifi_reply_model()` (`50 ms + Gamma(κ, θ)`, 34 % within
//!   100 ms, 42 % within 150 ms, the CDC paper's 4-Pi WiFi reply times; `D_min` = its 50 ms
//!   location). So the whole per-reply variability the paper measured (OS scheduling, WiFi
//!   retries, thermal throttling: everything beyond the pure compute) is charged to the job's
//!   duration, scaled to the shard's compute time: a job never finishes earlier than its
//!   FLOPs allow, most finish more than 2× later, and the tail is long. The simulated medium
//!   adds its own serialisation, contention and latency on top (both ways). With
//!   [`Arrival::Fixed`], `A = 1`.
//! * `slowdown`: 1, or a [`Fault::Straggler`]'s factor from its time on.
//!
//! Calibrating `rate` so that one shard computes in 50 ms makes `A × base` exactly the
//! paper's reply-time model; the experiments say which rate they use.
//!
//! A job past its task's budget is stopped ([`CodedSimConfig::stop_late_jobs`]): the worker
//! would drop its result anyway. Before issue 15 it ran to its end, and since the reply-time
//! tail is charged to the job (a draw of several seconds is not rare), one straggling shard
//! held that worker's next tasks — the next layer of the same frame and the frames after it —
//! which is why most uncoded frames missed their deadline even without loss.
//!
//! # Faults
//!
//! The [`Fault`]s of `world.rs`, times counted from the moment every worker is connected
//! (frames start then): [`Fault::Crash`] (the node stops: no steps, every packet to or from it
//! lost, its running job never finishes), [`Fault::Straggler`], [`Fault::Loss`] (a loss rate on
//! every link or one link, for a time window; [`CodedSimConfig::loss`] is the same over the
//! whole run) and [`Fault::LinkDown`]. Packet loss acts on TCP segments: the link's TCP
//! retransmits, so loss turns into delay, and delay past a budget into an erasure.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use tessera_backends::coded::{
    CodedDgramNode, CodedFinished, CodedModel, CodedNode, CodedNodeStats, CodedSubmitError,
    LayerRecord, ShardDone, ShardExecutor, ShardJob,
};
use tessera_backends::dgram::DgramConfig;
use tessera_backends::nal_smoltcp::{SmolNet, SmolStack};
use tessera_core::deadline::LinkDelay;
use tessera_core::runtime::coded::{CodedConfig, CodedGateway, CodedStats, Quality};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::datagram::DEFAULT_DATAGRAM_LEN;
use tessera_core::wire::{FrameKey, Key, NodeId, GATEWAY};

use crate::device::SimDevice;
use crate::fault::{link_faults, Fault};
use crate::interfaces::{interfaces, link_config, SocketMemory};
use crate::job_clock::{JobClock, PendingJob};
use crate::medium::{LinkFault, Medium, NetModel};
use tessera_core::deadline::gamma;

use crate::rng::{derive, SplitMix64};
use crate::sim_core::{impl_sim_node, Core, SimNode, TracedJob, Workload};

/// The TCP port every node listens on.
pub const PORT: u16 = 7100;

/// How the coded stage's tasks and results travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The authenticated TCP link (`CodedNode`): a lost segment delays every message behind
    /// it by a retransmission timeout (smoltcp: at least 1 s, doubling).
    Tcp,
    /// Authenticated datagrams (`CodedDgramNode`): a lost fragment loses its message at once
    /// (an erasure), never retransmitted.
    Datagram,
}

/// The per-job factor on a shard's compute time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// Every job takes exactly FLOPs / rate.
    Fixed,
    /// `D / loc` with `D` drawn from the given reply-time model (use
    /// `cdc::pi3_wifi_reply_model()`; see the module docs).
    Pi3Wifi(LinkDelay),
}

/// Everything a coded run needs.
#[derive(Clone, Debug)]
pub struct CodedSimConfig {
    /// The layers, their codes and the workers of every shard (ids `1..=workers`).
    pub model: Arc<CodedModel>,
    /// Workers (node ids `1..=workers`, at most `runtime::MAX_EDGES`).
    pub workers: u16,
    /// The stage's frame deadline and timeout allocator.
    pub coded: CodedConfig,
    /// The network.
    pub net: NetModel,
    /// Packet loss rate on every link once the cluster is connected (0: none).
    pub loss: f64,
    /// Worker compute rate, GFLOP/s.
    pub gflops: f64,
    /// Per-job compute-time factor.
    pub arrival: Arrival,
    /// Frames submitted.
    pub frames: usize,
    /// `None`: the next frame enters when the previous one left the stage; `Some(p)`: one
    /// frame every `p` (at most `MAX_CODED_FRAMES` in flight; a refused frame waits).
    pub period: Option<Duration>,
    /// Frame inputs (`in_len × cols` each); frame `i` takes `inputs[i % len]`.
    pub inputs: Arc<Vec<Vec<f32>>>,
    /// Columns of every input.
    pub cols: usize,
    /// Compare every complete frame's output with `CodedModel::reference` bit for bit.
    pub check: bool,
    /// Seed of every random draw.
    pub seed: u64,
    /// Scripted faults (times from the moment the cluster is connected).
    pub faults: Vec<Fault>,
    /// Authenticated links.
    pub secure: bool,
    /// A peer silent this long is dropped by the link.
    pub peer_dead: Duration,
    /// Stop after this much virtual time.
    pub limit: Duration,
    /// TCP receive and transmit buffer per socket, bytes.
    pub socket_buffer: usize,
    /// How shards and results travel: the authenticated TCP link or authenticated datagrams.
    pub transport: Transport,
    /// Workers stop a shard job at its budget (its result would be dropped anyway) instead of
    /// finishing it while the tasks behind it wait (`false`: the behaviour before issue 15).
    pub stop_late_jobs: bool,
}

impl CodedSimConfig {
    /// `model` on `workers` workers, Pi 3 WiFi preset, `frames` frames of `inputs`
    /// back to back, frame deadline `deadline`, uniform allocator, no faults, seed 1.
    pub fn new(
        model: Arc<CodedModel>,
        workers: u16,
        inputs: Vec<Vec<f32>>,
        frames: usize,
        deadline: Duration,
    ) -> CodedSimConfig {
        CodedSimConfig {
            model,
            workers,
            coded: CodedConfig::new(deadline),
            net: NetModel::wifi(),
            loss: 0.0,
            gflops: crate::compute::PI3_GFLOPS,
            arrival: Arrival::Fixed,
            frames,
            period: None,
            inputs: Arc::new(inputs),
            cols: 1,
            check: false,
            seed: 1,
            faults: Vec::new(),
            secure: true,
            peer_dead: Duration::from_secs(3),
            limit: Duration::from_secs(24 * 3600),
            socket_buffer: 32 * 1024,
            stop_late_jobs: true,
            transport: Transport::Tcp,
        }
    }
}

/// One frame that left the coded stage.
#[derive(Clone, Debug)]
pub struct CodedFrame {
    /// Submission index.
    pub index: usize,
    /// Submitted, µs of virtual time.
    pub submitted: u64,
    /// Left the stage, µs.
    pub finished: u64,
    /// What the gateway reported.
    pub quality: Quality,
    /// Per layer.
    pub layers: Vec<LayerRecord>,
    /// The last layer's output.
    pub output: Vec<f32>,
    /// With [`CodedSimConfig::check`] and a complete frame: equal to the reference bit for bit.
    pub exact: Option<bool>,
    /// With [`CodedSimConfig::check`]: largest absolute difference from the reference.
    pub max_abs_err: Option<f32>,
}

impl CodedFrame {
    /// Latency, ms.
    pub fn latency_ms(&self) -> f64 {
        (self.finished - self.submitted) as f64 / 1e3
    }
}

/// One shard job as it ran on a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardRecord {
    /// Worker id.
    pub node: NodeId,
    /// Frame number, layer, shard.
    pub work: (u32, u8, u8),
    /// Start, µs.
    pub start: u64,
    /// End, µs.
    pub end: u64,
    /// FLOPs charged.
    pub flops: u64,
}

/// What a coded run produced.
#[derive(Clone, Debug, Default)]
pub struct CodedOutcome {
    /// Frames in the order they left the stage.
    pub frames: Vec<CodedFrame>,
    /// Frames submitted.
    pub submitted: usize,
    /// FNV-1a hash of the event trace.
    pub trace_hash: u64,
    /// Trace events.
    pub events: u64,
    /// Virtual time at the end, µs.
    pub virtual_us: u64,
    /// Node steps taken.
    pub steps: u64,
    /// When every worker was connected (frames start then), µs.
    pub ready_at: u64,
    /// The gateway's stage counters.
    pub gateway: CodedStats,
    /// Per node (id order).
    pub nodes: Vec<(NodeId, CodedNodeStats)>,
    /// IP bytes, packets and lost packets on the medium.
    pub medium: (u64, u64, u64),
    /// Every shard job started.
    pub jobs: Vec<ShardRecord>,
    /// Delay models the gateway fitted at the end: (worker, layer, model).
    pub fitted: Vec<(NodeId, usize, LinkDelay)>,
}

impl CodedOutcome {
    /// Frames every layer of which was decoded in full.
    pub fn complete(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| f.quality.is_complete())
            .count()
    }
}

/// State shared between a worker's [`SimShards`] and the world.
pub type ShardShared = JobClock<ShardRecord>;

/// A worker's [`ShardExecutor`] in virtual time (see the module docs for the duration).
pub struct SimShards {
    shared: Rc<RefCell<ShardShared>>,
    node: NodeId,
    flops_per_us: f64,
    arrival: Arrival,
    rng: SplitMix64,
    pending: PendingJob<ShardDone>,
    stop_late: bool,
}

impl SimShards {
    /// The executor of worker `node` at `gflops`, drawing its factors from `seed`.
    pub fn new(
        shared: Rc<RefCell<ShardShared>>,
        node: NodeId,
        gflops: f64,
        arrival: Arrival,
        seed: u64,
    ) -> SimShards {
        SimShards {
            shared,
            node,
            flops_per_us: gflops * 1e3,
            arrival,
            rng: derive(seed, 0xc0de_0000 + u64::from(node)),
            pending: PendingJob::default(),
            stop_late: true,
        }
    }
}

impl ShardExecutor for SimShards {
    fn start(&mut self, model: &Arc<CodedModel>, job: ShardJob) {
        let flops = model.shard_flops(job.work.layer as usize, job.work.shard as usize, job.cols);
        let factor = match self.arrival {
            Arrival::Fixed => 1.0,
            Arrival::Pi3Wifi(m) => {
                let d = m.loc + gamma::sample(m.shape, m.scale, &mut self.rng);
                if m.loc > 0.0 {
                    d / m.loc
                } else {
                    1.0
                }
            }
        };
        let mut sh = self.shared.borrow_mut();
        let (start, end) = sh.begin(flops as f64 / self.flops_per_us * factor);
        sh.jobs.push(ShardRecord {
            node: self.node,
            work: (job.work.frame.number, job.work.layer, job.work.shard),
            start: start.total_micros(),
            end: end.total_micros(),
            flops,
        });
        let output = model.compute_shard(job.work, job.cols, &job.input);
        self.pending.hold(
            end,
            ShardDone {
                work: job.work,
                output,
            },
        );
    }

    fn poll(&mut self) -> Option<ShardDone> {
        self.pending.take_due(&self.shared)
    }

    /// A simulated job stops at once (unless [`CodedSimConfig::stop_late_jobs`] is off).
    fn can_cancel(&self) -> bool {
        self.stop_late
    }

    fn cancel(&mut self) -> bool {
        if !self.stop_late || !self.pending.cancel(&self.shared) {
            return false;
        }
        let mut sh = self.shared.borrow_mut();
        let now = sh.now.total_micros();
        if let Some(j) = sh.jobs.last_mut() {
            j.end = j.end.min(now);
        }
        true
    }
}

fn address(id: NodeId) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, (id >> 8) as u8, id as u8 + 1)
}

type SimCoded<'n, 'a> = CodedNode<SmolStack<'n, 'a, SimDevice>, SimShards>;

impl_sim_node!(SimCoded<'_, '_>, CodedFinished, ShardRecord);

type SimDgram<'n, 'a> = CodedDgramNode<SmolStack<'n, 'a, SimDevice>, SimShards>;

/// A datagram node has no connections: every peer it was given counts as up.
struct DgramSim<'n, 'a> {
    node: SimDgram<'n, 'a>,
    peers: usize,
}

impl SimNode for DgramSim<'_, '_> {
    type Finished = CodedFinished;
    type Job = ShardRecord;
    fn poll(&mut self, now: Instant) {
        self.node.poll(now)
    }
    fn poll_at(&self) -> Option<Instant> {
        self.node.poll_at()
    }
    fn take_finished(&mut self) -> Vec<CodedFinished> {
        self.node.take_finished()
    }
    fn peers_up(&self) -> usize {
        self.peers
    }
}

/// What the coded workload needs of a node, whatever its transport.
trait StageNode: SimNode<Finished = CodedFinished, Job = ShardRecord> {
    fn submit_frame(
        &mut self,
        now: Instant,
        input: &[f32],
        cols: usize,
    ) -> Result<FrameKey, CodedSubmitError>;
    fn frames_in_flight(&self) -> usize;
    fn gateway_machine(&self) -> Option<&CodedGateway>;
    fn node_stats(&self) -> CodedNodeStats;
    fn node_id(&self) -> NodeId;
}

/// `StageNode` by the node's inherent methods (`CodedNode` and `CodedDgramNode` share them; a
/// `DgramSim` reaches its node's by `Deref`).
macro_rules! impl_stage_node {
    ($node:ty) => {
        impl StageNode for $node {
            fn submit_frame(
                &mut self,
                now: Instant,
                input: &[f32],
                cols: usize,
            ) -> Result<FrameKey, CodedSubmitError> {
                self.submit(now, input, cols)
            }
            fn frames_in_flight(&self) -> usize {
                self.in_flight()
            }
            fn gateway_machine(&self) -> Option<&CodedGateway> {
                self.gateway()
            }
            fn node_stats(&self) -> CodedNodeStats {
                self.stats()
            }
            fn node_id(&self) -> NodeId {
                self.id()
            }
        }
    };
}

impl<'n, 'a> std::ops::Deref for DgramSim<'n, 'a> {
    type Target = SimDgram<'n, 'a>;
    fn deref(&self) -> &Self::Target {
        &self.node
    }
}

impl std::ops::DerefMut for DgramSim<'_, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.node
    }
}

impl_stage_node!(SimCoded<'_, '_>);
impl_stage_node!(DgramSim<'_, '_>);

impl TracedJob for ShardRecord {
    fn work_words(&self) -> [u64; 3] {
        let (frame, layer, shard) = self.work;
        [frame as u64, layer as u64, shard as u64]
    }
    fn end(&self) -> u64 {
        self.end
    }
}

/// The coded stage's workload: the gateway submits frames (back to back or periodically)
/// and reports them when they leave the stage.
struct Stage<'c> {
    cfg: &'c CodedSimConfig,
    submitted: usize,
    /// When the gateway next tries to submit, µs (`u64::MAX`: when a frame leaves).
    next_submit: u64,
    /// Frame number → (submission index, submitted at).
    pending: BTreeMap<u32, (usize, u64)>,
    frames: Vec<CodedFrame>,
    /// Reference outputs by input index, computed once.
    references: BTreeMap<usize, Vec<f32>>,
}

/// Runs `cfg` until every frame left the stage (or the gateway crashed, or the time limit).
pub fn run(cfg: &CodedSimConfig) -> CodedOutcome {
    let n = cfg.workers as usize + 1;
    let addresses: Vec<Ipv4Addr> = (0..n).map(|i| address(i as NodeId)).collect();
    // The gateway talks to every worker; a worker only to the gateway.
    let peers = |id: NodeId| -> Vec<(NodeId, SocketAddr)> {
        if id == GATEWAY {
            (1..n as NodeId)
                .map(|p| (p, SocketAddr::from((address(p), PORT))))
                .collect()
        } else {
            vec![(GATEWAY, SocketAddr::from((address(GATEWAY), PORT)))]
        }
    };
    let executor = |id: NodeId| {
        let sh = Rc::new(RefCell::new(ShardShared::default()));
        let mut exec = SimShards::new(sh.clone(), id, cfg.gflops, cfg.arrival, cfg.seed);
        exec.stop_late = cfg.stop_late_jobs;
        (sh, exec)
    };
    match cfg.transport {
        Transport::Tcp => {
            let mut memory = SocketMemory::new(n, n + 3, cfg.socket_buffer);
            let nets = interfaces(&mut memory, &addresses, cfg.net.mtu, cfg.seed);
            let mut nodes = Vec::with_capacity(n);
            let mut shared = Vec::with_capacity(n);
            for (i, net) in nets.iter().enumerate() {
                let id = i as NodeId;
                let link = link_config(id, PORT, peers(id), cfg.secure, [9; 32], cfg.peer_dead);
                let (sh, exec) = executor(id);
                let node = CodedNode::new(
                    SmolStack::new(net),
                    link,
                    cfg.model.clone(),
                    cfg.coded,
                    exec,
                )
                .expect("coded node starts");
                nodes.push(node);
                shared.push(sh);
            }
            run_nodes(cfg, &addresses, &nets, nodes, shared)
        }
        Transport::Datagram => {
            // Room for a layer's tasks (or results) in flight at once, fragments included.
            let mut memory = SocketMemory::with_udp(n, 0, 0, 256, 256 * 1024);
            let nets = interfaces(&mut memory, &addresses, cfg.net.mtu, cfg.seed);
            let mut nodes = Vec::with_capacity(n);
            let mut shared = Vec::with_capacity(n);
            for (i, net) in nets.iter().enumerate() {
                let id = i as NodeId;
                let p = peers(id);
                let mut d = DgramConfig::new(id, PORT, p.clone(), Key::new([9; 32]));
                d.max_datagram = cfg.net.mtu.saturating_sub(28).min(DEFAULT_DATAGRAM_LEN);
                d.max_message = 1 << 20;
                // A task's budget is its message lifetime; nothing waits past the frame.
                d.max_lifetime = cfg.coded.frame_deadline;
                d.lifetime = cfg.coded.frame_deadline;
                d.backlog = 1 << 20;
                let (sh, exec) = executor(id);
                let node =
                    CodedDgramNode::new(SmolStack::new(net), d, cfg.model.clone(), cfg.coded, exec)
                        .expect("coded datagram node starts");
                nodes.push(DgramSim {
                    node,
                    peers: p.len(),
                });
                shared.push(sh);
            }
            run_nodes(cfg, &addresses, &nets, nodes, shared)
        }
    }
}

/// The shared loop over `nodes` (either transport), and what it produced.
fn run_nodes<N: StageNode>(
    cfg: &CodedSimConfig,
    addresses: &[Ipv4Addr],
    nets: &[RefCell<SmolNet<'_, SimDevice>>],
    nodes: Vec<N>,
    shared: Vec<Rc<RefCell<ShardShared>>>,
) -> CodedOutcome {
    let n = nodes.len();
    let mut faults = link_faults(&cfg.faults);
    if cfg.loss > 0.0 {
        faults.push(LinkFault {
            from_us: 0,
            until_us: u64::MAX,
            link: None,
            loss: cfg.loss,
        });
    }
    let medium = Medium::new(cfg.net.clone(), n, cfg.seed ^ 0xc0de_d000, faults);
    let limit = cfg.limit.total_micros();
    let mut core = Core::new(
        addresses,
        nets,
        nodes,
        shared,
        vec![medium],
        &cfg.faults,
        limit,
    );
    let mut w = Stage {
        cfg,
        submitted: 0,
        next_submit: u64::MAX,
        pending: BTreeMap::new(),
        frames: Vec::new(),
        references: BTreeMap::new(),
    };
    core.run(&mut w);
    let g = &core.nodes[GATEWAY as usize];
    let mut fitted = Vec::new();
    if let Some(m) = g.gateway_machine() {
        for worker in 1..n as NodeId {
            for l in 0..cfg.model.len() {
                if let Some(d) = m.link_model(worker, l) {
                    fitted.push((worker, l, d));
                }
            }
        }
    }
    let m = &core.media[0];
    CodedOutcome {
        submitted: w.submitted,
        frames: w.frames,
        trace_hash: core.hash.0,
        events: core.events,
        virtual_us: core.now,
        steps: core.steps,
        ready_at: core.ready_at,
        gateway: g.node_stats().gateway.unwrap_or_default(),
        nodes: core
            .nodes
            .iter()
            .map(|n| (n.node_id(), n.node_stats()))
            .collect(),
        medium: (m.bytes, m.packets, m.lost),
        jobs: core.jobs(),
        fitted,
    }
}

impl<N: StageNode> Workload<N> for Stage<'_> {
    /// A wake-up in the past is the link's dial time of a peer whose connection is still
    /// being set up (SYN retransmission under loss): re-checked every 200 µs, not every µs.
    const PAST_WAKE_US: u64 = 200;

    /// The gateway has a link to every worker, every worker to the gateway.
    fn connected(&self, core: &Core<'_, '_, N>) -> bool {
        let workers = core.nodes.len() - 1;
        core.nodes[GATEWAY as usize].peers_up() == workers
            && core.nodes.iter().skip(1).all(|n| n.peers_up() == 1)
    }

    fn on_ready(&mut self, core: &mut Core<'_, '_, N>) {
        self.next_submit = core.now;
    }

    /// Every frame left the stage, or the gateway crashed.
    fn done(&self, core: &Core<'_, '_, N>) -> bool {
        (self.submitted >= self.cfg.frames && self.pending.is_empty())
            || !core.alive[GATEWAY as usize]
    }

    fn next_event(&self) -> u64 {
        self.next_submit
    }

    /// A submission is due: the gateway steps now.
    fn at(&mut self, core: &mut Core<'_, '_, N>, t: u64) {
        if t >= self.next_submit {
            core.wake[GATEWAY as usize] = t;
        }
    }

    /// The gateway submits every frame that is due and that it accepts.
    fn polled(&mut self, core: &mut Core<'_, '_, N>, i: usize) {
        if i != GATEWAY as usize {
            return;
        }
        while self.submitted < self.cfg.frames && core.now >= self.next_submit {
            if self.cfg.period.is_none() && core.nodes[i].frames_in_flight() > 0 {
                self.next_submit = u64::MAX;
                break;
            }
            let idx = self.submitted;
            let input = &self.cfg.inputs[idx % self.cfg.inputs.len()];
            match core.nodes[i].submit_frame(Instant::from_micros(core.now), input, self.cfg.cols) {
                Ok(key) => {
                    self.pending.insert(key.number, (idx, core.now));
                    self.submitted += 1;
                    core.trace(&[core.now, 3, key.number as u64]);
                    self.next_submit = match self.cfg.period {
                        Some(p) => self.next_submit.saturating_add(p.total_micros()),
                        None => u64::MAX,
                    };
                }
                // Too many frames in flight: retry when one leaves.
                Err(_) => {
                    self.next_submit = u64::MAX;
                    break;
                }
            }
        }
        if self.submitted >= self.cfg.frames {
            self.next_submit = u64::MAX;
        }
    }

    fn finished(&mut self, core: &mut Core<'_, '_, N>, _i: usize, f: CodedFinished) {
        let Some((idx, submitted)) = self.pending.remove(&f.frame.number) else {
            return;
        };
        let (exact, max_abs_err) = if self.cfg.check {
            let cfg = self.cfg;
            let inputs = &cfg.inputs;
            let input = &inputs[idx % inputs.len()];
            let (model, cols) = (&cfg.model, cfg.cols);
            let want = self
                .references
                .entry(idx % inputs.len())
                .or_insert_with(|| model.reference(input, cols).unwrap_or_default());
            let same = f.output.len() == want.len()
                && f.output
                    .iter()
                    .zip(want.iter())
                    .all(|(a, b)| a.to_bits() == b.to_bits());
            let err = f
                .output
                .iter()
                .zip(want.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            (f.quality.is_complete().then_some(same), Some(err))
        } else {
            (None, None)
        };
        core.trace(&[
            core.now,
            5,
            f.frame.number as u64,
            u64::from(f.quality.fraction.to_bits()),
            f.output
                .iter()
                .fold(0u64, |h, v| h.rotate_left(5) ^ u64::from(v.to_bits())),
        ]);
        self.frames.push(CodedFrame {
            index: idx,
            submitted,
            finished: core.now,
            quality: f.quality,
            layers: f.layers,
            output: f.output,
            exact,
            max_abs_err,
        });
        // Back to back: the next frame enters now; periodic: a refused frame may enter now.
        if self.submitted < self.cfg.frames {
            self.next_submit = match self.cfg.period {
                None => core.now,
                Some(p) => {
                    let due = core.ready_at + p.total_micros() * self.submitted as u64;
                    due.max(core.now)
                }
            };
        }
    }
}
