//! How the testbed names what it creates, so that a later run can find and remove the
//! leftovers of one that crashed: every namespace is `TAG-ap` (the access point: a bridge)
//! or `TAG-nID` (node ID), every cgroup lives under `tessera-TAG`, and node ID has the
//! private address `10.77.0.(ID + 1)`.

use std::net::Ipv4Addr;

use tessera_core::wire::NodeId;

/// The TCP port every node listens on.
pub const PORT: u16 = 7700;
/// The node's interface inside its namespace.
pub const NODE_DEV: &str = "eth0";
/// The access point's bridge.
pub const BRIDGE: &str = "br0";
/// The access point's shared-channel device (all stations' traffic queues here).
pub const CHANNEL_DEV: &str = "ifb0";

/// The names of one testbed instance.
#[derive(Clone, Debug)]
pub struct Names {
    tag: String,
}

/// A tag that cannot name namespaces safely.
#[derive(Debug, thiserror::Error)]
#[error("tag `{0}`: use 1 to 8 characters of a-z, 0-9")]
pub struct BadTag(pub String);

impl Names {
    /// Names under `tag` (short lowercase alphanumerics: interface and namespace names are
    /// built from it).
    pub fn new(tag: &str) -> Result<Names, BadTag> {
        let ok = (1..=8).contains(&tag.len())
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(BadTag(tag.to_string()));
        }
        Ok(Names {
            tag: tag.to_string(),
        })
    }

    /// The access point's namespace.
    pub fn ap(&self) -> String {
        format!("{}-ap", self.tag)
    }

    /// Node `id`'s namespace.
    pub fn node(&self, id: NodeId) -> String {
        format!("{}-n{id}", self.tag)
    }

    /// True when `ns` is one of this tag's namespaces.
    pub fn owns(&self, ns: &str) -> bool {
        ns.strip_prefix(&self.tag)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|r| {
                r == "ap"
                    || r.strip_prefix('n')
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
    }

    /// Node `id`'s port on the access point's bridge.
    pub fn port(id: NodeId) -> String {
        format!("p{id}")
    }

    /// Node `id`'s address.
    pub fn addr(id: NodeId) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, id as u8 + 1)
    }

    /// The cgroup directory name of this instance.
    pub fn cgroup(&self) -> String {
        format!("tessera-{}", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owns_only_its_own_namespaces() {
        let n = Names::new("tsb").unwrap();
        assert!(n.owns(&n.ap()));
        assert!(n.owns(&n.node(12)));
        assert!(!n.owns("tsb-nx"));
        assert!(!n.owns("tsbci-n1"));
        assert!(!n.owns("other"));
        assert!(Names::new("Bad-Tag").is_err());
        assert!(Names::new("").is_err());
    }
}
