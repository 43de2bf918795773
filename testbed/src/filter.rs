//! Loss, link outages and a crashed node's silence as nftables rules in the nodes'
//! namespaces. Each fault window is one table (`inet tessera_fK`), added when the window
//! opens and deleted when it closes; packets are filtered on output, so each packet meets
//! each rule once, on its sender.
//!
//! Random loss uses `numgen random` (a fresh draw per packet), in parts per million.

use tessera_core::wire::NodeId;

use crate::cmd::{run_in, CmdError};
use crate::names::{Names, NODE_DEV};

/// What a rule drops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Drop {
    /// Packets sent to `to` (every peer: `None`) with probability `rate`.
    Loss {
        /// Destination, or all.
        to: Option<NodeId>,
        /// Probability.
        rate: f64,
    },
    /// Everything sent to `to`.
    All {
        /// Destination.
        to: NodeId,
    },
    /// Everything the node sends (a crashed device says nothing, not even a TCP reset).
    Silence,
}

/// One nftables table in one namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Namespace.
    pub ns: String,
    /// Table name.
    pub table: String,
    /// The `nft` script that creates it.
    pub script: String,
}

impl Rule {
    /// Adds the table.
    pub fn apply(&self) -> Result<(), CmdError> {
        run_in(&self.ns, "nft", &[&self.script]).map(drop)
    }

    /// Deletes the table.
    pub fn remove(&self) -> Result<(), CmdError> {
        run_in(
            &self.ns,
            "nft",
            &["delete", "table", "inet", self.table.as_str()],
        )
        .map(drop)
    }
}

/// Fault `k`'s rule on node `on` (in `names`' namespaces).
pub fn rule(names: &Names, k: usize, on: NodeId, what: Drop) -> Rule {
    let table = format!("tessera_f{k}");
    let matcher = match what {
        Drop::Loss { to, rate } => {
            let ppm = (rate.clamp(0.0, 1.0) * 1e6).round() as u64;
            let dst = to.map_or(format!("oifname \"{NODE_DEV}\""), |t| {
                format!("ip daddr {}", Names::addr(t))
            });
            format!("{dst} numgen random mod 1000000 lt {ppm}")
        }
        Drop::All { to } => format!("ip daddr {}", Names::addr(to)),
        Drop::Silence => format!("oifname \"{NODE_DEV}\""),
    };
    Rule {
        ns: names.node(on),
        script: format!(
            "add table inet {table}; \
             add chain inet {table} out {{ type filter hook output priority 0; policy accept; }}; \
             add rule inet {table} out {matcher} drop"
        ),
        table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_in_parts_per_million_on_the_sender() {
        let n = Names::new("t").unwrap();
        let r = rule(
            &n,
            3,
            2,
            Drop::Loss {
                to: Some(0),
                rate: 0.05,
            },
        );
        assert_eq!(r.ns, "t-n2");
        assert_eq!(r.table, "tessera_f3");
        assert!(r
            .script
            .contains("ip daddr 10.77.0.1 numgen random mod 1000000 lt 50000 drop"));
        let s = rule(&n, 0, 1, Drop::Silence);
        assert!(s.script.contains("oifname \"eth0\" drop"));
    }
}
