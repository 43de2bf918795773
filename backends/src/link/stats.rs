//! The link's counters: traffic, and every connection it dropped, by reason.

use super::Refusal;

/// Counters of the link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bytes handed to sockets.
    pub bytes_sent: u64,
    /// Bytes read from sockets.
    pub bytes_received: u64,
    /// Frames accepted.
    pub frames_received: u64,
    /// Frames whose tag did not verify.
    pub forged: u64,
    /// Frames replayed or stale.
    pub replayed: u64,
    /// Connections dropped for a protocol violation (malformed frame, no Hello, bad id).
    pub violations: u64,
    /// Connection attempts started (dials).
    pub dials: u64,
    /// Dials abandoned after `LinkConfig::connect` without an answer.
    pub dial_timeouts: u64,
    /// Sends refused because the peer's backlog was full.
    pub sends_refused: u64,
    /// Connections of identified peers that went down (any reason).
    pub peers_lost: u64,
    /// Every connection that ended, by reason (each ended connection counts exactly once).
    pub dropped: Drops,
    /// Set once one peer refused our `Hello` `HandshakeConfig::max_refusals` times in a row
    /// for a reason retrying cannot fix (the first such peer): the node should say so and
    /// stop. The link itself keeps dialling.
    pub gave_up: Option<Refusal>,
}

/// Connections that ended, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// A frame with a bad magic, version, kind, flags or length (or a malformed payload).
    pub malformed: u64,
    /// Before authentication, a header declaring more than a `Hello`
    /// ([`PRE_AUTH_FRAME`](super::PRE_AUTH_FRAME)).
    pub oversize: u64,
    /// A frame whose tag did not verify (wrong key) or whose authentication mode differs.
    pub forged: u64,
    /// A replayed or stale frame.
    pub replayed: u64,
    /// The first frame was not a `Hello` (or named another node than its header).
    pub no_hello: u64,
    /// A frame from a node id not in the peer table, or not the connection's peer.
    pub unknown_id: u64,
    /// A `Hello` claiming an id a live connection from another address holds.
    pub duplicate_id: u64,
    /// A `Hello` carrying another model fingerprint than ours (different weights, cfg, fused
    /// layers, grid, kernel or policy).
    pub model_mismatch: u64,
    /// A probe (`tessera check`) answered with our `Hello`, then closed.
    pub probed: u64,
    /// Not authenticated within `HandshakeConfig::deadline`.
    pub handshake_timeout: u64,
    /// Evicted: too many connections waiting to authenticate (`max_pending`).
    pub cap_global: u64,
    /// Evicted: too many waiting connections from one address (`max_pending_per_addr`).
    pub cap_per_addr: u64,
    /// Our dial was refused by the peer (it sent a refusal; see `gave_up`).
    pub refused_by_peer: u64,
    /// Superseded by the same peer's new authenticated connection from the same address
    /// (a restart).
    pub replaced: u64,
    /// Silent for longer than `peer_dead`.
    pub silent: u64,
    /// Closed by the peer, or a socket error.
    pub closed: u64,
    /// Closed by this node ([`Link::disconnect`](super::Link::disconnect)).
    pub local: u64,
}

impl Drops {
    /// All dropped connections.
    pub fn total(&self) -> u64 {
        self.malformed
            + self.oversize
            + self.forged
            + self.replayed
            + self.no_hello
            + self.unknown_id
            + self.duplicate_id
            + self.model_mismatch
            + self.probed
            + self.handshake_timeout
            + self.cap_global
            + self.cap_per_addr
            + self.refused_by_peer
            + self.replaced
            + self.silent
            + self.closed
            + self.local
    }
}
