//! The simulated FTP world: clusters of a gateway and edges, each node a
//! `backends::driver::Node` (the driver platform-pi runs) over its own smoltcp interface on
//! its cluster's medium, cameras on the source edges, run on the shared event loop
//! (`sim_core`: clock, packets, faults, stepping, trace hash; its module docs say what
//! makes a run deterministic).
//!
//! This file holds what is specific to FTP clusters: the configuration, addressing
//! (`10.0.cluster.(id + 1)`), how sources submit frames and what a finished frame becomes.
//! The trace also covers every submitted frame (node, frame) and every finished one (node,
//! frame, complete).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use tessera_backends::driver::{Finished, Model, Node, NodeStats, SourceFrame};
use tessera_backends::nal_smoltcp::SmolStack;
use tessera_core::runtime::{Config, StripFetch};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{FrameKey, NodeId, Policy, Precision, GATEWAY};

use crate::compute::{ExecShared, JobRecord, Kernels, SimExecutor, PI3_GFLOPS};
use crate::device::SimDevice;
use crate::fault::link_faults;
pub use crate::fault::Fault;
use crate::interfaces::{interfaces, link_config, SocketMemory};
use crate::medium::{Medium, NetModel};
use crate::models::{self, Net};
use crate::pictures::Pictures;
pub use crate::sim_core::TraceHash;
use crate::sim_core::{impl_sim_node, Core, SimNode, TracedJob, Workload};

/// The TCP port every node listens on.
pub const PORT: u16 = 7000;

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
    /// WST-S strips stay where they were made (`runtime::Config::local_reuse`); off: through
    /// the gateway's cache, as the calibrated runs have it.
    pub local_reuse: bool,
    /// WST-S strips stay where they were made and go edge to edge to a level-1 tile's node
    /// when its link model says fetching beats recomputing (`runtime::Config::link_reuse`;
    /// over `local_reuse`).
    pub link_reuse: bool,
    /// With `link_reuse`: fetch or recompute by the link model (the default), or always or
    /// never (`runtime::Config::strip_fetch`).
    pub strip_fetch: StripFetch,
    /// Wire precision of tile results and strips.
    pub transfer: Precision,
    /// A source's own results unconfirmed by the gateway before it leaves its tiles to
    /// thieves (`runtime::Config::results_ahead`; 0, the default: no limit).
    pub results_ahead: u8,
    /// Thieves ask for their next tile while computing (`runtime::Config::prefetch`; off by
    /// default, as the calibrated runs have it).
    pub prefetch: bool,
    /// Sources ship the captured JPEG (once per peer; lent tiles go as `TileTask`s cut from
    /// it), as the real node does; off: each lent tile's `f32` input, the papers' byte model.
    pub picture: bool,
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
            local_reuse: false,
            link_reuse: false,
            strip_fetch: StripFetch::Model,
            transfer: Precision::F32,
            results_ahead: 0,
            prefetch: false,
            picture: false,
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
            peer_dead: Duration::from_millis(3500),
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
    /// Per cluster, per node id: IP bytes the node sent once the cluster was ready.
    pub sent: Vec<Vec<u64>>,
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

    /// Latencies of the completed frames, s, in finishing order.
    pub fn latencies_s(&self) -> Vec<f64> {
        self.frames
            .iter()
            .filter(|f| f.complete)
            .map(|f| f.latency_s())
            .collect()
    }
}

fn address(cluster: usize, id: NodeId) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, cluster as u8, id as u8 + 1)
}

type SimNodeOf<'n, 'a> = Node<SmolStack<'n, 'a, SimDevice>, SimExecutor>;

impl_sim_node!(SimNodeOf<'_, '_>, Finished, JobRecord);

impl TracedJob for JobRecord {
    fn work_words(&self) -> [u64; 3] {
        let (kind, a, b) = work_words(&self.work);
        [kind, a, b]
    }
    fn end(&self) -> u64 {
        self.end
    }
}

/// A data source: the edge with a camera, and its frames.
struct Source {
    node: usize,
    submitted: usize,
    outstanding: usize,
}

