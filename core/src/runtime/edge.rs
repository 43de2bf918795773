//! An edge: a worker (WSH puller, WST thief, BODP stripe worker) and, when it has a camera, a
//! data source (WST victim; WSH/BODP submitter).

use heapless::Deque;
use tessera_log::debug;

use crate::ftp::{Level, Mode, Side};
use crate::time::{Duration, Instant};
use crate::wire::{FrameKey, Message, NodeId, Policy, StripHolders, GATEWAY};

use super::link_cost::{fetch_pays, fetch_timeout, ComputeRate, PeerLinks};
use super::queue::Actions;
use super::sets::{neighbour_sides, side_bit, PeerSet, TileSet};
use super::source::{oldest, End, Reuse, SrcFrame};
use super::{
    Action, Config, RuntimeError, Stats, SubmitError, Verdict, Work, MAX_EDGES, MAX_EDGE_WORK,
    MAX_FRAMES_PER_SOURCE,
};
use crate::time::earliest;

/// Where the edge stands in asking for work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    /// Not asking; will ask when idle.
    Idle,
    /// WSH: `TaskRequest` sent.
    Task { until: Instant },
    /// WST: `StealRequest` sent to the gateway.
    Steal { until: Instant },
    /// WST: `StealTask` sent to `victim` at `sent`.
    Victim {
        victim: NodeId,
        sent: Instant,
        until: Instant,
    },
    /// Found nothing: ask again at `until`, or on a `Register` notice.
    Backoff { until: Instant },
    /// WSH: got `NoTask`; the gateway pushes a `Task` when work appears.
    Parked,
}

/// Work received from another node.
#[derive(Clone, Copy, Debug)]
struct Inbound {
    work: Work,
    /// `reuse = "link"`: where the strips of this level-1 tile's neighbours are.
    holders: Option<StripHolders>,
}

/// What the edge is doing now.
#[derive(Clone, Copy, Debug)]
struct Current {
    work: Work,
    /// A tile of one of this edge's own frames.
    own: bool,
    /// The whole input is at hand (an own tile, or a tile lent `Plain` under `reuse =
    /// "link"`), so a `Reuse` run whose strips fail can still run `Plain`.
    full_input: bool,
    /// Strips still awaited, if any.
    fetch: Option<Fetch>,
    /// When the computation was handed to the driver (its time feeds the compute rate).
    since: Instant,
}

/// Strips a level-1 tile waits for.
#[derive(Clone, Copy, Debug)]
struct Fetch {
    /// The level-0 neighbours whose strips have not come.
    missing: TileSet,
    /// Per side of the tile, the node asked for that neighbour's strips.
    from: StripHolders,
    /// When they were asked for.
    asked: Instant,
    /// Past this the tile runs `Plain` (or, without its whole input, is given up).
    until: Instant,
}

/// A WSH/BODP frame submitted to the gateway, until `FrameDone`.
#[derive(Clone, Copy, Debug)]
struct Submitted {
    key: FrameKey,
    /// Submission order (re-submission goes oldest first).
    seq: u64,
    deadline: Instant,
}

/// The edge's state machine. See the [module docs](super) for the protocol.
///
/// # Sessions
///
/// The transport owns connections, greetings and liveness; the edge only hears
/// [`on_connected`](Edge::on_connected) / [`on_disconnected`](Edge::on_disconnected) and only
/// sends to peers it was told are up (a thief offered a victim it has no connection to yet backs
/// off until that connection comes up, instead of waiting a whole `tile_timeout` for a reply to
/// a message that was never sent).
///
/// # Frames in flight when the gateway is lost
///
/// They are **re-submitted**. While the gateway connection is down a source keeps its frames
/// (their deadlines still run) and submits no new ones. When the gateway is up again — the same
/// gateway after a network outage, or a restarted one that knows nothing of them — every frame
/// still in flight starts over, oldest first: a WST/WST-S frame re-registers with all its tiles
/// queued again (tiles computed before went to the old gateway, whose results and strips may be
/// gone), a WSH/BODP frame is submitted again ([`Action::SubmitFrame`]: the driver keeps the
/// image until the frame ends). A gateway that still holds the frame discards the duplicates;
/// a frame that cannot finish before its deadline fails there as usual. A source starts its
/// frame numbers at a per-start value ([`Edge::with_first_frame`], [`Edge::set_next_frame`]) so
/// a restarted source never reuses a number the gateway may still hold for its previous life.
pub struct Edge {
    cfg: Config,
    id: NodeId,
    now: Instant,
    actions: Actions,
    gateway_up: bool,
    /// Other edges connected to this one (possible victims).
    edges_up: PeerSet,
    own: [Option<SrcFrame>; MAX_FRAMES_PER_SOURCE],
    submitted: [Option<Submitted>; MAX_FRAMES_PER_SOURCE],
    seq: u64,
    next_number: u32,
    inbox: Deque<Inbound, MAX_EDGE_WORK>,
    current: Option<Current>,
    ask: Ask,
    /// Unanswered `StealTask`s per victim (index = node id). Under loss a reply may come after
    /// its request timed out: it is discarded, not refused as a protocol error (which dropped
    /// the connection, and every message queued on it, under 5 % loss).
    unanswered: [u8; MAX_EDGES + 1],
    /// Consecutive `StealReply { victim: None }` answers: the idle backoff doubles with each.
    turned_away: u32,
    /// Prefetch timing: when the current work started, how long the last work took, and
    /// when the pending steal request went out and how long the last one took to bring a
    /// tile (see [`Edge::prefetch_at`]).
    pace: Pace,
    /// `reuse = "link"`: the last `StripHolders` from a victim (victim, frame, tile), for the
    /// task that follows it.
    offer: Option<(NodeId, FrameKey, u16, StripHolders)>,
    /// `reuse = "link"`: round trips and rates measured on the links to other edges.
    links: PeerLinks,
    /// `reuse = "link"`: this node's measured multiply-adds per second.
    rate: ComputeRate,
    stats: Stats,
}

