//! Sans-IO runtime: the gateway and edge state machines (docs/design.md §4, §5).
//!
//! A [`Gateway`] and an [`Edge`] decide; the driver moves bytes. They never own tensors, touch
//! sockets, threads or clocks, or allocate. The driver feeds events with the current time —
//! [`on_connected`](Edge::on_connected), [`on_disconnected`](Edge::on_disconnected),
//! [`on_message`](Edge::on_message) (which returns a [`Verdict`] on the payload),
//! [`on_computed`](Edge::on_computed), [`submit_frame`](Edge::submit_frame) — then drains
//! [`poll`](Edge::poll) until it returns `None` and sleeps until [`poll_at`](Edge::poll_at) or
//! the next event. [`Action`]s name data by ids (frame, tile, stripe); the driver slices inputs
//! from its frame store (`ftp::TilePlan::input(0)` for the tile's mode), outputs and strips
//! from its stores, and sends the data-free [`Message`](crate::wire::Message)s of
//! [`Action::Send`] as they are.
//!
//! Every exchange has a deadline from [`Config`]; a late tile or stripe is dispatched again,
//! the first result wins and later ones get [`Verdict::Discard`]; a departed or silent peer's
//! work is re-dispatched; the gateway computes itself while no edge is alive
//! ([`Config::gateway_fallback`]). State is bounded: [`MAX_EDGES`], [`MAX_GATEWAY_FRAMES`],
//! [`MAX_FRAMES_PER_SOURCE`], [`MAX_STRIPES`], `ftp::MAX_TILES`; frame slots are recycled and
//! frame numbers may wrap. Nothing from the network indexes an array unchecked.
//!
//! # Sessions
//!
//! Connections, greetings (`Hello`), heartbeats and liveness belong to the transport (the
//! driver's link), not to these machines: the driver calls `on_connected(peer)` once a peer is
//! authenticated and `on_disconnected(peer)` when its connection is gone, for whatever reason.
//! The gateway counts an edge as alive between the two and refuses messages from any other
//! ([`RuntimeError::UnknownPeer`]); an edge talks to the gateway and to other edges only while
//! they are connected. A driver that cannot deliver a message to a peer must report the peer
//! disconnected, so nothing waits a timeout for a reply to a message never sent. Nodes start in
//! any order and may restart with the same id: a peer that comes up (again) is used at once.
//! Frames in flight at a source when its gateway connection goes down are re-submitted when it
//! is back (see [`Edge`]).
//!
//! # When a frame is done
//!
//! By default the gateway sends `FrameDone` as soon as every tile (BODP: the last layer) is in.
//! With [`Config::confirm_done`] it sends it only when the driver calls
//! [`Gateway::frame_done`] (the final result — the tail's boxes — is made); the frame keeps its
//! slot until then, so finished frames awaiting their result are bounded by
//! [`MAX_GATEWAY_FRAMES`] and a source, holding each frame until `FrameDone`, feeds no faster
//! than the results are made. A confirmation for a source that is away is sent when it
//! reconnects, until the frame's deadline.
//!
//! # Message sequences
//!
//!
//! * **WSH** — source: `FrameSubmit` (action [`Action::SubmitFrame`]; the driver may send the
//!   frame's picture before it and no values in it, and then relays the picture to the workers
//!   with their tasks) → gateway queues the frame's tiles (oldest frame first across sources). Worker: `TaskRequest` → `Task` (lent
//!   with a deadline) or `NoTask` (the worker is parked: the gateway pushes a `Task` as soon as
//!   work appears) → compute → `Result`. Gateway: all tiles in → [`Action::FrameComplete`] and
//!   `FrameDone` to the source.
//! * **WST** — source: `Register` → computes its queue from the head, sends each `Result`;
//!   `Unregister` when its queue is empty (again `Register` if a lent tile comes back). Thief:
//!   `StealRequest` → gateway `StealReply { victim }` (round-robin over sources with registered
//!   frames, the gateway's own frames included, never the thief) → `StealTask` to the victim →
//!   `Task` from the TAIL of the victim's oldest frame (lent with a deadline; re-queued at the
//!   head on timeout or when the thief disconnects) or `NoTask` → compute → `Result` to the
//!   gateway. A thief that found nothing waits `steal_backoff` (doubling, up to
//!   [`MAX_IDLE_BACKOFF`], while the gateway has nothing at all) or for a `Register` notice the
//!   gateway sends to thieves it turned away. Gateway: `Coverage` to the source for each tile
//!   whose result it holds; all in → `FrameComplete` + `FrameDone`.
//! * **WST-S** — WST plus reuse: queues in checkerboard order (level 0 first). Level-0 tiles run
//!   in `ftp::Mode::Reuse` (plain compute that keeps its strips) and their finisher sends
//!   `Strips` then `Result` to the gateway; the gateway sends `Coverage` only once it holds both
//!   (readiness follows delivery). A level-1 tile runs `Reuse` only if every existing neighbour
//!   is covered (for the source: covered or computed by itself, fetching only the others'
//!   strips); a thief running a `Reuse` tile fetches every side: one `StripRequest { tile:
//!   neighbour, sides: the side facing it }` per neighbour, answered by `Strips` (or `Reject`,
//!   whereupon a source falls back to `Plain`, a thief drops the tile). Otherwise `Plain`. The
//!   owner passes over, and thieves skip from the tail, level-1 tiles that would fall back while
//!   a ready tile exists. With [`Config::link_reuse`] strips stay where they were made; a ready
//!   level-1 tile goes to a thief `Plain` after `StripHolders` (who holds each neighbour's
//!   strips), and the node running it sends each holding edge a `StripRequest` or recomputes
//!   the overlap, as its link model says (`link_cost`), through the gateway (which relays to
//!   the edge whose result came in) only without a direct connection; a source keeps a level-1
//!   tile queued while its neighbours are about done (a thief gets `NoTask`).
//! * **BODP** — source: `FrameSubmit`. Gateway: for each fused layer, splits the output rows
//!   into one stripe per alive edge sized by its last measured speed, sends `LayerTask` (rows
//!   plus halo of the layer's input), waits for every `LayerResult` (lock-step), re-dispatches a
//!   late stripe to the fastest other edge (both results accepted, first wins), emits
//!   [`Action::LayerComplete`], then the next layer; after the last, `FrameComplete`. The
//!   gateway holds each whole map (gateway-resident).
//! * **MoDNN** — as BODP at layer 0; then each worker keeps its stripe. After a layer it sends
//!   `Strips` (the boundary rows other stripes read next, [`modnn_boundaries`]) and a
//!   `LayerResult` with no values; the gateway sends each worker the rows it lacks
//!   ([`Action::SendHalo`]: `Strips`, then a `LayerTask` with no input rows). The last layer's
//!   `LayerResult`s carry the stripes. A worker lost or late after layer 0 restarts the frame
//!   from layer 0.
//!
//! # Layout
//!
//! `config` (what every node of a run shares), `action` (what the machines ask of the driver),
//! `error`, `queue` (the bounded action queue), `link_cost` (fetch strips or recompute),
//! `sets` (tile, peer and side sets), `source` (a data source's tile queue, shared by the edge
//! and the gateway's own frames), `edge`, and
//! `gateway/`: `peers`, `frames`, one module per policy (`wsh`, `wst`, `wst_s`, `bodp`,
//! `modnn`) and `local` (the gateway as a source and fallback worker). [`coded`] is the CDC
//! stage.

