//! A cluster's nodes checked from this machine ([`check_nodes`], what `tessera check` runs
//! once the cluster file is valid): this machine's model fingerprint, whether a node's
//! address is one of this machine's, then every node probed at once (`probe`) and the
//! answers in one table (`probe_table`).

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use std::time::Duration;

use tessera_core::wire::{Key, NodeId};

use crate::node::Deployment;
use crate::probe::{probe, Probe};
use crate::probe_table::{own_address, table, Row};

/// What [`check_nodes`] found.
#[derive(Clone, Debug)]
pub struct NodeCheck {
    /// The report: the model line, this machine's line, a blank line, the table.
    pub text: String,
    /// Things wrong (the model did not load, this machine is not the node, a node's row).
    pub problems: usize,
    /// Nodes probed.
    pub nodes: usize,
}

/// Checks `cluster`'s nodes (addresses as the file writes them: `written`, in node order):
/// with `id`, that node's address must be this machine's; every node is probed with a
/// `timeout` for its connect and answer.
pub fn check_nodes(
    cluster: &Deployment,
    written: &[String],
    id: Option<NodeId>,
    timeout: Duration,
) -> NodeCheck {
    let mut text = String::new();
    let mut problems = 0;
    let ours = match cluster.fingerprint() {
        Ok(f) => {
            let _ = writeln!(text, "model here: {f:016x}");
            Some(f)
        }
        Err(e) => {
            let _ = writeln!(text, "model here: {e}");
            problems += 1;
            None
        }
    };
    let nodes = &cluster.spec.nodes;
    if let Some(id) = id {
        let line = match nodes.iter().find(|n| n.id == id) {
            None => Err(format!("no node {id} in the file")),
            Some(n) => own_address(n.addr)
                .map(|state| format!("node {id} at {}: {state}", n.addr))
                .map_err(|why| format!("node {id}: {why}")),
        };
        let line = line.unwrap_or_else(|why| {
            problems += 1;
            why
        });
        let _ = writeln!(text, "this machine: {line}");
    }
    let key = cluster.spec.key.map(Key::new);
    // Every node at once: a cluster of unreachable nodes costs one timeout, not one each.
    let rows: Vec<Row> = std::thread::scope(|s| {
        let probes: Vec<_> = nodes
            .iter()
            .map(|n| (n, s.spawn(|| probe(n.addr, key.as_ref(), timeout))))
            .collect();
        probes
            .into_iter()
            .zip(written)
            .map(|((n, h), written)| Row {
                id: n.id,
                addr: n.addr,
                written: written.clone(),
                probe: h
                    .join()
                    .unwrap_or_else(|_| Probe::NoAnswer("probe thread panicked".into())),
                ours,
            })
            .collect()
    });
    text.push('\n');
    text += &table(&rows);
    problems += rows.iter().filter(|r| !r.ok()).count();
    NodeCheck {
        text,
        problems,
        nodes: rows.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterSpec;
    use crate::model_files::ModelFiles;
    use tessera_core::runtime::coded::CodedConfig;
    use tessera_core::time::Duration as CoreDuration;
    use tessera_core::wire::Policy;

    #[test]
    fn a_node_that_is_not_running_is_a_problem_of_its_row() {
        // A free port on this machine: nothing listens there once the listener is gone.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut spec = ClusterSpec::loopback(Policy::WstS, (1, 1), 1, 1, port, None, 2);
        spec.nodes.truncate(1);
        spec.nodes[0].addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let cluster = Deployment {
            spec,
            model: ModelFiles {
                weights: Some("/nonexistent/tessera.weights".into()),
                ..ModelFiles::default()
            },
            tail: Default::default(),
            coded: CodedConfig::new(CoreDuration::from_millis(100)),
            tail_transport: Default::default(),
        };
        let written = [std::format!("127.0.0.1:{port}")];
        let check = check_nodes(&cluster, &written, Some(9), Duration::from_millis(500));
        assert_eq!(check.nodes, 1);
        // The model (its weights file is missing), node 9 (not in the file), node 0's row.
        assert_eq!(check.problems, 3, "{}", check.text);
        assert!(check.text.contains("this machine: no node 9 in the file"));
        assert!(check
            .text
            .lines()
            .any(|l| l.starts_with("0 ") && l.contains("no")));
    }
}
