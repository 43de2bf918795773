//! The coded tail (`tessera_backends::coded::tail`) on a loopback cluster
//! ([`CodedTailStage`]): one coded worker node per edge on its own thread (its own 127.0.0.x
//! address on a second port) and the coded gateway node, polled by the caller's loop.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use tessera_backends::coded::tail::{CodedTail, TailGlue};
use tessera_backends::coded::{
    CodedFinished, CodedNode, CodedNodeStats, InlineShards, ThreadShards,
};
use tessera_backends::link::LinkConfig;
use tessera_backends::nal_std::StdStack;
use tessera_backends::pipeline::AnyKernel;
use tessera_core::kernel::Portable;
use tessera_core::runtime::coded::CodedConfig;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{FrameKey, Key, Limits, NodeId, GATEWAY};

use crate::config::NodeKernel;
use crate::error::{error, Context, Error};

/// How to start a [`CodedTailStage`].
#[derive(Clone, Debug)]
pub struct StageSpec {
    /// Edges (coded workers 1..=edges).
    pub edges: u16,
    /// Port of every coded node (each on its 127.0.0.x address, as the FTP cluster).
    pub port: u16,
    /// Cluster key (`None`: unauthenticated).
    pub key: Option<[u8; 32]>,
    /// Kernels of the workers and the gateway's pools.
    pub kernel: NodeKernel,
    /// A frame leaves the stage this long after it entered, complete or not.
    pub deadline: StdDuration,
    /// Once parity could decode a layer, how long its pending data shards may still come (then
    /// the layer is the data shards' exact rows rather than a float decode).
    pub data_grace: StdDuration,
    /// Workers computing `factor` times slower.
    pub slow: Vec<(NodeId, f64)>,
    /// Workers never started.
    pub absent: Vec<NodeId>,
}

struct WorkerThread {
    id: NodeId,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<CodedNodeStats>>,
}

impl WorkerThread {
    fn halt(&mut self) -> Option<CodedNodeStats> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for WorkerThread {
    fn drop(&mut self) {
        self.halt();
    }
}

type GatewayNode = CodedNode<StdStack, InlineShards<AnyKernel>, TailGlue<AnyKernel>>;

/// A tail frame out of the stage.
#[derive(Debug)]
pub struct TailDone {
    /// The frame's key in the FTP run (what the caller submitted it as).
    pub frame: FrameKey,
    /// What the coded stage produced.
    pub finished: CodedFinished,
    /// From submission to the stage to its end, wall time (includes waiting for a slot).
    pub wall: StdDuration,
}

/// Counters of a finished stage.
#[derive(Debug, Default)]
pub struct StageStats {
    /// Per node (0: gateway).
    pub nodes: BTreeMap<NodeId, CodedNodeStats>,
    /// Failed glue steps.
    pub glue_failures: u64,
}

/// The coded tail on a loopback cluster: workers on their own threads, the gateway polled by
/// the caller.
pub struct CodedTailStage {
    gateway: GatewayNode,
    workers: Vec<WorkerThread>,
    stats: BTreeMap<NodeId, CodedNodeStats>,
    clock: StdInstant,
    pending: VecDeque<(FrameKey, Vec<f32>, StdInstant)>,
    keys: BTreeMap<FrameKey, (FrameKey, StdInstant)>,
    cols: usize,
    failures: Arc<AtomicU64>,
    started: StdInstant,
}

/// Address of node `id` of a loopback cluster on `port`.
pub fn loopback_addr(id: NodeId, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + id as u8)), port)
}

