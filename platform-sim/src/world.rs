//! The simulated world: clusters of nodes, each a smoltcp interface on the medium driving a
//! `backends::driver::Node` (the driver platform-pi runs), one virtual clock, one event queue.
//!
//! Determinism: the clock jumps to the earliest of the next packet arrival and every node's
//! next wake-up (`Node::poll_at`, the interface's `poll_at`, the running job's end); nodes due
//! at the same instant step in index order; every random draw comes from a generator seeded
//! from the run's seed. The trace hash covers every packet (time, endpoints, length, fate),
//! every job (node, work, start, end) and every finished frame.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use smoltcp::iface::SocketStorage;
use tessera_backends::driver::{Model, Node, NodeStats};
use tessera_backends::link::LinkConfig;
use tessera_backends::nal_smoltcp::{NetConfig, SmolNet, SmolStack};
use tessera_core::runtime::Config;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{FrameKey, Key, Limits, NodeId, Policy, GATEWAY};

use crate::compute::{ExecShared, JobRecord, Kernels, SimExecutor, PI3_GFLOPS};
use crate::device::SimDevice;
use crate::medium::{Fate, LinkFault, Medium, NetModel};
use crate::models::{self, Net};

/// The TCP port every node listens on.
pub const PORT: u16 = 7000;

/// A scripted fault (node ids are per cluster; a fault applies to every cluster).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// The node stops at `at`: no more steps, every packet to or from it is lost.
    Crash {
        /// Node id.
        node: NodeId,
        /// When, µs.
        at: u64,
    },
    /// From `at`, the node's jobs take `factor` times as long.
    Straggler {
        /// Node id.
        node: NodeId,
        /// When, µs.
        at: u64,
        /// Slowdown (> 1).
        factor: f64,
    },
    /// A loss burst (every link, or one link) in `[from, until)`.
    Loss {
        /// Start, µs.
        from: u64,
        /// End, µs.
        until: u64,
        /// Loss probability.
        rate: f64,
        /// One link, or all.
        link: Option<(NodeId, NodeId)>,
    },
    /// The link between `a` and `b` carries nothing in `[from, until)`.
    LinkDown {
        /// One end.
        a: NodeId,
        /// The other end.
        b: NodeId,
        /// Start, µs.
        from: u64,
        /// End, µs.
        until: u64,
    },
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Scheduling policy.
    pub policy: Policy,
    /// Tile grid (rows, columns).
    pub grid: (u32, u32),
    /// Edges per cluster (at most `runtime::MAX_EDGES`).
    pub edges: u16,
    /// Independent clusters (each: a gateway and `edges` edges, its own medium).
    pub clusters: usize,
    /// Frames each data source submits.
    pub frames: usize,
    /// Data-source edge ids (a camera on each).
    pub sources: Vec<NodeId>,
    /// Frames in flight per source (1: the next frame enters when the previous is done).
    pub inflight: usize,
    /// The network.
    pub net: NetModel,
    /// Device rate, GFLOP/s.
    pub gflops: f64,
    /// Per-node speed factors `(id, factor)`: rate multiplied by `factor`.
    pub speed: Vec<(NodeId, f64)>,
    /// Real kernels or the cost model.
    pub kernels: Kernels,
    /// The network run.
    pub model: Net,
    /// Seed of every random draw.
    pub seed: u64,
    /// Scripted faults.
    pub faults: Vec<Fault>,
    /// Authenticated links (ChaCha20-Poly1305); off only for measurements.
    pub secure: bool,
    /// Stop after this much virtual time.
    pub limit: Duration,
    /// Runtime tile/stripe timeout.
    pub tile_timeout: Duration,
    /// Link and runtime peer death timeout.
    pub peer_dead: Duration,
    /// Frame deadline.
    pub frame_deadline: Duration,
    /// TCP receive and transmit buffer per socket, bytes.
    pub socket_buffer: usize,
}

