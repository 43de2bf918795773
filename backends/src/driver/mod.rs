//! The runtime driver: binds a core state machine ([`Gateway`] or [`Edge`]) to a [`Link`] over
//! any embedded-nal stack, to tensor stores, and to an [`Executor`] that computes.
//!
//! The state machines decide and name data by ids; this driver moves the bytes: it slices tile
//! inputs out of frame images (`TilePlan::input(0)` for the tile's mode), stores accepted
//! results into the frame's output map, caches strips, and streams tensors straight from these
//! stores into the link. It is generic over the stack and takes time as an argument, so the
//! same code runs over Linux sockets and over smoltcp in the simulator.
//!
//! A node may also run the coded tail ([`Node::attach_coded`]): its coded messages go to its
//! [`NodeCoded`] part and peer up/down to both stages, so FTP, BODP and coded traffic share
//! the node's one link, port, key and liveness. With a [`BoxedLane`]
//! ([`Node::set_coded_lane`]) the coded stage's shards and results travel as datagrams on the
//! node's UDP port of the same number instead; peer up/down still come from the link.

extern crate alloc;

pub mod compute;
#[cfg(feature = "std")]
pub mod heap;
#[cfg(feature = "std")]
pub mod node_thread;
pub mod packed;
#[cfg(feature = "std")]
pub mod readiness;
pub mod shipped;
#[cfg(feature = "std")]
pub mod thread;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use embedded_nal::TcpFullStack;
use tessera_core::ftp::Side;
use tessera_core::model::Shape;
use tessera_core::region::Span;
use tessera_core::runtime::{
    modnn_boundaries, modnn_missing, Action, Config, Edge, Gateway, RuntimeError, Stats,
    SubmitError, Verdict, Work, MAX_FRAMES_PER_SOURCE, MAX_GATEWAY_FRAMES, MODNN_BAND_SIDES,
};
use tessera_core::tensor::{copy_overlap, region_len, FeatureView, FeatureViewMut};
use tessera_core::time::Instant;
use tessera_core::wire::{
    Body, FrameKey, Kind, Message, NodeId, Policy, Precision, StripSource, Tensor, GATEWAY,
};
use tessera_core::Region;
use tessera_log::{debug, warn};

pub use compute::{
    execute, execute_in, needed_strips, take_strips, BlockGrid, Done, Executor, Inline, Job, Model,
    ModelError, ParamSource, Strip, StripMap, Strips, Workspace,
};

use crate::coded::{
    BoxedGlue, BoxedShards, CodedFinished, CodedMessage, CodedNodeStats, CodedPart, StageEvent,
    StageTransport,
};
use crate::dgram::{BoxedLane, DgramStats};
use crate::link::{Link, LinkConfig, LinkError, LinkEvent, LinkStats, Received};
use crate::pipeline::{letterbox_window, Picture, Rgb8};
use shipped::{Assembly, ChunkError, Progress};

/// A source of the current time for a driver loop: the system's monotonic clock on Linux, a
/// virtual clock in the simulator. The core itself never reads a clock; the driver asks this
/// once per step and passes the instant down.
pub trait Clock {
    /// Now, in microseconds since the clock's origin.
    fn now(&self) -> Instant;
}

/// The state machine a node runs, boxed: a gateway's tables are ~60 KiB, and a [`Node`] moved
/// by value (built, handed to its thread) would otherwise leave copies of them on each stack
/// it passes through (stack pages stay resident for good).
enum Machine {
    Gateway(Box<Gateway>),
    Edge(Box<Edge>),
}

/// Runs `$e` with the node's coded part as `$c` and its transport as `$t` (the datagram lane
/// when it has one, else the link); nothing without a coded part.
macro_rules! coded_via {
    ($node:expr, $c:ident, $cols:pat, $t:ident => $e:expr) => {
        if let Some(($c, $cols)) = &mut $node.coded {
            match &mut $node.lane {
                Some($t) => $e,
                None => {
                    let $t = &mut $node.link;
                    $e
                }
            }
        }
    };
}

macro_rules! machine {
    ($m:expr, $x:ident => $e:expr) => {
        match $m {
            Machine::Gateway($x) => $e,
            Machine::Edge($x) => $e,
        }
    };
}

/// What the driver keeps per frame.
#[derive(Default)]
struct FrameData {
    /// The network input (data source; gateway under WSH and BODP), shared with the jobs that
    /// compute its tiles here (they read their region in place instead of a copy).
    image: Option<Arc<Vec<f32>>>,
    /// Gateway: the stitched last-layer map (FTP) or the current layer's output map (BODP).
    output: Option<Vec<f32>>,
    /// Gateway BODP: the input map of the current layer (the image for layer 0).
    layer_input: Option<(u8, Vec<f32>)>,
    /// The frame's picture as captured: a data source's, shipped to the nodes its tiles go
    /// to, or one received whole, from which this node cuts its tiles' inputs.
    picture: Option<Arc<Picture>>,
    /// Data source: the peers that hold `picture` (shipped since they last connected).
    shipped: BTreeSet<NodeId>,
    /// Data source: the peers it lent a tile of this frame to.
    took: BTreeSet<NodeId>,
    /// The picture being received, chunk by chunk.
    incoming: Option<Assembly>,
    /// Received tile inputs (worker or thief).
    tasks: BTreeMap<u16, (Region, Vec<f32>)>,
    /// MoDNN worker: the output of its last stripe (layer, rows, values), the next layer's
    /// input apart from the rows the gateway forwards.
    kept: Option<(u8, Region, Vec<f32>)>,
    /// Received BODP stripe inputs: (layer, stripe) → (input region, output region, values).
    layer_tasks: BTreeMap<(u8, u16), (Region, Region, Vec<f32>)>,
    /// Computed outputs waiting to be sent.
    results: BTreeMap<u16, (Region, Vec<f32>)>,
    layer_results: BTreeMap<(u8, u16), (Region, Vec<f32>)>,
    /// Strips of this frame held here.
    strips: Strips,
    /// When the frame entered this node.
    started: Instant,
    /// Gateway: results accepted per sender.
    tiles_by: BTreeMap<NodeId, u32>,
}

impl FrameData {
    /// No work of the frame waits here: no task to compute, no result unsent.
    fn idle(&self) -> bool {
        self.tasks.is_empty()
            && self.layer_tasks.is_empty()
            && self.results.is_empty()
            && self.layer_results.is_empty()
    }

    /// Copies `values` (CHW over `region`, `channels` deep) into this frame's output map of
    /// `shape`, allocating the map on first use. Mismatched channels are ignored.
    fn stitch_output(&mut self, shape: Shape, region: Region, channels: u32, values: &[f32]) {
        let map = self
            .output
            .get_or_insert_with(|| vec![0.0; (shape.w * shape.h * shape.c) as usize]);
        stitch(
            map,
            Region::full(shape.w, shape.h),
            shape.c,
            region,
            channels,
            values,
        );
    }
}

/// The data of `frame`, created (entered `now`) when it arrives with its first message.
fn frame_entry(
    frames: &mut BTreeMap<FrameKey, FrameData>,
    frame: FrameKey,
    now: Instant,
) -> &mut FrameData {
    frames.entry(frame).or_insert_with(|| FrameData {
        started: now,
        ..Default::default()
    })
}

/// A frame this node finished (gateway: all tiles in; source: the gateway reported done).
#[derive(Debug)]
pub struct Finished {
    /// The frame.
    pub frame: FrameKey,
    /// False when abandoned.
    pub complete: bool,
    /// Time from entering this node to completion.
    pub latency: tessera_core::time::Duration,
    /// Gateway: the last fused layer's output map (CHW), when complete.
    pub output: Option<Vec<f32>>,
    /// Gateway: accepted results per node (the gateway itself is 0).
    pub tiles_by: Vec<(NodeId, u32)>,
}

/// A frame a data source submits: the network input, and the picture it was made from.
#[derive(Clone, Debug, Default)]
pub struct SourceFrame {
    /// The network input (CHW), which the source computes its own tiles from; empty when
    /// they are cut from `picture` as other nodes cut theirs ([`SourceFrame::picture_only`]).
    pub input: Vec<f32>,
    /// The picture as captured, letterboxed to make `input` (`pipeline::letterbox_of`). With
    /// one, a tile lent to another node goes as a `TileTask` after the picture (once per node),
    /// not as its `f32` input: the receiver decodes and cuts the same values.
    pub picture: Option<Arc<Picture>>,
}

