//! A whole cluster in one process on loopback ([`run_local`]): a gateway and edges on
//! 127.0.0.x, each a real node ([`crate::cluster::start_node`]: its own address, links
//! authenticated with the cluster key, its own threads), fed a list of frames, with faults
//! (stragglers, a killed edge, absent nodes, a wrong key) and, optionally, a coded tail on the
//! nodes' links. What `tessera demo`, `tessera bench cluster` and the cluster tests run.

extern crate alloc;
extern crate std;

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use tessera_core::ftp::Partition;
use tessera_core::model::weights::{param_count, WeightsError};
use tessera_core::model::Network;
use tessera_core::runtime::coded::CodedConfig;
use tessera_core::wire::{FrameKey, NodeId, GATEWAY};

use crate::cluster::{node_model, start_node, ClusterSpec, CodedRole, NodeOptions, StartError};
use crate::coded::tail::CodedTail;
use crate::coded::CodedFinished;
use crate::driver::node_thread::{NodeThread, SubmitError};
use crate::driver::{Finished, Model, ModelError, NodeStats, SourceFrame};

/// The result of a local cluster run.
#[derive(Debug)]
pub struct LocalRun {
    /// Frames the gateway finished, by key.
    pub gateway: BTreeMap<FrameKey, Finished>,
    /// Latency seen by the data sources (submit → FrameDone), by key.
    pub source_latency: BTreeMap<FrameKey, StdDuration>,
    /// Counters of each node, by id.
    pub stats: BTreeMap<NodeId, NodeStats>,
    /// Wall time of the whole run.
    pub elapsed: StdDuration,
    /// Coded tails of the frames (by FTP key), when the run had a coded stage.
    pub tails: BTreeMap<FrameKey, CodedFinished>,
}

/// Faults injected into a local cluster run.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Edges that run `factor` times slower (stragglers), FTP tiles and coded shards alike.
    pub slow: Vec<(NodeId, f64)>,
    /// An edge stopped (threads joined, sockets closed) this long after the start.
    pub kill: Option<(NodeId, StdDuration)>,
    /// Nodes of the cluster that are not started (an outside peer may pose as one).
    pub absent: Vec<NodeId>,
    /// Nodes started with a different cluster key.
    pub wrong_key: Vec<NodeId>,
    /// With `kill`: the kill also waits until this many frames left the coded tail (a kill in
    /// the middle of the coded stage, whatever the timing of the fused stack).
    pub kill_after_tails: usize,
}

/// A coded tail run by a cluster's nodes: the gateway codes, every edge is a worker.
#[derive(Clone)]
pub struct TailSpec {
    /// The tail.
    pub tail: Arc<CodedTail>,
    /// Frame deadline and data grace of the coded stage.
    pub config: CodedConfig,
}

/// Why a local run failed (a run that merely timed out returns what finished).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The cluster has no data source.
    #[error("the cluster has no data source")]
    NoSource,
    /// A node did not start.
    #[error("starting node {node}: {error}")]
    Start {
        /// The node.
        node: NodeId,
        /// Why.
        error: StartError,
    },
    /// A source refused a frame (it stopped).
    #[error("feeding frames: {0}")]
    Submit(SubmitError),
}

/// Why a fused model could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FusedModelError {
    /// The parameters do not cover the fused layers.
    #[error("sizing the fused weights: {0}")]
    Weights(WeightsError),
    /// Fewer parameters than the fused layers need.
    #[error("{have} parameters, the fused layers need {need}")]
    TooFew {
        /// Parameters needed.
        need: usize,
        /// Parameters given.
        have: usize,
    },
    /// The model (stack, grid) is invalid.
    #[error("model: {0}")]
    Model(ModelError),
}

/// The model every node of a run shares: a copy of the first `layers` layers' parameters of
/// `params` (which may hold the whole network's, for a tail).
pub fn fused_model(
    net: &Network,
    params: &[f32],
    layers: usize,
    grid: (u32, u32),
) -> Result<Arc<Model>, FusedModelError> {
    let need = param_count(net, layers).map_err(FusedModelError::Weights)?;
    let fused = params.get(..need).ok_or(FusedModelError::TooFew {
        need,
        have: params.len(),
    })?;
    Model::new(
        net.clone(),
        fused.to_vec(),
        layers,
        grid,
        Partition::Darknet,
    )
    .map(Arc::new)
    .map_err(FusedModelError::Model)
}

