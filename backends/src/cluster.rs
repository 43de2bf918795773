//! Starting a cluster node on Linux (std): what a node needs to know of its cluster
//! ([`ClusterSpec`]: policy, grid, key, timeouts, every node's one address) and
//! [`start_node`], which binds the node's address and runs it on its own threads (a
//! [`NodeThread`] polling the link, a compute thread, and, with a [`CodedRole`], the coded
//! stage on the same link, or on datagrams through the UDP port of the same number).

extern crate alloc;
extern crate std;

use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use tessera_core::ftp::{FusedStack, Grid, Partition, PlanError};
use tessera_core::runtime::coded::CodedConfig;
use tessera_core::runtime::Config;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Key, Limits, NodeId, Policy, Precision};

use crate::coded::tail::CodedTail;
use crate::coded::InlineShards;
use crate::coded::{BoxedGlue, BoxedShards, Chain, CodedModel, CodedModelError, CodedPart};
use crate::dgram::{
    BoxedLane, DevLoss, DgramConfig, DgramEndpoint, DgramError, LossyUdp, TailTransport,
};
use crate::driver::node_thread::NodeThread;
use crate::driver::readiness::Readiness;
use crate::driver::thread::{ForModel, ThreadExecutor};
use crate::driver::{BlockGrid, DriverError, Model, ModelError, Node};
use crate::link::{HandshakeConfig, LinkConfig, DEFAULT_BACKLOG, MAX_BACKOFF};
use crate::pipeline::{AnyKernel, KernelChoice};

/// A node's timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A tile not back this long after dispatch is re-dispatched.
    pub tile: StdDuration,
    /// A frame not done this long after submission fails at its source.
    pub frame: StdDuration,
    /// An idle thief waits at least this long between steal requests.
    pub steal_backoff: StdDuration,
    /// A peer silent this long is down (the link's liveness).
    pub peer_dead: StdDuration,
    /// A connect not established this long is abandoned (and retried with backoff).
    pub connect: StdDuration,
}

/// One node of a cluster: its id, its one address (FTP, BODP and coded traffic), whether it
/// feeds frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    /// Node id (0: the gateway).
    pub id: NodeId,
    /// Its address.
    pub addr: SocketAddr,
    /// A data source (a camera).
    pub source: bool,
}

/// What every node of a cluster agrees on.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    /// Scheduling policy.
    pub policy: Policy,
    /// Tile grid (rows, columns).
    pub grid: (u32, u32),
    /// Fused layers.
    pub layers: usize,
    /// Cluster key (`None`: unauthenticated, measurements only).
    pub key: Option<[u8; 32]>,
    /// Conv kernels of every node.
    pub kernel: KernelChoice,
    /// Threads each node's convolutions run on (tiles and tail alike; results do not depend
    /// on it).
    pub threads: usize,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// The nodes.
    pub nodes: Vec<ClusterNode>,
    /// WST-S: strips stay on the node that made them, thieves recompute
    /// (`Config::local_reuse`); every node of the cluster must agree.
    pub local_reuse: bool,
    /// WST-S, `reuse = "link"` (over `local_reuse`): strips stay where they were made and go
    /// edge to edge to the node of a level-1 tile when its link model says fetching beats
    /// recomputing (`Config::link_reuse`); every node of the cluster must agree.
    pub link_reuse: bool,
    /// Wire precision of the tile results and strips every node sends (`f32`: bit-exact).
    pub transfer: Precision,
    /// How a data source paces its tiles by the gateway's receipts and whether thieves
    /// prefetch (`Config::results_ahead`, `Config::prefetch`).
    pub pacing: Pacing,
}

/// Pacing of work stealing to the links (see `Config::results_ahead`, `Config::prefetch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// A source's own results unconfirmed by the gateway before it leaves its tiles to
    /// thieves (0: no limit).
    pub results_ahead: u8,
    /// A thief asks for its next tile while computing one.
    pub prefetch: bool,
}

