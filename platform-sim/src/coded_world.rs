//! The coded (CDC) stage run through the real runtime in the simulator: a gateway (node 0)
//! and workers `1..=n`, each a `backends::coded::CodedNode` (the driver platform-pi would
//! run) over its own smoltcp interface on the simulated [`Medium`], in virtual time.
//!
//! It is `world.rs` for the coded stage: the clock jumps to the earliest of the next packet
//! arrival, every node's wake-up (`CodedNode::poll_at`, the interface's `poll_at`, the end of
//! a running shard job), the next scripted fault and the next periodic submission; nodes due
//! at the same instant step in id order; every random draw comes from a generator seeded from
//! the run's seed, with a distinct stream per node and per link. Same seed, same outcome (the
//! trace hash covers every packet, job and finished frame).
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
//! # Faults
//!
//! The [`Fault`]s of `world.rs`, times counted from the moment every worker is connected
//! (frames start then): [`Fault::Crash`] (the node stops: no steps, every packet to or from it
//! lost, its running job never finishes), [`Fault::Straggler`], [`Fault::Loss`] (a loss rate on
//! every link or one link, for a time window; [`CodedSimConfig::loss`] is the same over the
//! whole run) and [`Fault::LinkDown`]. Packet loss acts on TCP segments: the link's TCP
//! retransmits, so loss turns into delay, and delay past a budget into an erasure.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use smoltcp::iface::SocketStorage;
use tessera_backends::coded::{
    CodedModel, CodedNode, CodedNodeStats, LayerRecord, ShardDone, ShardExecutor, ShardJob,
};
use tessera_backends::link::LinkConfig;
use tessera_backends::nal_smoltcp::{NetConfig, SmolNet, SmolStack};
use tessera_core::deadline::LinkDelay;
use tessera_core::runtime::coded::{CodedConfig, CodedStats, Quality};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Key, Limits, NodeId, GATEWAY};

use crate::device::SimDevice;
use crate::medium::{Fate, LinkFault, Medium, NetModel};
use crate::rng::Rng;
use crate::world::{Fault, TraceHash};

/// The TCP port every node listens on.
pub const PORT: u16 = 7100;

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

/// State shared between a worker's [`SimShards`] and the engine.
#[derive(Debug)]
pub struct ShardShared {
    /// The virtual clock (set before each step).
    pub now: Instant,
    /// When the running job finishes.
    pub busy_until: Option<Instant>,
    /// Compute-time multiplier (straggler: > 1).
    pub slowdown: f64,
    /// Jobs started.
    pub jobs: Vec<ShardRecord>,
}

/// A worker's [`ShardExecutor`] in virtual time (see the module docs for the duration).
pub struct SimShards {
    shared: Rc<RefCell<ShardShared>>,
    node: NodeId,
    flops_per_us: f64,
    arrival: Arrival,
    rng: Rng,
    pending: Option<(Instant, ShardDone)>,
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
            rng: Rng::derive(seed, 0xc0de_0000 + u64::from(node)),
            pending: None,
        }
    }
}

impl ShardExecutor for SimShards {
    fn start(&mut self, model: &Arc<CodedModel>, job: ShardJob) {
        let flops = model.shard_flops(job.work.layer as usize, job.work.shard as usize, job.cols);
        let factor = match self.arrival {
            Arrival::Fixed => 1.0,
            Arrival::Pi3Wifi(m) => {
                let d = m.loc + self.rng.gamma(m.shape, m.scale);
                if m.loc > 0.0 {
                    d / m.loc
                } else {
                    1.0
                }
            }
        };
        let mut sh = self.shared.borrow_mut();
        let slow = if sh.slowdown > 0.0 { sh.slowdown } else { 1.0 };
        let us = (flops as f64 / self.flops_per_us * factor * slow).ceil() as u64;
        let start = sh.now;
        let end = start + Duration::from_micros(us.max(1));
        sh.busy_until = Some(end);
        sh.jobs.push(ShardRecord {
            node: self.node,
            work: (job.work.frame.number, job.work.layer, job.work.shard),
            start: start.total_micros(),
            end: end.total_micros(),
            flops,
        });
        let output = model.compute_shard(job.work, job.cols, &job.input);
        self.pending = Some((
            end,
            ShardDone {
                work: job.work,
                output,
            },
        ));
    }

    fn poll(&mut self) -> Option<ShardDone> {
        let now = self.shared.borrow().now;
        match &self.pending {
            Some((end, _)) if *end <= now => {
                self.shared.borrow_mut().busy_until = None;
                self.pending.take().map(|(_, d)| d)
            }
            _ => None,
        }
    }
}

fn address(id: NodeId) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, (id >> 8) as u8, id as u8 + 1)
}

