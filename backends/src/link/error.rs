//! Why the link refused an operation or dropped a connection.

use embedded_nal::TcpErrorKind;
use tessera_core::wire::{NodeId, WireError};

use super::{Drops, RefusalReason};

/// Why the link refused an operation or dropped a connection.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum LinkError {
    /// The peer is not connected.
    #[error("peer {0} is not connected")]
    NotConnected(NodeId),
    /// The peer id is not in the peer table.
    #[error("unknown peer id {0}")]
    UnknownPeer(NodeId),
    /// A frame from the peer was malformed, forged or replayed.
    #[error("bad frame: {0}")]
    Wire(WireError),
    /// The first frame on a connection was not a `Hello`.
    #[error("first frame was not Hello")]
    NoHello,
    /// A new connection from the same peer (same address: a restart) replaced this one.
    #[error("peer {0} reconnected")]
    Duplicate(NodeId),
    /// A `Hello` claimed an id that a live connection from another address holds.
    #[error("node id {0} claimed from a second address while its connection is alive")]
    IdInUse(NodeId),
    /// A peer's `Hello` carries another model fingerprint than ours.
    #[error("node {peer} runs model {theirs:016x}, this node {ours:016x} (weights, cfg, layers, grid, kernel or policy differ)")]
    ModelMismatch {
        /// The peer.
        peer: NodeId,
        /// Its fingerprint.
        theirs: u64,
        /// Ours.
        ours: u64,
    },
    /// A probe (`tessera check`) was answered with our `Hello`; the connection is closed.
    #[error("answered a probe")]
    Probed,
    /// Before authentication, a frame header declared more than a `Hello` (`declared` bytes).
    #[error(
        "unauthenticated frame declares {declared} bytes (a Hello is {})",
        super::PRE_AUTH_FRAME
    )]
    Oversize {
        /// The declared frame length.
        declared: usize,
    },
    /// The connection did not authenticate within `HandshakeConfig::deadline`.
    #[error("no valid Hello before the deadline")]
    HandshakeTimeout,
    /// Evicted to make room: too many connections waiting to authenticate, in all
    /// (`per_addr` false) or from one address (`per_addr` true).
    #[error("too many connections waiting to authenticate{}", if *per_addr { " from this address" } else { "" })]
    Capacity {
        /// The per-address cap, rather than the global one.
        per_addr: bool,
    },
    /// The peer refused our `Hello` (an unauthenticated hint, see `link::handshake`).
    #[error("peer refused our Hello: {0}")]
    Refused(RefusalReason),
    /// The socket failed or the peer closed it.
    #[error("{}", socket_text(.0))]
    Socket(TcpErrorKind),
    /// The peer was silent for longer than `peer_dead`.
    #[error("peer silent for too long")]
    Silent,
    /// This node closed the connection.
    #[error("closed by this node")]
    Local,
    /// Binding or listening failed.
    #[error("cannot listen")]
    Listen,
    /// The configuration is unusable (what is wrong).
    #[error("bad link configuration: {0}")]
    Config(&'static str),
    /// The peer's send backlog is too full to take this frame (the peer does not read fast
    /// enough); nothing of the frame was sent.
    #[error("backlog to peer {peer} full: {queued} bytes queued, frame of {frame} refused")]
    Backlog {
        /// The peer.
        peer: NodeId,
        /// Bytes already waiting for it.
        queued: usize,
        /// Length of the refused frame.
        frame: usize,
    },
}

impl LinkError {
    /// The refusal a listener sends back for this error on a connection that has not
    /// authenticated, if any.
    pub(super) fn refusal(&self) -> Option<RefusalReason> {
        match self {
            LinkError::Wire(WireError::Forged | WireError::AuthMode) => Some(RefusalReason::Auth),
            LinkError::UnknownPeer(_) => Some(RefusalReason::UnknownId),
            LinkError::IdInUse(_) => Some(RefusalReason::IdInUse),
            LinkError::ModelMismatch { .. } => Some(RefusalReason::Model),
            LinkError::Wire(_) | LinkError::NoHello | LinkError::Oversize { .. } => {
                Some(RefusalReason::Protocol)
            }
            LinkError::Capacity { .. } => Some(RefusalReason::Busy),
            _ => None,
        }
    }

    /// The drop counter of a connection ended by this error.
    pub(super) fn count(&self, d: &mut Drops) {
        let c = match self {
            LinkError::Wire(WireError::Forged | WireError::AuthMode) => &mut d.forged,
            LinkError::Wire(WireError::Replayed) => &mut d.replayed,
            LinkError::Wire(WireError::Oversized) | LinkError::Oversize { .. } => &mut d.oversize,
            LinkError::Wire(_) => &mut d.malformed,
            LinkError::NoHello => &mut d.no_hello,
            LinkError::UnknownPeer(_) => &mut d.unknown_id,
            LinkError::IdInUse(_) => &mut d.duplicate_id,
            LinkError::ModelMismatch { .. } => &mut d.model_mismatch,
            LinkError::Probed => &mut d.probed,
            LinkError::Duplicate(_) => &mut d.replaced,
            LinkError::HandshakeTimeout => &mut d.handshake_timeout,
            LinkError::Capacity { per_addr: false } => &mut d.cap_global,
            LinkError::Capacity { per_addr: true } => &mut d.cap_per_addr,
            LinkError::Refused(_) => &mut d.refused_by_peer,
            LinkError::Silent => &mut d.silent,
            LinkError::Socket(_) | LinkError::NotConnected(_) | LinkError::Backlog { .. } => {
                &mut d.closed
            }
            LinkError::Local => &mut d.local,
            LinkError::Listen | LinkError::Config(_) => return,
        };
        *c += 1;
    }
}

/// What a socket error says: a closed pipe, or anything else.
fn socket_text(kind: &TcpErrorKind) -> &'static str {
    match kind {
        TcpErrorKind::PipeClosed => "connection closed",
        _ => "socket error",
    }
}

impl From<WireError> for LinkError {
    fn from(e: WireError) -> Self {
        LinkError::Wire(e)
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use alloc::string::ToString;

    use super::super::PRE_AUTH_FRAME;
    use super::*;

    #[test]
    fn the_messages_that_depend_on_a_field_say_which_case() {
        let cap = |per_addr| LinkError::Capacity { per_addr }.to_string();
        assert_eq!(cap(false), "too many connections waiting to authenticate");
        assert_eq!(
            cap(true),
            "too many connections waiting to authenticate from this address"
        );
        let socket = |k| LinkError::Socket(k).to_string();
        assert_eq!(socket(TcpErrorKind::PipeClosed), "connection closed");
        assert_eq!(socket(TcpErrorKind::Other), "socket error");
        let oversize = LinkError::Oversize { declared: 1 << 20 }.to_string();
        assert_eq!(
            oversize,
            alloc::format!(
                "unauthenticated frame declares 1048576 bytes (a Hello is {PRE_AUTH_FRAME})"
            )
        );
    }
}