impl Default for Pacing {
    /// Two results ahead (one on the wire, one queued behind it, so the uplink never idles
    /// for want of a result), prefetch on.
    fn default() -> Self {
        Pacing {
            results_ahead: 2,
            prefetch: true,
        }
    }
}

impl ClusterSpec {
    /// A loopback cluster: the gateway on 127.0.0.1, edge `i` on 127.0.0.(1+i), all on
    /// `port`; edges `1..=sources` feed frames; portable kernels; timeouts generous enough
    /// for a loaded test machine (tile 20 s, frame 300 s, peer dead 3 s).
    pub fn loopback(
        policy: Policy,
        grid: (u32, u32),
        edges: u16,
        sources: u16,
        port: u16,
        key: Option<[u8; 32]>,
        layers: usize,
    ) -> ClusterSpec {
        let nodes = (0..=edges)
            .map(|id| ClusterNode {
                id,
                addr: loopback_addr(id, port),
                source: id >= 1 && id <= sources,
            })
            .collect();
        ClusterSpec {
            policy,
            grid,
            layers,
            key,
            kernel: KernelChoice::Portable,
            threads: 1,
            timeouts: Timeouts {
                tile: StdDuration::from_secs(20),
                frame: StdDuration::from_secs(300),
                steal_backoff: StdDuration::from_millis(20),
                peer_dead: StdDuration::from_secs(3),
                connect: StdDuration::from_secs(2),
            },
            nodes,
            local_reuse: true,
            link_reuse: false,
            transfer: Precision::F32,
            pacing: Pacing::default(),
        }
    }

    /// Node `id`.
    pub fn node(&self, id: NodeId) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The runtime configuration of this cluster for `model`'s network. Liveness
    /// (`peer_dead`) is the link's alone: the machines only hear peers up and down.
    pub fn runtime_config(&self, model: &Model) -> Result<Config, PlanError> {
        // Unaligned: the extents and link-cost estimates need no block grid.
        let stack = FusedStack::new(&model.net, model.layers)?;
        let grid = Grid::new(self.grid.0, self.grid.1, Partition::Darknet, &stack)?;
        let mut cfg = Config::new(self.policy, &stack, grid);
        cfg.tile_timeout = dur(self.timeouts.tile);
        cfg.frame_deadline = dur(self.timeouts.frame);
        cfg.steal_backoff = dur(self.timeouts.steal_backoff);
        cfg.local_reuse = self.local_reuse;
        cfg.link_reuse = self.link_reuse;
        cfg.results_ahead = self.pacing.results_ahead;
        cfg.prefetch = self.pacing.prefetch;
        Ok(cfg)
    }
}

/// Address of node `id` of a loopback cluster on `port` (127.0.0.(1+id)).
pub fn loopback_addr(id: NodeId, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + id as u8)), port)
}

fn dur(d: StdDuration) -> Duration {
    Duration::from_micros(d.as_micros() as u64)
}

/// Microseconds since the Unix epoch (0 on a clock set before it): the per-start value behind
/// frame numbers and a link's first sequence number (`LinkConfig::first_seq`, which must grow
/// across restarts with the same key).
pub fn epoch_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A frame number that grows with each start: the low 32 bits of microseconds since the Unix
/// epoch (a restart within the same run of 71 minutes always starts past the previous frames).
pub fn per_start_frame_number() -> u32 {
    epoch_micros() as u32
}

/// A monotonic clock for the core, in microseconds since it was made.
#[derive(Clone, Copy, Debug)]
pub struct MonoClock(StdInstant);

impl MonoClock {
    /// A clock starting now.
    pub fn new() -> Self {
        MonoClock(StdInstant::now())
    }
}

impl Default for MonoClock {
    fn default() -> Self {
        Self::new()
    }
}

impl crate::driver::Clock for MonoClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.0.elapsed().as_micros() as u64)
    }
}

/// A node's part in a coded tail, run on the node's own link (`Node::attach_coded`).
#[derive(Clone)]
pub enum CodedRole {
    /// The coded gateway (node 0): every complete frame's fused output enters the tail.
    Gateway {
        /// The tail (its model, columns and glue).
        tail: Arc<CodedTail>,
        /// Frame deadline and data grace of the stage.
        config: CodedConfig,
    },
    /// A coded worker: computes its shards of the model on a thread of its own.
    Worker(Arc<CodedModel>),
}