impl SimConfig {
    /// YOLOv2 (cost model) on the Pi 3 WiFi preset, one cluster, one source (edge 1).
    pub fn yolo(policy: Policy, grid: (u32, u32), edges: u16) -> SimConfig {
        SimConfig {
            policy,
            grid,
            edges,
            clusters: 1,
            frames: 1,
            sources: vec![1],
            inflight: 1,
            net: NetModel::wifi(),
            gflops: PI3_GFLOPS,
            speed: Vec::new(),
            kernels: Kernels::CostOnly,
            model: Net::Yolo16,
            seed: 1,
            faults: Vec::new(),
            secure: true,
            limit: Duration::from_secs(3600),
            tile_timeout: Duration::from_secs(30),
            peer_dead: Duration::from_secs(10),
            frame_deadline: Duration::from_secs(600),
            socket_buffer: 32 * 1024,
        }
    }

    /// The small net with real kernels (results checked), Ethernet preset.
    pub fn small(policy: Policy, grid: (u32, u32), edges: u16) -> SimConfig {
        SimConfig {
            model: Net::Small,
            kernels: Kernels::Real,
            net: NetModel::ethernet(),
            gflops: 0.05,
            tile_timeout: Duration::from_millis(500),
            peer_dead: Duration::from_millis(600),
            frame_deadline: Duration::from_secs(60),
            limit: Duration::from_secs(120),
            ..SimConfig::yolo(policy, grid, edges)
        }
    }
}

/// One frame's fate.
#[derive(Clone, Debug)]
pub struct FrameResult {
    /// Cluster.
    pub cluster: usize,
    /// The frame.
    pub frame: FrameKey,
    /// Submitted at the source, µs.
    pub submitted: u64,
    /// Finished (or abandoned) at the gateway, µs.
    pub finished: u64,
    /// False when abandoned.
    pub complete: bool,
    /// Real kernels: the output equals the single-device run bit for bit.
    pub correct: Option<bool>,
    /// Accepted results per node.
    pub tiles_by: Vec<(NodeId, u32)>,
}

impl FrameResult {
    /// Latency, seconds.
    pub fn latency_s(&self) -> f64 {
        (self.finished - self.submitted) as f64 / 1e6
    }
}

/// What a run produced.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Every frame submitted, in finishing order (unfinished ones are missing).
    pub frames: Vec<FrameResult>,
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
    /// Per node (world index order): cluster, id, stats.
    pub nodes: Vec<(usize, NodeId, NodeStats)>,
    /// Per cluster: IP bytes, packets, lost packets on the medium.
    pub medium: Vec<(u64, u64, u64)>,
    /// Every job started.
    pub jobs: Vec<JobRecord>,
    /// Time every node of every cluster was connected (frames start then), µs.
    pub ready_at: u64,
}

impl Outcome {
    /// Frames completed.
    pub fn completed(&self) -> usize {
        self.frames.iter().filter(|f| f.complete).count()
    }
}

/// FNV-1a, 64 bit.
#[derive(Clone, Copy, Debug)]
pub struct TraceHash(pub u64);

impl TraceHash {
    fn new() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, words: &[u64]) {
        for w in words {
            for b in w.to_le_bytes() {
                self.0 ^= b as u64;
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
}

fn address(cluster: usize, id: NodeId) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, cluster as u8, id as u8 + 1)
}

/// A packet on its way.
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

struct Source {
    node: usize,
    submitted: usize,
    outstanding: usize,
}

type SimNode<'n, 'a> = Node<SmolStack<'n, 'a, SimDevice>, SimExecutor>;

struct Engine<'n, 'a> {
    cfg: &'n SimConfig,
    per: usize,
    nets: &'n [RefCell<SmolNet<'a, SimDevice>>],
    nodes: Vec<SimNode<'n, 'a>>,
    execs: Vec<Rc<RefCell<ExecShared>>>,
    media: Vec<Medium>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    wake: Vec<u64>,
    alive: Vec<bool>,
    now: u64,
    hash: TraceHash,
    events: u64,
    steps: u64,
    sources: Vec<Source>,
    frames: Vec<FrameResult>,
    pending: BTreeMap<(usize, FrameKey), (u64, u32)>,
    model: Arc<Model>,
    references: BTreeMap<u32, Vec<f32>>,
    sent: Vec<Vec<u8>>,
    ready: bool,
    ready_at: u64,
    faults_done: Vec<bool>,
}