/// What a prefetching thief measured of its own compute and of its steal round trips.
#[derive(Clone, Copy, Debug, Default)]
struct Pace {
    started: Option<Instant>,
    compute: Duration,
    asked: Option<Instant>,
    fetch: Duration,
}

/// `reuse = "link"`: what a data source needs to judge whether a level-1 tile whose
/// neighbours are still being computed is worth waiting for ([`SrcFrame::worth_waiting`]).
#[derive(Clone, Copy)]
struct HoldRule<'a> {
    rate: ComputeRate,
    cfg: &'a Config,
}

impl HoldRule<'_> {
    /// Hold level-1 `t` of `f` when its neighbours should be done before running it `Plain`
    /// would have paid off: the overlap at this node's rate, less the strips' transfer at the
    /// prior link. Neighbours are expected to take what they would take here.
    fn holds(&self, f: &SrcFrame, grid: &crate::ftp::Grid, t: u16, now: Instant) -> bool {
        let costs = &self.cfg.costs;
        let Some(overlap) = self.rate.time(costs.saved_macs(t)) else {
            return false;
        };
        let bytes: u64 = Side::ALL.iter().map(|&s| costs.strip_bytes(t, s)).sum();
        let fetch = self.cfg.link_prior.transfer(bytes);
        let penalty =
            Duration::from_micros(overlap.total_micros().saturating_sub(fetch.total_micros()));
        let expect = |n: u16| self.rate.time(costs.macs(n, Mode::Reuse));
        f.worth_waiting(grid, t, now, expect, penalty)
    }
}

/// Longest wait of an idle thief between steal requests. The gateway also sends a `Register`
/// notice to a thief it turned away as soon as work appears, so the wait only bounds how long a
/// missed notice could delay it; an idle cluster then costs a request a second per edge, not one
/// per `steal_backoff`.
pub const MAX_IDLE_BACKOFF: Duration = Duration::from_secs(1);

impl Edge {
    /// Edge `id` (`!= 0`), not yet connected, at `now`; its frames are numbered from 0.
    pub fn new(config: Config, id: NodeId, now: Instant) -> Edge {
        Edge::with_first_frame(config, id, now, 0)
    }

    /// As [`Edge::new`], numbering this source's frames from `first_frame` (wrapping). A node
    /// that may restart passes a value that grows with each start, e.g. the low 32 bits of a
    /// microsecond clock, so the gateway never mistakes a new frame for one of the previous run.
    pub fn with_first_frame(config: Config, id: NodeId, now: Instant, first_frame: u32) -> Edge {
        Edge {
            cfg: config,
            id,
            now,
            actions: Actions::new(),
            gateway_up: false,
            edges_up: PeerSet::default(),
            own: core::array::from_fn(|_| None),
            submitted: [None; MAX_FRAMES_PER_SOURCE],
            seq: 0,
            next_number: first_frame,
            inbox: Deque::new(),
            current: None,
            ask: Ask::Idle,
            unanswered: [0; MAX_EDGES + 1],
            turned_away: 0,
            pace: Pace::default(),
            offer: None,
            links: PeerLinks::default(),
            rate: ComputeRate::default(),
            stats: Stats::default(),
        }
    }

    /// Numbers the next frames from `number` (wrapping): see [`Edge::with_first_frame`].
    pub fn set_next_frame(&mut self, number: u32) {
        self.next_number = number;
    }

    /// This edge's node id.
    pub const fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Own frames in flight (submitted, not yet reported done by the gateway).
    pub fn frames_in_flight(&self) -> usize {
        self.own.iter().flatten().count() + self.submitted.iter().flatten().count()
    }

    /// Whether this node may still read the strip of level-0 `tile` on `side` of `frame`, one
    /// of its own frames: not once the neighbour on that side is done (computed here, or its
    /// result at the gateway), so a data source can drop its strips as their last reader
    /// finishes instead of when the frame ends. True for a frame that is not its own (not
    /// this machine's to judge).
    pub fn strip_wanted(&self, frame: FrameKey, tile: u16, side: Side) -> bool {
        let Some(f) = self.own_frame(frame).and_then(|i| self.own[i].as_ref()) else {
            return true;
        };
        match self.cfg.grid.neighbour(tile as usize, side) {
            Some(n) => !f.done(n as u16),
            None => false,
        }
    }

    /// A connection to `peer` is up (the transport already authenticated it). The gateway: own
    /// frames in flight start over there (see [`Edge`]), and the edge asks for
    /// work. Another edge: it may now be stolen from; a thief backing off asks again.
    pub fn on_connected(&mut self, now: Instant, peer: NodeId) {
        self.now = now;
        if peer == self.id {
            return;
        }
        if peer != GATEWAY {
            self.edges_up.insert(peer);
            if matches!(self.ask, Ask::Backoff { .. }) {
                self.ask = Ask::Idle;
            }
            self.kick();
            return;
        }
        if !self.gateway_up {
            self.gateway_up = true;
            self.ask = Ask::Idle;
            self.resubmit();
        }
        self.kick();
    }

