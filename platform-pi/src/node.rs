//! What the node commands (`tessera gateway`, `tessera edge`) share: the model a node owns,
//! starting the node of a cluster file, and when and what their counters lines print.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Error};

use tessera_backends::cluster::{start_node, NodeOptions};
use tessera_backends::driver::node_thread::NodeThread;
use tessera_backends::driver::{Model, NodeStats};
use tessera_core::ftp::Partition;
use tessera_core::model::Network;
use tessera_core::wire::NodeId;

use crate::config::Cluster;
use crate::signals::Signals;

/// When a node command prints its counters line: every `--stats-every` seconds, on SIGUSR1.
pub(crate) struct StatsClock {
    every: Option<Duration>,
    last: Instant,
}

impl StatsClock {
    pub(crate) fn new(every: Option<u64>) -> Self {
        StatsClock {
            every: every.map(Duration::from_secs),
            last: Instant::now(),
        }
    }

    /// True when a line is due now (SIGUSR1 arrived, or the period passed).
    pub(crate) fn due(&mut self, signals: &Signals) -> bool {
        let asked = signals.take_report();
        let periodic = self.every.is_some_and(|e| self.last.elapsed() >= e);
        if asked || periodic {
            self.last = Instant::now();
        }
        asked || periodic
    }
}

/// The link's and the node's counters, for the stats lines.
pub(crate) fn node_counters(s: &NodeStats) -> String {
    format!(
        "{} in flight, {} refused, {} sends refused, link {:?}",
        s.frames_in_flight, s.refused, s.sends_refused, s.link
    )
}

/// Starts node `id` of `cluster` on its own threads.
pub(crate) fn start(
    cluster: &Cluster,
    id: NodeId,
    model: Arc<Model>,
    options: NodeOptions,
) -> Result<NodeThread, Error> {
    start_node(&cluster.spec(), id, model, options).with_context(|| format!("starting node {id}"))
}

/// The model of a node that owns `params` (the fused layers' parameters, or more when the node
/// also runs layers after them): no copy is made.
pub fn own_model(
    net: &Network,
    params: Vec<f32>,
    layers: usize,
    grid: (u32, u32),
) -> Result<Arc<Model>, Error> {
    Model::new(net.clone(), params, layers, grid, Partition::Darknet)
        .map(Arc::new)
        .map_err(|e| anyhow!("model: {}", e))
}