impl CodedTailStage {
    /// Starts the coded gateway (here) and a worker on each present edge.
    pub fn start(tail: &CodedTail, spec: &StageSpec) -> Result<CodedTailStage, Error> {
        let kernel = AnyKernel::of(spec.kernel);
        let first_seq = crate::cluster::epoch_micros().max(1);
        let link = |id: NodeId, peers: Vec<(NodeId, SocketAddr)>| LinkConfig {
            me: id,
            port: spec.port,
            peers,
            key: spec.key.map(Key::new),
            limits: Limits::LARGE,
            first_seq,
            peer_dead: Duration::from_secs(3),
            retry: Duration::from_millis(50),
            max_backoff: tessera_backends::link::MAX_BACKOFF,
            connect: Duration::from_secs(2),
            backlog: tessera_backends::link::DEFAULT_BACKLOG,
            handshake: Default::default(),
        };
        let config = CodedConfig {
            data_grace: Duration::from_micros(spec.data_grace.as_micros() as u64),
            ..CodedConfig::new(Duration::from_micros(spec.deadline.as_micros() as u64))
        };
        let edges: Vec<(NodeId, SocketAddr)> = (1..=spec.edges)
            .map(|id| (id, loopback_addr(id, spec.port)))
            .collect();
        let glue = tail.glue(kernel);
        let failures = glue.failures();
        let gateway = CodedNode::with_glue(
            StdStack::new(loopback_addr(GATEWAY, spec.port).ip()),
            link(GATEWAY, edges.clone()),
            tail.model().clone(),
            config,
            InlineShards::new(kernel),
            glue,
        )
        .map_err(|e| error("starting the coded gateway", e.to_string()))?;
        let mut workers = Vec::new();
        for (id, addr) in edges.iter().copied() {
            if spec.absent.contains(&id) {
                continue;
            }
            let slowdown = spec
                .slow
                .iter()
                .find(|(n, _)| *n == id)
                .map_or(1.0, |&(_, f)| f);
            let exec = match kernel {
                AnyKernel::Portable => ThreadShards::new(Portable, slowdown),
                AnyKernel::Simd(k) => ThreadShards::new(k, slowdown),
            }
            .context(|| "spawning a coded compute thread")?;
            let mut node = CodedNode::new(
                StdStack::new(addr.ip()),
                link(id, vec![(GATEWAY, loopback_addr(GATEWAY, spec.port))]),
                tail.model().clone(),
                config,
                exec,
            )
            .map_err(|e| {
                error(
                    format!("starting coded worker {id} on {addr}"),
                    e.to_string(),
                )
            })?;
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let clock = StdInstant::now();
            let thread = std::thread::Builder::new()
                .name(format!("tessera-coded-{id}"))
                .spawn(move || {
                    while !flag.load(Ordering::Relaxed) {
                        node.poll(Instant::from_micros(clock.elapsed().as_micros() as u64));
                        std::thread::sleep(StdDuration::from_micros(200));
                    }
                    node.stats()
                })
                .context(|| "spawning a coded worker thread")?;
            workers.push(WorkerThread {
                id,
                stop,
                thread: Some(thread),
            });
        }
        Ok(CodedTailStage {
            gateway,
            workers,
            stats: BTreeMap::new(),
            clock: StdInstant::now(),
            pending: VecDeque::new(),
            keys: BTreeMap::new(),
            cols: tail.cols(),
            failures,
            started: StdInstant::now(),
        })
    }

    /// Queues `frame`'s fused-stack output (CHW) for the coded tail.
    pub fn submit(&mut self, frame: FrameKey, input: Vec<f32>) {
        self.pending.push_back((frame, input, StdInstant::now()));
    }

    /// Frames submitted and not finished yet.
    pub fn outstanding(&self) -> usize {
        self.pending.len() + self.keys.len()
    }

    /// Stops edge `id`'s worker (threads joined, sockets closed), as a killed device.
    pub fn kill(&mut self, id: NodeId) {
        if let Some(i) = self.workers.iter().position(|w| w.id == id) {
            let mut w = self.workers.remove(i);
            if let Some(s) = w.halt() {
                self.stats.insert(id, s);
            }
        }
    }

    /// Polls the gateway: submits queued frames once the live workers are connected (or after
    /// a grace of 5 s), returns the frames finished.
    pub fn poll(&mut self) -> Result<Vec<TailDone>, Error> {
        let now = Instant::from_micros(self.clock.elapsed().as_micros() as u64);
        self.gateway.poll(now);
        let up = self.gateway.link().peers_up().count();
        let ready = up >= self.workers.len() || self.started.elapsed() > StdDuration::from_secs(5);
        while ready && !self.pending.is_empty() {
            let (_, input, _) = &self.pending[0];
            match self.gateway.submit(now, input, self.cols) {
                Ok(key) => {
                    let (frame, _, t0) = self.pending.pop_front().expect("checked non-empty");
                    self.keys.insert(key, (frame, t0));
                }
                Err(tessera_backends::coded::CodedSubmitError::Stage(_)) => break,
                Err(e) => return Err(error("submitting to the coded tail", e.to_string())),
            }
        }
        Ok(self
            .gateway
            .take_finished()
            .into_iter()
            .filter_map(|f| {
                let (frame, t0) = self.keys.remove(&f.frame)?;
                Some(TailDone {
                    frame,
                    finished: f,
                    wall: t0.elapsed(),
                })
            })
            .collect())
    }

    /// Stops every worker; returns the counters.
    pub fn stop(mut self) -> StageStats {
        for mut w in std::mem::take(&mut self.workers) {
            if let Some(s) = w.halt() {
                self.stats.insert(w.id, s);
            }
        }
        self.stats.insert(GATEWAY, self.gateway.stats());
        StageStats {
            nodes: std::mem::take(&mut self.stats),
            glue_failures: self.failures.load(Ordering::Relaxed),
        }
    }
}
