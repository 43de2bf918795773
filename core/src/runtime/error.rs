//! Why an event was refused ([`RuntimeError`]) or a frame could not be submitted
//! ([`SubmitError`]).

use core::fmt;

use crate::wire::{Kind, Message, NodeId};

/// Why a received message or event was refused. The state machine is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The sender is not connected as far as the machine knows (no `on_connected`, or
    /// `on_disconnected` since); the driver should drop it.
    UnknownPeer {
        /// The sender.
        peer: NodeId,
    },
    /// The message is not part of the protocol from this peer, in this role, policy or state
    /// (a `Task` nobody asked for, a `LayerTask` to the gateway...). The driver should drop
    /// the peer.
    Unexpected {
        /// The sender.
        peer: NodeId,
        /// The message kind.
        kind: Kind,
    },
    /// A tile id past the grid.
    TileOutOfRange {
        /// Tile received.
        tile: u16,
        /// Tiles in the grid.
        tiles: u16,
    },
    /// A layer index past the fused stack, or a stripe past the layer's stripes.
    StripeOutOfRange {
        /// Layer received.
        layer: u8,
        /// Stripe received.
        stripe: u16,
    },
    /// More peers than [`MAX_EDGES`](super::MAX_EDGES).
    TooManyPeers,
    /// No free frame slot.
    TooManyFrames,
    /// The edge's work queue is full; the sender's timeout will re-dispatch.
    WorkQueueFull,
    /// `on_computed` for work that was not handed out.
    NotComputing,
    /// The action queue lacks room for the worst case of this event: drain
    /// [`poll`](super::Gateway::poll) and call again.
    Busy,
}

impl RuntimeError {
    /// `msg` from `peer` is not part of the protocol here.
    pub(crate) fn unexpected(peer: NodeId, msg: &Message<'_>) -> RuntimeError {
        RuntimeError::Unexpected {
            peer,
            kind: msg.kind(),
        }
    }

    /// True when the peer broke the protocol and its connection should be closed.
    pub const fn peer_fault(&self) -> bool {
        matches!(
            self,
            RuntimeError::UnknownPeer { .. }
                | RuntimeError::Unexpected { .. }
                | RuntimeError::TileOutOfRange { .. }
                | RuntimeError::StripeOutOfRange { .. }
        )
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::UnknownPeer { peer } => write!(f, "message from unknown peer {peer}"),
            RuntimeError::Unexpected { peer, kind } => {
                write!(f, "unexpected {kind:?} from peer {peer}")
            }
            RuntimeError::TileOutOfRange { tile, tiles } => {
                write!(f, "tile {tile} out of range ({tiles} tiles)")
            }
            RuntimeError::StripeOutOfRange { layer, stripe } => {
                write!(f, "layer {layer} stripe {stripe} out of range")
            }
            RuntimeError::TooManyPeers => f.write_str("too many peers"),
            RuntimeError::TooManyFrames => f.write_str("no free frame slot"),
            RuntimeError::WorkQueueFull => f.write_str("work queue full"),
            RuntimeError::NotComputing => f.write_str("computed work that was not handed out"),
            RuntimeError::Busy => f.write_str("action queue full: drain poll() first"),
        }
    }
}

impl core::error::Error for RuntimeError {}

/// Why a frame could not be submitted at a data source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError {
    /// Already [`MAX_FRAMES_PER_SOURCE`](super::MAX_FRAMES_PER_SOURCE) frames in flight.
    TooManyFrames,
    /// The edge has no gateway connection.
    NoGateway,
    /// The action queue lacks room: drain `poll` first.
    Busy,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::TooManyFrames => f.write_str("too many frames in flight"),
            SubmitError::NoGateway => f.write_str("not connected to the gateway"),
            SubmitError::Busy => f.write_str("action queue full: drain poll() first"),
        }
    }
}

impl core::error::Error for SubmitError {}