    /// The connection to `peer` is gone. Another edge: tiles lent to it are re-queued; a steal
    /// in progress from it is dropped. The gateway: own frames wait for it to come back (see
    /// [`Edge`]).
    pub fn on_disconnected(&mut self, now: Instant, peer: NodeId) {
        self.now = now;
        if peer == GATEWAY {
            self.gateway_down();
        } else {
            self.edges_up.remove(peer);
            if let Some(n) = self.unanswered.get_mut(usize::from(peer)) {
                *n = 0;
            }
            for i in 0..MAX_FRAMES_PER_SOURCE {
                if self.own[i].as_mut().is_some_and(|f| f.peer_gone(peer)) {
                    self.stats.tiles_redispatched += 1;
                    self.reregister(i);
                }
            }
            if matches!(self.ask, Ask::Victim { victim, .. } if victim == peer) {
                self.ask = Ask::Idle;
            }
            if self.fetching_from(peer) {
                self.fetch_failed();
            }
        }
        self.kick();
    }

    /// The current tile waits for strips from `peer`.
    fn fetching_from(&self, peer: NodeId) -> bool {
        self.current
            .and_then(|c| c.fetch)
            .is_some_and(|f| f.from.0.contains(&Some(peer)))
    }

    /// A reply from `victim` to one of this edge's `StealTask`s: false when none is unanswered.
    fn answered(&mut self, victim: NodeId) -> bool {
        match self.unanswered.get_mut(usize::from(victim)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    fn gateway_down(&mut self) {
        if !self.gateway_up {
            return;
        }
        self.gateway_up = false;
        self.ask = Ask::Idle;
        if let Some(c) = self.current {
            if c.fetch.is_some() {
                self.fetch_failed();
            }
        }
    }

    /// Starts every own frame in flight over at a (re)connected gateway, oldest first so the
    /// gateway sees their numbers in order.
    fn resubmit(&mut self) {
        let running = match self.current {
            Some(Current {
                work: Work::Tile { frame, tile, .. },
                own: true,
                ..
            }) => Some((frame, tile)),
            _ => None,
        };
        let (grid, reuse) = (self.cfg.grid, self.cfg.reuse_mode());
        let mut after = 0;
        while let Some(i) = oldest(&self.own, |f| f.seq, |f| f.seq > after) {
            let Some(f) = self.own[i].as_mut() else {
                break;
            };
            after = f.seq;
            let since = self.pace.started.unwrap_or(self.now);
            f.restart(
                &grid,
                reuse,
                running.filter(|r| r.0 == f.key).map(|r| (r.1, since)),
            );
            f.registered = f.queued() > 0;
            if f.registered {
                self.actions.send(
                    GATEWAY,
                    Message::Register {
                        frame: f.key,
                        tiles: f.queued(),
                    },
                );
            }
        }
        let mut after = 0;
        while let Some(i) = oldest(&self.submitted, |s| s.seq, |s| s.seq > after) {
            let Some(s) = self.submitted[i] else {
                break;
            };
            after = s.seq;
            self.actions.push(Action::SubmitFrame { frame: s.key });
        }
    }

    /// Announces re-queued tiles of own frame `i` to the gateway if it was unregistered.
    fn reregister(&mut self, i: usize) {
        let Some(f) = self.own[i].as_mut() else {
            return;
        };
        if f.queued() > 0 && !f.registered && self.gateway_up {
            f.registered = true;
            self.actions.send(
                GATEWAY,
                Message::Register {
                    frame: f.key,
                    tiles: f.queued(),
                },
            );
        }
    }

    /// Starts a new frame at this data source. The driver stores the frame's image under the
    /// returned key before calling `poll`.
    pub fn submit_frame(&mut self, now: Instant) -> Result<FrameKey, SubmitError> {
        self.now = now;
        if !self.actions.room() {
            return Err(SubmitError::Busy);
        }
        if !self.gateway_up {
            return Err(SubmitError::NoGateway);
        }
        let key = FrameKey::new(self.id, self.next_number);
        // The gateway decides about a frame first; the source gives up a little later.
        let deadline = now + self.cfg.frame_deadline + self.cfg.tile_timeout;
        if self.cfg.stealing() {
            let slot = self
                .own
                .iter()
                .position(Option::is_none)
                .filter(|_| self.frames_in_flight() < MAX_FRAMES_PER_SOURCE)
                .ok_or(SubmitError::TooManyFrames)?;
            self.seq += 1;
            let mut f = SrcFrame::new(
                key,
                self.seq,
                deadline,
                &self.cfg.grid,
                self.cfg.reuse_mode(),
            );
            f.registered = true;
            self.actions.send(
                GATEWAY,
                Message::Register {
                    frame: key,
                    tiles: f.queued(),
                },
            );
            self.own[slot] = Some(f);
        } else {
            let slot = self
                .submitted
                .iter()
                .position(Option::is_none)
                .filter(|_| self.frames_in_flight() < MAX_FRAMES_PER_SOURCE)
                .ok_or(SubmitError::TooManyFrames)?;
            self.seq += 1;
            self.submitted[slot] = Some(Submitted {
                key,
                seq: self.seq,
                deadline,
            });
            self.actions.push(Action::SubmitFrame { frame: key });
        }
        self.next_number = self.next_number.wrapping_add(1);
        self.kick();
        Ok(key)
    }

    fn own_frame(&self, key: FrameKey) -> Option<usize> {
        self.own
            .iter()
            .position(|f| f.as_ref().is_some_and(|f| f.key == key))
    }

    /// Handles a message from `from`. `Accept` tells the driver to keep the payload (a task's
    /// input, strips).
    pub fn on_message(
        &mut self,
        now: Instant,
        from: NodeId,
        msg: &Message<'_>,
    ) -> Result<Verdict, RuntimeError> {
        self.now = now;
        if !self.actions.room() {
            return Err(RuntimeError::Busy);
        }
        let kind = msg.kind();
        let unexpected = Err(RuntimeError::Unexpected { peer: from, kind });
        if from == self.id {
            return unexpected;
        }
        let gw = from == GATEWAY;
        if gw && !self.gateway_up {
            return Err(RuntimeError::UnknownPeer { peer: from });
        }
        let tiles = self.cfg.tiles();
        let check_tile = |tile: u16| {
            if tile < tiles {
                Ok(())
            } else {
                Err(RuntimeError::TileOutOfRange { tile, tiles })
            }
        };
        let policy = self.cfg.policy;
        let stealing = self.cfg.stealing();
        let link = self.cfg.reuse_mode() == Reuse::Link;
        let v = match *msg {
            // Session messages belong to the transport; one passed up anyway changes nothing.
            Message::Heartbeat | Message::Hello { .. } => Verdict::Accept,
            // A `TileTask` is a `Task` whose input the driver cuts from the frame's picture.
            Message::Task {
                frame, tile, mode, ..
            }
            | Message::TileTask { frame, tile, mode } => {
                check_tile(tile)?;
                let current = matches!(self.ask, Ask::Victim { victim, .. } if victim == from);
                let replied = self.answered(from);
                if stealing && replied && !current {
                    // A reply to a request that timed out: the victim's own timeout covers
                    // the tile; dropped quietly rather than as a protocol error (which cost
                    // the connection).
                    return Ok(Verdict::Discard);
                }
                let asked = stealing && current;
                if !(asked || (policy == Policy::Wsh && gw)) {
                    return unexpected;
                }
                if self.inbox.is_full() {
                    return Err(RuntimeError::WorkQueueFull);
                }
                let holders = self
                    .offer
                    .take()
                    .filter(|o| (o.0, o.1, o.2) == (from, frame, tile))
                    .map(|o| o.3);
                let _ = self.inbox.push_back(Inbound {
                    work: Work::Tile { frame, tile, mode },
                    holders,
                });
                if let Ask::Victim { sent, .. } = self.ask {
                    if current {
                        let took = now.saturating_duration_since(sent);
                        match msg {
                            Message::Task { .. } => {
                                self.links
                                    .note_transfer(from, msg.buffer_len() as u64, took)
                            }
                            _ => self.links.note_rtt(from, took),
                        }
                    }
                }
                if let Some(at) = self.pace.asked.take() {
                    self.pace.fetch = now.saturating_duration_since(at);
                }
                if current || matches!(self.ask, Ask::Task { .. } | Ask::Parked) {
                    self.ask = Ask::Idle;
                }
                Verdict::Accept
            }
            Message::NoTask => {
                self.answered(from);
                match self.ask {
                    Ask::Task { .. } if gw => self.ask = Ask::Parked,
                    Ask::Victim { victim, sent, .. } if victim == from => {
                        self.links
                            .note_rtt(from, now.saturating_duration_since(sent));
                        self.ask = Ask::Backoff {
                            until: now + self.cfg.steal_backoff,
                        }
                    }
                    _ => {} // late reply to a request that timed out
                }
                Verdict::Accept
            }
            Message::StealReply { victim } if gw && stealing => {
                if let Ask::Steal { .. } = self.ask {
                    match victim.filter(|&v| v != self.id) {
                        // Not connected to the victim (yet): a `StealTask` could not be sent;
                        // ask again after the backoff or as soon as the victim comes up.
                        Some(v) if v != GATEWAY && !self.edges_up.contains(v) => {
                            self.ask = Ask::Backoff {
                                until: now + self.cfg.steal_backoff,
                            }
                        }
                        Some(v) => {
                            self.turned_away = 0;
                            self.actions.send(v, Message::StealTask);
                            if let Some(n) = self.unanswered.get_mut(usize::from(v)) {
                                *n = n.saturating_add(1);
                            }
                            self.ask = Ask::Victim {
                                victim: v,
                                sent: now,
                                until: now + self.cfg.tile_timeout,
                            };
                        }
                        None => {
                            // Nothing anywhere: wait longer each time (the gateway's
                            // `Register` notice ends the wait as soon as work appears).
                            let shift = self.turned_away.min(16);
                            let wait = self
                                .cfg
                                .steal_backoff
                                .total_micros()
                                .saturating_mul(1 << shift)
                                .min(MAX_IDLE_BACKOFF.total_micros())
                                .max(self.cfg.steal_backoff.total_micros());
                            self.turned_away = self.turned_away.saturating_add(1);
                            self.ask = Ask::Backoff {
                                until: now + Duration::from_micros(wait),
                            }
                        }
                    }
                }
                Verdict::Accept
            }
            Message::Register { .. } if gw && stealing => {
                self.turned_away = 0;
                if matches!(self.ask, Ask::Backoff { .. }) {
                    self.ask = Ask::Idle;
                }
                Verdict::Accept
            }
            Message::StealTask if stealing && !gw => {
                self.lend_tail(from);
                Verdict::Accept
            }
            Message::Coverage { frame, tile } if gw && stealing => {
                check_tile(tile)?;
                match self.own_frame(frame) {
                    Some(i) => {
                        if let Some(f) = self.own[i].as_mut() {
                            f.cover(tile);
                        }
                        Verdict::Accept
                    }
                    None => Verdict::Discard,
                }
            }
            Message::FrameDone { frame, complete } if gw => {
                let found = if let Some(i) = self.own_frame(frame) {
                    if self.own[i].as_ref().is_some_and(|f| f.registered) {
                        self.actions.send(GATEWAY, Message::Unregister { frame });
                    }
                    self.own[i] = None;
                    true
                } else if let Some(s) = self
                    .submitted
                    .iter_mut()
                    .find(|s| s.is_some_and(|s| s.key == frame))
                {
                    *s = None;
                    true
                } else {
                    false
                };
                if found {
                    self.actions.push(if complete {
                        Action::FrameComplete { frame }
                    } else {
                        Action::FrameFailed { frame }
                    });
                    Verdict::Accept
                } else {
                    Verdict::Discard
                }
            }
            Message::Strips {
                frame,
                tile,
                strips,
            } if policy == Policy::WstS && (gw || link) => {
                check_tile(tile)?;
                let Some(fetch) = self.awaited(frame, tile, from) else {
                    return Ok(self.discard());
                };
                if strips.count() == 0 && (!gw || link) {
                    // The holder no longer has them: recompute.
                    self.fetch_failed();
                    Verdict::Discard
                } else {
                    if !gw {
                        let took = now.saturating_duration_since(fetch.asked);
                        self.links
                            .note_transfer(from, msg.buffer_len() as u64, took);
                    }
                    if let Some(Current { fetch: Some(f), .. }) = self.current.as_mut() {
                        f.missing.remove(tile);
                        if f.missing.len() == 0 {
                            self.computing_now();
                        }
                    }
                    Verdict::Accept
                }
            }
            // `reuse = "link"`: another edge (or the gateway, relaying) asks for strips this
            // node made.
            Message::StripRequest { frame, tile, sides } if link => {
                check_tile(tile)?;
                let level0 = self.cfg.grid.level(tile as usize) == Level::Zero;
                if !level0 || sides & !neighbour_sides(&self.cfg.grid, tile) != 0 {
                    return unexpected;
                }
                self.actions.push(Action::SendStrips {
                    to: from,
                    frame,
                    tile,
                    sides,
                });
                Verdict::Accept
            }
            // `reuse = "link"`: a victim says where the strips of the tile it lends next are.
            Message::StripHolders {
                frame,
                tile,
                holders,
            } if link && !gw => {
                check_tile(tile)?;
                let grid = self.cfg.grid;
                let consistent = grid.level(tile as usize) == Level::One
                    && Side::ALL.iter().all(|&s| {
                        grid.neighbour(tile as usize, s).is_some() == holders.on(s).is_some()
                    });
                if !consistent {
                    return unexpected;
                }
                if !matches!(self.ask, Ask::Victim { victim, .. } if victim == from) {
                    // Ahead of a task for a request that timed out: that task is dropped too.
                    return Ok(self.discard());
                }
                self.offer = Some((from, frame, tile, holders));
                Verdict::Accept
            }
            // MoDNN: the overlap rows of the next stripe, kept by the driver for that stripe.
            Message::Strips { .. } if gw && policy == Policy::Modnn => Verdict::Accept,
            Message::Reject { .. } if gw || self.fetching_from(from) => {
                if self.current.is_some_and(|c| c.fetch.is_some()) {
                    self.fetch_failed();
                }
                Verdict::Accept
            }
            Message::LayerTask {
                frame,
                layer,
                stripe,
                output,
                ..
            } if gw && matches!(policy, Policy::Bodp | Policy::Modnn) => {
                if layer as usize >= self.cfg.layers.len() {
                    return Err(RuntimeError::StripeOutOfRange { layer, stripe });
                }
                if self.inbox.is_full() {
                    return Err(RuntimeError::WorkQueueFull);
                }
                let _ = self.inbox.push_back(Inbound {
                    work: Work::Layer {
                        frame,
                        layer,
                        stripe,
                        output,
                    },
                    holders: None,
                });
                Verdict::Accept
            }
            Message::Reject { .. } => Verdict::Accept,
            _ => return unexpected,
        };
        if v == Verdict::Discard {
            self.stats.discarded += 1;
        }
        self.kick();
        Ok(v)
    }

    /// A thief asks: lend the tail tile of the oldest frame with queued tiles, or say `NoTask`.
    fn lend_tail(&mut self, thief: NodeId) {
        let Some(i) = oldest(&self.own, |f| f.seq, |f| f.queued() > 0) else {
            self.actions.send(thief, Message::NoTask);
            return;
        };
        let reuse = self.cfg.reuse_mode();
        let deadline = self.now + self.cfg.tile_timeout;
        let now = self.now;
        let Some(pick) = self.pick(i, End::Tail) else {
            self.actions.send(thief, Message::NoTask);
            return;
        };
        let Some(f) = self.own[i].as_mut() else {
            return;
        };
        f.lend(pick.tile, thief, now, deadline);
        self.stats.tiles_lent += 1;
        let mut mode = pick.mode;
        if let (Reuse::Link, Some(holders)) = (reuse, pick.holders) {
            // The thief decides between fetching and recomputing: it gets the whole input.
            mode = Mode::Plain;
            self.actions.send(
                thief,
                Message::StripHolders {
                    frame: f.key,
                    tile: pick.tile,
                    holders,
                },
            );
        }
        self.actions.push(Action::SendTask {
            to: thief,
            frame: f.key,
            tile: pick.tile,
            mode,
        });
        if f.queued() == 0 && f.registered {
            f.registered = false;
            self.actions
                .send(GATEWAY, Message::Unregister { frame: f.key });
        }
    }

    /// The strips could not be fetched (or a `Reuse` run failed): a tile whose whole input is
    /// here runs Plain from it; a stolen Reuse tile (reduced input only) is dropped and the
    /// victim's deadline re-queues it.
    fn fetch_failed(&mut self) {
        let Some(c) = self.current else {
            return;
        };
        let Work::Tile { frame, tile, .. } = c.work else {
            return;
        };
        if c.full_input {
            let work = Work::Tile {
                frame,
                tile,
                mode: Mode::Plain,
            };
            self.current = Some(Current {
                work,
                fetch: None,
                since: self.now,
                ..c
            });
            self.stats.plain_fallbacks += 1;
            debug!(
                "edge: frame {} tile {}: strips not fetched, computed Plain from its input",
                frame, tile
            );
            self.actions.push(Action::Compute(work));
        } else {
            self.current = None;
        }
    }

    /// The fetch under way for the current tile, if it waits for `tile`'s strips from `from`.
    fn awaited(&self, frame: FrameKey, tile: u16, from: NodeId) -> Option<Fetch> {
        let c = self.current?;
        let fetch = c.fetch?;
        let Work::Tile {
            frame: f, tile: t, ..
        } = c.work
        else {
            return None;
        };
        let side = Side::ALL
            .into_iter()
            .find(|&s| self.cfg.grid.neighbour(t as usize, s) == Some(tile as usize))?;
        (f == frame && fetch.missing.contains(tile) && fetch.from.on(side) == Some(from))
            .then_some(fetch)
    }

    /// Every strip is in: the current tile goes to the driver.
    fn computing_now(&mut self) {
        if let Some(c) = self.current.as_mut() {
            c.fetch = None;
            c.since = self.now;
            self.actions.push(Action::Compute(c.work));
        }
    }

    /// Counts a payload answered with `Discard` outside the main match.
    fn discard(&mut self) -> Verdict {
        self.stats.discarded += 1;
        Verdict::Discard
    }

    /// Own tiles computed here whose results the gateway has not yet confirmed (`Coverage`):
    /// results still on their way through this node's uplink.
    fn results_ahead(&self) -> u16 {
        self.own
            .iter()
            .flatten()
            .map(|f| f.local.difference(f.covered).len())
            .sum()
    }

    /// The owner leaves its queued tiles to thieves for now: [`Config::results_ahead`] of its
    /// results are still unconfirmed.
    fn held_back(&self) -> bool {
        self.cfg.results_ahead > 0 && self.results_ahead() >= u16::from(self.cfg.results_ahead)
    }

    /// Starts the next piece of work, or asks for some.
    fn kick(&mut self) {
        if !self.gateway_up {
            return;
        }
        if self.current.is_some() {
            self.prefetch();
            return;
        }
        // 1. Own frames (WST): the owner takes from the head, unless its uplink is behind.
        if self.cfg.stealing() && !self.held_back() {
            if let Some(i) = oldest(&self.own, |f| f.seq, |f| f.queued() > 0) {
                let (found, now) = (self.pick(i, End::Head), self.now);
                if let Some(f) = self.own[i].as_mut() {
                    if let Some(pick) = found {
                        f.run(pick.tile, now);
                        let frame = f.key;
                        if f.queued() == 0 && f.registered {
                            f.registered = false;
                            self.actions.send(GATEWAY, Message::Unregister { frame });
                        }
                        let work = Work::Tile {
                            frame,
                            tile: pick.tile,
                            mode: pick.mode,
                        };
                        self.start(work, true, pick.holders);
                        return;
                    }
                }
            }
        }
        // 2. Received work. A Reuse level-1 tile lent under shared reuse fetches every side
        // from the gateway; under link reuse the victim said where the strips are.
        if let Some(job) = self.inbox.pop_front() {
            let holders = match job.work {
                Work::Tile {
                    tile,
                    mode: Mode::Reuse,
                    ..
                } if self.cfg.grid.level(tile as usize) == Level::One => {
                    let mut all = StripHolders::default();
                    for side in Side::ALL {
                        if self.cfg.grid.neighbour(tile as usize, side).is_some() {
                            all.set(side, Some(GATEWAY));
                        }
                    }
                    Some(all)
                }
                _ => job.holders,
            };
            self.start(job.work, false, holders);
            return;
        }
        // 3. Ask for work, unless own tiles wait (held back for thieves: a stolen tile's
        // result would queue behind the same uplink).
        if self.ask != Ask::Idle || self.own_queued() {
            return;
        }
        let until = self.now + self.cfg.tile_timeout;
        match self.cfg.policy {
            Policy::Wsh => {
                self.actions.send(GATEWAY, Message::TaskRequest);
                self.ask = Ask::Task { until };
            }
            Policy::Wst | Policy::WstS => {
                self.actions.send(GATEWAY, Message::StealRequest);
                self.ask = Ask::Steal { until };
                self.pace.asked = Some(self.now);
            }
            Policy::Bodp | Policy::Modnn => {}
        }
    }

    /// The tile of own frame `i` to take from `end` (see [`SrcFrame::pick_or_hold`]).
    fn pick(&self, i: usize, end: End) -> Option<super::source::Pick> {
        let f = self.own.get(i)?.as_ref()?;
        let (grid, reuse, hold) = (self.cfg.grid, self.cfg.reuse_mode(), self.hold_rule());
        f.pick_or_hold(&grid, reuse, end, |t| {
            hold.is_some_and(|h| h.holds(f, &grid, t, self.now))
        })
    }

    /// The rule for holding level-1 tiles back, under `reuse = "link"` only.
    fn hold_rule(&self) -> Option<HoldRule<'_>> {
        (self.cfg.reuse_mode() == Reuse::Link).then_some(HoldRule {
            rate: self.rate,
            cfg: &self.cfg,
        })
    }

    /// Some own frame has queued tiles.
    fn own_queued(&self) -> bool {
        self.cfg.stealing() && self.own.iter().flatten().any(|f| f.queued() > 0)
    }

    /// [`Config::prefetch`]: when a computing thief with nothing waiting and no own queued
    /// tile asks for its next one: one steal round trip (as the last one took) before the
    /// current work ends (if it takes as long as the last one), so the tile arrives as this
    /// one is done, not held idle behind it while its owner could have computed it. Not before
    /// a tile was timed (a thief would grab a whole round of tiles while computing its first).
    /// `None` when it should not ask.
    fn prefetch_at(&self) -> Option<Instant> {
        let stealing = matches!(self.cfg.policy, Policy::Wst | Policy::WstS);
        if !self.cfg.prefetch
            || !stealing
            || !self.gateway_up
            || !self.inbox.is_empty()
            || self.ask != Ask::Idle
            || self.own_queued()
            || self.current.is_none_or(|c| c.fetch.is_some())
            || self.pace.compute.is_zero()
        {
            return None;
        }
        let started = self.pace.started?;
        let lead = Duration::from_micros(
            self.pace
                .compute
                .total_micros()
                .saturating_sub(self.pace.fetch.total_micros()),
        );
        Some(started + lead)
    }

    /// Asks for the next tile if [`Edge::prefetch_at`] says it is time.
    fn prefetch(&mut self) {
        if self.prefetch_at().is_some_and(|at| at <= self.now) {
            self.actions.send(GATEWAY, Message::StealRequest);
            self.ask = Ask::Steal {
                until: self.now + self.cfg.tile_timeout,
            };
            self.pace.asked = Some(self.now);
        }
    }

    /// Begins `work`. A level-1 tile with `holders` (where each neighbour's strips are) runs
    /// `Reuse`, fetching the strips held elsewhere first; under `reuse = "link"` only when the
    /// link model says fetching beats recomputing the overlap, else it runs `Plain`.
    fn start(&mut self, work: Work, own: bool, holders: Option<StripHolders>) {
        self.pace.started = Some(self.now);
        let link = self.cfg.reuse_mode() == Reuse::Link;
        let mut current = Current {
            work,
            own,
            full_input: own || link,
            fetch: None,
            since: self.now,
        };
        if let (Work::Tile { frame, tile, .. }, Some(holders)) = (work, holders) {
            let mut from = StripHolders::default();
            let mut missing = TileSet::default();
            for side in Side::ALL {
                let (Some(n), Some(h)) = (
                    self.cfg.grid.neighbour(tile as usize, side),
                    holders.on(side),
                ) else {
                    continue;
                };
                if h != self.id {
                    from.set(side, Some(h));
                    missing.insert(n as u16);
                }
            }
            let mut until = self.now + self.cfg.tile_timeout;
            // Strips all here, or through the gateway's cache: no choice to make.
            let mode = if missing.len() == 0 || !link {
                Mode::Reuse
            } else if let Some(wait) = self.fetch_worth(tile, &mut from) {
                until = self.now + wait;
                self.stats.link_fetches += 1;
                Mode::Reuse
            } else {
                self.stats.link_recomputes += 1;
                missing = TileSet::default();
                Mode::Plain
            };
            current.work = Work::Tile { frame, tile, mode };
            if missing.len() > 0 {
                for side in Side::ALL {
                    let (Some(n), Some(h)) =
                        (self.cfg.grid.neighbour(tile as usize, side), from.on(side))
                    else {
                        continue;
                    };
                    // The strip of `n` on its side facing `tile`.
                    self.actions.send(
                        h,
                        Message::StripRequest {
                            frame,
                            tile: n as u16,
                            sides: side_bit(side.opposite()),
                        },
                    );
                }
                current.fetch = Some(Fetch {
                    missing,
                    from,
                    asked: self.now,
                    until,
                });
            }
        }
        if let Work::Tile { mode, tile, .. } = current.work {
            if mode == Mode::Reuse && self.cfg.grid.level(tile as usize) == Level::One {
                self.stats.reuse_runs += 1;
            }
        }
        self.current = Some(current);
        if current.fetch.is_none() {
            self.actions.push(Action::Compute(current.work));
        }
    }

    /// `reuse = "link"`: how long to wait for the strips of level-1 `tile` from the holders in
    /// `from` (by side), if fetching them is worth it. A holder this edge has no connection to
    /// is asked through the gateway, which relays (its side in `from` becomes the gateway, and
    /// the transfer counts twice). [`Config::strip_fetch`] decides, by default when the
    /// slowest holder's round trip plus bytes arrive before the overlap could be recomputed at
    /// this node's measured rate, or when a holder's link rate was never measured (one fetch
    /// measures it).
    fn fetch_worth(&self, tile: u16, from: &mut StripHolders) -> Option<Duration> {
        let (mut fetch, mut explore) = (Duration::from_micros(0), false);
        for side in Side::ALL {
            let Some(h) = from.on(side) else { continue };
            if h == GATEWAY || self.edges_up.contains(h) {
                continue;
            }
            if !self.gateway_up {
                return None;
            }
            from.set(side, Some(GATEWAY));
        }
        for &h in from.0.iter().flatten() {
            explore |= !self.links.rate_known(h);
            let bytes: u64 = Side::ALL
                .iter()
                .filter(|&&s| from.on(s) == Some(h))
                .map(|&s| self.cfg.costs.strip_bytes(tile, s))
                .sum();
            let one = self.links.estimate(h, self.cfg.link_prior).transfer(bytes);
            let hops = if h == GATEWAY { 2 } else { 1 };
            fetch = fetch.max(Duration::from_micros(
                one.total_micros().saturating_mul(hops),
            ));
        }
        let recompute = self.rate.time(self.cfg.costs.saved_macs(tile));
        fetch_pays(self.cfg.strip_fetch, fetch, recompute, explore)
            .then(|| fetch_timeout(fetch, recompute, self.cfg.tile_timeout))
    }

    /// The driver finished `work` handed out with [`Action::Compute`]: the edge sends the result
    /// (and a level-0 Reuse tile's strips) to the gateway. Always `Accept` for current work.
    pub fn on_computed(&mut self, now: Instant, work: Work) -> Result<Verdict, RuntimeError> {
        self.now = now;
        if !self.actions.room() {
            return Err(RuntimeError::Busy);
        }
        let since = match self.current {
            Some(c) if c.work == work && c.fetch.is_none() => c.since,
            _ => return Err(RuntimeError::NotComputing),
        };
        let own = self.current.is_some_and(|c| c.own);
        self.current = None;
        if let Work::Tile { tile, mode, .. } = work {
            let macs = self.cfg.costs.macs(tile, mode);
            self.rate.note(macs, now.saturating_duration_since(since));
        }
        self.stats.tiles_computed += 1;
        if let Some(at) = self.pace.started.take() {
            self.pace.compute = now.saturating_duration_since(at);
        }
        match work {
            Work::Tile { frame, tile, mode } => {
                let level0 = self.cfg.grid.level(tile as usize) == Level::Zero;
                if mode == Mode::Reuse && level0 && self.cfg.strips_at_gateway() {
                    self.actions.push(Action::SendStrips {
                        to: GATEWAY,
                        frame,
                        tile,
                        sides: neighbour_sides(&self.cfg.grid, tile),
                    });
                }
                self.actions.push(Action::SendResult {
                    to: GATEWAY,
                    frame,
                    tile,
                });
                if own {
                    if let Some(f) = self.own_frame(frame).and_then(|i| self.own[i].as_mut()) {
                        f.computed(tile);
                    }
                }
            }
            Work::Layer {
                frame,
                layer,
                stripe,
                ..
            } => self.actions.push(Action::SendLayerResult {
                to: GATEWAY,
                frame,
                layer,
                stripe,
            }),
        }
        self.kick();
        Ok(Verdict::Accept)
    }

    /// The driver could not compute the current work (its model refused the inputs it has,
    /// e.g. a Reuse tile whose strip went missing with a dropped connection). An own Reuse
    /// tile is computed again Plain from its input, as when its strips are not fetched in
    /// time; other work is given up (its lender's tile timeout re-dispatches it), so the edge
    /// is never left computing forever.
    pub fn on_compute_failed(&mut self, now: Instant) {
        self.now = now;
        match self.current {
            Some(Current {
                work: Work::Tile { mode, .. },
                full_input: true,
                fetch: None,
                ..
            }) if mode != Mode::Plain => self.fetch_failed(),
            Some(Current { fetch: None, .. }) => {
                self.current = None;
                self.kick();
            }
            _ => {}
        }
    }

    /// Runs due timers, then returns the next action, if any. Call until `None` after every
    /// event and whenever [`poll_at`](Self::poll_at) is reached.
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        self.now = now;
        if self.actions.room() {
            self.service(now);
        }
        self.actions.pop()
    }

