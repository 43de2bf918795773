//! The coded stage alone on a loopback cluster (std, [`run_loopback`]): a gateway and `W`
//! workers on 127.0.0.x, each a [`CodedNode`] with its own authenticated link (or, with
//! [`Transport::Datagram`], a [`CodedDgramNode`] on UDP behind a seeded lossy layer), the
//! workers on threads of their own that sleep until a socket is ready or the node's next
//! deadline; the gateway submits frames one after another from the caller's thread. Workers
//! may be absent from the start or stop answering after the first frame (a stall: sockets
//! open, silent).

extern crate alloc;
extern crate std;

use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use tessera_core::runtime::coded::CodedConfig;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{FrameKey, Key, Limits, NodeId, GATEWAY, MAX_PREFIX_LEN};

use super::{
    CodedDgramError, CodedDgramNode, CodedFinished, CodedModel, CodedNode, CodedNodeStats,
    CodedSubmitError, InlineShards,
};
use crate::cluster::{epoch_micros, loopback_addr};
use crate::dgram::{DgramConfig, DgramStats, LossyUdp};
use crate::driver::readiness::{Readiness, Wake};
use crate::driver::DriverError;
use crate::link::{LinkConfig, DEFAULT_BACKLOG, MAX_BACKOFF};
use crate::nal_std::{StdStack, StdUdpStack};
use tessera_core::rng::SplitMix64;

/// What carries the coded stage's messages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transport {
    /// Authenticated TCP links (the default).
    Tcp,
    /// Authenticated datagrams over UDP, every node dropping `loss` of the datagrams it
    /// sends (seeded; 0 loses nothing).
    Datagram {
        /// Fraction of datagrams each node drops on send.
        loss: f64,
    },
}

/// How to run the coded stage on loopback.
#[derive(Clone, Debug)]
pub struct LoopbackSpec {
    /// Workers (node ids `1..=workers`).
    pub workers: u16,
    /// Workers never started.
    pub absent: Vec<NodeId>,
    /// Workers that stop answering once the first frame finished.
    pub stall: Vec<NodeId>,
    /// Frames to run.
    pub frames: usize,
    /// The stage's frame deadline, allocator, grace.
    pub config: CodedConfig,
    /// Seed of the frames' inputs.
    pub seed: u64,
    /// Cluster key.
    pub key: [u8; 32],
    /// Port of every node (each on its own 127.0.0.x address; TCP or UDP).
    pub port: u16,
    /// What carries the shards and results.
    pub transport: Transport,
}

/// A frame of a loopback run.
#[derive(Clone, Debug)]
pub struct LoopbackFrame {
    /// What the stage produced.
    pub finished: CodedFinished,
    /// Its input (`in_len` values, one column).
    pub input: Vec<f32>,
}

/// The result of [`run_loopback`].
#[derive(Debug)]
pub struct LoopbackRun {
    /// Frames in the order they finished.
    pub frames: Vec<LoopbackFrame>,
    /// The gateway's counters.
    pub gateway: CodedNodeStats,
    /// The gateway's datagram counters, on [`Transport::Datagram`].
    pub dgram: Option<DgramStats>,
}

/// Why a loopback run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoopbackError {
    /// A node did not start.
    #[error("starting coded node {node}: {error}")]
    Start {
        /// The node.
        node: NodeId,
        /// Why.
        error: DriverError,
    },
    /// A node did not start on datagrams.
    #[error("starting coded node {node} on datagrams: {error}")]
    StartDgram {
        /// The node.
        node: NodeId,
        /// Why.
        error: CodedDgramError,
    },
    /// A poll set or a thread could not be created.
    #[error("starting a node's loop: {0}")]
    Io(io::Error),
    /// The gateway refused a frame.
    #[error("submitting a frame: {0}")]
    Submit(CodedSubmitError),
    /// The frames did not all finish in time.
    #[error(
        "{done} of {frames} frames finished after {limit:?} ({up} of {started} workers connected)"
    )]
    Timeout {
        /// Frames finished.
        done: usize,
        /// Frames asked for.
        frames: usize,
        /// The time allowed.
        limit: StdDuration,
        /// Workers connected to the gateway at the end.
        up: usize,
        /// Workers started.
        started: usize,
    },
}

