//! Nodes of a cluster file: [`RunningNode`] starts one with `tessera_backends::cluster`
//! (its address, links, node thread and compute thread) from the file's [`Cluster`].

use std::sync::Arc;
use std::time::Duration as StdDuration;

pub use tessera_backends::cluster::{epoch_micros, per_start_frame_number};
use tessera_backends::cluster::{
    start_node, ClusterNode, ClusterSpec, NodeOptions, Timeouts as SpecTimeouts,
};
use tessera_backends::driver::node_thread::NodeThread;
pub use tessera_backends::driver::node_thread::{SubmitError, FRAME_QUEUE};
use tessera_backends::driver::{Finished, Model, NodeStats};
use tessera_core::wire::{FrameKey, NodeId};

use crate::config::Cluster;
use crate::error::{Context, Error};

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
    /// Fingerprint of the model (see [`crate::fingerprint`]): peers with another are refused.
    pub model_fingerprint: u64,
}

/// What the nodes of `cluster` agree on (the file's policy, grid, key, kernel, timeouts and
/// addresses).
pub fn spec_of(cluster: &Cluster) -> ClusterSpec {
    let t = &cluster.timeouts;
    ClusterSpec {
        policy: cluster.policy,
        grid: cluster.grid,
        layers: cluster.layers,
        key: cluster.key,
        kernel: cluster.kernel,
        timeouts: SpecTimeouts {
            tile: t.tile,
            frame: t.frame,
            steal_backoff: t.steal_backoff,
            peer_dead: t.peer_dead,
            connect: t.connect,
        },
        nodes: cluster
            .nodes
            .iter()
            .map(|n| ClusterNode {
                id: n.id,
                addr: n.addr,
                source: n.source,
            })
            .collect(),
    }
}

/// A node running on its own threads (see [`NodeThread`]).
pub struct RunningNode(NodeThread);

impl RunningNode {
    /// Starts node `spec.id`: binds its address, then polls until stopped.
    pub fn start(spec: NodeSpec) -> Result<RunningNode, Error> {
        let options = NodeOptions {
            slowdown: spec.slowdown,
            key: spec.key_override,
            first_frame: spec.first_frame,
            confirm_done: spec.confirm_done,
            coded: None,
            model_fingerprint: spec.model_fingerprint,
        };
        start_node(&spec_of(&spec.cluster), spec.id, spec.model, options)
            .map(RunningNode)
            .context(|| format!("starting node {}", spec.id))
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

    /// A finished frame, waiting at most `timeout`.
    pub fn next_finished(&self, timeout: StdDuration) -> Option<Finished> {
        self.0.next_finished(timeout)
    }

    /// Finished frames available now.
    pub fn try_finished(&self) -> Vec<Finished> {
        self.0.try_finished()
    }

    /// Gateway started with [`NodeSpec::confirm_done`]: `frame`'s final result is made
    /// (`complete`) or given up; its source is told `FrameDone` and its slot is freed.
    pub fn frame_done(&self, frame: FrameKey, complete: bool) {
        self.0.frame_done(frame, complete)
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
