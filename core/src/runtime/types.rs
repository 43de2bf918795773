//! Configuration, actions, verdicts, errors and small bounded containers shared by the gateway
//! and the edge.

use core::fmt;

use heapless::Deque;

use crate::ftp::{FusedStack, Grid, Side, MAX_FUSED, MAX_TILES};
use crate::region::Region;
use crate::time::{Duration, Instant};
use crate::wire::{FrameKey, Kind, Message, NodeId, Policy, TileMode};

use super::ACTION_QUEUE;

/// Output extents `(width, height)` of every fused layer: what BODP splits into stripes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackShape {
    len: u8,
    out: [(u32, u32); MAX_FUSED],
}

impl StackShape {
    /// The output extents of `stack`'s layers.
    pub fn from_stack(stack: &FusedStack<'_>) -> StackShape {
        let mut s = StackShape {
            len: 0,
            out: [(0, 0); MAX_FUSED],
        };
        for (l, layer) in stack.layers().iter().enumerate() {
            s.out[l] = (layer.output.w, layer.output.h);
            s.len = l as u8 + 1;
        }
        s
    }

    /// Extents given directly (at most [`MAX_FUSED`] layers are kept).
    pub fn from_extents(extents: &[(u32, u32)]) -> StackShape {
        let mut s = StackShape {
            len: 0,
            out: [(0, 0); MAX_FUSED],
        };
        for (l, &e) in extents.iter().take(MAX_FUSED).enumerate() {
            s.out[l] = e;
            s.len = l as u8 + 1;
        }
        s
    }

    /// Number of fused layers.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// True when no layer is described.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `(width, height)` of layer `layer`'s output.
    pub fn output(&self, layer: usize) -> Option<(u32, u32)> {
        if layer < self.len() {
            Some(self.out[layer])
        } else {
            None
        }
    }
}

/// Settings shared by every node of a run (the gateway's and the edges' must agree on
/// `policy` and `grid`).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Scheduling policy.
    pub policy: Policy,
    /// The tile grid (tile count, checkerboard levels, neighbours).
    pub grid: Grid,
    /// Output extents of the fused layers (BODP stripes).
    pub layers: StackShape,
    /// A dispatched tile or stripe not back within this is dispatched again (the first result
    /// wins, later ones are discarded). Also bounds every request/reply exchange.
    pub tile_timeout: Duration,
    /// A thief that found no work (no victim, or the victim had nothing) asks again after this,
    /// unless the gateway announces a new registration first.
    pub steal_backoff: Duration,
    /// A frame not finished this long after it entered the cluster is abandoned
    /// ([`Action::FrameFailed`]).
    pub frame_deadline: Duration,
    /// Gateway only: compute tiles (or stripes) itself while no edge is alive.
    pub gateway_fallback: bool,
    /// Gateway only: a complete frame's `FrameDone` waits for
    /// [`Gateway::frame_done`](super::Gateway::frame_done) (the driver holds the final result,
    /// e.g. after the tail), and the frame keeps its slot until then, so the backlog of
    /// finished frames is bounded by [`MAX_GATEWAY_FRAMES`](super::MAX_GATEWAY_FRAMES) and a
    /// source, which holds a frame until `FrameDone`, feeds no faster than results are made.
    pub confirm_done: bool,
}

impl Config {
    /// A configuration with the default timeouts: tile 2 s, steal backoff 50 ms, frame 60 s,
    /// gateway fallback on, `FrameDone` as soon as every tile is in (`confirm_done` off). Connection liveness is not the machines' concern: the transport
    /// reports peers up and down.
    pub fn new(policy: Policy, stack: &FusedStack<'_>, grid: Grid) -> Config {
        Config::with_shape(policy, StackShape::from_stack(stack), grid)
    }

    /// As [`Config::new`] from extents already extracted.
    pub fn with_shape(policy: Policy, layers: StackShape, grid: Grid) -> Config {
        Config {
            policy,
            grid,
            layers,
            tile_timeout: Duration::from_secs(2),
            steal_backoff: Duration::from_millis(50),
            frame_deadline: Duration::from_secs(60),
            gateway_fallback: true,
            confirm_done: false,
        }
    }

    pub(crate) fn tiles(&self) -> u16 {
        self.grid.tile_count() as u16
    }

