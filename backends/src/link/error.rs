//! Why the link refused an operation or dropped a connection.

use core::fmt;

use embedded_nal::TcpErrorKind;
use tessera_core::wire::{NodeId, WireError};

use super::{Drops, RefusalReason};

/// Why the link refused an operation or dropped a connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinkError {
    /// The peer is not connected.
    NotConnected(NodeId),
    /// The peer id is not in the peer table.
    UnknownPeer(NodeId),
    /// A frame from the peer was malformed, forged or replayed.
    Wire(WireError),
    /// The first frame on a connection was not a `Hello`.
    NoHello,
    /// A new connection from the same peer (same address: a restart) replaced this one.
    Duplicate(NodeId),
    /// A `Hello` claimed an id that a live connection from another address holds.
    IdInUse(NodeId),
    /// A peer's `Hello` carries another model fingerprint than ours.
    ModelMismatch {
        /// The peer.
        peer: NodeId,
        /// Its fingerprint.
        theirs: u64,
        /// Ours.
        ours: u64,
    },
    /// A probe (`tessera check`) was answered with our `Hello`; the connection is closed.
    Probed,
    /// Before authentication, a frame header declared more than a `Hello` (`declared` bytes).
    Oversize {
        /// The declared frame length.
        declared: usize,
    },
    /// The connection did not authenticate within `HandshakeConfig::deadline`.
    HandshakeTimeout,
    /// Evicted to make room: too many connections waiting to authenticate, in all
    /// (`per_addr` false) or from one address (`per_addr` true).
    Capacity {
        /// The per-address cap, rather than the global one.
        per_addr: bool,
    },
    /// The peer refused our `Hello` (an unauthenticated hint, see `link::handshake`).
    Refused(RefusalReason),
    /// The socket failed or the peer closed it.
    Socket(TcpErrorKind),
    /// The peer was silent for longer than `peer_dead`.
    Silent,
    /// This node closed the connection.
    Local,
    /// Binding or listening failed.
    Listen,
    /// The configuration is unusable (what is wrong).
    Config(&'static str),
    /// The peer's send backlog is too full to take this frame (the peer does not read fast
    /// enough); nothing of the frame was sent.
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

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NotConnected(p) => write!(f, "peer {p} is not connected"),
            LinkError::UnknownPeer(p) => write!(f, "unknown peer id {p}"),
            LinkError::Wire(e) => write!(f, "bad frame: {e}"),
            LinkError::NoHello => f.write_str("first frame was not Hello"),
            LinkError::Duplicate(p) => write!(f, "peer {p} reconnected"),
            LinkError::IdInUse(p) => write!(
                f,
                "node id {p} claimed from a second address while its connection is alive"
            ),
            LinkError::ModelMismatch { peer, theirs, ours } => write!(
                f,
                "node {peer} runs model {theirs:016x}, this node {ours:016x} (weights, cfg, \
                 layers, grid, kernel or policy differ)"
            ),
            LinkError::Probed => f.write_str("answered a probe"),
            LinkError::Oversize { declared } => write!(
                f,
                "unauthenticated frame declares {declared} bytes (a Hello is {})",
                super::PRE_AUTH_FRAME
            ),
            LinkError::HandshakeTimeout => f.write_str("no valid Hello before the deadline"),
            LinkError::Capacity { per_addr: false } => {
                f.write_str("too many connections waiting to authenticate")
            }
            LinkError::Capacity { per_addr: true } => {
                f.write_str("too many connections waiting to authenticate from this address")
            }
            LinkError::Refused(r) => write!(f, "peer refused our Hello: {r}"),
            LinkError::Socket(TcpErrorKind::PipeClosed) => f.write_str("connection closed"),
            LinkError::Socket(_) => f.write_str("socket error"),
            LinkError::Silent => f.write_str("peer silent for too long"),
            LinkError::Local => f.write_str("closed by this node"),
            LinkError::Listen => f.write_str("cannot listen"),
            LinkError::Config(what) => write!(f, "bad link configuration: {what}"),
            LinkError::Backlog {
                peer,
                queued,
                frame,
            } => write!(
                f,
                "backlog to peer {peer} full: {queued} bytes queued, frame of {frame} refused"
            ),
        }
    }
}

impl core::error::Error for LinkError {}

impl From<WireError> for LinkError {
    fn from(e: WireError) -> Self {
        LinkError::Wire(e)
    }
}