    fn service(&mut self, now: Instant) {
        match self.ask {
            Ask::Task { until }
            | Ask::Steal { until }
            | Ask::Victim { until, .. }
            | Ask::Backoff { until }
                if until <= now =>
            {
                self.ask = Ask::Idle
            }
            _ => {}
        }
        if let Some(Current { fetch: Some(f), .. }) = self.current {
            if f.until <= now {
                self.fetch_failed();
            }
        }
        for i in 0..MAX_FRAMES_PER_SOURCE {
            let Some(f) = self.own[i].as_mut() else {
                continue;
            };
            if f.deadline <= now {
                let frame = f.key;
                if f.registered && self.gateway_up {
                    self.actions.send(GATEWAY, Message::Unregister { frame });
                }
                self.own[i] = None;
                self.actions.push(Action::FrameFailed { frame });
                continue;
            }
            if f.expire(now) {
                self.stats.tiles_redispatched += 1;
                self.reregister(i);
            }
        }
        for s in self.submitted.iter_mut() {
            if let Some(x) = *s {
                if x.deadline <= now {
                    *s = None;
                    self.actions.push(Action::FrameFailed { frame: x.key });
                }
            }
        }
        self.kick();
    }

    /// When [`poll`](Self::poll) next has something to do (`None`: only on an event).
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.actions.is_empty() {
            return Some(self.now);
        }
        let mut at = None;
        match self.ask {
            Ask::Task { until }
            | Ask::Steal { until }
            | Ask::Victim { until, .. }
            | Ask::Backoff { until } => at = earliest(at, Some(until)),
            Ask::Idle | Ask::Parked => {}
        }
        if let Some(Current { fetch: Some(f), .. }) = self.current {
            at = earliest(at, Some(f.until));
        }
        at = earliest(at, self.prefetch_at());
        if self.current.is_none() && self.own_queued() && self.hold_rule().is_some() {
            // A source holding level-1 tiles for their neighbours looks again now and then
            // (their `Coverage` wakes it at once; this bounds a wrong guess of their end).
            at = earliest(at, Some(self.now + self.cfg.steal_backoff));
        }
        for f in self.own.iter().flatten() {
            at = earliest(at, Some(f.deadline));
            at = earliest(at, f.next_deadline());
        }
        for s in self.submitted.iter().flatten() {
            at = earliest(at, Some(s.deadline));
        }
        at
    }
}