/// How one node starts, beyond the cluster.
#[derive(Clone)]
pub struct NodeOptions {
    /// Straggler factor (1.0: normal speed; 2.0: every job takes twice as long).
    pub slowdown: f64,
    /// A key other than the cluster's (`Some(None)`: unauthenticated), e.g. a wrong one.
    pub key: Option<Option<[u8; 32]>>,
    /// Number of this source's first frame (`None`: 0). A process that may restart passes
    /// [`per_start_frame_number`] so it never reuses a number the gateway may still hold.
    pub first_frame: Option<u32>,
    /// Gateway: a source hears `FrameDone` only once `NodeThread::frame_done` says the final
    /// result is made (`runtime::Config::confirm_done`); until then the frame holds its slot.
    pub confirm_done: bool,
    /// The node's part in a coded tail.
    pub coded: Option<CodedRole>,
    /// Fingerprint of the model this node runs, carried by its `Hello`: peers with another
    /// are refused ([`HandshakeConfig::model`](crate::link::HandshakeConfig::model)).
    pub model_fingerprint: u64,
    /// How the coded part's tasks and results travel (with a [`CodedRole`]).
    pub tail_transport: TailTransport,
    /// A coded worker's sends per result on datagrams (`CodedConfig::copies`; the gateway's
    /// come from its role's configuration).
    pub worker_copies: u8,
    /// Development only: drop this share of the node's coded datagrams on purpose
    /// ([`DevLoss`]; ignored on the link).
    pub dev_loss: Option<DevLoss>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            slowdown: 1.0,
            key: None,
            first_frame: None,
            confirm_done: false,
            coded: None,
            model_fingerprint: 0,
            tail_transport: TailTransport::Tcp,
            worker_copies: 1,
            dev_loss: None,
        }
    }
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No node with this id in the cluster.
    #[error("no node {0} in the cluster")]
    NoNode(NodeId),
    /// The cluster's grid does not fit the model.
    #[error("the cluster's grid: {0}")]
    Plan(PlanError),
    /// `kernel = "winograd"` with a policy that splits layers into stripes (BODP, MoDNN):
    /// its blocks are aligned for FTP tiles only.
    #[error("kernel = \"winograd\" runs FTP tiles only, not the {0} policy's stripes")]
    WinogradStripes(&'static str),
    /// The coded tail's model or plan is unusable.
    #[error("the coded stage: {0}")]
    Coded(CodedModelError),
    /// The node could not listen on its address.
    #[error("listening on {addr}: {error}")]
    Driver {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: DriverError,
    },
    /// The coded datagrams are authenticated with the cluster key, and there is none.
    #[error("tail_transport = \"datagram\" needs the cluster key (insecure = true has none)")]
    DatagramsNeedKey,
    /// The coded stage's UDP socket could not be opened.
    #[error("the coded datagrams on {addr}: {error}")]
    Datagram {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: DgramError,
    },
    /// A poll set or a thread could not be created.
    #[error("creating {what}: {error}")]
    Io {
        /// What was being created.
        what: &'static str,
        /// Why.
        error: io::Error,
    },
}

/// The kernels of `cluster`'s tiles for `model`: `winograd` planned for the cluster's grid
/// (F4, F2 or direct per layer, the same on every node), the direct kernels otherwise.
pub fn tile_kernels(cluster: &ClusterSpec, model: &Model) -> Result<AnyKernel, StartError> {
    if cluster.kernel != KernelChoice::Winograd {
        return Ok(AnyKernel::of(cluster.kernel).with_threads(cluster.threads));
    }
    if !cluster.kernel.runs(cluster.policy) {
        return Err(StartError::WinogradStripes(cluster.policy.name()));
    }
    let stack = FusedStack::new(&model.net, model.layers).map_err(StartError::Plan)?;
    let grid = Grid::new(cluster.grid.0, cluster.grid.1, Partition::Darknet, &stack)
        .map_err(StartError::Plan)?;
    // Threads before the kernels are prepared: the direct layers are packed per thread.
    AnyKernel::planned(cluster.kernel, &stack, &grid)
        .map(|k| k.with_threads(cluster.threads))
        .map_err(StartError::Plan)
}