impl SourceFrame {
    /// A frame from a captured JPEG or PNG file: decoded once, letterboxed to `w × h` for the
    /// source's own tiles, the file's bytes kept to ship.
    #[cfg(feature = "codecs")]
    pub fn captured(
        bytes: Vec<u8>,
        w: usize,
        h: usize,
    ) -> Result<Self, crate::pipeline::PictureError> {
        let (picture, px) = Picture::captured(bytes)?;
        Ok(SourceFrame {
            input: crate::pipeline::letterbox_of(&px, w, h).data,
            picture: Some(Arc::new(picture)),
        })
    }

    /// A frame from a captured JPEG or PNG file kept as it is (decoded once to check it):
    /// every tile's input is cut from the picture by the node that runs it, the source's own
    /// tiles too, so a frame in flight costs its file's bytes, not its float input. For
    /// policies whose tiles are all cut from pictures ([`Self::cut_on_nodes`]).
    #[cfg(feature = "codecs")]
    pub fn picture_only(bytes: Vec<u8>) -> Result<Self, crate::pipeline::PictureError> {
        let (picture, _) = Picture::captured(bytes)?;
        Ok(SourceFrame {
            input: Vec::new(),
            picture: Some(Arc::new(picture)),
        })
    }

    /// Whether a source of `policy` keeps no float input when frames come with pictures: WST
    /// and WST-S, whose tiles are each cut from the picture where they run (the source's own
    /// too). WSH and BODP sources keep the letterboxed input as before (a BODP source reads
    /// layer 0's stripes from it).
    pub fn cut_on_nodes(policy: Policy) -> bool {
        matches!(policy, Policy::Wst | Policy::WstS)
    }

    /// A captured file as `policy` runs it: [`Self::picture_only`] where
    /// [`Self::cut_on_nodes`], else [`Self::captured`] (letterboxed to `w × h`).
    #[cfg(feature = "codecs")]
    pub fn for_policy(
        policy: Policy,
        bytes: Vec<u8>,
        w: usize,
        h: usize,
    ) -> Result<Self, crate::pipeline::PictureError> {
        if Self::cut_on_nodes(policy) {
            Self::picture_only(bytes)
        } else {
            Self::captured(bytes, w, h)
        }
    }
}

impl From<Vec<f32>> for SourceFrame {
    /// A frame without a picture: its tiles are shipped as `f32` inputs.
    fn from(input: Vec<f32>) -> Self {
        SourceFrame {
            input,
            picture: None,
        }
    }
}

/// A frame [`Node::submit`] did not take, handed back.
#[derive(Debug)]
pub struct Refused {
    /// Why the state machine refused it.
    pub reason: SubmitError,
    /// The frame, untouched.
    pub image: SourceFrame,
}

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The link failed to listen.
    #[error("link: {0}")]
    Link(LinkError),
    /// The model is unusable.
    #[error("model: {0}")]
    Model(ModelError),
    /// The coded model or plan is unusable.
    #[error("coded model: {0}")]
    Coded(crate::coded::CodedModelError),
}

/// Counters of a node's run.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeStats {
    /// The state machine's counters.
    pub runtime: Stats,
    /// The link's counters.
    pub link: LinkStats,
    /// Messages the state machine refused (protocol violations), peers dropped for them.
    pub refused: u64,
    /// Compute jobs that failed (bad input from a peer).
    pub failed_jobs: u64,
    /// Largest tensor store held at once, in bytes (frames, tasks, results, strips).
    pub peak_store_bytes: usize,
    /// Largest set of feature buffers one computation held (input, scratch, output, strips).
    pub peak_compute_bytes: usize,
    /// Sends the link refused for a full peer backlog; each item was dropped and is
    /// recovered by the runtime's timeouts (see `LinkConfig::backlog`).
    pub sends_refused: u64,
    /// The coded part's counters, when the node runs one (its `link` counters are this
    /// node's, as `link` above: both stages share the link).
    pub coded: Option<CodedNodeStats>,
    /// The coded stage's datagram counters, when it runs on datagrams
    /// ([`Node::set_coded_lane`]): sent, received, dropped per reason.
    pub datagrams: Option<DgramStats>,
    /// Frames in flight at the state machine (gateway: in the cluster plus complete ones
    /// awaiting `frame_done`; source: its own, until `FrameDone`).
    pub frames_in_flight: usize,
}

/// A node's coded part: the coded stage's gateway (fed each complete frame's fused output) or
/// a worker, on the node's link.
pub type NodeCoded = CodedPart<BoxedShards, BoxedGlue>;

/// One cluster node: link + state machine + stores + executor.
pub struct Node<S: TcpFullStack, X: Executor> {
    link: Link<S>,
    machine: Machine,
    model: Arc<Model>,
    exec: X,
    frames: BTreeMap<FrameKey, FrameData>,
    finished: Vec<Finished>,
    stats: NodeStats,
    computing: bool,
    /// Peers the machine was told are connected (`on_connected`, no `on_disconnected` since).
    up: BTreeSet<NodeId>,
    /// The coded stage on this node, and the columns of the fused output it takes (gateway).
    /// Boxed for the reason [`Machine`] is (a coded gateway's part is ~60 KiB).
    coded: Option<(Box<NodeCoded>, usize)>,
    /// The coded stage's datagram transport (`None`: the link).
    lane: Option<BoxedLane>,
    /// Wire precision of the tile results and strips this node sends.
    transfer: Precision,
    /// Data source: the peers that took a tile of the last own frame that ended here; a new
    /// frame's picture goes to them as it is submitted (see [`Node::submit`]).
    takers: BTreeSet<NodeId>,
}

/// A link event kept in arrival order until the link's poll returns.
enum Event {
    Up(NodeId),
    Down(NodeId),
    Message(NodeId, Received),
    Coded(NodeId, CodedMessage),
}

fn bytes_of(f: &FrameData) -> usize {
    let v = |x: &Vec<f32>| x.len() * 4;
    f.image.as_ref().map_or(0, |x| v(x))
        + f.output.as_ref().map_or(0, v)
        + f.layer_input.as_ref().map_or(0, |(_, x)| v(x))
        + f.tasks.values().map(|(_, x)| v(x)).sum::<usize>()
        + f.layer_tasks.values().map(|(_, _, x)| v(x)).sum::<usize>()
        + f.results.values().map(|(_, x)| v(x)).sum::<usize>()
        + f.layer_results.values().map(|(_, x)| v(x)).sum::<usize>()
        + f.kept.as_ref().map_or(0, |(_, _, x)| v(x))
        + f.strips.values().map(|s| v(&s.data)).sum::<usize>()
        + f.picture.as_ref().map_or(0, |p| p.bytes.len())
        + f.incoming.as_ref().map_or(0, Assembly::held)
}

fn read_tensor(t: &Tensor<'_>) -> Vec<f32> {
    t.values().collect()
}

impl<S: TcpFullStack, X: Executor> Node<S, X> {
    /// A node running `config` as `link.me` (0: the gateway) over `stack`. An edge numbers its
    /// frames from 0; a source that may restart sets a per-start value with
    /// [`Node::set_first_frame`].
    pub fn new(
        stack: S,
        link: LinkConfig,
        config: Config,
        model: Arc<Model>,
        exec: X,
        now: Instant,
    ) -> Result<Self, DriverError> {
        let me = link.me;
        let link = Link::new(stack, link).map_err(DriverError::Link)?;
        let machine = if me == GATEWAY {
            Machine::Gateway(Box::new(Gateway::new(config, now)))
        } else {
            Machine::Edge(Box::new(Edge::new(config, me, now)))
        };
        Ok(Node {
            link,
            machine,
            model,
            exec,
            frames: BTreeMap::new(),
            finished: Vec::new(),
            stats: NodeStats::default(),
            computing: false,
            up: BTreeSet::new(),
            coded: None,
            lane: None,
            transfer: Precision::F32,
            takers: BTreeSet::new(),
        })
    }

