//! Link shaping with `tc`, from the simulator's network model, so one preset drives both.
//!
//! - **Shared channel** (`wifi`): one WiFi cell carries one transmission at a time, and a
//!   station-to-station packet crosses the air `relay_hops` times. Every bridge port's
//!   ingress is redirected (`u32` match-all, `mirred`) to one `ifb` device whose token bucket
//!   runs at `rate / relay_hops`: all stations share that one queue, as they share the air.
//! - **Switched** (`ethernet`): a token bucket at `rate` on each node's interface (its uplink)
//!   and on its bridge port (the switch port towards it), both directions shaped.
//!
//! The model's per-packet costs become a size-table overhead (`stab overhead`): its framing
//! bytes, plus its fixed per-packet medium time (MAC contention, preamble, ACK) expressed as
//! bytes at the link rate, less the 14-byte Ethernet header the kernel already counts.
//! The model's propagation latency has no equivalent: this kernel has no `netem`.
//!
//! - **Point-to-point pairs** (`QueueSpec::pairs`, testbed only): every ordered pair of
//!   nodes gets its own token bucket at the model's rate on the sender's interface (an `htb`
//!   class per destination address), as if each pair had its own cable: node i's traffic to
//!   j never waits for its traffic to k, and a node receives from all its peers at once. The
//!   simulator has no such topology.

use tessera_core::wire::NodeId;
use tessera_sim::medium::{NetModel, Topology};

use crate::names::{Names, CHANNEL_DEV, NODE_DEV};

/// Ethernet header bytes the kernel counts in a packet's length.
const ETH_HEADER: f64 = 14.0;
/// Largest frame on the wire (1500-byte MTU and the Ethernet header).
const MAX_FRAME: u32 = 1514;

/// Shaping choices beyond the model.
#[derive(Clone, Copy, Debug)]
pub struct QueueSpec {
    /// Bytes a token bucket queues before it drops (an access point's or a switch's buffer).
    pub limit_bytes: u32,
    /// One link per ordered pair of nodes at the model's rate, instead of the model's
    /// topology (see the module docs).
    pub pairs: bool,
}

/// One `tc` invocation: `tc -n NS ARGS`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tc {
    /// Namespace.
    pub ns: String,
    /// Arguments after `-n NS`.
    pub args: Vec<String>,
}

/// Bytes added to every packet for the token bucket (see the module docs).
pub fn overhead_bytes(m: &NetModel) -> u32 {
    let air = m.per_packet_us * 1e-6 * m.rate_bps / 8.0;
    (m.overhead_bytes as f64 + air - ETH_HEADER)
        .max(0.0)
        .round() as u32
}

/// The token bucket's arguments at `bps` for packets inflated by `overhead` bytes.
fn bucket(overhead: u32, bps: f64, q: QueueSpec) -> Vec<String> {
    let burst = 2 * (MAX_FRAME + overhead);
    words(&format!(
        "root stab overhead {overhead} tbf rate {}bit burst {burst} limit {}",
        bps.round() as u64,
        q.limit_bytes.max(burst)
    ))
}

