//! The link's log lines (through `tessera_log`): peers up and down at `info`/`warn`, refused
//! connections at `warn`, dials, accepts and probes at `debug`. The counters in
//! [`LinkStats`](super::LinkStats) say how many; these say when, who and why.

use core::fmt;
use core::net::{IpAddr, SocketAddr};

use tessera_core::time::Duration;
use tessera_core::wire::NodeId;
use tessera_log::{debug, info, warn};

use super::conn::{Conn, Origin};
use super::{LinkError, Refusal};

/// A connection's remote address, which a dialled connection may not know.
struct Addr(Option<IpAddr>);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("an unknown address"),
        }
    }
}

/// How a connection came about, for a line.
fn opened_by(origin: Origin) -> &'static str {
    match origin {
        Origin::Dialled => "dialled",
        Origin::Accepted => "accepted",
    }
}

pub(super) fn dialling(me: NodeId, peer: NodeId, addr: SocketAddr) {
    debug!("node {}: dialling peer {} at {}", me, peer, addr);
}

pub(super) fn dial_failed(me: NodeId, peer: NodeId, addr: SocketAddr, timed_out: bool) {
    let why = if timed_out {
        "no answer in time"
    } else {
        "connect failed"
    };
    debug!("node {}: dial to peer {} at {}: {}", me, peer, addr, why);
}

pub(super) fn retry_in(me: NodeId, peer: NodeId, wait: Duration) {
    debug!("node {}: next dial to peer {} in {}", me, peer, wait);
}

pub(super) fn accepted(me: NodeId, from: SocketAddr) {
    debug!("node {}: accepted a connection from {}", me, from);
}

pub(super) fn up<T>(me: NodeId, peer: NodeId, c: &Conn<T>) {
    info!(
        "node {}: peer {} up ({} connection, {})",
        me,
        peer,
        opened_by(c.origin),
        Addr(c.ip)
    );
}

/// Connection `c` ended for `why` (called once per connection, as it is counted).
pub(super) fn closed<T>(me: NodeId, c: &Conn<T>, why: &LinkError) {
    let from = Addr(c.ip);
    match (c.peer, why) {
        (_, LinkError::Probed) => debug!("node {}: answered a probe from {}", me, from),
        (Some(p), LinkError::Local) => debug!("node {}: closed the connection to {}", me, p),
        (Some(p), LinkError::Duplicate(_)) => info!(
            "node {}: peer {} connected again from {} (a restart): old connection replaced",
            me, p, from
        ),
        (Some(p), LinkError::Refused(r)) => {
            warn!(
                "node {}: peer {} at {} refused our Hello: {}",
                me, p, from, r
            )
        }
        (Some(p), _) if c.authenticated => {
            warn!("node {}: peer {} down ({}): {}", me, p, from, why)
        }
        (Some(p), _) if c.origin == Origin::Dialled => info!(
            "node {}: connection to peer {} at {} lost before its Hello: {}",
            me, p, from, why
        ),
        // Connections that never said who they are: a flood, a stranger, a misconfigured
        // node. The operator-facing summary is the driver's; these say which address.
        (_, LinkError::HandshakeTimeout | LinkError::Capacity { .. }) => {
            info!("node {}: dropped a connection from {}: {}", me, from, why)
        }
        (_, LinkError::Socket(_)) => {
            debug!(
                "node {}: a connection from {} closed before its Hello",
                me, from
            )
        }
        _ => {
            warn!("node {}: refused a connection from {}: {}", me, from, why)
        }
    }
}

pub(super) fn gave_up(me: NodeId, r: &Refusal) {
    warn!(
        "node {}: giving up on peer {}: it keeps refusing our Hello: {}",
        me, r.peer, r.reason
    );
}
