//! The cell: one network namespace per node and one for the access point, each node's
//! `eth0` a veth pair with its end on the access point's bridge, shaped by [`crate::shape`].
//! Nothing is routed: the namespaces have no route but their /24, and the root namespace
//! takes no part. [`Cell`] tears everything down when dropped; [`remove_leftovers`] removes
//! what a crashed run left (its processes first, by PID, then its namespaces).

use std::collections::BTreeMap;

use serde::Deserialize;
use tessera_core::wire::NodeId;
use tessera_sim::medium::{NetModel, Topology};

use crate::cmd::{best_effort, run, run_in, CmdError};
use crate::names::{Names, BRIDGE, CHANNEL_DEV, NODE_DEV};
use crate::shape::{commands, QueueSpec};

/// Bytes and packets through one node's link, as its interface counted them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes the node sent (Ethernet frames).
    pub tx_bytes: u64,
    /// Frames the node sent.
    pub tx_packets: u64,
    /// Bytes the node received.
    pub rx_bytes: u64,
    /// Frames the node received.
    pub rx_packets: u64,
}

impl Counters {
    /// What was counted since `earlier`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
        }
    }

    /// IP bytes the node sent (frames less their 14-byte Ethernet header), the unit the
    /// simulator's medium counts.
    pub fn tx_ip_bytes(&self) -> u64 {
        self.tx_bytes.saturating_sub(14 * self.tx_packets)
    }
}

/// Reading the interface counters failed.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    /// `ip` failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// Its JSON was not what `ip -s -j link` prints.
    #[error("reading `ip -s -j link` output: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct LinkJson {
    ifname: String,
    stats64: Option<Stats64>,
}

#[derive(Deserialize)]
struct Stats64 {
    rx: Dir,
    tx: Dir,
}

#[derive(Deserialize)]
struct Dir {
    bytes: u64,
    packets: u64,
}

/// A built cell; dropping it removes it.
pub struct Cell {
    names: Names,
    nodes: Vec<NodeId>,
}

/// The namespaces of this tag that exist now.
fn existing(names: &Names) -> Result<Vec<String>, CmdError> {
    Ok(run("ip", &["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| names.owns(ns))
        .map(str::to_string)
        .collect())
}

/// Kills the processes left in `ns` (by PID) and deletes it.
fn remove_namespace(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            best_effort("kill", &["-KILL", pid]);
        }
    }
    best_effort("ip", &["netns", "del", ns]);
}

/// Removes the namespaces (and the processes in them) a crashed run of this tag left;
/// returns how many namespaces there were.
pub fn remove_leftovers(names: &Names) -> Result<usize, CmdError> {
    let left = existing(names)?;
    for ns in &left {
        remove_namespace(ns);
    }
    Ok(left.len())
}

impl Cell {
    /// Builds the cell of `nodes` shaped as `model` says.
    pub fn build(
        names: &Names,
        nodes: &[NodeId],
        model: &NetModel,
        q: QueueSpec,
    ) -> Result<Cell, CmdError> {
        // Made first: a failure half-way removes what was made.
        let cell = Cell {
            names: names.clone(),
            nodes: nodes.to_vec(),
        };
        let ap = names.ap();
        let all: Vec<String> = std::iter::once(ap.clone())
            .chain(nodes.iter().map(|&id| names.node(id)))
            .collect();
        for ns in &all {
            run("ip", &["netns", "add", ns])?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            // No IPv6 chatter (router solicitations, MLD) in the counters.
            run_in(
                ns,
                "sysctl",
                &[
                    "-q",
                    "-w",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            )?;
        }
        run("ip", &["-n", &ap, "link", "add", BRIDGE, "type", "bridge"])?;
        run("ip", &["-n", &ap, "link", "set", BRIDGE, "up"])?;
        if matches!(model.topology, Topology::SharedChannel { .. }) && !q.pairs {
            run(
                "ip",
                &["-n", &ap, "link", "add", CHANNEL_DEV, "type", "ifb"],
            )?;
            run("ip", &["-n", &ap, "link", "set", CHANNEL_DEV, "up"])?;
        }
        for &id in nodes {
            let (ns, port) = (names.node(id), Names::port(id));
            run(
                "ip",
                &[
                    "link", "add", &port, "netns", &ap, "type", "veth", "peer", "name", NODE_DEV,
                    "netns", &ns,
                ],
            )?;
            run(
                "ip",
                &["-n", &ap, "link", "set", &port, "master", BRIDGE, "up"],
            )?;
            let addr = format!("{}/24", Names::addr(id));
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", NODE_DEV])?;
            run("ip", &["-n", &ns, "link", "set", NODE_DEV, "up"])?;
            // Packets of at most one MTU: the token buckets see what a radio would send.
            let off = ["tso", "off", "gso", "off", "gro", "off"];
            let mut a = vec!["-K", NODE_DEV];
            a.extend(off);
            run_in(&ns, "ethtool", &a)?;
            let mut a = vec!["-K", port.as_str()];
            a.extend(off);
            run_in(&ap, "ethtool", &a)?;
        }
        for t in commands(model, names, nodes, q) {
            let mut a: Vec<&str> = vec!["-n", &t.ns];
            a.extend(t.args.iter().map(String::as_str));
            run("tc", &a)?;
        }
        Ok(cell)
    }

    /// Every node's counters now, read from its bridge port (what the port received, the
    /// node sent).
    pub fn counters(&self) -> Result<BTreeMap<NodeId, Counters>, CounterError> {
        let out = run("ip", &["-n", &self.names.ap(), "-s", "-j", "link", "show"])?;
        let links: Vec<LinkJson> = serde_json::from_str(&out)?;
        let mut m = BTreeMap::new();
        for &id in &self.nodes {
            let port = Names::port(id);
            if let Some(s) = links
                .iter()
                .find(|l| l.ifname == port)
                .and_then(|l| l.stats64.as_ref())
            {
                m.insert(
                    id,
                    Counters {
                        tx_bytes: s.rx.bytes,
                        tx_packets: s.rx.packets,
                        rx_bytes: s.tx.bytes,
                        rx_packets: s.tx.packets,
                    },
                );
            }
        }
        Ok(m)
    }

    /// Established TCP connections in node `id`'s namespace.
    pub fn established(&self, id: NodeId) -> Result<usize, CmdError> {
        Ok(run_in(
            &self.names.node(id),
            "ss",
            &["-H", "-t", "-n", "state", "established"],
        )?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        for &id in &self.nodes {
            remove_namespace(&self.names.node(id));
        }
        remove_namespace(&self.names.ap());
    }
}