/// What the loops need of a node, whatever its transport.
trait LoopNode: Send + 'static {
    fn id(&self) -> NodeId;
    fn poll(&mut self, now: Instant);
    fn poll_at(&self) -> Option<Instant>;
    /// More work to do at once (no waiting for readiness).
    fn more(&self) -> bool;
    /// Workers the gateway can reach (every started one on datagrams: no connections).
    fn reachable(&self, started: usize) -> usize;
    fn submit(&mut self, now: Instant, x: &[f32]) -> Result<FrameKey, CodedSubmitError>;
    fn take_finished(&mut self) -> Vec<CodedFinished>;
    fn in_flight(&self) -> usize;
    fn stats(&self) -> (CodedNodeStats, Option<DgramStats>);
}

/// `LoopNode` for a node type: the methods both node types share, and the three that differ.
macro_rules! loop_node {
    ($ty:ty, more: $more:expr, reachable: $reach:expr, dgram: $dgram:expr) => {
        impl LoopNode for $ty {
            fn id(&self) -> NodeId {
                self.id()
            }
            fn poll(&mut self, now: Instant) {
                self.poll(now)
            }
            fn poll_at(&self) -> Option<Instant> {
                self.poll_at()
            }
            fn more(&self) -> bool {
                $more(self)
            }
            fn reachable(&self, started: usize) -> usize {
                $reach(self, started)
            }
            fn submit(&mut self, now: Instant, x: &[f32]) -> Result<FrameKey, CodedSubmitError> {
                self.submit(now, x, 1)
            }
            fn take_finished(&mut self) -> Vec<CodedFinished> {
                self.take_finished()
            }
            fn in_flight(&self) -> usize {
                self.in_flight()
            }
            fn stats(&self) -> (CodedNodeStats, Option<DgramStats>) {
                (self.stats(), $dgram(self))
            }
        }
    };
}

type TcpNode = CodedNode<StdStack, InlineShards>;
type UdpNode = CodedDgramNode<LossyUdp<StdUdpStack>, InlineShards>;

loop_node!(
    TcpNode,
    more: |n: &TcpNode| n.link().more(),
    reachable: |n: &TcpNode, _| n.link().peers_up().count(),
    dgram: |_| None
);
loop_node!(
    UdpNode,
    more: |n: &UdpNode| n.more(),
    reachable: |_, started| started,
    dgram: |n: &UdpNode| Some(n.dgram_stats())
);

/// A worker on its own thread; dropping it stops and joins the thread.
struct Worker {
    stop: Arc<AtomicBool>,
    wake: Wake,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long a loop sleeps until `node` next needs a poll.
fn timeout(node: &dyn LoopNode, now: Instant) -> Option<StdDuration> {
    if node.more() {
        return Some(StdDuration::ZERO);
    }
    node.poll_at()
        .map(|at| StdDuration::from_micros(at.saturating_duration_since(now).total_micros()))
}

fn start_worker(
    mut node: Box<dyn LoopNode>,
    mut ready: Readiness,
    stalled: Option<Arc<AtomicBool>>,
) -> Result<Worker, LoopbackError> {
    let stop = Arc::new(AtomicBool::new(false));
    let wake = ready.waker();
    let flag = stop.clone();
    let clock = StdInstant::now();
    let thread = std::thread::Builder::new()
        .name(format!("tessera-coded-{}", node.id()))
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                // A stalled worker keeps its sockets open and stops answering.
                if stalled.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                    let _ = ready.wait(Some(StdDuration::from_millis(50)));
                    continue;
                }
                let now = Instant::from_micros(clock.elapsed().as_micros() as u64);
                node.poll(now);
                if ready.wait(timeout(&*node, now)).is_err() {
                    std::thread::sleep(StdDuration::from_millis(10));
                }
            }
        })
        .map_err(LoopbackError::Io)?;
    Ok(Worker {
        stop,
        wake,
        thread: Some(thread),
    })
}

