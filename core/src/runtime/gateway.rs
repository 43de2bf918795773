//! The gateway: victim registry (WST), central tile queue (WSH), strip cache bookkeeping and
//! coverage (WST-S), layer-by-layer coordinator (BODP), result collection, and fallback worker.

use tessera_log::{debug, info};

use crate::ftp::{Level, Side};
use crate::region::Region;
use crate::time::Instant;
use crate::wire::{FrameKey, Message, NodeId, Policy, TileMode, GATEWAY};

use super::bodp::{self, Bodp, Stripe};
use super::source::{oldest, End, SrcFrame};
use super::types::{
    earliest, Action, Actions, Config, Control, RuntimeError, SubmitError, TileSet, Verdict, Work,
    REJECT_NO_STRIPS,
};
use super::{Stats, MAX_EDGES, MAX_EDGE_WORK, MAX_FRAMES_PER_SOURCE, MAX_GATEWAY_FRAMES};

/// A connected edge.
#[derive(Clone, Copy, Debug)]
struct Peer {
    id: NodeId,
    /// Asked for work and got none: push work (WSH) or a `Register` (WST) when some appears.
    hungry: bool,
    /// Highest frame number seen from this peer as a data source.
    latest: Option<u32>,
    /// BODP: last measured rows per second (0: not measured yet).
    speed: u64,
    /// BODP: stripes sent and not answered.
    outstanding: u8,
    /// BODP: a stripe of it timed out and nothing came back since.
    late: bool,
}

/// A frame known to the gateway.
#[derive(Clone, Debug)]
struct GwFrame {
    key: FrameKey,
    seq: u64,
    deadline: Instant,
    results: TileSet,
    strips: TileSet,
    /// Coverage already reported to the origin.
    told: TileSet,
    /// WST: the origin announced stealable tiles.
    registered: bool,
    /// The input is here: WSH frames, and the gateway's own frames.
    src: Option<SrcFrame>,
    /// BODP lock-step state.
    bodp: Option<Bodp>,
}

/// A complete frame whose `FrameDone` waits for the driver ([`Config::confirm_done`]).
#[derive(Clone, Copy, Debug)]
struct Awaiting {
    key: FrameKey,
    /// Past this, a confirmed `FrameDone` whose origin is away is given up.
    deadline: Instant,
    /// `Some(complete)`: confirmed by the driver while the origin was not connected; sent when
    /// it is back.
    confirmed: Option<bool>,
}

/// True when `n` is a frame number after `latest` within the per-source window.
fn is_newer(latest: Option<u32>, n: u32) -> bool {
    match latest {
        None => true,
        Some(l) => (1..=2 * MAX_FRAMES_PER_SOURCE as u32).contains(&n.wrapping_sub(l)),
    }
}

/// The gateway's state machine. See the [module docs](super) for the protocol.
pub struct Gateway {
    cfg: Config,
    now: Instant,
    actions: Actions,
    peers: [Option<Peer>; MAX_EDGES],
    last_victim: Option<NodeId>,
    frames: [Option<GwFrame>; MAX_GATEWAY_FRAMES],
    /// Complete frames waiting for [`Gateway::frame_done`]; with `frames`, at most
    /// [`MAX_GATEWAY_FRAMES`] together.
    awaiting: [Option<Awaiting>; MAX_GATEWAY_FRAMES],
    seq: u64,
    own_next: u32,
    computing: Option<Work>,
    stats: Stats,
}