    /// Runs the coded stage on this node's link too: a worker computes the shards the
    /// gateway sends it; the gateway hands each complete frame's fused output (`in_len ×
    /// cols` values of `part`'s model) to its coded part under the frame's key, and the
    /// frames out of the stage come from [`Node::take_tails`]. Coded messages go to `part`;
    /// peer up/down go to both stages.
    pub fn attach_coded(&mut self, mut part: NodeCoded, cols: usize) {
        for &p in &self.up {
            part.on_peer_up(p);
        }
        self.coded = Some((Box::new(part), cols));
    }

    /// Carries the coded stage's tasks and results on `lane` (authenticated datagrams)
    /// instead of the link. Peer up/down still come from the link: a peer whose connection
    /// dropped gets no shards until it is back, and its shards in flight are erasures.
    pub fn set_coded_lane(&mut self, lane: BoxedLane) {
        self.lane = Some(lane);
    }

    /// True when the node has I/O left to do at once (readiness will not report it again):
    /// the link's or the datagram lane's.
    pub fn more(&self) -> bool {
        self.link.more() || self.lane.as_ref().is_some_and(|l| l.more())
    }

    /// Frames that left the coded stage since the last call (gateway with a coded part).
    pub fn take_tails(&mut self) -> Vec<CodedFinished> {
        match &mut self.coded {
            Some((part, _)) => part.take_finished(),
            None => Vec::new(),
        }
    }

    /// Numbers this data source's next frames from `first` (wrapping). A node that may restart
    /// passes a value that grows with each start (e.g. the low 32 bits of a microsecond clock,
    /// like `LinkConfig::first_seq`), so the gateway never mistakes a new frame for one of the
    /// previous run. Call before the first [`Node::submit`]; the gateway ignores it.
    pub fn set_first_frame(&mut self, first: u32) {
        if let Machine::Edge(e) = &mut self.machine {
            e.set_next_frame(first);
        }
    }

    /// Sends tile results and strips packed in `precision` (`f32`, the default, is
    /// bit-exact; `f16` and `i8` trade accuracy for bytes). Receivers read any precision.
    pub fn set_transfer(&mut self, precision: Precision) {
        self.transfer = precision;
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.link.me()
    }

    /// The link (e.g. to see which peers are up).
    pub fn link(&self) -> &Link<S> {
        &self.link
    }

    /// Counters so far.
    pub fn stats(&self) -> NodeStats {
        let mut s = self.stats;
        s.runtime = machine!(&self.machine, m => m.stats());
        s.frames_in_flight = match &self.machine {
            Machine::Gateway(g) => g.frames_in_flight() + g.frames_awaiting_done(),
            Machine::Edge(e) => e.frames_in_flight(),
        };
        s.link = self.link.stats();
        s.coded = self.coded.as_ref().map(|(c, _)| CodedNodeStats {
            link: s.link,
            ..c.stats()
        });
        s.datagrams = self.lane.as_ref().map(|l| l.stats());
        s
    }