    pub(crate) fn reuse(&self) -> bool {
        self.policy == Policy::WstS
    }

    pub(crate) fn stealing(&self) -> bool {
        matches!(self.policy, Policy::Wst | Policy::WstS)
    }
}

/// A message that carries no tensor; the driver sends [`Control::to_message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // fields mirror `wire::Message`
pub enum Control {
    Register {
        frame: FrameKey,
        tiles: u16,
    },
    Unregister {
        frame: FrameKey,
    },
    StealRequest,
    StealReply {
        victim: Option<NodeId>,
    },
    StealTask,
    NoTask,
    TaskRequest,
    StripRequest {
        frame: FrameKey,
        tile: u16,
        sides: u8,
    },
    Coverage {
        frame: FrameKey,
        tile: u16,
    },
    FrameDone {
        frame: FrameKey,
        complete: bool,
    },
    Reject {
        code: u16,
    },
}

impl Control {
    /// The wire message.
    pub const fn to_message(self) -> Message<'static> {
        match self {
            Control::Register { frame, tiles } => Message::Register { frame, tiles },
            Control::Unregister { frame } => Message::Unregister { frame },
            Control::StealRequest => Message::StealRequest,
            Control::StealReply { victim } => Message::StealReply { victim },
            Control::StealTask => Message::StealTask,
            Control::NoTask => Message::NoTask,
            Control::TaskRequest => Message::TaskRequest,
            Control::StripRequest { frame, tile, sides } => {
                Message::StripRequest { frame, tile, sides }
            }
            Control::Coverage { frame, tile } => Message::Coverage { frame, tile },
            Control::FrameDone { frame, complete } => Message::FrameDone { frame, complete },
            Control::Reject { code } => Message::Reject { code },
        }
    }
}

/// [`Control::Reject`] code: the gateway does not hold the strips asked for.
pub const REJECT_NO_STRIPS: u16 = 1;

/// A unit of computation the driver runs and reports back with `on_computed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Work {
    /// Run tile `tile` of `frame` through the fused layers (`ftp::TilePlan` in `mode`).
    Tile {
        /// The frame.
        frame: FrameKey,
        /// Tile id.
        tile: u16,
        /// Plain, or Reuse (level 0: also keep the strips; level 1: reduced input + strips).
        mode: TileMode,
    },
    /// BODP: compute rows `output` of fused layer `layer` from the input stripe plus halo
    /// (`FusedStack::back(layer, output)`).
    Layer {
        /// The frame.
        frame: FrameKey,
        /// Fused layer.
        layer: u8,
        /// Stripe index within the layer.
        stripe: u16,
        /// Output region to compute (full width × a band of rows).
        output: Region,
    },
}

impl Work {
    /// The frame the work belongs to.
    pub const fn frame(&self) -> FrameKey {
        match *self {
            Work::Tile { frame, .. } | Work::Layer { frame, .. } => frame,
        }
    }
}