struct InFlight {
    at: u64,
    seq: u64,
    to: usize,
    packet: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

type SimCoded<'n, 'a> = CodedNode<SmolStack<'n, 'a, SimDevice>, SimShards>;

struct Engine<'n, 'a> {
    cfg: &'n CodedSimConfig,
    nets: &'n [RefCell<SmolNet<'a, SimDevice>>],
    nodes: Vec<SimCoded<'n, 'a>>,
    shared: Vec<Rc<RefCell<ShardShared>>>,
    medium: Medium,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    wake: Vec<u64>,
    alive: Vec<bool>,
    now: u64,
    hash: TraceHash,
    events: u64,
    steps: u64,
    submitted: usize,
    next_submit: u64,
    pending: BTreeMap<u32, (usize, u64)>,
    frames: Vec<CodedFrame>,
    references: BTreeMap<usize, Vec<f32>>,
    sent: Vec<Vec<u8>>,
    ready: bool,
    ready_at: u64,
    faults_done: Vec<bool>,
}

/// Runs `cfg` until every frame left the stage (or the gateway crashed, or the time limit).
pub fn run(cfg: &CodedSimConfig) -> CodedOutcome {
    let n = cfg.workers as usize + 1;
    let sockets = n + 3;
    let buf = cfg.socket_buffer;
    let mut bytes = vec![0u8; n * sockets * 2 * buf];
    let mut storage: Vec<SocketStorage<'_>> =
        (0..n * sockets).map(|_| SocketStorage::EMPTY).collect();
    let mut chunks = bytes.chunks_mut(buf);
    let mut nets = Vec::with_capacity(n);
    for (i, st) in storage.chunks_mut(sockets).enumerate() {
        let pairs: Vec<(&mut [u8], &mut [u8])> = (0..sockets)
            .map(|_| {
                (
                    chunks.next().expect("rx buffer"),
                    chunks.next().expect("tx buffer"),
                )
            })
            .collect();
        let net = SmolNet::new(
            NetConfig {
                address: address(i as NodeId),
                prefix_len: 16,
                seed: cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64 + 1),
                backlog: 3,
                first_port: 49152 + (i as u16 % 64) * 256,
            },
            SimDevice::new(cfg.net.mtu),
            st,
            pairs,
            Instant::ZERO,
        );
        nets.push(RefCell::new(net));
    }
    let mut nodes = Vec::with_capacity(n);
    let mut shared = Vec::with_capacity(n);
    for (i, net) in nets.iter().enumerate() {
        let id = i as NodeId;
        // The gateway talks to every worker; a worker only to the gateway.
        let peers = if id == GATEWAY {
            (1..n as NodeId)
                .map(|p| (p, SocketAddr::from((address(p), PORT))))
                .collect()
        } else {
            vec![(GATEWAY, SocketAddr::from((address(GATEWAY), PORT)))]
        };
        let link = LinkConfig {
            me: id,
            port: PORT,
            peers,
            key: cfg.secure.then(|| Key::new([9; 32])),
            limits: Limits::LARGE,
            first_seq: 1,
            peer_dead: cfg.peer_dead,
            retry: Duration::from_millis(100),
        };
        let sh = Rc::new(RefCell::new(ShardShared {
            now: Instant::ZERO,
            busy_until: None,
            slowdown: 1.0,
            jobs: Vec::new(),
        }));
        let exec = SimShards::new(sh.clone(), id, cfg.gflops, cfg.arrival, cfg.seed);
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
    let mut link_faults: Vec<LinkFault> = cfg
        .faults
        .iter()
        .filter_map(|f| match *f {
            Fault::Loss {
                from,
                until,
                rate,
                link,
            } => Some(LinkFault {
                from_us: from,
                until_us: until,
                link: link.map(|(a, b)| (a as usize, b as usize)),
                loss: rate,
            }),
            Fault::LinkDown { a, b, from, until } => Some(LinkFault {
                from_us: from,
                until_us: until,
                link: Some((a as usize, b as usize)),
                loss: 1.0,
            }),
            _ => None,
        })
        .collect();
    if cfg.loss > 0.0 {
        link_faults.push(LinkFault {
            from_us: 0,
            until_us: u64::MAX,
            link: None,
            loss: cfg.loss,
        });
    }
    let medium = Medium::new(cfg.net.clone(), n, cfg.seed ^ 0xc0de_d000, link_faults);
    let mut e = Engine {
        cfg,
        nets: &nets,
        nodes,
        shared,
        medium,
        queue: BinaryHeap::new(),
        seq: 0,
        wake: vec![0; n],
        alive: vec![true; n],
        now: 0,
        hash: TraceHash(0xcbf2_9ce4_8422_2325),
        events: 0,
        steps: 0,
        submitted: 0,
        next_submit: u64::MAX,
        pending: BTreeMap::new(),
        frames: Vec::new(),
        references: BTreeMap::new(),
        sent: Vec::new(),
        ready: false,
        ready_at: 0,
        faults_done: vec![false; cfg.faults.len()],
    };
    e.run();
    e.outcome()
}