/// The kernels of a node's part of the tail, on the cluster's threads: the direct kernels of
/// its choice (the tail's and the coded shards' convolutions run direct whatever the tiles
/// run), whether the gateway runs the whole tail or the edges compute coded shards of it.
pub fn tail_kernels(cluster: &ClusterSpec) -> AnyKernel {
    AnyKernel::of(cluster.kernel).with_threads(cluster.threads)
}

/// A node's tile kernels readied for its model: a Winograd kernel transforms the Winograd
/// layers' filters and packs the direct layers' weights once, holding the model (unprepared,
/// every tile's call would do both again: about 4x the time of a YOLOv2 3x3 frame's tiles).
impl ForModel for AnyKernel {
    fn for_model(&self, model: &Arc<Model>) -> Result<Self, ModelError> {
        match self {
            AnyKernel::Winograd(w) => Ok(AnyKernel::Winograd(
                w.clone().prepare_owned(model.clone(), Model::weights)?,
            )),
            k => Ok(k.clone()),
        }
    }
}

/// `model` with its plans aligned to the block grid of `cluster`'s tile kernels
/// ([`tile_kernels`]; unchanged for direct kernels or when already aligned). Taken over when
/// the caller holds no other reference, copied otherwise: nodes sharing one process align
/// once before they start ([`crate::local::run_local`] does).
pub fn node_model(cluster: &ClusterSpec, model: Arc<Model>) -> Result<Arc<Model>, StartError> {
    let tiles = tile_kernels(cluster, &model)?;
    Ok(on_block_grid(&tiles, model))
}

/// `model` aligned to the block grid of `tiles` (see [`node_model`]).
fn on_block_grid(tiles: &AnyKernel, model: Arc<Model>) -> Arc<Model> {
    let AnyKernel::Winograd(w) = tiles else {
        return model;
    };
    if model.has_blocks() {
        return model;
    }
    let owned = Arc::try_unwrap(model).unwrap_or_else(|shared| (*shared).clone());
    Arc::new(owned.with_blocks(BlockGrid(Arc::new(w.clone()))))
}

fn io(what: &'static str) -> impl FnOnce(io::Error) -> StartError {
    move |error| StartError::Io { what, error }
}

/// Every node of `cluster` but `id`, with its address (TCP and UDP alike).
fn link_peers(cluster: &ClusterSpec, id: NodeId) -> Vec<(NodeId, SocketAddr)> {
    cluster
        .nodes
        .iter()
        .filter(|n| n.id != id)
        .map(|n| (n.id, n.addr))
        .collect()
}

