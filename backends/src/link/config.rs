//! What a node's link is told: who it is, its peers, its key, and the bounds that keep a
//! hostile or broken peer from costing more than a little memory and time.

extern crate alloc;

use alloc::vec::Vec;
use core::net::SocketAddr;

use tessera_core::time::Duration;
use tessera_core::wire::{Key, Limits, NodeId};

/// A per-peer send backlog that holds a few YOLOv2-608 input frames (4.4 MiB each) while a
/// slow link drains, and bounds what a peer that stopped reading can cost.
pub const DEFAULT_BACKLOG: usize = 16 << 20;

/// A default for `LinkConfig::max_backoff`: a peer that is down costs one dial every 4 s.
pub const MAX_BACKOFF: Duration = Duration::from_millis(4000);

/// Configuration of one node's link.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// This node.
    pub me: NodeId,
    /// Local port to listen on.
    pub port: u16,
    /// Every other node of the cluster and its listening address.
    pub peers: Vec<(NodeId, SocketAddr)>,
    /// Cluster key; `None` runs unauthenticated (measurements only).
    pub key: Option<Key>,
    /// Bounds on received frames (of authenticated connections; see [`HandshakeConfig`]).
    pub limits: Limits,
    /// Sequence number of this node's first frame; must exceed any it used before with the
    /// same key (e.g. microseconds since the Unix epoch at start-up).
    pub first_seq: u64,
    /// A peer silent this long is dropped.
    pub peer_dead: Duration,
    /// Wait before the first re-dial of a peer that is down; it doubles on every failed
    /// attempt up to `max_backoff` and is reset when the peer comes up.
    pub retry: Duration,
    /// Longest wait between two dials of a peer that is down (e.g. [`MAX_BACKOFF`]; equal to
    /// `retry` for a fixed period).
    pub max_backoff: Duration,
    /// A connect still in progress after this long is abandoned (a peer that drops SYNs).
    pub connect: Duration,
    /// Most bytes queued for one peer beyond what its socket took. A send that would grow the
    /// backlog past it is refused with [`LinkError::Backlog`](super::LinkError::Backlog); a
    /// frame finding the backlog empty is always accepted, so one peer's backlog never exceeds
    /// `backlog` plus one frame (bounded by the peer's receive [`Limits`]).
    pub backlog: usize,
    /// Bounds on connections that have not authenticated yet.
    pub handshake: HandshakeConfig,
}

/// Bounds on connections before their first frame (the `Hello`) verifies.
///
/// Until then a connection may buffer only one `Hello`-sized frame
/// ([`PRE_AUTH_FRAME`](super::PRE_AUTH_FRAME)); these bound how many such connections exist and
/// how long each may stay. Authenticated peers are never dropped to make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// A connection (accepted or dialled) not authenticated this long after it opened is
    /// closed and counted.
    pub deadline: Duration,
    /// Most accepted connections waiting for their `Hello` at once; a new one past it evicts
    /// the oldest waiting connection of the source address holding the most.
    pub max_pending: usize,
    /// Most accepted connections waiting for their `Hello` from one source address; a new one
    /// past it evicts that address's oldest.
    pub max_pending_per_addr: usize,
    /// After this many consecutive refusals of our `Hello` by one peer (wrong key, unknown id,
    /// malformed; an id in use only once `2 × peer_dead` has passed too), the link sets
    /// [`LinkStats::gave_up`](super::LinkStats::gave_up) so the node can say why and stop.
    pub max_refusals: u32,
    /// Fingerprint of the model this node runs: our `Hello` carries it, and a peer's `Hello`
    /// carrying another is refused ([`RefusalReason::Model`](super::RefusalReason::Model)).
    pub model: u64,
}

impl HandshakeConfig {
    /// Defaults: 2 s to authenticate, 64 waiting connections, 8 per source address, give up
    /// after 5 refusals, model fingerprint 0.
    pub const DEFAULT: HandshakeConfig = HandshakeConfig {
        deadline: Duration::from_millis(2000),
        max_pending: 64,
        max_pending_per_addr: 8,
        max_refusals: 5,
        model: 0,
    };
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        HandshakeConfig::DEFAULT
    }
}