impl Gateway {
    /// A gateway with no peer and no frame, at `now`.
    pub fn new(config: Config, now: Instant) -> Gateway {
        Gateway {
            cfg: config,
            now,
            actions: Actions::new(),
            peers: [None; MAX_EDGES],
            last_victim: None,
            frames: core::array::from_fn(|_| None),
            awaiting: [None; MAX_GATEWAY_FRAMES],
            seq: 0,
            own_next: 0,
            computing: None,
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Edges connected (`on_connected`, not `on_disconnected` since).
    pub fn alive_edges(&self) -> usize {
        self.peers.iter().flatten().count()
    }

    /// Frames in flight.
    pub fn frames_in_flight(&self) -> usize {
        self.frames.iter().flatten().count()
    }

    /// Complete frames whose `FrameDone` waits for [`Gateway::frame_done`] (or, confirmed, for
    /// their origin to reconnect).
    pub fn frames_awaiting_done(&self) -> usize {
        self.awaiting.iter().flatten().count()
    }

    /// With [`Config::confirm_done`]: the driver holds `frame`'s final result (`complete`), or
    /// gave up on it (`!complete`); its origin is told `FrameDone` now, or when it reconnects
    /// (until the frame's deadline), and the slot is free for a new frame. False when `frame`
    /// was not waiting (unknown, or confirmed already).
    pub fn frame_done(
        &mut self,
        now: Instant,
        frame: FrameKey,
        complete: bool,
    ) -> Result<bool, RuntimeError> {
        self.now = now;
        if !self.actions.room() {
            return Err(RuntimeError::Busy);
        }
        let here = frame.origin == GATEWAY || self.peer(frame.origin).is_some();
        let Some(slot) = self
            .awaiting
            .iter_mut()
            .find(|a| a.is_some_and(|a| a.key == frame && a.confirmed.is_none()))
        else {
            return Ok(false);
        };
        if here {
            *slot = None;
            if frame.origin != GATEWAY {
                self.actions
                    .send(frame.origin, Control::FrameDone { frame, complete });
            }
        } else if let Some(a) = slot.as_mut() {
            a.confirmed = Some(complete);
        }
        if !complete {
            self.stats.frames_failed += 1;
        }
        self.kick();
        Ok(true)
    }

    /// Frames in flight plus frames awaiting `frame_done`: the slots in use.
    fn slots_used(&self) -> usize {
        self.frames_in_flight() + self.frames_awaiting_done()
    }

    /// BODP: the output region of `stripe` of `frame`'s current layer `layer` (where an
    /// accepted `LayerResult` goes).
    pub fn stripe_region(&self, frame: FrameKey, layer: u8, stripe: u16) -> Option<Region> {
        let f = self.frames.iter().flatten().find(|f| f.key == frame)?;
        let b = f.bodp.as_ref().filter(|b| b.layer == layer)?;
        b.region(stripe as usize)
    }

    fn peer(&self, id: NodeId) -> Option<usize> {
        self.peers
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.id == id))
    }

    fn frame(&self, key: FrameKey) -> Option<usize> {
        self.frames
            .iter()
            .position(|f| f.as_ref().is_some_and(|f| f.key == key))
    }

    /// A connection to edge `peer` is up (the transport already authenticated it): it counts
    /// as alive and gets work. Beyond [`MAX_EDGES`] edges a newcomer is not tracked and its
    /// messages are refused with [`RuntimeError::UnknownPeer`].
    pub fn on_connected(&mut self, now: Instant, peer: NodeId) {
        self.now = now;
        if peer == GATEWAY || self.peer(peer).is_some() {
            return;
        }
        let Some(slot) = self.peers.iter().position(Option::is_none) else {
            return;
        };
        self.peers[slot] = Some(Peer {
            id: peer,
            hungry: false,
            latest: None,
            speed: 0,
            outstanding: 0,
            late: false,
        });
        // `FrameDone`s confirmed while it was away (it still holds those frames).
        for a in self.awaiting.iter_mut() {
            let Some(Awaiting {
                key,
                confirmed: Some(complete),
                ..
            }) = *a
            else {
                continue;
            };
            if key.origin == peer && self.actions.room() {
                *a = None;
                self.actions.send(
                    peer,
                    Control::FrameDone {
                        frame: key,
                        complete,
                    },
                );
            }
        }
        self.kick();
    }

    /// The connection to `peer` is gone: its lent tiles and stripes are re-dispatched, and the
    /// frames it was the source of (WST) get at most `tile_timeout` more to complete.
    pub fn on_disconnected(&mut self, now: Instant, peer: NodeId) {
        self.now = now;
        self.remove_peer(peer);
        self.kick();
    }

    fn remove_peer(&mut self, peer: NodeId) {
        let Some(p) = self.peer(peer) else {
            return;
        };
        self.peers[p] = None;
        let (stealing, timeout) = (self.cfg.stealing(), self.cfg.tile_timeout);
        for i in 0..MAX_GATEWAY_FRAMES {
            let Some(f) = self.frames[i].as_mut() else {
                continue;
            };
            if let Some(src) = f.src.as_mut() {
                if src.peer_gone(peer) {
                    self.stats.tiles_redispatched += 1;
                    info!(
                        "gateway: frame {}: node {} left, its tiles re-dispatched",
                        f.key, peer
                    );
                }
            }
            if stealing && f.key.origin == peer {
                f.registered = false;
                f.deadline = f.deadline.min(self.now + timeout);
            }
            if f.bodp.is_some() {
                self.bodp_reassign(i, Some(peer));
            }
        }
        if stealing {
            self.wake_thieves();
        }
    }