fn tc(ns: String, args: Vec<String>) -> Tc {
    Tc { ns, args }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// The `tc` commands that shape a cell of `nodes` under `model` (run after the namespaces,
/// veth pairs and bridge exist; the shared channel's `ifb` device must exist too).
pub fn commands(model: &NetModel, names: &Names, nodes: &[NodeId], q: QueueSpec) -> Vec<Tc> {
    let ov = overhead_bytes(model);
    let ap = names.ap();
    let mut out = Vec::new();
    if q.pairs {
        return pair_commands(model.rate_bps, ov, names, nodes, q);
    }
    match model.topology {
        Topology::SharedChannel { relay_hops } => {
            let rate = model.rate_bps / relay_hops.max(1) as f64;
            let mut a = words(&format!("qdisc add dev {CHANNEL_DEV}"));
            a.extend(bucket(ov, rate, q));
            out.push(tc(ap.clone(), a));
            for &id in nodes {
                let port = Names::port(id);
                out.push(tc(
                    ap.clone(),
                    words(&format!("qdisc add dev {port} handle ffff: ingress")),
                ));
                out.push(tc(
                    ap.clone(),
                    words(&format!(
                        "filter add dev {port} parent ffff: protocol all u32 match u32 0 0 \
                         action mirred egress redirect dev {CHANNEL_DEV}"
                    )),
                ));
            }
        }
        Topology::Switched => {
            for &id in nodes {
                let mut up = words(&format!("qdisc add dev {NODE_DEV}"));
                up.extend(bucket(ov, model.rate_bps, q));
                out.push(tc(names.node(id), up));
                let mut down = words(&format!("qdisc add dev {}", Names::port(id)));
                down.extend(bucket(ov, model.rate_bps, q));
                out.push(tc(ap.clone(), down));
            }
        }
    }
    out
}

/// One `htb` class per destination on every node's interface, each at `bps` with a
/// `bfifo` of the queue's size; traffic to other addresses (ARP) is not shaped.
fn pair_commands(bps: f64, ov: u32, names: &Names, nodes: &[NodeId], q: QueueSpec) -> Vec<Tc> {
    let burst = 2 * (MAX_FRAME + ov);
    let mut out = Vec::new();
    for &id in nodes {
        let ns = names.node(id);
        out.push(tc(
            ns.clone(),
            words(&format!(
                "qdisc add dev {NODE_DEV} root handle 1: stab overhead {ov} htb"
            )),
        ));
        for &peer in nodes.iter().filter(|&&p| p != id) {
            // Class minors are hexadecimal to tc.
            let class = format!("1:{:x}", u32::from(peer) + 1);
            out.push(tc(
                ns.clone(),
                words(&format!(
                    "class add dev {NODE_DEV} parent 1: classid {class} htb rate {}bit \
                     ceil {}bit burst {burst} cburst {burst} quantum {burst}",
                    bps.round() as u64,
                    bps.round() as u64
                )),
            ));
            out.push(tc(
                ns.clone(),
                words(&format!(
                    "qdisc add dev {NODE_DEV} parent {class} bfifo limit {}",
                    q.limit_bytes.max(burst)
                )),
            ));
            out.push(tc(
                ns.clone(),
                words(&format!(
                    "filter add dev {NODE_DEV} parent 1: protocol ip u32 match ip dst {}/32 \
                     flowid {class}",
                    Names::addr(peer)
                )),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: QueueSpec = QueueSpec {
        limit_bytes: 262_144,
        pairs: false,
    };

    #[test]
    fn wifi_is_one_shared_bucket_at_half_rate_with_air_overhead() {
        let m = NetModel::wifi();
        // 120 µs at 40 Mbit/s is 600 bytes, less the Ethernet header.
        assert_eq!(overhead_bytes(&m), 586);
        let names = Names::new("t").unwrap();
        let c = commands(&m, &names, &[0, 1, 2], Q);
        let buckets: Vec<_> = c
            .iter()
            .filter(|t| t.args.contains(&"tbf".into()))
            .collect();
        assert_eq!(buckets.len(), 1, "one channel");
        assert!(buckets[0].args.contains(&"20000000bit".to_string()));
        let redirects = c
            .iter()
            .filter(|t| t.args.contains(&"mirred".into()))
            .count();
        assert_eq!(redirects, 3, "every port feeds the channel");
    }

    #[test]
    fn ethernet_shapes_both_ends_of_every_link() {
        let m = NetModel::ethernet();
        assert_eq!(overhead_bytes(&m), 24);
        let names = Names::new("t").unwrap();
        let c = commands(&m, &names, &[0, 1], Q);
        assert_eq!(c.len(), 4);
        assert!(c
            .iter()
            .all(|t| t.args.contains(&"100000000bit".to_string())));
        assert_eq!(c.iter().filter(|t| t.ns == "t-ap").count(), 2);
    }

    #[test]
    fn pairs_shape_every_ordered_pair_on_its_sender() {
        let mut m = NetModel::ethernet();
        m.rate_bps = 20e6;
        let names = Names::new("t").unwrap();
        let q = QueueSpec { pairs: true, ..Q };
        let c = commands(&m, &names, &[0, 1, 2], q);
        assert!(c.iter().all(|t| t.ns != "t-ap"), "the bridge is not shaped");
        let classes: Vec<_> = c
            .iter()
            .filter(|t| t.args.get(..2) == Some(&["class".to_string(), "add".to_string()]))
            .collect();
        assert_eq!(classes.len(), 6, "3 nodes, 2 peers each");
        assert!(classes
            .iter()
            .all(|t| t.args.contains(&"20000000bit".to_string())));
        // Node 1's traffic to node 2 (10.77.0.3) goes to class 1:3.
        let f = c
            .iter()
            .find(|t| t.ns == "t-n1" && t.args.contains(&"10.77.0.3/32".to_string()))
            .unwrap();
        assert_eq!(f.args.last().map(String::as_str), Some("1:3"));
    }
}