    /// Frames finished since the last call.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        core::mem::take(&mut self.finished)
    }

    /// Frames this node holds data for.
    pub fn frames_held(&self) -> usize {
        self.frames.len()
    }

    /// Starts a frame at this node (a data source) with `image` (the network input, CHW, and
    /// optionally its picture, see [`SourceFrame`]). A frame the machine refuses (no gateway,
    /// too many in flight) is handed back with the reason, so a caller can retry it without
    /// keeping a copy.
    pub fn submit(
        &mut self,
        now: Instant,
        image: impl Into<SourceFrame>,
    ) -> Result<FrameKey, Refused> {
        let image = image.into();
        let key = match machine!(&mut self.machine, m => m.submit_frame(now)) {
            Ok(key) => key,
            Err(reason) => return Err(Refused { reason, image }),
        };
        let f = self.frames.entry(key).or_default();
        f.image = Some(Arc::new(image.input));
        f.picture = image.picture;
        f.started = now;
        self.pump(now);
        // The picture goes now to the nodes that took tiles of the last frame: they will
        // likely steal from this one too, and the transfer overlaps the frames before it
        // instead of delaying the first tile lent. A peer that then takes nothing drops out
        // of `takers` when this frame ends.
        let early: Vec<NodeId> = self
            .takers
            .iter()
            .copied()
            .filter(|p| self.up.contains(p))
            .collect();
        for p in early {
            self.ship_picture(now, p, key);
        }
        Ok(key)
    }

    /// Gateway with `Config::confirm_done`: `frame`'s final result is made (`complete`) or
    /// given up, so its source is told `FrameDone` now (or when it reconnects) and its slot
    /// is free; see `Gateway::frame_done`. False when the frame was not waiting for this (or
    /// this node is an edge).
    pub fn frame_done(&mut self, now: Instant, frame: FrameKey, complete: bool) -> bool {
        // Drained actions leave the machine room to queue the `FrameDone`.
        self.pump(now);
        let Machine::Gateway(g) = &mut self.machine else {
            return false;
        };
        let found = g.frame_done(now, frame, complete).unwrap_or(false);
        self.pump(now);
        found
    }

    /// When the node next needs a poll without I/O.
    pub fn poll_at(&self) -> Option<Instant> {
        let a = machine!(&self.machine, m => m.poll_at());
        let c = self.coded.as_ref().and_then(|(c, _)| c.poll_at());
        let d = self.lane.as_ref().and_then(|l| l.poll_at());
        [a, self.link.poll_at(), c, d].into_iter().flatten().min()
    }

    /// One step of a driver loop: [`Node::poll`] at `clock.now()`; returns when the node next
    /// needs a step without I/O.
    pub fn step<C: Clock>(&mut self, clock: &C) -> Option<Instant> {
        self.poll(clock.now());
        self.poll_at()
    }

    /// Does all pending work: network I/O, finished computations, due timers, actions.
    ///
    /// The link owns the session (Hello, heartbeats, silence); the machine only hears
    /// `on_connected`/`on_disconnected`, in the order the link reported them relative to the
    /// peers' messages.
    pub fn poll(&mut self, now: Instant) {
        // Events wait until the link's poll returns; a message keeps the buffer it arrived in.
        let mut events: Vec<Event> = Vec::new();
        let coded = self.coded.is_some();
        self.link.poll(now, |_, ev| match ev {
            LinkEvent::Up(p) => events.push(Event::Up(p)),
            LinkEvent::Down(p, _) => events.push(Event::Down(p)),
            LinkEvent::Refused(_) => {}
            // Session traffic: the link already counted it as a sign of life.
            LinkEvent::Message(_, r) if matches!(r.kind(), Kind::Heartbeat | Kind::Hello) => {}
            // Without a coded part, a coded message is the machine's to refuse.
            LinkEvent::Message(p, r) if !coded => events.push(Event::Message(p, r)),
            LinkEvent::Message(p, r) => match CodedMessage::take(r) {
                Ok(m) => events.push(Event::Coded(p, m)),
                Err(r) => events.push(Event::Message(p, r)),
            },
        });
        let mut changed = !events.is_empty();
        for ev in events {
            match ev {
                Event::Up(p) => self.peer_up(now, p),
                Event::Down(p) => self.peer_down(now, p),
                Event::Message(p, r) => self.on_message(now, p, r),
                Event::Coded(p, m) => coded_via!(self, c, _, t => c.on_message(now, t, p, m)),
            }
            // Each event may queue a burst of actions (a reconnected source re-registers all
            // its frames); carry them out before the next event needs room.
            self.pump(now);
        }
        if let Some(done) = self.exec.poll() {
            self.computing = false;
            self.on_done(now, done);
            changed = true;
        }
        self.pump(now);
        if changed {
            self.drop_dead_strips();
        }
        if let (Some((c, _)), Some(lane)) = (&mut self.coded, &mut self.lane) {
            let mut incoming = Vec::new();
            lane.poll_stage(now, &mut incoming);
            for ev in incoming {
                match ev {
                    StageEvent::Coded(from, m) => c.on_message(now, lane, from, m),
                    // Another kind on the coded datagrams: a protocol violation, counted.
                    StageEvent::Foreign(from) => c.refuse_peer(lane, from),
                    // Peers come and go on the link.
                    StageEvent::Up(_) | StageEvent::Down(_) => {}
                }
            }
        }
        if self.coded.is_some() {
            coded_via!(self, c, _, t => c.poll(now, t));
            // The coded part may have dropped a peer that broke its protocol.
            self.pump(now);
        }
    }

    fn on_message(&mut self, now: Instant, from: NodeId, r: Received) {
        let msg = r.message();
        // A picture in transit is the driver's: the `TileTask`s that follow it are the
        // machine's.
        if msg.kind() == Kind::PictureChunk {
            if let Err(e) = self.take_chunk(now, from, &msg) {
                self.stats.refused += 1;
                warn!("node {}: picture from {} refused: {}", self.id(), from, e);
            }
            return;
        }
        // `FrameDone` of another node's frame, passed on by its source or by the gateway that
        // relayed its picture: the driver's (the edge machine hears only its own frames').
        if msg.kind() == Kind::FrameDone && matches!(self.machine, Machine::Edge(_)) {
            if let Some(frame) = msg.frame().filter(|f| f.origin != self.id()) {
                self.forget_done(from, frame);
                return;
            }
        }
        let verdict = machine!(&mut self.machine, m => m.on_message(now, from, &msg));
        match verdict {
            Ok(Verdict::Accept) => self.keep(now, from, r),
            Ok(Verdict::Discard) => {}
            Err(e) => {
                self.stats.refused += 1;
                if let (Machine::Gateway(_), Some(frame)) = (&self.machine, msg.frame()) {
                    // A submission refused: the picture that came before it goes too.
                    if msg.kind() == Kind::FrameSubmit {
                        self.frames.remove(&frame);
                    }
                }
                if e.peer_fault() {
                    warn!("node {}: dropping peer {}: {}", self.id(), from, e);
                    self.link.disconnect(from);
                    self.peer_down(now, from);
                } else {
                    debug!("node {}: message from {} refused: {}", self.id(), from, e);
                }
                let _: RuntimeError = e;
            }
        }
    }

    /// Tells the machine `p` is connected (once per connection).
    fn peer_up(&mut self, now: Instant, p: NodeId) {
        if self.up.insert(p) {
            machine!(&mut self.machine, m => m.on_connected(now, p));
            if let Some((c, _)) = &mut self.coded {
                c.on_peer_up(p);
            }
        }
    }

    /// Adds a received picture chunk to its frame; the frame's picture once all are in.
    fn take_chunk(
        &mut self,
        now: Instant,
        from: NodeId,
        msg: &Message<'_>,
    ) -> Result<(), ChunkError> {
        let Some(frame) = msg.frame() else {
            return Ok(());
        };
        let gateway = matches!(self.machine, Machine::Gateway(_));
        if gateway && !self.relays_pictures() {
            return Err(ChunkError::Gateway);
        }
        // Under WSH, BODP and MoDNN the gateway forwards the source's picture to the workers.
        let forwarded = from == GATEWAY && self.relays_pictures();
        if (frame.origin != from && !forwarded) || from == self.id() {
            return Err(ChunkError::NotOrigin { from, frame });
        }
        // A gateway holds pictures only for as many frames as it can track.
        if gateway
            && !self.frames.contains_key(&frame)
            && self.frames.len() >= 2 * MAX_GATEWAY_FRAMES
        {
            return Err(ChunkError::Busy);
        }
        self.forget_stale(frame);
        let f = frame_entry(&mut self.frames, frame, now);
        match Assembly::add(f.incoming.take(), msg)? {
            Progress::Partial(a) => f.incoming = Some(a),
            Progress::Complete(p) => {
                f.picture = Some(Arc::new(p));
            }
        }
        self.note_store();
        Ok(())
    }

    /// The gateway hands out the frame's work (WSH: tiles; BODP, MoDNN: layer-0 stripes): a
    /// source with a picture submits the picture, and the gateway relays it to the workers.
    fn relays_pictures(&self) -> bool {
        matches!(
            machine!(&self.machine, m => m.config().policy),
            Policy::Wsh | Policy::Bodp | Policy::Modnn
        )
    }

    /// Sends `frame`'s picture to `to` unless it holds it already; false when the link refused
    /// a chunk (the peer then does not count as holding it).
    fn ship_picture(&mut self, now: Instant, to: NodeId, frame: FrameKey) -> bool {
        let Some(f) = self.frames.get(&frame) else {
            return false;
        };
        let Some(picture) = f.picture.clone() else {
            return false;
        };
        if f.shipped.contains(&to) {
            return true;
        }
        for m in shipped::chunks(frame, &picture) {
            let sent = self.link.send(now, to, &m, Body::Message);
            if sent.is_err() {
                self.note_send(sent);
                return false;
            }
        }
        if let Some(f) = self.frames.get_mut(&frame) {
            f.shipped.insert(to);
        }
        true
    }

    /// Sends a tile result packed in the node's transfer precision.
    #[allow(clippy::too_many_arguments)]
    fn send_packed_result(
        &mut self,
        now: Instant,
        to: NodeId,
        frame: FrameKey,
        tile: u16,
        region: Region,
        channels: u32,
        values: &[f32],
    ) {
        let sent = packed::values(values, channels, self.transfer)
            .and_then(|bytes| {
                let output = Tensor::packed(region, channels, self.transfer, &bytes)?;
                let msg = Message::Result {
                    frame,
                    tile,
                    output,
                };
                Ok(self.link.send(now, to, &msg, Body::Message))
            })
            .unwrap_or_else(|e| Err(LinkError::Wire(e)));
        self.note_send(sent);
    }

    /// Sends `task` (a `TileTask`) after its frame's picture, which goes once per peer: the
    /// peer cuts the tile's input itself.
    fn send_tile_task(&mut self, now: Instant, to: NodeId, task: Message<'static>) {
        let Some(frame) = task.frame() else {
            return;
        };
        if self.ship_picture(now, to, frame) {
            let sent = self.link.send_control(now, to, &task);
            self.note_send(sent);
            if let Some(f) = self.frames.get_mut(&frame) {
                f.took.insert(to);
            }
        }
    }

    /// BODP: the network input over `region` cut from `frame`'s received picture, on this
    /// thread (a layer-0 stripe; a tile's input is cut by its job, see `Job::picture`).
    fn cut_from_picture(&self, frame: FrameKey, region: Region) -> Option<Vec<f32>> {
        let picture = self.frames.get(&frame)?.picture.as_ref()?;
        let px: Rgb8 = match picture.pixels() {
            Ok(px) => px,
            Err(e) => {
                warn!("node {}: frame {}: {}", self.id(), frame, e);
                return None;
            }
        };
        let shape = self.model.net.input();
        if shape.c != 3 {
            return None;
        }
        let (w, h) = (shape.w as usize, shape.h as usize);
        let xs = region.x.start as usize..region.x.end as usize;
        let ys = region.y.start as usize..region.y.end as usize;
        if xs.end > w || ys.end > h {
            return None;
        }
        Some(letterbox_window(&px, w, h, xs, ys))
    }

    /// Tells the machine `p` is gone (once per connection).
    fn peer_down(&mut self, now: Instant, p: NodeId) {
        for f in self.frames.values_mut() {
            // A peer that comes back may have lost what it held: ship again.
            f.shipped.remove(&p);
        }
        if self.up.remove(&p) {
            machine!(&mut self.machine, m => m.on_disconnected(now, p));
            if let Some((c, _)) = &mut self.coded {
                c.on_peer_down(p);
            }
        }
    }

    /// Reports peers whose connection the link dropped without an event (a send that failed
    /// on the socket closes it on the spot) as disconnected, so the machine stops waiting for
    /// replies to messages that were never sent. True when one was found.
    fn reconcile(&mut self, now: Instant) -> bool {
        let gone: Vec<NodeId> = self
            .up
            .iter()
            .copied()
            .filter(|&p| !self.link.is_up(p))
            .collect();
        for &p in &gone {
            self.peer_down(now, p);
        }
        !gone.is_empty()
    }

    /// Forgets, on an edge, the strips of other sources' frames `MAX_FRAMES_PER_SOURCE` or more
    /// numbers behind `frame` (same origin, numbers wrapping) that hold no work for this node
    /// (no task waiting, no result unsent). Only a frame's origin hears `FrameDone`, so a
    /// helper would otherwise keep every frame's strips for good; a source has at most that
    /// many frames in flight, so these are almost surely over (were one not, its strip
    /// requests here go unanswered and the tile timeout re-dispatches the tiles).
    fn forget_stale(&mut self, frame: FrameKey) {
        if matches!(self.machine, Machine::Gateway(_)) || frame.origin == self.id() {
            return;
        }
        let window = MAX_FRAMES_PER_SOURCE as u32;
        self.frames.retain(|k, f| {
            let behind = frame.number.wrapping_sub(k.number);
            k.origin != frame.origin || behind < window || behind > u32::MAX / 2 || !f.idle()
        });
    }

    /// Edge: `from`, the source of `frame` (another node's) or the gateway, says the frame is
    /// over: what this node holds of it (the picture, strips) goes now unless work of it still
    /// waits here (then [`forget_stale`](Self::forget_stale) takes it later). From another
    /// edge it is refused and counted.
    fn forget_done(&mut self, from: NodeId, frame: FrameKey) {
        if from != frame.origin && from != GATEWAY {
            self.stats.refused += 1;
            warn!(
                "node {}: FrameDone for {} from {}, neither its source nor the gateway",
                self.id(),
                frame,
                from
            );
            return;
        }
        if self.frames.get(&frame).is_some_and(FrameData::idle) {
            self.frames.remove(&frame);
        }
    }

    /// Stores the payload of an accepted message. A tensor becomes its values in the buffer it
    /// arrived in (a tile input is held once, not as bytes and again as values).
    fn keep(&mut self, now: Instant, from: NodeId, r: Received) {
        let msg = r.message();
        if let Some(frame) = msg.frame() {
            self.forget_stale(frame);
        }
        let out_shape = self.model.stack().map(|s| s.output()).ok();
        // The message's one tensor, with its span in `r`'s buffer.
        let tensor = match msg {
            Message::Task { input, .. }
            | Message::FrameSubmit { input, .. }
            | Message::LayerTask { input, .. } => Some(input),
            Message::Result { output, .. } | Message::LayerResult { output, .. } => Some(output),
            _ => None,
        };
        let span = tensor.and_then(|t| Some((t.region, t.channels, r.span(&t)?)));
        match (msg, span) {
            (Message::Task { frame, tile, .. }, Some((region, _, span))) => {
                let values = r.into_values(span);
                let f = frame_entry(&mut self.frames, frame, now);
                f.tasks.insert(tile, (region, values));
            }
            // Submitted as a picture (WSH, BODP, MoDNN): the chunks came first.
            (Message::FrameSubmit { .. }, Some((region, _, _))) if region.is_empty() => {}
            (Message::FrameSubmit { frame, .. }, Some((_, _, span))) => {
                let values = r.into_values(span);
                let f = frame_entry(&mut self.frames, frame, now);
                f.image = Some(Arc::new(values));
            }
            (
                Message::LayerTask {
                    frame,
                    layer,
                    stripe,
                    output,
                    ..
                },
                Some((region, _, span)),
            ) => {
                let values = r.into_values(span);
                let f = frame_entry(&mut self.frames, frame, now);
                if layer == 0 {
                    // A (re)started frame: rows forwarded for an earlier attempt are stale.
                    f.strips.clear();
                    f.kept = None;
                }
                f.layer_tasks
                    .insert((layer, stripe), (region, output, values));
            }
            // Packed values are read back one by one (an `f32` tensor is taken in place).
            (Message::Result { frame, output, .. }, _) if output.precision != Precision::F32 => {
                let Some(shape) = out_shape else { return };
                let values: Vec<f32> = output.values().collect();
                let f = frame_entry(&mut self.frames, frame, now);
                *f.tiles_by.entry(from).or_default() += 1;
                f.stitch_output(shape, output.region, output.channels, &values);
            }
            (Message::Result { frame, .. }, Some((region, channels, span))) => {
                let Some(shape) = out_shape else { return };
                let values = r.into_values(span);
                let f = frame_entry(&mut self.frames, frame, now);
                *f.tiles_by.entry(from).or_default() += 1;
                f.stitch_output(shape, region, channels, &values);
            }
            // MoDNN before the last layer: the stripe stayed on its worker.
            (Message::LayerResult { .. }, Some((region, _, _))) if region.is_empty() => {}
            (Message::LayerResult { frame, layer, .. }, Some((region, _, span))) => {
                let values = r.into_values(span);
                self.store_layer_output(frame, layer, region, &values);
            }
            (
                Message::Strips {
                    frame,
                    tile,
                    strips,
                },
                _,
            ) => {
                let f = frame_entry(&mut self.frames, frame, now);
                for e in strips.iter() {
                    let s = Strip {
                        region: e.tensor.region,
                        channels: e.tensor.channels,
                        data: read_tensor(&e.tensor),
                    };
                    f.strips.insert((tile, e.layer, e.side.index() as u8), s);
                }
            }
            _ => {}
        }
        self.note_store();
    }

    fn store_layer_output(&mut self, frame: FrameKey, layer: u8, region: Region, values: &[f32]) {
        let Ok(stack) = self.model.stack() else {
            return;
        };
        let Some(l) = stack.layers().get(layer as usize) else {
            return;
        };
        let shape = l.output;
        self.frames
            .entry(frame)
            .or_default()
            .stitch_output(shape, region, shape.c, values);
    }

    fn note_store(&mut self) {
        let total: usize = self.frames.values().map(bytes_of).sum();
        self.stats.peak_store_bytes = self.stats.peak_store_bytes.max(total);
    }

    fn on_done(&mut self, now: Instant, done: Result<Done, ModelError>) {
        let done = match done {
            Ok(d) => d,
            Err(e) => {
                // A peer sent an input the plan rejects; the machine's timeouts recover.
                self.stats.failed_jobs += 1;
                warn!("node {}: a job failed: {}", self.id(), e);
                if let Machine::Edge(m) = &mut self.machine {
                    m.on_compute_failed(now);
                }
                return;
            }
        };
        self.stats.peak_compute_bytes = self.stats.peak_compute_bytes.max(done.buffer_bytes);
        let verdict = machine!(&mut self.machine, m => m.on_computed(now, done.work));
        if verdict != Ok(Verdict::Accept) {
            return;
        }
        let is_gateway = matches!(self.machine, Machine::Gateway(_));
        match done.work {
            Work::Tile { frame, tile, .. } => {
                let f = self.frames.entry(frame).or_default();
                f.tasks.remove(&tile);
                f.strips.extend(done.strips);
                if is_gateway {
                    if let Ok(shape) = self.model.stack().map(|s| s.output()) {
                        *f.tiles_by.entry(GATEWAY).or_default() += 1;
                        f.stitch_output(shape, done.region, shape.c, &done.output);
                    }
                } else {
                    f.results.insert(tile, (done.region, done.output));
                }
            }
            Work::Layer {
                frame,
                layer,
                stripe,
                ..
            } => {
                if is_gateway {
                    self.store_layer_output(frame, layer, done.region, &done.output);
                } else {
                    let f = self.frames.entry(frame).or_default();
                    f.layer_tasks.remove(&(layer, stripe));
                    f.layer_results
                        .insert((layer, stripe), (done.region, done.output));
                }
            }
        }
        self.note_store();
    }

    /// Carries out every queued action, then reports peers lost while sending (which may
    /// queue more actions). Bounded: each extra round removes a peer from `up`.
    fn pump(&mut self, now: Instant) {
        loop {
            while let Some(a) = machine!(&mut self.machine, m => m.poll(now)) {
                self.act(now, a);
            }
            if !self.reconcile(now) {
                break;
            }
        }
    }

    /// Counts a send the link refused because the peer's backlog was full. The item (task,
    /// result, strips, frame, control message) is dropped, not kept for a retry: a peer that
    /// let `LinkConfig::backlog` bytes pile up is not reading, and the runtime already
    /// recovers lost work by its timeouts (the gateway re-issues a tile after `tile_timeout`,
    /// a frame fails at its source after `frame_deadline`), as it does for a peer that died.
    /// Other send errors mean the peer is gone, which the link reports as `Down`.
    fn note_send(&mut self, sent: Result<(), LinkError>) {
        if let Err(e @ LinkError::Backlog { .. }) = sent {
            self.stats.sends_refused += 1;
            debug!("node {}: message dropped: {}", self.id(), e);
        }
    }

    fn act(&mut self, now: Instant, action: Action) {
        match action {
            Action::Send { to, msg } => {
                let sent = self.link.send_control(now, to, &msg);
                self.note_send(sent);
            }
            Action::SubmitFrame { frame } if self.relays_pictures() && self.has_picture(frame) => {
                self.submit_picture(now, frame)
            }
            Action::SubmitFrame { frame } => {
                let Some(img) = self.frames.get(&frame).and_then(|f| f.image.as_ref()) else {
                    return;
                };
                let Ok(shape) = self.model.stack().map(|s| s.input()) else {
                    return;
                };
                let t = Tensor::streamed(Region::full(shape.w, shape.h), shape.c);
                let sent = self.link.send(
                    now,
                    GATEWAY,
                    &Message::FrameSubmit { frame, input: t },
                    Body::Values(img),
                );
                self.note_send(sent);
            }
            Action::SendTask {
                to,
                frame,
                tile,
                mode,
            } if self.frames.get(&frame).is_some_and(|f| f.picture.is_some()) => {
                self.send_tile_task(now, to, Message::TileTask { frame, tile, mode })
            }
            Action::SendTask {
                to,
                frame,
                tile,
                mode,
            } => {
                // Streamed out of the frame's image: no copy of the tile's input is made.
                let Some((full, image)) = self.shared_image(frame) else {
                    return;
                };
                let Ok(plan) = self.model.plan(tile, mode) else {
                    return;
                };
                let c = self.model.net.input().c;
                let Ok(view) = FeatureView::new(&image, full, c) else {
                    return;
                };
                let region = plan.input(0);
                let t = Tensor::streamed(region, c);
                let sent = self.link.send(
                    now,
                    to,
                    &Message::Task {
                        frame,
                        tile,
                        mode,
                        input: t,
                    },
                    Body::Region(view),
                );
                self.note_send(sent);
            }
            Action::SendResult { to, frame, tile } => {
                let Some(f) = self.frames.get_mut(&frame) else {
                    return;
                };
                let Some((region, values)) = f.results.remove(&tile) else {
                    return;
                };
                let c = self.model.stack().map(|s| s.output().c).unwrap_or(0);
                if self.transfer != Precision::F32 {
                    self.send_packed_result(now, to, frame, tile, region, c, &values);
                    return;
                }
                let t = Tensor::streamed(region, c);
                let sent = self.link.send(
                    now,
                    to,
                    &Message::Result {
                        frame,
                        tile,
                        output: t,
                    },
                    Body::Values(&values),
                );
                self.note_send(sent);
            }
            Action::SendStrips {
                to,
                frame,
                tile,
                sides,
            } => {
                // Strips this node does not hold (any more) go as an empty `Strips`: the asker
                // recomputes at once instead of waiting out its fetch timeout.
                let none = BTreeMap::new();
                let held = self.frames.get(&frame).map_or(&none, |f| &f.strips);
                let sources: Vec<StripSource<'_>> = held
                    .iter()
                    .filter(|((t, _, s), _)| *t == tile && sides & (1 << s) != 0)
                    .filter_map(|((_, layer, s), strip)| {
                        let view =
                            FeatureView::new(&strip.data, strip.region, strip.channels).ok()?;
                        Some(StripSource {
                            layer: *layer,
                            side: Side::ALL[*s as usize],
                            view,
                        })
                    })
                    .collect();
                let sent = Self::send_strips(
                    &mut self.link,
                    self.transfer,
                    now,
                    to,
                    frame,
                    tile,
                    &sources,
                );
                self.note_send(sent);
                self.drop_sent_strips(frame, tile, sides);
            }
            Action::SendLayerTask {
                to,
                frame,
                layer,
                stripe,
                output,
            } if layer == 0 && self.has_picture(frame) && self.shared_image(frame).is_none() => {
                self.send_picture_stripe(now, to, frame, stripe, output)
            }
            Action::SendLayerTask {
                to,
                frame,
                layer,
                stripe,
                output,
            } => {
                let Some((region, c, values)) = self.layer_input(frame, layer, output) else {
                    return;
                };
                let t = Tensor::streamed(region, c);
                let msg = Message::LayerTask {
                    frame,
                    layer,
                    stripe,
                    output,
                    input: t,
                };
                let sent = self.link.send(now, to, &msg, Body::Values(&values));
                self.note_send(sent);
            }
            Action::SendLayerResult {
                to,
                frame,
                layer,
                stripe,
            } => {
                let Some(f) = self.frames.get_mut(&frame) else {
                    return;
                };
                let Some((region, values)) = f.layer_results.remove(&(layer, stripe)) else {
                    return;
                };
                let modnn = machine!(&self.machine, m => m.config().policy) == Policy::Modnn;
                let last = self
                    .model
                    .stack()
                    .map_or(true, |s| layer as usize + 1 >= s.len());
                if modnn && !last {
                    self.send_boundaries(now, to, (frame, layer, stripe), region, values);
                    return;
                }
                let c = self
                    .model
                    .stack()
                    .ok()
                    .and_then(|s| s.layers().get(layer as usize).map(|l| l.output.c))
                    .unwrap_or(0);
                let t = Tensor::streamed(region, c);
                let sent = self.link.send(
                    now,
                    to,
                    &Message::LayerResult {
                        frame,
                        layer,
                        stripe,
                        output: t,
                    },
                    Body::Values(&values),
                );
                self.note_send(sent);
            }
            Action::SendHalo {
                to,
                frame,
                layer,
                stripe,
                output,
                held,
            } => self.send_halo(now, to, (frame, layer, stripe), output, held),
            Action::Compute(work) => self.compute(now, work),
            Action::LayerComplete { frame, layer } => {
                if let Some(f) = self.frames.get_mut(&frame) {
                    // MoDNN: the boundary rows of this layer serve the next one only.
                    f.strips.retain(|&(_, l, _), _| l == layer);
                    if let Some(map) = f.output.take() {
                        f.layer_input = Some((layer + 1, map));
                    }
                }
            }
            Action::RestartLayers { frame } => {
                if let Some(f) = self.frames.get_mut(&frame) {
                    f.strips.clear();
                    f.output = None;
                }
            }
            Action::FrameComplete { frame } => self.finish(now, frame, true),
            Action::FrameFailed { frame } => self.finish(now, frame, false),
            _ => {}
        }
    }

    fn finish(&mut self, now: Instant, frame: FrameKey, complete: bool) {
        if !complete {
            warn!(
                "node {}: frame {} failed (not complete by its deadline)",
                self.id(),
                frame
            );
        }
        let Some(mut f) = self.frames.remove(&frame) else {
            self.finished.push(Finished {
                frame,
                complete,
                latency: tessera_core::time::Duration::ZERO,
                output: None,
                tiles_by: Vec::new(),
            });
            return;
        };
        let is_gateway = matches!(self.machine, Machine::Gateway(_));
        let own = frame.origin == self.id();
        if f.picture.is_some() && (own || is_gateway) {
            if own {
                self.takers = core::mem::take(&mut f.took);
            }
            // The nodes this one shipped the picture to may drop it, and the frame's strips,
            // now (the origin hears the gateway's own `FrameDone`).
            let to = f
                .shipped
                .iter()
                .filter(|&&p| p != GATEWAY && p != frame.origin);
            for &p in to {
                let sent = self
                    .link
                    .send_control(now, p, &Message::FrameDone { frame, complete });
                self.note_send(sent);
            }
        }
        let bodp = f.layer_input.is_some();
        let output = if is_gateway && complete {
            if bodp {
                // BODP: the last LayerComplete moved the final map into `layer_input`.
                f.layer_input.take().map(|(_, m)| m).or(f.output.take())
            } else {
                f.output.take()
            }
        } else {
            None
        };
        if let Some(out) = &output {
            let me = self.link.me();
            coded_via!(self, c, cols, t => {
                // A refused input (it does not fit the coded model) leaves the stage at once
                // as a lost frame, reported by `take_tails`.
                if let Err(e) = c.queue(now, t, frame, out, *cols) {
                    warn!("node {}: frame {} lost before the coded tail: {}", me, frame, e);
                }
            });
        }
        self.finished.push(Finished {
            frame,
            complete,
            latency: now.saturating_duration_since(f.started),
            output,
            tiles_by: f.tiles_by.into_iter().collect(),
        });
    }

    /// This node holds `frame`'s picture.
    fn has_picture(&self, frame: FrameKey) -> bool {
        self.frames.get(&frame).is_some_and(|f| f.picture.is_some())
    }

    /// The frame's whole image, shared, with its region (the network input's full map).
    fn shared_image(&self, frame: FrameKey) -> Option<(Region, Arc<Vec<f32>>)> {
        // Empty: a picture-only frame (`SourceFrame::picture_only`), cut tile by tile.
        let img = self
            .frames
            .get(&frame)?
            .image
            .as_ref()
            .filter(|i| !i.is_empty())?;
        let shape = self.model.net.input();
        Some((Region::full(shape.w, shape.h), img.clone()))
    }

    /// BODP: rows of layer `layer`'s input map that `output` depends on.
    fn layer_input(
        &self,
        frame: FrameKey,
        layer: u8,
        output: Region,
    ) -> Option<(Region, u32, Vec<f32>)> {
        let stack = self.model.stack().ok()?;
        let l = stack.layers().get(layer as usize)?;
        let f = self.frames.get(&frame)?;
        let region = stack.back(layer as usize, output);
        let map = if layer == 0 {
            match f.image.as_ref() {
                Some(image) => image,
                // Submitted as a picture: cut the rows from it.
                None => return Some((region, l.input.c, self.cut_from_picture(frame, region)?)),
            }
        } else {
            match &f.layer_input {
                Some((at, m)) if *at == layer => m,
                _ => return None,
            }
        };
        let values = slice(map, Region::full(l.input.w, l.input.h), l.input.c, region)?;
        Some((region, l.input.c, values))
    }

    fn compute(&mut self, now: Instant, work: Work) {
        let job = match work {
            Work::Tile { frame, tile, mode } => {
                // The job takes the received input (it was only kept for this job).
                let given = self
                    .frames
                    .get_mut(&frame)
                    .and_then(|f| f.tasks.remove(&tile));
                // A tile of a frame held here reads its region of the shared image in place; a
                // tile sent as a `TileTask` is cut from the frame's picture by the job itself
                // (decoded into the compute thread's idle buffers, one decode per tile: a
                // helper edge never holds a decoded frame).
                let input = match given {
                    Some((region, values)) => Some((region, Arc::new(values), None)),
                    None => self
                        .shared_image(frame)
                        .map(|(region, image)| (region, image, None))
                        .or_else(|| {
                            let region = self.model.plan(tile, mode).ok()?.input(0);
                            let picture = self.frames.get(&frame)?.picture.clone()?;
                            Some((region, Arc::new(Vec::new()), Some(picture)))
                        }),
                };
                // Only the strips this tile reads, not the frame's whole store. An edge moves
                // them into the job: each strip serves the one tile on its side, which runs
                // once here (its level-0 neighbours, recomputed, would put them again); the
                // gateway keeps its copies to serve them to the edges.
                let edge = matches!(self.machine, Machine::Edge(_));
                let plan = self.model.plan(tile, mode);
                let strips = match (self.frames.get_mut(&frame), plan) {
                    (Some(f), Ok(plan)) if edge => take_strips(&mut f.strips, &plan),
                    (Some(f), Ok(plan)) => needed_strips(&f.strips, &plan),
                    _ => Strips::new(),
                };
                input.map(|(input_region, input, picture)| Job {
                    work,
                    input_region,
                    input,
                    picture,
                    strips,
                })
            }
            Work::Layer {
                frame,
                layer,
                stripe,
                output,
            } => {
                let given = self
                    .frames
                    .get_mut(&frame)
                    .and_then(|f| f.layer_tasks.remove(&(layer, stripe)));
                let need = self
                    .model
                    .stack()
                    .map(|s| s.back(layer as usize, output))
                    .unwrap_or_default();
                match given {
                    Some((input_region, _, input)) if input_region.covers(&need) => Some(Job {
                        work,
                        input_region,
                        input: Arc::new(input),
                        picture: None,
                        strips: Strips::new(),
                    }),
                    // Layer 0 of a frame shipped as a picture: cut from it.
                    Some(_) if layer == 0 => self.cut_from_picture(frame, need).map(|input| Job {
                        work,
                        input_region: need,
                        input: Arc::new(input),
                        picture: None,
                        strips: Strips::new(),
                    }),
                    // MoDNN: the kept stripe plus the rows the gateway forwarded.
                    Some(_) => self
                        .modnn_input(frame, layer, stripe, need)
                        .map(|input| Job {
                            work,
                            input_region: need,
                            input: Arc::new(input),
                            picture: None,
                            strips: Strips::new(),
                        }),
                    None => {
                        self.layer_input(frame, layer, output)
                            .map(|(input_region, _, input)| Job {
                                work,
                                input_region,
                                input: Arc::new(input),
                                picture: None,
                                strips: Strips::new(),
                            })
                    }
                }
            }
        };
        match job {
            Some(job) => {
                self.computing = true;
                self.exec.start(job);
            }
            None => {
                self.stats.failed_jobs += 1;
                // A stripe whose forwarded rows are missing, a tile of a frame whose picture
                // went with its `FrameDone`: the edge must not wait for it forever (the
                // gateway's timeout restarts a frame still running).
                if let Machine::Edge(m) = &mut self.machine {
                    m.on_compute_failed(now);
                }
            }
        }
    }

    /// WSH/BODP/MoDNN source: submits `frame` as its picture, then a `FrameSubmit` without the
    /// tensor: the gateway cuts the layer-0 stripes from it or ships it on to the workers (WSH:
    /// before their first `TileTask` of the frame).
    fn submit_picture(&mut self, now: Instant, frame: FrameKey) {
        if !self.ship_picture(now, GATEWAY, frame) {
            return;
        }
        let t = Tensor::streamed(Region::default(), self.model.net.input().c);
        let msg = Message::FrameSubmit { frame, input: t };
        let sent = self.link.send(now, GATEWAY, &msg, Body::Values(&[]));
        self.note_send(sent);
    }

    /// BODP/MoDNN gateway, a frame submitted as a picture: ships the picture to `to` (once),
    /// then layer 0's `LayerTask` without input rows: the worker cuts them from the picture.
    fn send_picture_stripe(
        &mut self,
        now: Instant,
        to: NodeId,
        frame: FrameKey,
        stripe: u16,
        output: Region,
    ) {
        if !self.ship_picture(now, to, frame) {
            return;
        }
        let need = self
            .model
            .stack()
            .map(|s| s.back(0, output))
            .unwrap_or_default();
        let input = Tensor::streamed(
            Region::new(need.x, Span::new(need.y.start, need.y.start)),
            self.model.net.input().c,
        );
        let msg = Message::LayerTask {
            frame,
            layer: 0,
            stripe,
            output,
            input,
        };
        let sent = self.link.send(now, to, &msg, Body::Values(&[]));
        self.note_send(sent);
    }

    /// Sends `Strips { frame, tile, sources }` in the node's transfer precision.
    fn send_strips(
        link: &mut Link<S>,
        transfer: Precision,
        now: Instant,
        to: NodeId,
        frame: FrameKey,
        tile: u16,
        sources: &[StripSource<'_>],
    ) -> Result<(), LinkError> {
        let msg = Message::Strips {
            frame,
            tile,
            strips: tessera_core::wire::StripsView::EMPTY,
        };
        match transfer {
            Precision::F32 => link.send(now, to, &msg, Body::Strips(sources)),
            p => {
                let (bytes, count) = packed::strips(sources, p).map_err(LinkError::Wire)?;
                let strips = tessera_core::wire::StripsView::new_checked(
                    count,
                    &bytes,
                    &tessera_core::wire::Limits::LARGE,
                )
                .map_err(LinkError::Wire)?;
                let msg = Message::Strips {
                    frame,
                    tile,
                    strips,
                };
                link.send(now, to, &msg, Body::Message)
            }
        }
    }

    /// MoDNN: sends `cut` (row bands of layer `layer`'s output, `c` channels each) to `to` as
    /// one `Strips` message of `stripe`; nothing when there are none.
    fn send_bands(
        &mut self,
        now: Instant,
        to: NodeId,
        (frame, layer, stripe): (FrameKey, u8, u16),
        c: u32,
        cut: &[(Side, Region, Vec<f32>)],
    ) {
        let sources: Vec<StripSource<'_>> = cut
            .iter()
            .filter_map(|(side, r, v)| {
                Some(StripSource {
                    layer,
                    side: *side,
                    view: FeatureView::new(v, *r, c).ok()?,
                })
            })
            .collect();
        if sources.is_empty() {
            return;
        }
        let sent = Self::send_strips(
            &mut self.link,
            self.transfer,
            now,
            to,
            frame,
            stripe,
            &sources,
        );
        self.note_send(sent);
    }

    /// MoDNN worker, stripe `id = (frame, layer, stripe)` computed (`values` over `region`)
    /// before the last layer: keeps it as the next layer's input, sends the gateway the rows
    /// other stripes read next (`Strips`), then a `LayerResult` with no values over a
    /// zero-width region of the stripe's rows.
    fn send_boundaries(
        &mut self,
        now: Instant,
        to: NodeId,
        (frame, layer, stripe): (FrameKey, u8, u16),
        region: Region,
        values: Vec<f32>,
    ) {
        let Ok(stack) = self.model.stack() else {
            return;
        };
        let Some(c) = stack.layers().get(layer as usize).map(|l| l.output.c) else {
            return;
        };
        let bands = modnn_boundaries(&stack, layer as usize, region.y);
        let cut: Vec<(Side, Region, Vec<f32>)> = bands
            .iter()
            .zip(MODNN_BAND_SIDES)
            .filter(|(rows, _)| !rows.is_empty())
            .filter_map(|(rows, side)| {
                let r = Region::new(region.x, *rows);
                Some((side, r, slice(&values, region, c, r)?))
            })
            .collect();
        self.send_bands(now, to, (frame, layer, stripe), c, &cut);
        let done = Tensor::streamed(
            Region::new(Span::new(region.x.start, region.x.start), region.y),
            c,
        );
        let msg = Message::LayerResult {
            frame,
            layer,
            stripe,
            output: done,
        };
        let sent = self.link.send(now, to, &msg, Body::Values(&[]));
        self.note_send(sent);
        if let Some(f) = self.frames.get_mut(&frame) {
            f.kept = Some((layer, region, values));
        }
    }

    /// MoDNN gateway: sends worker `to` the rows of layer `layer − 1`'s output that computing
    /// `output` reads beyond the rows `held` it keeps, cut from the boundary rows the workers
    /// sent, then the `LayerTask` (no input rows). Rows not all here: nothing is sent (the
    /// stripe's timeout restarts the frame).
    fn send_halo(
        &mut self,
        now: Instant,
        to: NodeId,
        (frame, layer, stripe): (FrameKey, u8, u16),
        output: Region,
        held: Span,
    ) {
        let Ok(stack) = self.model.stack() else {
            return;
        };
        let (Some(l), Some(prev)) = (stack.layers().get(layer as usize), layer.checked_sub(1))
        else {
            return;
        };
        let c = l.input.c;
        let need = stack.back(layer as usize, output);
        let Some(f) = self.frames.get(&frame) else {
            return;
        };
        let mut cut: Vec<(Side, Region, Vec<f32>)> = Vec::new();
        let bands = modnn_missing(&stack, layer as usize, output, held);
        for (rows, side) in bands.iter().zip(MODNN_BAND_SIDES) {
            if rows.is_empty() {
                continue;
            }
            let r = Region::new(need.x, *rows);
            let sources = f
                .strips
                .iter()
                .filter(|(&(_, l, _), _)| l == prev)
                .map(|(_, s)| s);
            match gather(r, c, sources) {
                Some(v) => cut.push((side, r, v)),
                None => {
                    warn!(
                        "node {}: frame {}: rows {}..{} of layer {} missing for stripe {}",
                        self.id(),
                        frame,
                        rows.start,
                        rows.end,
                        prev,
                        stripe
                    );
                    return;
                }
            }
        }
        self.send_bands(now, to, (frame, prev, stripe), c, &cut);
        let input = Tensor::streamed(
            Region::new(need.x, Span::new(need.y.start, need.y.start)),
            c,
        );
        let msg = Message::LayerTask {
            frame,
            layer,
            stripe,
            output,
            input,
        };
        let sent = self.link.send(now, to, &msg, Body::Values(&[]));
        self.note_send(sent);
    }

    /// MoDNN worker: the input `need` of stripe `stripe` of layer `layer`, from the stripe it
    /// kept at layer `layer − 1` and the rows the gateway forwarded (both taken).
    fn modnn_input(
        &mut self,
        frame: FrameKey,
        layer: u8,
        stripe: u16,
        need: Region,
    ) -> Option<Vec<f32>> {
        let stack = self.model.stack().ok()?;
        let c = stack.layers().get(layer as usize)?.input.c;
        let prev = layer.checked_sub(1)?;
        let f = self.frames.get_mut(&frame)?;
        let kept = f.kept.take().filter(|(l, _, _)| *l == prev);
        let forwarded: Vec<Strip> = MODNN_BAND_SIDES
            .iter()
            .filter_map(|side| f.strips.remove(&(stripe, prev, side.index() as u8)))
            .collect();
        let kept = kept.map(|(_, region, data)| Strip {
            region,
            channels: c,
            data,
        });
        gather(need, c, kept.iter().chain(forwarded.iter()))
    }

    /// True on an edge for a frame another source started: it computes some of its tiles and
    /// never reads its strips again once they are sent or handed to a job.
    fn is_helper_of(&self, frame: FrameKey) -> bool {
        matches!(self.machine, Machine::Edge(_)) && frame.origin != self.id()
    }

    /// Forgets, on a helper, the strips of `tile` on `sides` it just sent to the gateway: the
    /// gateway serves them from then on, and every tile that reads them fetches them there.
    fn drop_sent_strips(&mut self, frame: FrameKey, tile: u16, sides: u8) {
        if !self.is_helper_of(frame) {
            return;
        }
        if let Some(f) = self.frames.get_mut(&frame) {
            f.strips
                .retain(|&(t, _, s), _| t != tile || sides & (1 << s) == 0);
        }
    }

    /// Forgets, on a data source, the strips of its own frames whose one reader (the tile on
    /// their side) is done: computed here (its job took them) or its result at the gateway (a
    /// thief fetched them there). Without this, the strips facing stolen tiles stayed until
    /// the frame ended.
    fn drop_dead_strips(&mut self) {
        let Machine::Edge(e) = &self.machine else {
            return;
        };
        let me = self.link.me();
        for (&key, f) in self.frames.iter_mut().filter(|(k, _)| k.origin == me) {
            f.strips
                .retain(|&(t, _, s), _| e.strip_wanted(key, t, Side::ALL[s as usize]));
        }
    }

    /// True while a job runs.
    pub fn computing(&self) -> bool {
        self.computing
    }
}

