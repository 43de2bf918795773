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

#[cfg(test)]
mod tests {
    use super::*;

    const Q: QueueSpec = QueueSpec {
        limit_bytes: 262_144,
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
}