/// The FTP workload: cameras submit frames at their edges, gateways (or sources giving up)
/// report them.
struct Cameras<'c> {
    cfg: &'c SimConfig,
    model: Arc<Model>,
    sources: Vec<Source>,
    frames: Vec<FrameResult>,
    /// Submitted, not yet finished: (cluster, frame) → (submitted at, image number).
    pending: BTreeMap<(usize, FrameKey), (u64, u32)>,
    /// Single-device outputs by image number, computed once.
    references: BTreeMap<u32, Vec<f32>>,
    /// The bundled pictures (`SimConfig::picture`).
    pictures: Option<Pictures>,
}

impl Cameras<'_> {
    /// Frame `k` as its camera hands it over: a bundled picture, or the model's test input.
    fn frame(&self, k: u32) -> SourceFrame {
        match &self.pictures {
            Some(p) => p.frame(k),
            None => {
                let real = self.cfg.kernels == Kernels::Real;
                models::image(&self.model, k, real).into()
            }
        }
    }
}

/// Runs `cfg` to completion (every frame finished or abandoned) or its time limit.
pub fn run(cfg: &SimConfig) -> Outcome {
    let per = cfg.edges as usize + 1;
    let n = per * cfg.clusters;
    let model = Arc::new(models::model(cfg.model, cfg.grid));
    let sockets = per - 1 + 3;
    let addresses: Vec<Ipv4Addr> = (0..n)
        .map(|i| address(i / per, (i % per) as NodeId))
        .collect();
    let mut memory = SocketMemory::new(n, sockets, cfg.socket_buffer);
    let nets = interfaces(&mut memory, &addresses, cfg.net.mtu, cfg.seed);
    let stack = model.stack().expect("stack");
    let grid = model.grid().expect("grid");
    let mut rt = Config::new(cfg.policy, &stack, grid);
    rt.tile_timeout = cfg.tile_timeout;
    // Liveness (`peer_dead`) is the link's alone: the machines only hear peers up and down.
    rt.frame_deadline = cfg.frame_deadline;
    rt.local_reuse = cfg.local_reuse;
    rt.link_reuse = cfg.link_reuse;
    rt.strip_fetch = cfg.strip_fetch;
    rt.results_ahead = cfg.results_ahead;
    rt.prefetch = cfg.prefetch;
    let mut nodes = Vec::with_capacity(n);
    let mut execs = Vec::with_capacity(n);
    for (i, net) in nets.iter().enumerate() {
        let (c, id) = (i / per, (i % per) as NodeId);
        let peers = (0..per as NodeId)
            .filter(|&p| p != id)
            .map(|p| (p, SocketAddr::from((address(c, p), PORT))))
            .collect();
        let link = link_config(id, PORT, peers, cfg.secure, [7; 32], cfg.peer_dead);
        let shared = Rc::new(RefCell::new(ExecShared::default()));
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
        let mut node = Node::new(
            SmolStack::new(net),
            link,
            rt,
            model.clone(),
            exec,
            Instant::ZERO,
        )
        .expect("node starts");
        node.set_transfer(cfg.transfer);
        nodes.push(node);
        execs.push(shared);
    }
    let media = (0..cfg.clusters)
        .map(|c| {
            let seed = cfg.seed ^ (c as u64) << 32;
            Medium::new(cfg.net.clone(), per, seed, link_faults(&cfg.faults))
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
    let limit = cfg.limit.total_micros();
    let mut core = Core::new(&addresses, &nets, nodes, execs, media, &cfg.faults, limit);
    let pictures = cfg
        .picture
        .then(|| Pictures::new(&model).expect("the bundled pictures decode"));
    let mut w = Cameras {
        cfg,
        model,
        pictures,
        sources,
        frames: Vec::new(),
        pending: BTreeMap::new(),
        references: BTreeMap::new(),
    };
    core.run(&mut w);
    Outcome {
        submitted: w.sources.iter().map(|s| s.submitted).sum(),
        frames: w.frames,
        trace_hash: core.hash.0,
        events: core.events,
        virtual_us: core.now,
        steps: core.steps,
        nodes: core
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (i / per, (i % per) as NodeId, n.stats()))
            .collect(),
        medium: core
            .media
            .iter()
            .map(|m| (m.bytes, m.packets, m.lost))
            .collect(),
        sent: core.media.iter().map(|m| m.sent.clone()).collect(),
        jobs: core.jobs(),
        ready_at: core.ready_at,
    }
}

impl<'n, 'a> Workload<SimNodeOf<'n, 'a>> for Cameras<'_> {
    /// Far enough apart that a link dialling a peer does not spin.
    const PAST_WAKE_US: u64 = 1000;

    /// Every node has a link to every other node of its cluster.
    fn connected(&self, core: &Core<'_, '_, SimNodeOf<'n, 'a>>) -> bool {
        core.nodes.iter().all(|n| n.peers_up() == core.per - 1)
    }

    fn on_ready(&mut self, core: &mut Core<'_, '_, SimNodeOf<'n, 'a>>) {
        for s in &self.sources {
            core.wake[s.node] = core.now;
        }
    }

    /// Every source submitted all its frames and saw them finish, or crashed.
    fn done(&self, core: &Core<'_, '_, SimNodeOf<'n, 'a>>) -> bool {
        self.sources
            .iter()
            .all(|s| (s.submitted >= self.cfg.frames && s.outstanding == 0) || !core.alive[s.node])
    }

    /// A source submits frames up to its in-flight budget.
    fn polled(&mut self, core: &mut Core<'_, '_, SimNodeOf<'n, 'a>>, i: usize) {
        let Some(s) = self.sources.iter().position(|s| s.node == i) else {
            return;
        };
        while self.sources[s].outstanding < self.cfg.inflight.max(1)
            && self.sources[s].submitted < self.cfg.frames
        {
            let k = self.sources[s].submitted as u32;
            let img = self.frame(k);
            match core.nodes[i].submit(Instant::from_micros(core.now), img) {
                Ok(key) => {
                    self.sources[s].submitted += 1;
                    self.sources[s].outstanding += 1;
                    let c = i / core.per;
                    self.pending.insert((c, key), (core.now, k));
                    core.trace(&[core.now, 3, i as u64, key.origin as u64, key.number as u64]);
                }
                Err(_) => break,
            }
        }
    }

    fn finished(&mut self, core: &mut Core<'_, '_, SimNodeOf<'n, 'a>>, i: usize, f: Finished) {
        let per = core.per;
        let c = i / per;
        // The gateway reports every frame; a source reports a frame it gave up on (e.g. its
        // gateway link dropped while the frame was in flight) that the gateway never saw.
        let at_gateway = i % per == GATEWAY as usize;
        if !at_gateway && (f.complete || i % per != f.frame.origin as usize) {
            return;
        }
        let Some((submitted, k)) = self.pending.remove(&(c, f.frame)) else {
            return;
        };
        let correct = match (self.cfg.kernels, &f.output) {
            (Kernels::Real, Some(out)) if f.complete => {
                if !self.references.contains_key(&k) {
                    // A reference that cannot run leaves nothing to match: not correct.
                    let r = models::reference(&self.model, &self.frame(k).input);
                    self.references.insert(k, r.unwrap_or_default());
                }
                let want = &self.references[&k];
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
        core.trace(&[
            core.now,
            5,
            i as u64,
            f.frame.origin as u64,
            f.frame.number as u64,
            f.complete as u64,
        ]);
        let src = c * per + f.frame.origin as usize;
        if let Some(s) = self.sources.iter_mut().find(|s| s.node == src) {
            s.outstanding = s.outstanding.saturating_sub(1);
            core.wake[src] = core.now;
        }
        self.frames.push(FrameResult {
            cluster: c,
            frame: f.frame,
            submitted,
            finished: core.now,
            complete: f.complete,
            correct,
            tiles_by: f.tiles_by,
        });
    }
}

/// `(kind, a, b)` words of a work item for the trace.
pub fn work_words(w: &tessera_core::runtime::Work) -> (u64, u64, u64) {
    use tessera_core::runtime::Work;
    match *w {
        Work::Tile { frame, tile, mode } => (
            1,
            ((frame.origin as u64) << 32) | frame.number as u64,
            tile as u64 | ((mode == tessera_core::ftp::Mode::Reuse) as u64) << 16,
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
