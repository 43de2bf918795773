//! Cluster nodes on Linux: the core driver over std sockets, a compute thread per node, and a
//! loop that polls the node until told to stop.
//!
//! Each node is one thread polling its sockets (non-blocking, bounded work per poll) plus one
//! compute thread, so a victim serves steal requests while it computes. Between polls the loop
//! sleeps until the node's `poll_at`, a socket's readiness, or a wake (a finished job, a
//! submitted frame, a stop), so an idle node costs no CPU. Threads and sockets belong to a
//! [`RunningNode`]: stopping it (or dropping it) joins both and closes every fd.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use tessera_backends::driver::readiness::{Readiness, Wake};
pub use tessera_backends::driver::thread::ThreadExecutor;
use tessera_backends::driver::{Finished, Model, Node, NodeStats};
use tessera_backends::link::{LinkConfig, DEFAULT_BACKLOG, MAX_BACKOFF};
use tessera_core::ftp::{FusedStack, Grid, Partition};
use tessera_core::runtime::Config;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Key, Limits, NodeId};

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
    // Liveness is the link's (any bytes from the peer within `peer_dead`): the runtime's own
    // whole-message check would count a heartbeat queued behind a multi-MiB frame as silence.
    cfg.peer_timeout = dur(cluster.timeouts.frame);
    cfg.heartbeat_interval = dur(cluster.timeouts.peer_dead / 4);
    Ok(cfg)
}

/// Frames a source queues ahead of its node (beyond the runtime's own frames in flight,
/// `MAX_FRAMES_PER_SOURCE`): [`RunningNode::submit`] blocks while the queue is full.
pub const FRAME_QUEUE: usize = 2;

/// Why a frame was not queued.
#[derive(Debug)]
pub enum SubmitError {
    /// [`FRAME_QUEUE`] frames are waiting already (only from [`RunningNode::try_submit`]);
    /// the frame is handed back.
    Full(Vec<f32>),
    /// The node has stopped.
    Stopped,
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::Full(_) => write!(f, "frame queue full ({FRAME_QUEUE} frames waiting)"),
            SubmitError::Stopped => f.write_str("the node has stopped"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// A node running on its own threads.
pub struct RunningNode {
    id: NodeId,
    stop: Arc<AtomicBool>,
    wake: Wake,
    frames: SyncSender<Vec<f32>>,
    finished: Receiver<Finished>,
    stats: Arc<Mutex<NodeStats>>,
    thread: Option<JoinHandle<NodeStats>>,
}

/// The node loop: poll, hand frames to the node while it takes them, report finished frames,
/// sleep until the next deadline, readiness or wake.
fn run<X: tessera_backends::driver::Executor>(
    mut node: Node<tessera_backends::nal_std::StdStack, X>,
    mut ready: Readiness,
    clock: Clock,
    stop: &AtomicBool,
    frames: Receiver<Vec<f32>>,
    finished: mpsc::Sender<Finished>,
    stats: &Mutex<NodeStats>,
) -> NodeStats {
    // A frame taken off the queue that the node has not accepted yet (no gateway, or its
    // frames in flight at the limit): retried after the next event, never dropped.
    let mut held: Option<Vec<f32>> = None;
    while !stop.load(Ordering::Relaxed) {
        node.poll(clock.now());
        loop {
            if held.is_none() {
                held = frames.try_recv().ok();
            }
            let Some(img) = held.take() else { break };
            // The node consumes the image even when it refuses it; the copy is only made
            // while a frame waits, bounded by the queue.
            if node.submit(clock.now(), img.clone()).is_err() {
                held = Some(img);
                break;
            }
        }
        for f in node.take_finished() {
            let _ = finished.send(f);
        }
        if let Ok(mut s) = stats.lock() {
            *s = node.stats();
        }
        // Readiness is edge-triggered: work the link left behind is not reported again.
        let timeout = if node.link().more() {
            Some(StdDuration::ZERO)
        } else {
            node.poll_at().map(|at| {
                StdDuration::from_micros(at.saturating_duration_since(clock.now()).total_micros())
            })
        };
        if ready.wait(timeout).is_err() {
            // The poll itself failed (not a socket): fall back to a short nap so the node
            // keeps serving its peers rather than spinning or stopping.
            std::thread::sleep(StdDuration::from_millis(10));
        }
    }
    node.stats()
}

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
        let first_seq = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
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
        };
        let cfg = runtime_config(&spec.cluster, &spec.model)?;
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
        let node =
            Node::new(stack, link, cfg, spec.model.clone(), exec, clock.now()).map_err(|e| {
                error(
                    format!("starting node {} on {addr}", spec.id),
                    e.to_string(),
                )
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let (frames, frame_rx) = mpsc::sync_channel::<Vec<f32>>(FRAME_QUEUE);
        let (fin_tx, finished) = mpsc::channel();
        let flag = stop.clone();
        let stats = Arc::new(Mutex::new(NodeStats::default()));
        let shared = stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("tessera-node-{}", spec.id))
            .spawn(move || run(node, ready, clock, &flag, frame_rx, fin_tx, &shared))
            .context(|| "spawning a node thread")?;
        Ok(RunningNode {
            id: spec.id,
            stop,
            wake,
            frames,
            finished,
            stats,
            thread: Some(thread),
        })
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Queues a frame (CHW network input) at this node, a data source. Back-pressure: blocks
    /// while [`FRAME_QUEUE`] frames are waiting, so a source never holds more than that plus
    /// the runtime's frames in flight.
    pub fn submit(&self, image: Vec<f32>) -> Result<(), SubmitError> {
        self.frames.send(image).map_err(|_| SubmitError::Stopped)?;
        self.wake.wake();
        Ok(())
    }

    /// Queues a frame without waiting: [`SubmitError::Full`] hands it back when the queue is
    /// full.
    pub fn try_submit(&self, image: Vec<f32>) -> Result<(), SubmitError> {
        self.frames.try_send(image).map_err(|e| match e {
            TrySendError::Full(img) => SubmitError::Full(img),
            TrySendError::Disconnected(_) => SubmitError::Stopped,
        })?;
        self.wake.wake();
        Ok(())
    }

    /// A finished frame, waiting at most `timeout`.
    pub fn next_finished(&self, timeout: StdDuration) -> Option<Finished> {
        self.finished.recv_timeout(timeout).ok()
    }

    /// The node's counters as of its last poll (while it runs).
    pub fn stats(&self) -> NodeStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Finished frames available now.
    pub fn try_finished(&self) -> Vec<Finished> {
        self.finished.try_iter().collect()
    }

    /// Stops the node, joins its threads and closes its sockets; returns its counters.
    pub fn stop(mut self) -> NodeStats {
        self.halt().unwrap_or_default()
    }

    fn halt(&mut self) -> Option<NodeStats> {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.wake();
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.halt();
    }
}