/// Starts node `id` of `cluster` with `model` (the fused layers' parameters): binds its
/// address, then polls until the returned [`NodeThread`] is stopped or dropped.
pub fn start_node(
    cluster: &ClusterSpec,
    id: NodeId,
    model: Arc<Model>,
    options: NodeOptions,
) -> Result<NodeThread, StartError> {
    let me = cluster.node(id).ok_or(StartError::NoNode(id))?;
    let addr = me.addr;
    let link = LinkConfig {
        me: id,
        port: addr.port(),
        peers: link_peers(cluster, id),
        key: options.key.unwrap_or(cluster.key).map(Key::new),
        limits: Limits::LARGE,
        first_seq: epoch_micros().max(1),
        peer_dead: dur(cluster.timeouts.peer_dead),
        retry: Duration::from_millis(50),
        max_backoff: MAX_BACKOFF,
        connect: dur(cluster.timeouts.connect),
        backlog: DEFAULT_BACKLOG,
        handshake: HandshakeConfig {
            model: options.model_fingerprint,
            ..HandshakeConfig::DEFAULT
        },
    };
    // Planned once: the model's block grid and the compute thread's kernels are the same plan.
    let tiles = tile_kernels(cluster, &model)?;
    let model = on_block_grid(&tiles, model);
    let mut cfg = cluster.runtime_config(&model).map_err(StartError::Plan)?;
    cfg.confirm_done = options.confirm_done;
    let clock = MonoClock::new();
    let ready = Readiness::new().map_err(io("a poll set"))?;
    let wake = ready.waker();
    let slowdown = options.slowdown;
    let tile_thread = |tiles| {
        ThreadExecutor::new(tiles, model.clone(), slowdown, Some(wake.clone()))
            .map_err(io("a compute thread"))
    };
    let (exec, coded) = match options.coded {
        None => (tile_thread(tiles)?, None),
        Some(CodedRole::Gateway { tail, config }) => {
            let kernel = tail_kernels(cluster);
            let shards: BoxedShards = Box::new(InlineShards::new(kernel.clone()));
            let glue: BoxedGlue = Box::new(tail.glue(kernel));
            let part = (tail.model().clone(), config, shards, glue, tail.cols());
            (tile_thread(tiles)?, Some(part))
        }
        // A coded worker computes its tiles and its shards on one thread (see `with_shards`),
        // so both kernels share one set of workers.
        Some(CodedRole::Worker(coded_model)) => {
            let shards = tiles.direct();
            let (tiles, shards) = ThreadExecutor::with_shards(
                tiles,
                shards,
                model.clone(),
                slowdown,
                Some(wake.clone()),
            )
            .map_err(io("a compute thread"))?;
            // A worker's part takes only the copies of the stage's configuration.
            let config = CodedConfig {
                copies: options.worker_copies,
                ..CodedConfig::new(Duration::from_secs(1))
            };
            let part = (
                coded_model,
                config,
                Box::new(shards) as BoxedShards,
                Box::new(Chain) as BoxedGlue,
                0,
            );
            (tiles, Some(part))
        }
    };
    let stack = ready.stack(addr.ip()).map_err(io("the node's sockets"))?;
    // Same address and poll set: a coded datagram wakes the node loop as a segment does.
    let udp = stack.udp();
    let now = crate::driver::Clock::now(&clock);
    let mut node = Node::new(stack, link, cfg, model, exec, now)
        .map_err(|error| StartError::Driver { addr, error })?;
    if let Some(first) = options.first_frame {
        node.set_first_frame(first);
    }
    node.set_transfer(cluster.transfer);
    if let Some((model, config, exec, glue, cols)) = coded {
        let part = CodedPart::new(id, model, config, exec, glue).map_err(StartError::Coded)?;
        node.attach_coded(part, cols);
        if options.tail_transport == TailTransport::Datagram {
            let key = options
                .key
                .unwrap_or(cluster.key)
                .ok_or(StartError::DatagramsNeedKey)?;
            let mut dgram =
                DgramConfig::new(id, addr.port(), link_peers(cluster, id), Key::new(key));
            dgram.first_counter = epoch_micros().max(1);
            // A coded message is worth its sender's lifetime (the layer's budget), up to the
            // frame's deadline: a node that lags (a loaded CPU) still completes it in time.
            // Slots of messages that went quiet are taken by newer ones, so a long cap does
            // not let lost fragments hold the reassembler.
            dgram.max_lifetime = dur(cluster.timeouts.frame).max(dgram.max_lifetime);
            let error = |error| StartError::Datagram { addr, error };
            let lane: BoxedLane = match options.dev_loss {
                None => Box::new(DgramEndpoint::new(udp, dgram).map_err(error)?),
                Some(l) => {
                    let seed = l.seed.unwrap_or(u64::from(id));
                    let lossy = LossyUdp::new(udp, l.loss, seed);
                    Box::new(DgramEndpoint::new(lossy, dgram).map_err(error)?)
                }
            };
            node.set_coded_lane(lane);
        }
    }
    NodeThread::spawn(node, ready, clock, format!("tessera-node-{id}"))
        .map_err(io("the node thread"))
}