mod action;
pub mod coded;
mod config;
mod edge;
mod error;
mod gateway;
mod link_cost;
mod queue;
mod sets;
mod source;

pub use action::{Action, Verdict, Work, REJECT_NO_STRIPS};
pub use config::{Config, StackShape};
pub use edge::{Edge, MAX_IDLE_BACKOFF};
pub use error::{RuntimeError, SubmitError};
pub use gateway::modnn::{modnn_boundaries, modnn_missing, modnn_next_rows, MODNN_BAND_SIDES};
pub use gateway::Gateway;
pub use link_cost::{LinkEstimate, StripFetch, TileCosts};

/// Most edges a gateway tracks at once.
pub const MAX_EDGES: usize = 16;
/// Most frames in flight per data source.
pub const MAX_FRAMES_PER_SOURCE: usize = 8;
/// Most frames in flight at the gateway, all sources together.
pub const MAX_GATEWAY_FRAMES: usize = 32;
/// Most stripes per BODP layer (one per edge).
pub const MAX_STRIPES: usize = MAX_EDGES;
/// Most received tasks an edge holds (one computing, the rest waiting).
pub const MAX_EDGE_WORK: usize = 4;
/// Capacity of a node's action queue.
pub const ACTION_QUEUE: usize = 64;

/// Counters a node keeps since creation (for the driver's per-run report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tiles or stripes this node computed.
    pub tiles_computed: u32,
    /// Tiles this node lent to a worker or thief.
    pub tiles_lent: u32,
    /// Times lent tiles or stripes were taken back (timeout, disconnect) to go out again.
    pub tiles_redispatched: u32,
    /// Payloads answered with [`Verdict::Discard`] (late, duplicate, unknown frame).
    pub discarded: u32,
    /// Level-1 tiles this node started in Reuse mode.
    pub reuse_runs: u32,
    /// Reuse runs that fell back to Plain because strips could not be fetched.
    pub plain_fallbacks: u32,
    /// `reuse = "link"`: level-1 tiles whose strips this node fetched from other edges
    /// (its link model said fetching was cheaper).
    pub link_fetches: u32,
    /// `reuse = "link"`: level-1 tiles whose overlap this node recomputed although other
    /// edges held the strips (the link model said recomputing was cheaper, or a holder was
    /// not reachable).
    pub link_recomputes: u32,
    /// `reuse = "link"`, gateway: strip answers relayed from a holder to an edge without a
    /// connection to it.
    pub strips_relayed: u32,
    /// Frames abandoned (gateway).
    pub frames_failed: u32,
}
