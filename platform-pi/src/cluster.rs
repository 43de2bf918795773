//! Cluster nodes on Linux: the core driver over std sockets, a compute thread per node, and a
//! loop that polls the node until told to stop.
//!
//! Each node is one thread polling its sockets (non-blocking, bounded work per poll; it
//! sleeps until there is something to do, see [`NodeThread`]) plus one compute thread, so a
//! victim serves steal requests while it computes. Threads and sockets belong to a
//! [`RunningNode`]: stopping it (or dropping it) joins both and closes every fd.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use tessera_backends::driver::node_thread::NodeThread;
pub use tessera_backends::driver::node_thread::{SubmitError, FRAME_QUEUE};
use tessera_backends::driver::readiness::Readiness;
pub use tessera_backends::driver::thread::ThreadExecutor;
use tessera_backends::driver::{Finished, Model, Node, NodeStats};
use tessera_backends::link::{LinkConfig, DEFAULT_BACKLOG, MAX_BACKOFF};
use tessera_core::ftp::{FusedStack, Grid, Partition};
use tessera_core::runtime::Config;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{FrameKey, Key, Limits, NodeId};

use crate::config::{Cluster, NodeKernel};
use crate::error::{error, Context, Error};

/// A monotonic clock for the core, in microseconds since the node started.
#[derive(Clone, Copy, Debug)]
pub struct Clock(StdInstant);

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock(StdInstant::now())
    }

    /// Time since start.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.0.elapsed().as_micros() as u64)
    }
}

impl tessera_backends::driver::Clock for Clock {
    fn now(&self) -> Instant {
        Clock::now(self)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

fn dur(d: StdDuration) -> Duration {
    Duration::from_micros(d.as_micros() as u64)
}

/// Everything a node needs to start.
#[derive(Clone)]
pub struct NodeSpec {
    /// Node id (0: gateway).
    pub id: NodeId,
    /// The cluster.
    pub cluster: Cluster,
    /// The shared model (fused layers' parameters).
    pub model: Arc<Model>,
    /// Straggler factor (1.0: normal speed).
    pub slowdown: f64,
    /// Key override (a peer with the wrong key, for tests).
    pub key_override: Option<Option<[u8; 32]>>,
    /// Number of this source's first frame (`None`: 0). A process that may restart passes
    /// [`per_start_frame_number`] so it never reuses a number the gateway may still hold.
    pub first_frame: Option<u32>,
    /// Gateway: a source hears `FrameDone` only once [`RunningNode::frame_done`] says the final
    /// result is made (`runtime::Config::confirm_done`); until then the frame holds its slot.
    pub confirm_done: bool,
}

/// A frame number that grows with each start: the low 32 bits of microseconds since the Unix
/// epoch (a restart within the same run of 71 minutes always starts past the previous frames).
pub fn per_start_frame_number() -> u32 {
    epoch_micros() as u32
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

/// The runtime configuration of a cluster file.
pub fn runtime_config(cluster: &Cluster, model: &Model) -> Result<Config, Error> {
    let stack = FusedStack::new(&model.net, model.layers).context(|| "fusing")?;
    let grid =
        Grid::new(cluster.grid.0, cluster.grid.1, Partition::Darknet, &stack).context(|| "grid")?;
    let mut cfg = Config::new(cluster.policy, &stack, grid);
    cfg.tile_timeout = dur(cluster.timeouts.tile);
    cfg.frame_deadline = dur(cluster.timeouts.frame);
    cfg.steal_backoff = dur(cluster.timeouts.steal_backoff);
    // Liveness (`peer_dead`) is the link's alone: the machines only hear peers up and down.
    Ok(cfg)
}

/// A node running on its own threads (see [`NodeThread`]).
pub struct RunningNode(NodeThread);

impl RunningNode {
    /// Starts node `spec.id`: binds its address, then polls until stopped.
    pub fn start(spec: NodeSpec) -> Result<RunningNode, Error> {
        let me = spec.cluster.node(spec.id).ok_or_else(|| {
            error(
                "starting a node",
                format!("no node {} in the cluster", spec.id),
            )
        })?;
        let addr: SocketAddr = me.addr;
        let key = spec.key_override.unwrap_or(spec.cluster.key).map(Key::new);
        let first_seq = epoch_micros().max(1);
        let link = LinkConfig {
            me: spec.id,
            port: addr.port(),
            peers: spec
                .cluster
                .nodes
                .iter()
                .filter(|n| n.id != spec.id)
                .map(|n| (n.id, n.addr))
                .collect(),
            key,
            limits: Limits::LARGE,
            first_seq,
            peer_dead: dur(spec.cluster.timeouts.peer_dead),
            retry: Duration::from_millis(50),
            max_backoff: MAX_BACKOFF,
            connect: dur(spec.cluster.timeouts.connect),
            backlog: DEFAULT_BACKLOG,
            handshake: Default::default(),
        };
        let mut cfg = runtime_config(&spec.cluster, &spec.model)?;
        cfg.confirm_done = spec.confirm_done;
        let clock = Clock::new();
        let ready = Readiness::new().context(|| "creating a poll set")?;
        let wake = ready.waker();
        let exec = match spec.cluster.kernel {
            NodeKernel::Portable => ThreadExecutor::new(
                tessera_core::kernel::Portable,
                spec.model.clone(),
                spec.slowdown,
                Some(wake.clone()),
            ),
            NodeKernel::Simd => ThreadExecutor::new(
                tessera_backends::kernels::Fma::new(),
                spec.model.clone(),
                spec.slowdown,
                Some(wake.clone()),
            ),
        }
        .context(|| "spawning a compute thread")?;
        let stack = ready.stack(addr.ip()).context(|| "registering sockets")?;
        let mut node =
            Node::new(stack, link, cfg, spec.model.clone(), exec, clock.now()).map_err(|e| {
                error(
                    format!("starting node {} on {addr}", spec.id),
                    e.to_string(),
                )
            })?;
        if let Some(first) = spec.first_frame {
            node.set_first_frame(first);
        }
        NodeThread::spawn(node, ready, clock, format!("tessera-node-{}", spec.id))
            .map(RunningNode)
            .context(|| "spawning a node thread")
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.0.id()
    }

    /// Queues a frame (CHW network input) at this node, a data source; blocks while
    /// [`FRAME_QUEUE`] frames are waiting (back-pressure, never growth).
    pub fn submit(&self, image: Vec<f32>) -> Result<(), SubmitError> {
        self.0.submit(image)
    }

    /// Queues a frame without waiting ([`SubmitError::Full`] hands it back).
    pub fn try_submit(&self, image: Vec<f32>) -> Result<(), SubmitError> {
        self.0.try_submit(image)
    }

    /// A finished frame, waiting at most `timeout`.
    pub fn next_finished(&self, timeout: StdDuration) -> Option<Finished> {
        self.0.next_finished(timeout)
    }

    /// Gateway started with [`NodeSpec::confirm_done`]: `frame`'s final result is made
    /// (`complete`) or given up; its source is told `FrameDone` and its slot is freed.
    pub fn frame_done(&self, frame: FrameKey, complete: bool) {
        self.0.frame_done(frame, complete)
    }

    /// Finished frames available now.
    pub fn try_finished(&self) -> Vec<Finished> {
        self.0.try_finished()
    }

    /// The node's counters as of its last poll (while it runs).
    pub fn stats(&self) -> NodeStats {
        self.0.stats()
    }

    /// Stops the node, joins its threads and closes its sockets; returns its counters.
    pub fn stop(self) -> NodeStats {
        self.0.stop()
    }
}