fn fnv(h: &mut TraceHash, words: &[u64]) {
    for w in words {
        for b in w.to_le_bytes() {
            h.0 ^= b as u64;
            h.0 = h.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Engine<'_, '_> {
    fn trace(&mut self, words: &[u64]) {
        self.events += 1;
        fnv(&mut self.hash, words);
    }

    fn done(&self) -> bool {
        self.ready
            && ((self.submitted >= self.cfg.frames && self.pending.is_empty())
                || !self.alive[GATEWAY as usize])
    }

    fn run(&mut self) {
        let limit = self.cfg.limit.total_micros();
        while !self.done() {
            let next_packet = self.queue.peek().map_or(u64::MAX, |p| p.0.at);
            let next_wake = self.wake.iter().copied().min().unwrap_or(u64::MAX);
            let t = next_packet
                .min(next_wake)
                .min(self.next_fault())
                .min(self.next_submit);
            if t == u64::MAX || t > limit {
                self.now = self.now.max(limit.min(t));
                break;
            }
            self.now = t;
            self.apply_faults();
            if t >= self.next_submit {
                self.wake[GATEWAY as usize] = t;
            }
            while self.queue.peek().is_some_and(|p| p.0.at == t) {
                let Reverse(p) = self.queue.pop().expect("peeked");
                if self.alive[p.to] {
                    self.nets[p.to].borrow_mut().device_mut().deliver(p.packet);
                    self.wake[p.to] = t;
                }
            }
            for i in 0..self.nodes.len() {
                if self.wake[i] <= t {
                    if self.alive[i] {
                        self.step(i);
                    } else {
                        self.wake[i] = u64::MAX;
                    }
                }
            }
            if !self.ready {
                self.check_ready();
            }
        }
    }

    fn next_fault(&self) -> u64 {
        if !self.ready {
            return u64::MAX;
        }
        self.cfg
            .faults
            .iter()
            .zip(&self.faults_done)
            .filter(|(_, d)| !**d)
            .filter_map(|(f, _)| match *f {
                Fault::Crash { at, .. } | Fault::Straggler { at, .. } => {
                    Some(self.ready_at.saturating_add(at))
                }
                _ => None,
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    fn apply_faults(&mut self) {
        if !self.ready {
            return;
        }
        for k in 0..self.cfg.faults.len() {
            if self.faults_done[k] {
                continue;
            }
            match self.cfg.faults[k] {
                Fault::Crash { node, at } if self.ready_at.saturating_add(at) <= self.now => {
                    let i = node as usize;
                    if i < self.alive.len() {
                        self.alive[i] = false;
                        self.nets[i].borrow_mut().device_mut().clear();
                        self.wake[i] = u64::MAX;
                    }
                    self.faults_done[k] = true;
                    self.trace(&[self.now, 100, node as u64]);
                }
                Fault::Straggler { node, at, factor }
                    if self.ready_at.saturating_add(at) <= self.now =>
                {
                    if let Some(x) = self.shared.get(node as usize) {
                        x.borrow_mut().slowdown = factor;
                    }
                    self.faults_done[k] = true;
                    self.trace(&[self.now, 101, node as u64]);
                }
                _ => {}
            }
        }
    }

    fn check_ready(&mut self) {
        let workers = self.nodes.len() - 1;
        let all = self.nodes[GATEWAY as usize].link().peers_up().count() == workers
            && self
                .nodes
                .iter()
                .skip(1)
                .all(|n| n.link().peers_up().count() == 1);
        if all {
            self.ready = true;
            self.ready_at = self.now;
            self.medium.origin = Some(self.now);
            self.next_submit = self.now;
            self.trace(&[self.now, 1]);
        }
    }

    fn step(&mut self, i: usize) {
        let now = self.now;
        let t = Instant::from_micros(now);
        self.steps += 1;
        self.shared[i].borrow_mut().now = t;
        self.nets[i].borrow_mut().poll(t);
        let jobs_before = self.shared[i].borrow().jobs.len();
        self.nodes[i].poll(t);
        if self.ready && i == GATEWAY as usize {
            self.submit();
        }
        self.nets[i].borrow_mut().poll(t);
        let jobs_after = self.shared[i].borrow().jobs.len();
        for k in jobs_before..jobs_after {
            let j = self.shared[i].borrow().jobs[k];
            self.trace(&[
                now,
                2,
                i as u64,
                j.work.0 as u64,
                j.work.1 as u64,
                j.work.2 as u64,
                j.end,
            ]);
        }
        self.transmit(i);
        for f in self.nodes[i].take_finished() {
            self.finished(f);
        }
        let mut w = u64::MAX;
        if let Some(p) = self.nodes[i].poll_at() {
            // A wake-up in the past is the link's dial time of a peer whose connection is
            // still being set up (SYN retransmission under loss): re-check every 200 µs, not
            // every µs (world.rs does the same with 1 ms).
            let p = p.total_micros();
            w = w.min(if p <= now { now + 200 } else { p });
        }
        if let Some(p) = self.nets[i].borrow_mut().poll_at() {
            w = w.min(p.total_micros().max(now + 1));
        }
        if let Some(p) = self.shared[i].borrow().busy_until {
            w = w.min(p.total_micros().max(now + 1));
        }
        self.wake[i] = w;
    }

    fn submit(&mut self) {
        let g = GATEWAY as usize;
        while self.submitted < self.cfg.frames && self.now >= self.next_submit {
            if self.cfg.period.is_none() && self.nodes[g].in_flight() > 0 {
                self.next_submit = u64::MAX;
                break;
            }
            let idx = self.submitted;
            let inputs = self.cfg.inputs.clone();
            let input = &inputs[idx % inputs.len()];
            match self.nodes[g].submit(Instant::from_micros(self.now), input, self.cfg.cols) {
                Ok(key) => {
                    self.pending.insert(key.number, (idx, self.now));
                    self.submitted += 1;
                    self.trace(&[self.now, 3, key.number as u64]);
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

    fn transmit(&mut self, i: usize) {
        let mut sent = std::mem::take(&mut self.sent);
        self.nets[i].borrow_mut().device_mut().take_sent(&mut sent);
        for p in sent.drain(..) {
            // IPv4 destination: bytes 16..20 = 10.1.hi.(lo + 1).
            let to = match p.get(16..20) {
                Some(&[10, 1, hi, lo]) if lo >= 1 => ((hi as usize) << 8) + lo as usize - 1,
                _ => continue,
            };
            if to >= self.nodes.len() {
                continue;
            }
            let fate = self.medium.send(self.now, i, to, p.len());
            let at = match fate {
                Fate::Arrives(at) if self.alive[to] => at,
                _ => u64::MAX,
            };
            self.trace(&[self.now, 4, i as u64, to as u64, p.len() as u64, at]);
            if at != u64::MAX {
                self.seq += 1;
                self.queue.push(Reverse(InFlight {
                    at,
                    seq: self.seq,
                    to,
                    packet: p,
                }));
            } else {
                self.nets[i].borrow_mut().device_mut().recycle(p);
            }
        }
        self.sent = sent;
    }

    fn finished(&mut self, f: tessera_backends::coded::CodedFinished) {
        let Some((idx, submitted)) = self.pending.remove(&f.frame.number) else {
            return;
        };
        let (exact, max_abs_err) = if self.cfg.check {
            let inputs = self.cfg.inputs.clone();
            let input = &inputs[idx % inputs.len()];
            let model = self.cfg.model.clone();
            let cols = self.cfg.cols;
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
        self.trace(&[
            self.now,
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
            finished: self.now,
            quality: f.quality,
            layers: f.layers,
            output: f.output,
            exact,
            max_abs_err,
        });
        // Back to back: the next frame enters now; periodic: a refused frame may enter now.
        if self.submitted < self.cfg.frames {
            self.next_submit = match self.cfg.period {
                None => self.now,
                Some(p) => {
                    let due = self.ready_at + p.total_micros() * self.submitted as u64;
                    due.max(self.now)
                }
            };
        }
    }

    fn outcome(self) -> CodedOutcome {
        let g = &self.nodes[GATEWAY as usize];
        let mut fitted = Vec::new();
        if let Some(m) = g.gateway() {
            for w in 1..self.nodes.len() as NodeId {
                for l in 0..self.cfg.model.len() {
                    if let Some(d) = m.link_model(w, l) {
                        fitted.push((w, l, d));
                    }
                }
            }
        }
        CodedOutcome {
            submitted: self.submitted,
            frames: self.frames,
            trace_hash: self.hash.0,
            events: self.events,
            virtual_us: self.now,
            steps: self.steps,
            ready_at: self.ready_at,
            gateway: g.stats().gateway.unwrap_or_default(),
            nodes: self.nodes.iter().map(|n| (n.id(), n.stats())).collect(),
            medium: (self.medium.bytes, self.medium.packets, self.medium.lost),
            jobs: self
                .shared
                .iter()
                .flat_map(|x| x.borrow().jobs.clone())
                .collect(),
            fitted,
        }
    }
}
