//! Scripted faults of a simulated run (both worlds): crashes and stragglers, which the world
//! applies to its nodes, and loss bursts and link outages, which become [`LinkFault`]s of the
//! medium.

use tessera_core::wire::NodeId;

use crate::medium::LinkFault;

/// A scripted fault (node ids are per cluster; a fault applies to every cluster).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// The node stops at `at`: no more steps, every packet to or from it is lost.
    Crash {
        /// Node id.
        node: NodeId,
        /// When, µs.
        at: u64,
    },
    /// From `at`, the node's jobs take `factor` times as long.
    Straggler {
        /// Node id.
        node: NodeId,
        /// When, µs.
        at: u64,
        /// Slowdown (> 1).
        factor: f64,
    },
    /// A loss burst (every link, or one link) in `[from, until)`.
    Loss {
        /// Start, µs.
        from: u64,
        /// End, µs.
        until: u64,
        /// Loss probability.
        rate: f64,
        /// One link, or all.
        link: Option<(NodeId, NodeId)>,
    },
    /// The link between `a` and `b` carries nothing in `[from, until)`.
    LinkDown {
        /// One end.
        a: NodeId,
        /// The other end.
        b: NodeId,
        /// Start, µs.
        from: u64,
        /// End, µs.
        until: u64,
    },
}

/// The medium's share of `faults`: loss bursts and link outages as [`LinkFault`]s (node ids
/// are medium-local), in the order given.
pub fn link_faults(faults: &[Fault]) -> Vec<LinkFault> {
    faults
        .iter()
        .filter_map(|f| match *f {
            Fault::Loss {
                from,
                until,
                rate,
                link,
            } => Some(LinkFault {
                from_us: from,
                until_us: until,
                link: link.map(|(a, b)| (a as usize, b as usize)),
                loss: rate,
            }),
            Fault::LinkDown { a, b, from, until } => Some(LinkFault {
                from_us: from,
                until_us: until,
                link: Some((a as usize, b as usize)),
                loss: 1.0,
            }),
            _ => None,
        })
        .collect()
}