/// The values over `region` (`channels` deep) copied from `parts`, which must cover every
/// row of it (they are disjoint row bands of a map, each covering `region`'s columns).
fn gather<'s>(
    region: Region,
    channels: u32,
    parts: impl Iterator<Item = &'s Strip>,
) -> Option<Vec<f32>> {
    let mut out = vec![0.0f32; region_len(&region, channels).ok()?];
    let mut dst = FeatureViewMut::new(&mut out, region, channels).ok()?;
    let mut rows = 0;
    for p in parts {
        let src = FeatureView::new(&p.data, p.region, p.channels).ok()?;
        if p.channels != channels || !p.region.x.covers(&region.x) {
            continue;
        }
        rows += p.region.y.intersect(&region.y).len();
        copy_overlap(&src, &mut dst);
    }
    (rows == region.y.len()).then_some(out)
}

/// Copies `region` out of a CHW map covering `full`.
fn slice(map: &[f32], full: Region, channels: u32, region: Region) -> Option<Vec<f32>> {
    let src = FeatureView::new(map, full, channels).ok()?;
    let mut out = vec![0.0f32; region_len(&region, channels).ok()?];
    let mut dst = FeatureViewMut::new(&mut out, region, channels).ok()?;
    if !full.covers(&region) {
        return None;
    }
    copy_overlap(&src, &mut dst);
    Some(out)
}

/// Copies `values` (CHW over `region`) into a CHW map covering `full`.
fn stitch(
    map: &mut [f32],
    full: Region,
    channels: u32,
    region: Region,
    value_channels: u32,
    values: &[f32],
) {
    if value_channels != channels {
        return;
    }
    let (Ok(src), Ok(mut dst)) = (
        FeatureView::new(values, region, channels),
        FeatureViewMut::new(map, full, channels),
    ) else {
        return;
    };
    copy_overlap(&src, &mut dst);
}