/// Runs `images` (network inputs, with or without their pictures) through `cluster`'s nodes started in this process, spread
/// over the sources round-robin, under `faults`; with `tail`, the nodes also run the coded
/// tail on their links (every complete frame's fused output enters it; a killed or slow edge
/// is hit in both stages). Returns when every frame finished at the gateway and its source
/// (and left the coded tail), or after `timeout` with what finished.
pub fn run_local<I: Clone + Into<SourceFrame>>(
    cluster: &ClusterSpec,
    model: Arc<Model>,
    images: &[I],
    faults: &Faults,
    timeout: StdDuration,
    tail: Option<&TailSpec>,
) -> Result<LocalRun, LocalError> {
    let start = StdInstant::now();
    let sources: Vec<NodeId> = cluster
        .nodes
        .iter()
        .filter(|n| n.source)
        .map(|n| n.id)
        .collect();
    if sources.is_empty() {
        return Err(LocalError::NoSource);
    }
    // Aligned once for all nodes (a `winograd` cluster's block grid), not copied per node.
    let model = node_model(cluster, model).map_err(|error| LocalError::Start {
        node: GATEWAY,
        error,
    })?;
    let mut nodes: Vec<NodeThread> = Vec::new();
    for n in cluster
        .nodes
        .iter()
        .filter(|n| !faults.absent.contains(&n.id))
    {
        let options = NodeOptions {
            slowdown: faults
                .slow
                .iter()
                .find(|(id, _)| *id == n.id)
                .map_or(1.0, |&(_, f)| f),
            key: faults.wrong_key.contains(&n.id).then_some(Some([0x5a; 32])),
            // In-process runs never restart a node: frames numbered from 0 per source.
            first_frame: None,
            confirm_done: false,
            model_fingerprint: 0,
            coded: tail.map(|t| match n.id {
                0 => CodedRole::Gateway {
                    tail: t.tail.clone(),
                    config: t.config,
                },
                _ => CodedRole::Worker(t.tail.model().clone()),
            }),
            ..NodeOptions::default()
        };
        let node = start_node(cluster, n.id, model.clone(), options)
            .map_err(|error| LocalError::Start { node: n.id, error })?;
        nodes.push(node);
    }
    for (i, img) in images.iter().enumerate() {
        let src = sources[i % sources.len()];
        if let Some(n) = nodes.iter().find(|n| n.id() == src) {
            n.submit(img.clone()).map_err(LocalError::Submit)?;
        }
    }
    let mut gateway: BTreeMap<FrameKey, Finished> = BTreeMap::new();
    let mut source_latency = BTreeMap::new();
    let mut stats = BTreeMap::new();
    let mut tails = BTreeMap::new();
    let mut killed = false;
    // Every complete frame enters the coded tail and leaves it (lost or not) exactly once.
    let tails_pending = |gateway: &BTreeMap<FrameKey, Finished>, tails: usize| {
        tail.is_some() && tails < gateway.values().filter(|f| f.complete).count()
    };
    while gateway.len() < images.len()
        || source_latency.len() < images.len()
        || tails_pending(&gateway, tails.len())
    {
        if start.elapsed() > timeout {
            break;
        }
        if let Some((victim, after)) = faults.kill {
            if !killed && start.elapsed() >= after && tails.len() >= faults.kill_after_tails {
                if let Some(i) = nodes.iter().position(|n| n.id() == victim) {
                    stats.insert(victim, nodes.remove(i).stop());
                }
                killed = true;
            }
        }
        for n in &nodes {
            for f in n.try_finished() {
                if n.id() == 0 {
                    gateway.insert(f.frame, f);
                } else {
                    let latency = StdDuration::from_micros(f.latency.total_micros());
                    source_latency.insert(f.frame, latency);
                }
            }
            for t in n.try_tails() {
                tails.insert(t.frame, t);
            }
        }
        std::thread::sleep(StdDuration::from_millis(2));
    }
    for n in nodes {
        stats.insert(n.id(), n.stop());
    }
    Ok(LocalRun {
        gateway,
        source_latency,
        stats,
        elapsed: start.elapsed(),
        tails,
    })
}