/// What the driver must do. Data is named by ids; the driver moves the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send a data-free message.
    Send {
        /// Destination.
        to: NodeId,
        /// The message.
        msg: Control,
    },
    /// Source (WSH, BODP): send `FrameSubmit { frame, input }` with the frame's image to the
    /// gateway. Keep the image until [`Action::FrameComplete`]/[`Action::FrameFailed`].
    SubmitFrame {
        /// The frame.
        frame: FrameKey,
    },
    /// Send `Task { frame, tile, mode, input }`: the tile's layer-0 input region from the
    /// frame's image, `TilePlan::new(.., mode).input(0)` (reduced for a level-1 Reuse tile).
    SendTask {
        /// Destination.
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// Tile id.
        tile: u16,
        /// Mode the receiver will compute in.
        mode: TileMode,
    },
    /// Send `Result { frame, tile, output }` with the tile's last-layer output.
    SendResult {
        /// Destination (the gateway).
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// Tile id.
        tile: u16,
    },
    /// Send `Strips { frame, tile, strips }`: the strips of level-0 tile `tile` on the sides in
    /// `sides` (bit `Side::index()`), from the strip store (an edge: its own computation; the
    /// gateway: its cache).
    SendStrips {
        /// Destination.
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// The level-0 tile that produced the strips.
        tile: u16,
        /// Sides wanted.
        sides: u8,
    },
    /// BODP gateway: send `LayerTask { frame, layer, stripe, output, input }`, `input` being
    /// `FusedStack::back(layer, output)` of layer `layer`'s input map (the image for layer 0).
    SendLayerTask {
        /// Destination.
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// Fused layer.
        layer: u8,
        /// Stripe index.
        stripe: u16,
        /// Output rows to compute.
        output: Region,
    },
    /// BODP edge: send `LayerResult { frame, layer, stripe, output }`.
    SendLayerResult {
        /// Destination (the gateway).
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// Fused layer.
        layer: u8,
        /// Stripe index.
        stripe: u16,
    },
    /// Run `work`, then call `on_computed(now, work)`. One at a time per node.
    Compute(Work),
    /// BODP gateway: every stripe of `layer` is in; its output map is complete and becomes
    /// the next layer's input.
    LayerComplete {
        /// The frame.
        frame: FrameKey,
        /// Fused layer.
        layer: u8,
    },
    /// Gateway: every tile (BODP: the last layer) is in; stitch, run the tail, free the frame's
    /// storage. Source edge: the gateway finished the frame; drop its image and strips.
    FrameComplete {
        /// The frame.
        frame: FrameKey,
    },
    /// The frame is abandoned (deadline, source gone, gateway lost, no capacity); drop its
    /// storage.
    FrameFailed {
        /// The frame.
        frame: FrameKey,
    },
}

/// What the driver does with the payload of a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Keep it: store the result tensor, cache the strips, take the task input or image.
    /// (For a data-free message: it was processed.)
    Accept,
    /// Drop it: late, duplicate, or about a frame no longer (or never) known.
    Discard,
}

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

/// A set of tile ids (`< MAX_TILES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct TileSet(u64);

const _: () = assert!(MAX_TILES <= 64, "TileSet is one u64");

impl TileSet {
    pub(crate) fn contains(&self, t: u16) -> bool {
        t < 64 && self.0 & (1 << t) != 0
    }
    pub(crate) fn insert(&mut self, t: u16) {
        if t < 64 {
            self.0 |= 1 << t;
        }
    }
    pub(crate) fn remove(&mut self, t: u16) {
        if t < 64 {
            self.0 &= !(1 << t);
        }
    }
    pub(crate) fn len(&self) -> u16 {
        self.0.count_ones() as u16
    }
}

/// A set of node ids: the peers a machine was told are connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct PeerSet([u64; 4]);

impl PeerSet {
    /// Ids past 255 are never members (no cluster has that many nodes).
    pub(crate) fn contains(&self, p: NodeId) -> bool {
        p < 256 && self.0[p as usize / 64] & (1 << (p % 64)) != 0
    }
    pub(crate) fn insert(&mut self, p: NodeId) {
        if p < 256 {
            self.0[p as usize / 64] |= 1 << (p % 64);
        }
    }
    pub(crate) fn remove(&mut self, p: NodeId) {
        if p < 256 {
            self.0[p as usize / 64] &= !(1 << (p % 64));
        }
    }
}

/// Bit mask of `sides`.
pub(crate) fn side_bit(s: Side) -> u8 {
    1 << s.index()
}

/// The bounded queue of pending actions.
pub(crate) struct Actions {
    q: Deque<Action, ACTION_QUEUE>,
}

/// Worst-case actions one event may queue; events refuse to start with less room.
pub(crate) const EVENT_BUDGET: usize = 40;

impl Actions {
    pub(crate) const fn new() -> Self {
        Actions { q: Deque::new() }
    }
    pub(crate) fn push(&mut self, a: Action) {
        // Events check `room()` first, so this never overflows; if it did, dropping an action
        // is recovered by the timeouts (never a panic).
        let _ = self.q.push_back(a);
    }
    pub(crate) fn pop(&mut self) -> Option<Action> {
        self.q.pop_front()
    }
    pub(crate) fn room(&self) -> bool {
        ACTION_QUEUE - self.q.len() >= EVENT_BUDGET
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
    pub(crate) fn send(&mut self, to: NodeId, msg: Control) {
        self.push(Action::Send { to, msg });
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