/// Runs `spec.frames` frames of random inputs through `model` on a loopback cluster; each
/// frame is submitted once the previous one finished (the first once every started worker is
/// connected). Frames whose stage expired come back with their rows lost, not as errors.
pub fn run_loopback(
    model: Arc<CodedModel>,
    spec: &LoopbackSpec,
) -> Result<LoopbackRun, LoopbackError> {
    let addr = |id: NodeId| loopback_addr(id % 250, spec.port);
    let peers: Vec<(NodeId, SocketAddr)> = (0..=spec.workers).map(|id| (id, addr(id))).collect();
    let first_seq = epoch_micros().max(1);
    let make = |id: NodeId| -> Result<(Box<dyn LoopNode>, Readiness), LoopbackError> {
        let others: Vec<(NodeId, SocketAddr)> =
            peers.iter().copied().filter(|(q, _)| *q != id).collect();
        let ready = Readiness::new().map_err(LoopbackError::Io)?;
        let stack = ready.stack(addr(id).ip()).map_err(LoopbackError::Io)?;
        let node: Box<dyn LoopNode> = match spec.transport {
            Transport::Tcp => {
                let link = LinkConfig {
                    me: id,
                    port: spec.port,
                    peers: others,
                    key: Some(Key::new(spec.key)),
                    limits: Limits::LARGE,
                    first_seq,
                    peer_dead: Duration::from_secs(3),
                    retry: Duration::from_millis(20),
                    max_backoff: MAX_BACKOFF,
                    connect: Duration::from_secs(2),
                    backlog: DEFAULT_BACKLOG,
                    handshake: Default::default(),
                };
                let exec = InlineShards::default();
                Box::new(
                    CodedNode::new(stack, link, model.clone(), spec.config, exec)
                        .map_err(|error| LoopbackError::Start { node: id, error })?,
                )
            }
            Transport::Datagram { loss } => {
                let mut cfg = DgramConfig::new(id, spec.port, others, Key::new(spec.key));
                cfg.first_counter = first_seq;
                // Every message fits a reassembly slot: the largest layer input of a frame.
                let largest = (0..model.len())
                    .filter_map(|l| model.layer(l).map(|x| x.in_len * model.layer_cols(l, 1)))
                    .max()
                    .unwrap_or(0);
                cfg.max_message = cfg.max_message.max(4 * largest + MAX_PREFIX_LEN);
                let seed = spec.seed ^ 0x6c6f_7373 ^ u64::from(id) << 32;
                let udp = LossyUdp::new(stack.udp(), loss, seed);
                let exec = InlineShards::default();
                Box::new(
                    CodedDgramNode::new(udp, cfg, model.clone(), spec.config, exec)
                        .map_err(|error| LoopbackError::StartDgram { node: id, error })?,
                )
            }
        };
        Ok((node, ready))
    };
    let (mut gateway, mut ready) = make(GATEWAY)?;
    let stalled = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for id in (1..=spec.workers).filter(|id| !spec.absent.contains(id)) {
        let (node, r) = make(id)?;
        let s = spec.stall.contains(&id).then(|| stalled.clone());
        workers.push(start_worker(node, r, s)?);
    }
    let started = workers.len();
    let clock = StdInstant::now();
    let now = || Instant::from_micros(clock.elapsed().as_micros() as u64);
    let mut rng = SplitMix64::new(spec.seed.wrapping_add(7));
    let mut inputs = alloc::collections::BTreeMap::new();
    let mut frames = Vec::new();
    let deadline_ms = spec.config.frame_deadline.total_micros() / 1000;
    let limit = StdDuration::from_millis(10_000 + deadline_ms * (spec.frames as u64 + 1));
    while frames.len() < spec.frames {
        if clock.elapsed() > limit {
            return Err(LoopbackError::Timeout {
                done: frames.len(),
                frames: spec.frames,
                limit,
                up: gateway.reachable(started),
                started,
            });
        }
        let t = now();
        gateway.poll(t);
        // Wait for the whole cluster once; after that a worker that went silent (and was
        // dropped by the link) is the stage's business, not a reason to stop submitting.
        let ready_now = !inputs.is_empty() || gateway.reachable(started) >= started;
        if ready_now && gateway.in_flight() == 0 && inputs.len() == frames.len() {
            if frames.len() == 1 {
                stalled.store(true, Ordering::Relaxed);
            }
            let x: Vec<f32> = (0..model.in_len())
                .map(|_| rng.uniform_f32(0.0, 1.0))
                .collect();
            let key = gateway.submit(t, &x).map_err(LoopbackError::Submit)?;
            inputs.insert(key, x);
            continue;
        }
        for f in gateway.take_finished() {
            let input = inputs.get(&f.frame).cloned().unwrap_or_default();
            frames.push(LoopbackFrame { finished: f, input });
        }
        // Until a socket is ready or the next deadline; at most 50 ms, so the wait for the
        // cluster to connect is seen.
        let wait = timeout(&*gateway, t).map_or(StdDuration::from_millis(50), |d| {
            d.min(StdDuration::from_millis(50))
        });
        if ready.wait(Some(wait)).is_err() {
            std::thread::sleep(StdDuration::from_millis(1));
        }
    }
    drop(workers);
    let (gateway, dgram) = gateway.stats();
    Ok(LoopbackRun {
        frames,
        gateway,
        dgram,
    })
}