/// Runs `cfg` to completion (every frame finished or abandoned) or its time limit.
pub fn run(cfg: &SimConfig) -> Outcome {
    let per = cfg.edges as usize + 1;
    let n = per * cfg.clusters;
    let model = Arc::new(models::model(cfg.model, cfg.grid));
    let sockets = per - 1 + 3;
    let buf = cfg.socket_buffer;
    let mut bytes = vec![0u8; n * sockets * 2 * buf];
    let mut storage: Vec<SocketStorage<'_>> =
        (0..n * sockets).map(|_| SocketStorage::EMPTY).collect();
    let mut chunks = bytes.chunks_mut(buf);
    let mut nets = Vec::with_capacity(n);
    for (i, st) in storage.chunks_mut(sockets).enumerate() {
        let (c, id) = (i / per, (i % per) as NodeId);
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
                address: address(c, id),
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
    let stack = model.stack().expect("stack");
    let grid = model.grid().expect("grid");
    let mut rt = Config::new(cfg.policy, &stack, grid);
    rt.tile_timeout = cfg.tile_timeout;
    // Liveness is the link's (bytes, not whole messages): a heartbeat queued behind a
    // multi-MiB frame on WiFi must not make the runtime declare a busy peer dead.
    rt.peer_timeout = cfg.frame_deadline;
    rt.frame_deadline = cfg.frame_deadline;
    rt.heartbeat_interval = Duration::from_micros(cfg.peer_dead.total_micros() / 4);
    let mut nodes = Vec::with_capacity(n);
    let mut execs = Vec::with_capacity(n);
    for (i, net) in nets.iter().enumerate() {
        let (c, id) = (i / per, (i % per) as NodeId);
        let peers = (0..per as NodeId)
            .filter(|&p| p != id)
            .map(|p| (p, SocketAddr::from((address(c, p), PORT))))
            .collect();
        let link = LinkConfig {
            me: id,
            port: PORT,
            peers,
            key: cfg.secure.then(|| Key::new([7; 32])),
            limits: Limits::LARGE,
            first_seq: 1,
            peer_dead: cfg.peer_dead,
            retry: Duration::from_millis(100),
        };
        let shared = Rc::new(RefCell::new(ExecShared {
            slowdown: 1.0,
            ..Default::default()
        }));
        let factor = cfg
            .speed
            .iter()
            .find(|(p, _)| *p == id)
            .map_or(1.0, |&(_, f)| f);
        let exec = SimExecutor::new(
            shared.clone(),
            model.clone(),
            cfg.kernels,
            cfg.gflops * factor,
            i,
            id,
        );
        let node = Node::new(
            SmolStack::new(net),
            link,
            rt,
            model.clone(),
            exec,
            Instant::ZERO,
        )
        .expect("node starts");
        nodes.push(node);
        execs.push(shared);
    }
    let media = (0..cfg.clusters)
        .map(|c| {
            let faults = cfg
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
            Medium::new(cfg.net.clone(), per, cfg.seed ^ (c as u64) << 32, faults)
        })
        .collect();
    let sources = (0..cfg.clusters)
        .flat_map(|c| {
            cfg.sources.iter().map(move |&s| Source {
                node: c * per + s as usize,
                submitted: 0,
                outstanding: 0,
            })
        })
        .collect();
    let mut e = Engine {
        cfg,
        per,
        nets: &nets,
        nodes,
        execs,
        media,
        queue: BinaryHeap::new(),
        seq: 0,
        wake: vec![0; n],
        alive: vec![true; n],
        now: 0,
        hash: TraceHash::new(),
        events: 0,
        steps: 0,
        sources,
        frames: Vec::new(),
        pending: BTreeMap::new(),
        model,
        references: BTreeMap::new(),
        sent: Vec::new(),
        ready: false,
        ready_at: 0,
        faults_done: vec![false; cfg.faults.len()],
    };
    e.run();
    e.outcome()
}

impl<'n, 'a> Engine<'n, 'a> {
    fn trace(&mut self, words: &[u64]) {
        self.events += 1;
        self.hash.add(words);
    }

    fn done(&self) -> bool {
        self.ready
            && self.sources.iter().all(|s| {
                (s.submitted >= self.cfg.frames && s.outstanding == 0) || !self.alive[s.node]
            })
    }

    fn run(&mut self) {
        let limit = self.cfg.limit.total_micros();
        while !self.done() {
            let next_packet = self.queue.peek().map_or(u64::MAX, |p| p.0.at);
            let next_wake = self.wake.iter().copied().min().unwrap_or(u64::MAX);
            let next_fault = self.next_fault();
            let t = next_packet.min(next_wake).min(next_fault);
            if t == u64::MAX || t > limit {
                self.now = self.now.max(limit.min(t));
                break;
            }
            self.now = t;
            self.apply_faults();
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
                Fault::Crash { at, .. } | Fault::Straggler { at, .. } => Some(self.ready_at + at),
                _ => None,
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Crash and straggler times count from the moment the cluster is ready (frames start).
    fn apply_faults(&mut self) {
        if !self.ready {
            return;
        }
        for k in 0..self.cfg.faults.len() {
            if self.faults_done[k] {
                continue;
            }
            match self.cfg.faults[k] {
                Fault::Crash { node, at } if self.ready_at + at <= self.now => {
                    for c in 0..self.cfg.clusters {
                        let i = c * self.per + node as usize;
                        if i < self.alive.len() {
                            self.alive[i] = false;
                            self.nets[i].borrow_mut().device_mut().clear();
                            self.wake[i] = u64::MAX;
                        }
                    }
                    self.faults_done[k] = true;
                    self.trace(&[self.now, 100, node as u64]);
                }
                Fault::Straggler { node, at, factor } if self.ready_at + at <= self.now => {
                    for c in 0..self.cfg.clusters {
                        let i = c * self.per + node as usize;
                        if let Some(x) = self.execs.get(i) {
                            x.borrow_mut().slowdown = factor;
                        }
                    }
                    self.faults_done[k] = true;
                    self.trace(&[self.now, 101, node as u64]);
                }
                _ => {}
            }
        }
    }

    fn check_ready(&mut self) {
        let all = self
            .nodes
            .iter()
            .all(|n| n.link().peers_up().count() == self.per - 1);
        if all {
            self.ready = true;
            self.ready_at = self.now;
            for m in &mut self.media {
                m.origin = Some(self.now);
            }
            for s in &self.sources {
                self.wake[s.node] = self.now;
            }
            self.trace(&[self.now, 1]);
        }
    }

    fn step(&mut self, i: usize) {
        let now = self.now;
        let t = Instant::from_micros(now);
        self.steps += 1;
        self.execs[i].borrow_mut().now = t;
        self.nets[i].borrow_mut().poll(t);
        let jobs_before = self.execs[i].borrow().jobs.len();
        self.nodes[i].poll(t);
        if self.ready {
            self.submit(i);
        }
        self.nets[i].borrow_mut().poll(t);
        let jobs_after = self.execs[i].borrow().jobs.len();
        for k in jobs_before..jobs_after {
            let j = self.execs[i].borrow().jobs[k];
            let (kind, a, b) = work_words(&j.work);
            self.trace(&[now, 2, i as u64, kind, a, b, j.end]);
        }
        self.transmit(i);
        for f in self.nodes[i].take_finished() {
            self.finished(i, f);
        }
        let mut w = u64::MAX;
        if let Some(p) = self.nodes[i].poll_at() {
            let p = p.total_micros();
            w = w.min(if p <= now { now + 1000 } else { p });
        }
        if let Some(p) = self.nets[i].borrow_mut().poll_at() {
            w = w.min(p.total_micros().max(now + 1));
        }
        if let Some(p) = self.execs[i].borrow().busy_until {
            w = w.min(p.total_micros().max(now + 1));
        }
        self.wake[i] = w;
    }

    fn submit(&mut self, i: usize) {
        let Some(s) = self.sources.iter().position(|s| s.node == i) else {
            return;
        };
        while self.sources[s].outstanding < self.cfg.inflight.max(1)
            && self.sources[s].submitted < self.cfg.frames
        {
            let k = self.sources[s].submitted as u32;
            let real = self.cfg.kernels == Kernels::Real;
            let img = models::image(&self.model, k, real);
            match self.nodes[i].submit(Instant::from_micros(self.now), img) {
                Ok(key) => {
                    self.sources[s].submitted += 1;
                    self.sources[s].outstanding += 1;
                    let c = i / self.per;
                    self.pending.insert((c, key), (self.now, k));
                    self.trace(&[self.now, 3, i as u64, key.origin as u64, key.number as u64]);
                }
                Err(_) => break,
            }
        }
    }

    fn transmit(&mut self, i: usize) {
        let c = i / self.per;
        let mut sent = std::mem::take(&mut self.sent);
        self.nets[i].borrow_mut().device_mut().take_sent(&mut sent);
        for p in sent.drain(..) {
            // IPv4 destination: bytes 16..20 = 10.0.cluster.(id + 1).
            let to = match p.get(16..20) {
                Some(&[10, 0, pc, last]) if pc as usize == c && last >= 1 => {
                    c * self.per + last as usize - 1
                }
                _ => continue,
            };
            if to >= self.nodes.len() || to / self.per != c {
                continue;
            }
            let (a, b) = (i % self.per, to % self.per);
            let fate = self.media[c].send(self.now, a, b, p.len());
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

    fn finished(&mut self, i: usize, f: tessera_backends::driver::Finished) {
        let c = i / self.per;
        // The gateway reports every frame; a source reports a frame it gave up on (e.g. its
        // gateway link dropped while the frame was in flight) that the gateway never saw.
        let at_gateway = i % self.per == GATEWAY as usize;
        if !at_gateway && (f.complete || i % self.per != f.frame.origin as usize) {
            return;
        }
        let Some((submitted, k)) = self.pending.remove(&(c, f.frame)) else {
            return;
        };
        let correct = match (self.cfg.kernels, &f.output) {
            (Kernels::Real, Some(out)) if f.complete => {
                let model = self.model.clone();
                let want = self
                    .references
                    .entry(k)
                    .or_insert_with(|| models::reference(&model, &models::image(&model, k, true)));
                Some(
                    out.len() == want.len()
                        && out
                            .iter()
                            .zip(want.iter())
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                )
            }
            (Kernels::Real, _) => Some(false),
            _ => None,
        };
        self.trace(&[
            self.now,
            5,
            i as u64,
            f.frame.origin as u64,
            f.frame.number as u64,
            f.complete as u64,
        ]);
        let src = c * self.per + f.frame.origin as usize;
        if let Some(s) = self.sources.iter_mut().find(|s| s.node == src) {
            s.outstanding = s.outstanding.saturating_sub(1);
            self.wake[src] = self.now;
        }
        self.frames.push(FrameResult {
            cluster: c,
            frame: f.frame,
            submitted,
            finished: self.now,
            complete: f.complete,
            correct,
            tiles_by: f.tiles_by,
        });
    }

    fn outcome(self) -> Outcome {
        let per = self.per;
        Outcome {
            submitted: self.sources.iter().map(|s| s.submitted).sum(),
            frames: self.frames,
            trace_hash: self.hash.0,
            events: self.events,
            virtual_us: self.now,
            steps: self.steps,
            nodes: self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (i / per, (i % per) as NodeId, n.stats()))
                .collect(),
            medium: self
                .media
                .iter()
                .map(|m| (m.bytes, m.packets, m.lost))
                .collect(),
            jobs: self
                .execs
                .iter()
                .flat_map(|x| x.borrow().jobs.clone())
                .collect(),
            ready_at: self.ready_at,
        }
    }
}

/// `(kind, a, b)` words of a work item for the trace.
pub fn work_words(w: &tessera_core::runtime::Work) -> (u64, u64, u64) {
    use tessera_core::runtime::Work;
    match *w {
        Work::Tile { frame, tile, mode } => (
            1,
            ((frame.origin as u64) << 32) | frame.number as u64,
            tile as u64 | ((mode == tessera_core::wire::TileMode::Reuse) as u64) << 16,
        ),
        Work::Layer {
            frame,
            layer,
            stripe,
            ..
        } => (
            2,
            ((frame.origin as u64) << 32) | frame.number as u64,
            stripe as u64 | (layer as u64) << 16,
        ),
    }
}
