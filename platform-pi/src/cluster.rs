//! Cluster nodes on Linux: the core driver over std sockets, a compute thread per node, and a
//! loop that polls the node until told to stop.
//!
//! Each node is one thread polling its sockets (non-blocking, bounded work per poll) plus one
//! compute thread, so a victim serves steal requests while it computes. Threads and sockets
//! belong to a [`RunningNode`]: stopping it (or dropping it) joins both and closes every fd.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use tessera_backends::driver::{
    execute_in, Done, Executor, Finished, Job, Model, ModelError, Node, NodeStats, Workspace,
};
use tessera_backends::link::LinkConfig;
use tessera_backends::nal_std::StdStack;
use tessera_core::ftp::{FusedStack, Grid, Partition};
use tessera_core::kernel::Kernels;
use tessera_core::runtime::Config;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Key, Limits, NodeId};

use crate::config::{Cluster, NodeKernel};
use crate::error::{error, Context, Error};

/// Runs jobs on a dedicated thread; an optional slowdown models a straggler (each job takes
/// `factor` times as long: the thread sleeps `(factor − 1) ×` the compute time after it).
pub struct ThreadExecutor {
    jobs: Option<Sender<Job>>,
    done: Receiver<Result<Done, ModelError>>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadExecutor {
    /// A compute thread for `model` with `kernels`.
    pub fn new<K: Kernels + Send + 'static>(kernels: K, model: Arc<Model>, slowdown: f64) -> Self {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tessera-compute".into())
            .spawn(move || {
                // Sized once for the worst tile; a model the plan rejects fails each job instead.
                let mut ws = Workspace::new(&model).unwrap_or_default();
                for job in job_rx {
                    let t0 = StdInstant::now();
                    let r = execute_in(&kernels, &model, job, &mut ws);
                    if slowdown > 1.0 {
                        std::thread::sleep(t0.elapsed().mul_f64(slowdown - 1.0));
                    }
                    if done_tx.send(r).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn compute thread");
        ThreadExecutor {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        }
    }
}

impl Executor for ThreadExecutor {
    fn start(&mut self, job: Job) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(job);
        }
    }

    fn poll(&mut self) -> Option<Result<Done, ModelError>> {
        self.done.try_recv().ok()
    }
}

impl Drop for ThreadExecutor {
    fn drop(&mut self) {
        // Closing the job channel ends the thread after its current job.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

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

/// A node running on its own threads.
pub struct RunningNode {
    id: NodeId,
    stop: Arc<AtomicBool>,
    frames: Sender<Vec<f32>>,
    finished: Receiver<Finished>,
    thread: Option<JoinHandle<NodeStats>>,
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
        };
        let cfg = runtime_config(&spec.cluster, &spec.model)?;
        let clock = Clock::new();
        let exec = match spec.cluster.kernel {
            NodeKernel::Portable => ThreadExecutor::new(
                tessera_core::kernel::Portable,
                spec.model.clone(),
                spec.slowdown,
            ),
            NodeKernel::Simd => ThreadExecutor::new(
                tessera_backends::kernels::Fma::new(),
                spec.model.clone(),
                spec.slowdown,
            ),
        };
        let mut node = Node::new(
            StdStack::new(addr.ip()),
            link,
            cfg,
            spec.model.clone(),
            exec,
            clock.now(),
        )
        .map_err(|e| {
            error(
                format!("starting node {} on {addr}", spec.id),
                e.to_string(),
            )
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let (frames, frame_rx) = mpsc::channel::<Vec<f32>>();
        let (fin_tx, finished) = mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("tessera-node-{}", spec.id))
            .spawn(move || {
                let mut queue: VecDeque<Vec<f32>> = VecDeque::new();
                while !flag.load(Ordering::Relaxed) {
                    queue.extend(frame_rx.try_iter());
                    let now = Clock::now(&clock);
                    if let Some(img) = queue.pop_front() {
                        if let Err(img_back) = node.submit(now, img.clone()).map_err(|_| img) {
                            queue.push_front(img_back);
                        }
                    }
                    node.step(&clock);
                    for f in node.take_finished() {
                        let _ = fin_tx.send(f);
                    }
                    // Sockets are non-blocking: a short nap bounds the loop's CPU use while
                    // keeping latency far below a tile's compute time.
                    std::thread::sleep(StdDuration::from_micros(300));
                }
                node.stats()
            })
            .context(|| "spawning a node thread")?;
        Ok(RunningNode {
            id: spec.id,
            stop,
            frames,
            finished,
            thread: Some(thread),
        })
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Queues a frame (CHW network input) at this node, a data source.
    pub fn submit(&self, image: Vec<f32>) {
        let _ = self.frames.send(image);
    }

    /// A finished frame, waiting at most `timeout`.
    pub fn next_finished(&self, timeout: StdDuration) -> Option<Finished> {
        self.finished.recv_timeout(timeout).ok()
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
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.halt();
    }
}