    /// Handles a message from `from`. `Accept` tells the driver to keep the payload.
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
        let Some(p) = self.peer(from) else {
            return Err(RuntimeError::UnknownPeer { peer: from });
        };
        let tiles = self.cfg.tiles();
        let check_tile = |tile: u16| {
            if tile < tiles {
                Ok(())
            } else {
                Err(RuntimeError::TileOutOfRange { tile, tiles })
            }
        };
        let policy = self.cfg.policy;
        let v = match *msg {
            // Session messages belong to the transport; one passed up anyway changes nothing.
            Message::Heartbeat | Message::Hello { .. } | Message::Reject { .. } => Verdict::Accept,
            Message::TaskRequest if policy == Policy::Wsh => {
                if !self.give_task(p, End::Head) {
                    self.actions.send(from, Control::NoTask);
                    if let Some(p) = self.peers[p].as_mut() {
                        p.hungry = true;
                    }
                }
                Verdict::Accept
            }
            Message::FrameSubmit { frame, .. } if matches!(policy, Policy::Wsh | Policy::Bodp) => {
                if frame.origin != from {
                    return unexpected;
                }
                if self.frame(frame).is_some() || !is_newer(self.latest(from), frame.number) {
                    Verdict::Discard
                } else if self.create(frame, p).is_none() {
                    self.actions.send(
                        from,
                        Control::FrameDone {
                            frame,
                            complete: false,
                        },
                    );
                    return Err(RuntimeError::TooManyFrames);
                } else {
                    Verdict::Accept
                }
            }
            Message::Register { frame, tiles } if self.cfg.stealing() => {
                if frame.origin != from {
                    return unexpected;
                }
                let i = match self.frame(frame) {
                    Some(i) => Some(i),
                    None if is_newer(self.latest(from), frame.number) => self.create(frame, p),
                    None => None,
                };
                match i.and_then(|i| self.frames[i].as_mut()) {
                    Some(f) => {
                        f.registered = tiles > 0;
                        self.wake_thieves();
                        Verdict::Accept
                    }
                    None => Verdict::Discard,
                }
            }
            Message::Unregister { frame } if self.cfg.stealing() => {
                if frame.origin != from {
                    return unexpected;
                }
                match self.frame(frame).and_then(|i| self.frames[i].as_mut()) {
                    Some(f) => {
                        f.registered = false;
                        Verdict::Accept
                    }
                    None => Verdict::Discard,
                }
            }
            Message::StealRequest if self.cfg.stealing() => {
                let victim = self.choose_victim(from);
                self.actions.send(from, Control::StealReply { victim });
                if victim.is_none() {
                    if let Some(p) = self.peers[p].as_mut() {
                        p.hungry = true;
                    }
                }
                Verdict::Accept
            }
            Message::StealTask if self.cfg.stealing() => {
                if !self.give_task(p, End::Tail) {
                    self.actions.send(from, Control::NoTask);
                }
                Verdict::Accept
            }
            Message::Result { frame, tile, .. } if policy != Policy::Bodp => {
                check_tile(tile)?;
                match self.lookup(frame) {
                    Some(i) => self.tile_in(i, tile, false),
                    None => Verdict::Discard,
                }
            }
            Message::Strips { frame, tile, .. } if policy == Policy::WstS => {
                check_tile(tile)?;
                if self.cfg.grid.level(tile as usize) != Level::Zero {
                    return unexpected;
                }
                match self.lookup(frame) {
                    Some(i) => self.strips_in(i, tile),
                    None => Verdict::Discard,
                }
            }
            Message::StripRequest { frame, tile, sides } if policy == Policy::WstS => {
                check_tile(tile)?;
                if sides & 0xf0 != 0 {
                    return unexpected;
                }
                let held = self
                    .frame(frame)
                    .and_then(|i| self.frames[i].as_ref())
                    .is_some_and(|f| f.strips.contains(tile));
                if held {
                    self.actions.push(Action::SendStrips {
                        to: from,
                        frame,
                        tile,
                        sides,
                    });
                } else {
                    self.actions.send(
                        from,
                        Control::Reject {
                            code: REJECT_NO_STRIPS,
                        },
                    );
                }
                Verdict::Accept
            }
            Message::LayerResult {
                frame,
                layer,
                stripe,
                ..
            } if policy == Policy::Bodp => {
                if layer as usize >= self.cfg.layers.len() {
                    return Err(RuntimeError::StripeOutOfRange { layer, stripe });
                }
                if let Some(p) = self.peers[p].as_mut() {
                    p.outstanding = p.outstanding.saturating_sub(1);
                    p.late = false;
                }
                match self.frame(frame) {
                    Some(i) => self.stripe_in(i, from, layer, stripe)?,
                    None => Verdict::Discard,
                }
            }
            _ => return unexpected,
        };
        if v == Verdict::Discard {
            self.stats.discarded += 1;
        }
        self.kick();
        Ok(v)
    }

    fn latest(&self, origin: NodeId) -> Option<u32> {
        self.peer(origin)
            .and_then(|p| self.peers[p].as_ref())
            .and_then(|p| p.latest)
    }

    /// Frame `key`, created if it is a new frame of a live origin (a stolen tile's result can
    /// overtake the source's `Register` on another link).
    fn lookup(&mut self, key: FrameKey) -> Option<usize> {
        if let Some(i) = self.frame(key) {
            return Some(i);
        }
        if !self.cfg.stealing() || key.origin == GATEWAY {
            return None;
        }
        let p = self.peer(key.origin)?;
        if !is_newer(self.latest(key.origin), key.number) {
            return None;
        }
        self.create(key, p)
    }

    /// A new frame slot for `key` from peer slot `p` (or the gateway itself when `p` is out of
    /// range); starts WSH queueing or BODP layer 0.
    fn create(&mut self, key: FrameKey, p: usize) -> Option<usize> {
        if self.slots_used() >= MAX_GATEWAY_FRAMES {
            return None;
        }
        let i = self.frames.iter().position(Option::is_none)?;
        if let Some(Some(peer)) = self.peers.get_mut(p) {
            if is_newer(peer.latest, key.number) {
                peer.latest = Some(key.number);
            }
        }
        self.seq += 1;
        let deadline = self.now + self.cfg.frame_deadline;
        let holds_input = self.cfg.policy == Policy::Wsh || key.origin == GATEWAY;
        let src = (holds_input && self.cfg.policy != Policy::Bodp)
            .then(|| SrcFrame::new(key, self.seq, deadline, &self.cfg.grid, self.cfg.reuse()));
        self.frames[i] = Some(GwFrame {
            key,
            seq: self.seq,
            deadline,
            results: TileSet::default(),
            strips: TileSet::default(),
            told: TileSet::default(),
            registered: key.origin == GATEWAY && self.cfg.stealing(),
            src,
            bodp: None,
        });
        if self.cfg.policy == Policy::Bodp {
            self.bodp_start(i, 0);
        }
        Some(i)
    }

    /// Hands a queued tile (oldest frame first) to peer slot `p`; false when none is queued.
    fn give_task(&mut self, p: usize, end: End) -> bool {
        let Some(to) = self.peers[p].map(|p| p.id) else {
            return false;
        };
        let own_only = self.cfg.stealing();
        let Some(i) = oldest(
            &self.frames,
            |f| f.seq,
            |f| {
                (!own_only || f.key.origin == GATEWAY)
                    && f.src.as_ref().is_some_and(|s| s.queued() > 0)
            },
        ) else {
            return false;
        };
        let (grid, reuse) = (self.cfg.grid, self.cfg.reuse());
        let deadline = self.now + self.cfg.tile_timeout;
        let Some(f) = self.frames[i].as_mut() else {
            return false;
        };
        let Some(src) = f.src.as_mut() else {
            return false;
        };
        let Some(pick) = src.pick(&grid, reuse, end) else {
            return false;
        };
        src.lend(pick.tile, to, deadline);
        self.stats.tiles_lent += 1;
        self.actions.push(Action::SendTask {
            to,
            frame: f.key,
            tile: pick.tile,
            mode: pick.mode,
        });
        if let Some(p) = self.peers[p].as_mut() {
            p.hungry = false;
        }
        true
    }

    /// Round-robin over origins with registered frames (and the gateway's own queued frames),
    /// excluding the thief itself.
    fn choose_victim(&mut self, thief: NodeId) -> Option<NodeId> {
        let mut best: Option<(bool, NodeId)> = None;
        let last = self.last_victim;
        for f in self.frames.iter().flatten() {
            let v = f.key.origin;
            let has_work = if v == GATEWAY {
                f.src.as_ref().is_some_and(|s| s.queued() > 0)
            } else {
                f.registered && self.peer(v).is_some()
            };
            if !has_work || v == thief {
                continue;
            }
            // Prefer the first id after the last victim, wrapping around.
            let key = (last.is_some_and(|l| v <= l), v);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        let victim = best.map(|(_, v)| v);
        if victim.is_some() {
            self.last_victim = victim;
        }
        victim
    }

    /// Tells every hungry thief that work appeared (a `Register` notice naming a frame it may
    /// steal from: one registered by another source).
    fn wake_thieves(&mut self) {
        for k in 0..self.peers.len() {
            let Some(p) = self.peers[k].as_ref().filter(|p| p.hungry) else {
                continue;
            };
            let thief = p.id;
            let Some(frame) = self
                .frames
                .iter()
                .flatten()
                .find(|f| {
                    f.registered
                        && f.key.origin != thief
                        && (f.key.origin != GATEWAY
                            || f.src.as_ref().is_some_and(|s| s.queued() > 0))
                })
                .map(|f| f.key)
            else {
                continue;
            };
            if let Some(p) = self.peers[k].as_mut() {
                p.hungry = false;
            }
            self.actions
                .send(thief, Control::Register { frame, tiles: 1 });
        }
    }

    /// A tile result for frame slot `i` (from an edge, or computed here when `local`).
    fn tile_in(&mut self, i: usize, tile: u16, local: bool) -> Verdict {
        let Some(f) = self.frames[i].as_mut() else {
            return Verdict::Discard;
        };
        if f.results.contains(tile) {
            return Verdict::Discard;
        }
        f.results.insert(tile);
        if let Some(src) = f.src.as_mut() {
            if local {
                src.computed(tile);
            }
        }
        self.cover(i, tile);
        self.complete(i);
        Verdict::Accept
    }

    fn strips_in(&mut self, i: usize, tile: u16) -> Verdict {
        let Some(f) = self.frames[i].as_mut() else {
            return Verdict::Discard;
        };
        if f.strips.contains(tile) {
            return Verdict::Discard;
        }
        f.strips.insert(tile);
        self.cover(i, tile);
        Verdict::Accept
    }

    /// Reports coverage once the result (and, with reuse, a level-0 tile's strips) is held:
    /// readiness follows delivery.
    fn cover(&mut self, i: usize, tile: u16) {
        let needs_strips = self.cfg.reuse() && self.cfg.grid.level(tile as usize) == Level::Zero;
        let Some(f) = self.frames[i].as_mut() else {
            return;
        };
        if !f.results.contains(tile) || (needs_strips && !f.strips.contains(tile)) {
            return;
        }
        if f.told.contains(tile) {
            return;
        }
        f.told.insert(tile);
        if let Some(src) = f.src.as_mut() {
            src.cover(tile);
        }
        if self.cfg.stealing() && f.key.origin != GATEWAY {
            let (origin, frame) = (f.key.origin, f.key);
            if self.peer(origin).is_some() {
                self.actions.send(origin, Control::Coverage { frame, tile });
            }
        }
    }

    fn complete(&mut self, i: usize) {
        let tiles = self.cfg.tiles();
        let Some(f) = self.frames[i].as_ref() else {
            return;
        };
        let done = match &f.bodp {
            Some(_) => false,
            None => f.results.len() >= tiles,
        };
        if done {
            self.finish(i, true);
        }
    }

    /// Retires frame slot `i`.
    fn finish(&mut self, i: usize, complete: bool) {
        let Some(f) = self.frames[i].take() else {
            return;
        };
        let frame = f.key;
        self.actions.push(if complete {
            Action::FrameComplete { frame }
        } else {
            Action::FrameFailed { frame }
        });
        if complete && self.cfg.confirm_done {
            // The origin hears `FrameDone` from `frame_done`, once the result is made.
            if let Some(slot) = self.awaiting.iter_mut().find(|a| a.is_none()) {
                *slot = Some(Awaiting {
                    key: frame,
                    deadline: f.deadline,
                    confirmed: None,
                });
                return;
            }
        }
        if frame.origin != GATEWAY && self.peer(frame.origin).is_some() {
            self.actions
                .send(frame.origin, Control::FrameDone { frame, complete });
        }
        if !complete {
            self.stats.frames_failed += 1;
        }
        // A tile or stripe being computed here still finishes: `on_computed` discards it.
    }

    /// Submits a frame whose input the gateway holds (the gateway as a data source).
    pub fn submit_frame(&mut self, now: Instant) -> Result<FrameKey, SubmitError> {
        self.now = now;
        if !self.actions.room() {
            return Err(SubmitError::Busy);
        }
        let own = self
            .frames
            .iter()
            .flatten()
            .filter(|f| f.key.origin == GATEWAY)
            .count()
            + self
                .awaiting
                .iter()
                .flatten()
                .filter(|a| a.key.origin == GATEWAY)
                .count();
        if own >= MAX_FRAMES_PER_SOURCE {
            return Err(SubmitError::TooManyFrames);
        }
        let key = FrameKey::new(GATEWAY, self.own_next);
        if self.create(key, usize::MAX).is_none() {
            return Err(SubmitError::TooManyFrames);
        }
        self.own_next = self.own_next.wrapping_add(1);
        if self.cfg.stealing() {
            self.wake_thieves();
        }
        self.kick();
        Ok(key)
    }

    /// The driver finished `work` handed out with [`Action::Compute`]. `Accept`: store the
    /// output (and, for a level-0 Reuse tile, its strips in the gateway cache).
    pub fn on_computed(&mut self, now: Instant, work: Work) -> Result<Verdict, RuntimeError> {
        self.now = now;
        if !self.actions.room() {
            return Err(RuntimeError::Busy);
        }
        if self.computing != Some(work) {
            return Err(RuntimeError::NotComputing);
        }
        self.computing = None;
        self.stats.tiles_computed += 1;
        let v = match work {
            Work::Tile { frame, tile, mode } => match self.frame(frame) {
                Some(i) => {
                    if mode == TileMode::Reuse && self.cfg.grid.level(tile as usize) == Level::Zero
                    {
                        if let Some(f) = self.frames[i].as_mut() {
                            f.strips.insert(tile);
                        }
                    }
                    self.tile_in(i, tile, true)
                }
                None => Verdict::Discard,
            },
            Work::Layer {
                frame,
                layer,
                stripe,
                ..
            } => match self.frame(frame) {
                Some(i) => self.stripe_in(i, GATEWAY, layer, stripe)?,
                None => Verdict::Discard,
            },
        };
        self.kick();
        Ok(v)
    }

    /// Pushes queued work to hungry WSH workers, starts or moves BODP stripes waiting for an
    /// edge, and computes here when no edge is alive.
    fn kick(&mut self) {
        if self.cfg.policy == Policy::Bodp && self.alive_edges() > 0 {
            while self.actions.room() {
                let Some(i) = oldest(
                    &self.frames,
                    |f| f.seq,
                    |f| {
                        f.bodp.as_ref().is_some_and(|b| {
                            b.stripes.is_empty()
                                || b.stripes.iter().any(|s| s.to == GATEWAY && !s.running)
                        })
                    },
                ) else {
                    break;
                };
                let Some(layer) = self.frames[i]
                    .as_ref()
                    .and_then(|f| f.bodp.as_ref())
                    .map(|b| (b.layer, b.stripes.is_empty()))
                else {
                    break;
                };
                if layer.1 {
                    self.bodp_start(i, layer.0);
                } else {
                    self.bodp_reassign(i, None);
                }
                let stuck = self.frames[i]
                    .as_ref()
                    .and_then(|f| f.bodp.as_ref())
                    .is_some_and(|b| {
                        b.stripes.is_empty()
                            || b.stripes.iter().any(|s| s.to == GATEWAY && !s.running)
                    });
                if stuck {
                    break; // no edge has room; retried on the next event
                }
            }
        }
        if self.cfg.policy == Policy::Wsh {
            for p in 0..MAX_EDGES {
                if self.peers[p].is_some_and(|p| p.hungry) && !self.give_task(p, End::Head) {
                    break;
                }
            }
        }
        if !self.cfg.gateway_fallback || self.computing.is_some() || self.alive_edges() > 0 {
            return;
        }
        let work = if self.cfg.policy == Policy::Bodp {
            self.frames
                .iter_mut()
                .flatten()
                .filter_map(|f| {
                    let key = f.key;
                    let b = f.bodp.as_mut()?;
                    let layer = b.layer;
                    let width = b.width;
                    b.stripes
                        .iter_mut()
                        .enumerate()
                        .find(|(_, s)| s.to == GATEWAY && !s.done && !s.running)
                        .map(|(k, s)| {
                            s.running = true;
                            Work::Layer {
                                frame: key,
                                layer,
                                stripe: k as u16,
                                output: Region::new(crate::region::Span::new(0, width), s.rows),
                            }
                        })
                })
                .next()
        } else {
            let Some(i) = oldest(
                &self.frames,
                |f| f.seq,
                |f| f.src.as_ref().is_some_and(|s| s.queued() > 0),
            ) else {
                return;
            };
            let (grid, reuse) = (self.cfg.grid, self.cfg.reuse());
            self.frames[i].as_mut().and_then(|f| {
                let src = f.src.as_mut()?;
                // The gateway holds every strip it covered, so nothing is fetched.
                let pick = src.pick(&grid, reuse, End::Head)?;
                src.run(pick.tile);
                Some(Work::Tile {
                    frame: f.key,
                    tile: pick.tile,
                    mode: pick.mode,
                })
            })
        };
        if let Some(w) = work {
            self.computing = Some(w);
            self.actions.push(Action::Compute(w));
        }
    }

    // ---- BODP ----

    /// Alive workers and their weights (unmeasured ones get the mean of the measured): those
    /// with room and not late, else any with room in their work queue.
    fn workers(&self, exclude: Option<NodeId>) -> heapless::Vec<(NodeId, u64), MAX_EDGES> {
        let measured: heapless::Vec<u64, MAX_EDGES> = self
            .peers
            .iter()
            .flatten()
            .filter(|p| p.speed > 0)
            .map(|p| p.speed)
            .collect();
        let mean = if measured.is_empty() {
            1
        } else {
            (measured.iter().sum::<u64>() / measured.len() as u64).max(1)
        };
        let pick = |strict: bool| {
            let mut v: heapless::Vec<(NodeId, u64), MAX_EDGES> = heapless::Vec::new();
            for p in self.peers.iter().flatten() {
                let room = if strict {
                    !p.late && (p.outstanding as usize) + 1 < MAX_EDGE_WORK
                } else {
                    (p.outstanding as usize) < MAX_EDGE_WORK
                };
                if Some(p.id) != exclude && room {
                    let _ = v.push((p.id, if p.speed > 0 { p.speed } else { mean }));
                }
            }
            v.sort_unstable_by_key(|&(id, _)| id);
            v
        };
        let v = pick(true);
        if v.is_empty() {
            pick(false)
        } else {
            v
        }
    }

    fn sent_stripe(&mut self, to: NodeId) {
        if let Some(p) = self.peer(to).and_then(|p| self.peers[p].as_mut()) {
            p.outstanding = p.outstanding.saturating_add(1);
        }
    }

    fn bodp_start(&mut self, i: usize, layer: u8) {
        let Some((width, height)) = self.cfg.layers.output(layer as usize) else {
            return;
        };
        let mut workers = self.workers(None);
        if workers.len() > height as usize {
            // Keep the fastest `height` workers.
            workers.sort_unstable_by_key(|&(id, w)| (core::cmp::Reverse(w), id));
            workers.truncate(height as usize);
            workers.sort_unstable_by_key(|&(id, _)| id);
        }
        if workers.is_empty() {
            if self.alive_edges() > 0 {
                // Every edge's queue is full: the layer starts when one has room (`kick`).
                if let Some(f) = self.frames[i].as_mut() {
                    f.bodp = Some(Bodp {
                        layer,
                        width,
                        stripes: heapless::Vec::new(),
                    });
                }
                return;
            }
            let _ = workers.push((GATEWAY, 1));
        }
        let weights: heapless::Vec<u64, MAX_EDGES> = workers.iter().map(|w| w.1).collect();
        let spans = bodp::split(height, &weights);
        let mut b = Bodp {
            layer,
            width,
            stripes: heapless::Vec::new(),
        };
        let Some(f) = self.frames[i].as_mut() else {
            return;
        };
        let frame = f.key;
        for (k, rows) in spans.iter().enumerate() {
            let to = workers.get(k).map_or(GATEWAY, |w| w.0);
            let deadline = if to == GATEWAY && self.cfg.gateway_fallback {
                Instant::MAX
            } else {
                self.now + self.cfg.tile_timeout
            };
            let _ = b.stripes.push(Stripe {
                rows: *rows,
                to,
                prev: None,
                sent: self.now,
                first_sent: self.now,
                deadline,
                done: false,
                running: false,
            });
            if to != GATEWAY {
                self.actions.push(Action::SendLayerTask {
                    to,
                    frame,
                    layer,
                    stripe: k as u16,
                    output: Region::new(crate::region::Span::new(0, width), *rows),
                });
            }
        }
        f.bodp = Some(b);
        for w in workers.iter().take(spans.len()) {
            self.sent_stripe(w.0);
        }
    }

    /// Re-dispatches stripes of frame slot `i` that are late (`gone == None`) or were assigned
    /// to the departed `gone`.
    fn bodp_reassign(&mut self, i: usize, gone: Option<NodeId>) {
        let now = self.now;
        let timeout = self.cfg.tile_timeout;
        let fallback = self.cfg.gateway_fallback;
        let n = match self.frames[i].as_ref().and_then(|f| f.bodp.as_ref()) {
            Some(b) => b.stripes.len(),
            None => return,
        };
        for k in 0..n {
            let Some((frame, layer, width, s)) = self.frames[i].as_ref().and_then(|f| {
                let b = f.bodp.as_ref()?;
                Some((f.key, b.layer, b.width, *b.stripes.get(k)?))
            }) else {
                continue;
            };
            if s.done || s.running {
                continue;
            }
            let due = match gone {
                Some(g) => s.to == g,
                None => s.deadline <= now || (s.to == GATEWAY && self.alive_edges() > 0),
            };
            if !due {
                continue;
            }
            // The fastest other worker, preferring one without an open stripe of this frame.
            let busy = |id: NodeId| {
                self.frames[i]
                    .as_ref()
                    .and_then(|f| f.bodp.as_ref())
                    .is_some_and(|b| b.stripes.iter().any(|s| !s.done && s.to == id))
            };
            let alt = self
                .workers(Some(s.to))
                .iter()
                .filter(|w| Some(w.0) != gone)
                .max_by_key(|&&(id, w)| (!busy(id), w, core::cmp::Reverse(id)))
                .map(|w| w.0);
            let (to, prev, deadline) = match alt {
                Some(a) => (a, Some(s.to), now + timeout),
                None if self.alive_edges() == 0 && fallback => (GATEWAY, None, Instant::MAX),
                // Only the late worker is left: give it more time.
                None => (s.to, s.prev, now + timeout),
            };
            if gone.is_some() && to == s.to {
                continue;
            }
            let moved = s.to != to;
            if let Some(st) = self.frames[i]
                .as_mut()
                .and_then(|f| f.bodp.as_mut())
                .and_then(|b| b.stripes.get_mut(k))
            {
                st.prev = if Some(st.to) == gone { st.prev } else { prev };
                st.to = to;
                st.deadline = deadline;
                if moved {
                    st.sent = now;
                }
            }
            if !moved {
                continue;
            }
            self.stats.tiles_redispatched += 1;
            let why = if gone.is_some() { "left" } else { "is late" };
            info!(
                "gateway: frame {}: layer {} stripe {} re-dispatched to node {} (node {} {})",
                frame, layer, k, to, s.to, why
            );
            if gone.is_none() {
                // The late worker gets no new stripe until it answers.
                if let Some(p) = self.peer(s.to).and_then(|p| self.peers[p].as_mut()) {
                    p.late = true;
                }
            }
            if to != GATEWAY {
                self.sent_stripe(to);
                self.actions.push(Action::SendLayerTask {
                    to,
                    frame,
                    layer,
                    stripe: k as u16,
                    output: Region::new(crate::region::Span::new(0, width), s.rows),
                });
            }
        }
    }

    fn stripe_in(
        &mut self,
        i: usize,
        from: NodeId,
        layer: u8,
        stripe: u16,
    ) -> Result<Verdict, RuntimeError> {
        let now = self.now;
        let Some(f) = self.frames[i].as_mut() else {
            return Ok(Verdict::Discard);
        };
        let Some(b) = f.bodp.as_mut() else {
            return Ok(Verdict::Discard);
        };
        if b.layer != layer {
            return Ok(Verdict::Discard);
        }
        let Some(s) = b.stripes.get_mut(stripe as usize) else {
            return Err(RuntimeError::StripeOutOfRange { layer, stripe });
        };
        if s.done || (s.to != from && s.prev != Some(from)) {
            return Ok(Verdict::Discard);
        }
        s.done = true;
        s.running = false;
        let rows = s.rows.len() as u64;
        let sent = if s.to == from { s.sent } else { s.first_sent };
        let all = b.all_done();
        let frame = f.key;
        if from != GATEWAY {
            let us = (now - sent).total_micros().max(1);
            if let Some(p) = self.peer(from).and_then(|p| self.peers[p].as_mut()) {
                p.speed = (rows * 1_000_000_000 / us).max(1);
            }
        }
        if all {
            self.actions.push(Action::LayerComplete { frame, layer });
            if layer as usize + 1 >= self.cfg.layers.len() {
                self.finish(i, true);
            } else {
                self.bodp_start(i, layer + 1);
            }
        }
        Ok(Verdict::Accept)
    }

    // ---- time ----

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
        // A confirmed `FrameDone` whose origin stayed away past the frame's deadline: that
        // source failed the frame already.
        for a in self.awaiting.iter_mut() {
            if a.is_some_and(|a| a.confirmed.is_some() && a.deadline <= now) {
                *a = None;
            }
        }
        for i in 0..MAX_GATEWAY_FRAMES {
            if !self.actions.room() {
                return;
            }
            let Some(f) = self.frames[i].as_mut() else {
                continue;
            };
            if f.deadline <= now {
                debug!("gateway: frame {} abandoned at its deadline", f.key);
                self.finish(i, false);
                continue;
            }
            if let Some(src) = f.src.as_mut() {
                if src.expire(now) {
                    self.stats.tiles_redispatched += 1;
                    info!("gateway: frame {}: a tile timed out, re-dispatched", f.key);
                    if self.cfg.stealing() {
                        self.wake_thieves();
                    }
                }
            }
            let late = self.frames[i]
                .as_ref()
                .and_then(|f| f.bodp.as_ref())
                .is_some_and(|b| b.stripes.iter().any(|s| !s.done && s.deadline <= now));
            if late {
                self.bodp_reassign(i, None);
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
        for a in self
            .awaiting
            .iter()
            .flatten()
            .filter(|a| a.confirmed.is_some())
        {
            at = earliest(at, Some(a.deadline));
        }
        for f in self.frames.iter().flatten() {
            at = earliest(at, Some(f.deadline));
            if let Some(src) = &f.src {
                at = earliest(at, src.next_deadline());
            }
            if let Some(b) = &f.bodp {
                for s in b.stripes.iter().filter(|s| !s.done && !s.running) {
                    at = earliest(at, Some(s.deadline));
                }
            }
        }
        at
    }
}

/// Bit mask of the sides of `tile` that have a neighbour.
pub(crate) fn neighbour_sides(grid: &crate::ftp::Grid, tile: u16) -> u8 {
    Side::ALL
        .iter()
        .filter(|&&s| grid.neighbour(tile as usize, s).is_some())
        .fold(0, |m, &s| m | super::types::side_bit(s))
}
