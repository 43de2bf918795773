//! The frames the gateway tracks: creating a slot for a new frame, collecting its tile results
//! and strips, reporting coverage, and retiring it (`FrameDone` now, or once the driver
//! confirms the final result).

use crate::ftp::Level;
use crate::ftp::MAX_TILES;
use crate::time::Instant;
use crate::wire::{FrameKey, Message, NodeId, Policy, GATEWAY};

use super::super::sets::TileSet;
use super::super::source::SrcFrame;
use super::super::{Action, RuntimeError, Verdict};
use super::bodp::Bodp;
use super::peers::is_newer;
use super::{Gateway, MAX_GATEWAY_FRAMES};

/// A frame known to the gateway.
#[derive(Clone, Debug)]
pub(super) struct GwFrame {
    pub(super) key: FrameKey,
    pub(super) seq: u64,
    pub(super) deadline: Instant,
    pub(super) results: TileSet,
    pub(super) strips: TileSet,
    /// Coverage already reported to the origin.
    pub(super) told: TileSet,
    /// The edge whose result of each tile came in (`GATEWAY`: none yet): under link reuse
    /// it holds a level-0 tile's strips, which the gateway can relay.
    pub(super) by: [NodeId; MAX_TILES],
    /// WST: the origin announced stealable tiles.
    pub(super) registered: bool,
    /// The input is here: WSH frames, and the gateway's own frames.
    pub(super) src: Option<SrcFrame>,
    /// BODP lock-step state.
    pub(super) bodp: Option<Bodp>,
}

/// A complete frame whose `FrameDone` waits for the driver
/// ([`Config::confirm_done`](super::super::Config::confirm_done)).
#[derive(Clone, Copy, Debug)]
pub(super) struct Awaiting {
    pub(super) key: FrameKey,
    /// Past this, a confirmed `FrameDone` whose origin is away is given up.
    pub(super) deadline: Instant,
    /// `Some(complete)`: confirmed by the driver while the origin was not connected; sent when
    /// it is back.
    pub(super) confirmed: Option<bool>,
}

impl Gateway {
    /// Frames in flight.
    pub fn frames_in_flight(&self) -> usize {
        self.frames.iter().flatten().count()
    }

    /// Complete frames whose `FrameDone` waits for [`Gateway::frame_done`] (or, confirmed, for
    /// their origin to reconnect).
    pub fn frames_awaiting_done(&self) -> usize {
        self.awaiting.iter().flatten().count()
    }

    /// With [`Config::confirm_done`](super::super::Config::confirm_done): the driver holds
    /// `frame`'s final result (`complete`), or gave up on it (`!complete`); its origin is told
    /// `FrameDone` now, or when it reconnects (until the frame's deadline), and the slot is
    /// free for a new frame. False when `frame` was not waiting (unknown, or confirmed
    /// already).
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
                    .send(frame.origin, Message::FrameDone { frame, complete });
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

    /// The slot of frame `key`.
    pub(super) fn frame(&self, key: FrameKey) -> Option<usize> {
        self.frames
            .iter()
            .position(|f| f.as_ref().is_some_and(|f| f.key == key))
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
    pub(super) fn create(&mut self, key: FrameKey, p: usize) -> Option<usize> {
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
        let src = (holds_input && !self.cfg.layered()).then(|| {
            SrcFrame::new(
                key,
                self.seq,
                deadline,
                &self.cfg.grid,
                self.cfg.reuse_mode().at_gateway(),
            )
        });
        self.frames[i] = Some(GwFrame {
            key,
            seq: self.seq,
            deadline,
            results: TileSet::default(),
            strips: TileSet::default(),
            told: TileSet::default(),
            by: [GATEWAY; MAX_TILES],
            registered: key.origin == GATEWAY && self.cfg.stealing(),
            src,
            bodp: None,
        });
        if self.cfg.layered() {
            self.bodp_start(i, 0);
        }
        Some(i)
    }

    /// `FrameSubmit` (WSH, BODP): a new frame from its source `from` (peer slot `p`).
    pub(super) fn submitted(
        &mut self,
        p: usize,
        from: NodeId,
        frame: FrameKey,
    ) -> Result<Verdict, RuntimeError> {
        if frame.origin != from {
            return Err(RuntimeError::Unexpected {
                peer: from,
                kind: crate::wire::Kind::FrameSubmit,
            });
        }
        if self.frame(frame).is_some() || !is_newer(self.latest(from), frame.number) {
            Ok(Verdict::Discard)
        } else if self.create(frame, p).is_none() {
            self.actions.send(
                from,
                Message::FrameDone {
                    frame,
                    complete: false,
                },
            );
            Err(RuntimeError::TooManyFrames)
        } else {
            Ok(Verdict::Accept)
        }
    }

    /// `Result` (WSH, WST, WST-S): a tile's output from edge `from`.
    pub(super) fn result(
        &mut self,
        from: NodeId,
        frame: FrameKey,
        tile: u16,
    ) -> Result<Verdict, RuntimeError> {
        self.check_tile(tile)?;
        Ok(match self.lookup(frame) {
            Some(i) => {
                let v = self.tile_in(i, tile, false);
                if let (Verdict::Accept, Some(f)) = (v, self.frames[i].as_mut()) {
                    if let Some(b) = f.by.get_mut(tile as usize) {
                        *b = from;
                    }
                }
                v
            }
            None => Verdict::Discard,
        })
    }

    /// `Strips` (WST-S): a level-0 tile's strips from an edge.
    pub(super) fn strips(&mut self, frame: FrameKey, tile: u16) -> Verdict {
        match self.lookup(frame) {
            Some(i) => self.strips_in(i, tile),
            None => Verdict::Discard,
        }
    }

    /// A tile result for frame slot `i` (from an edge, or computed here when `local`).
    pub(super) fn tile_in(&mut self, i: usize, tile: u16, local: bool) -> Verdict {
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
        // Strips kept where they were made (local, link) never come: the result alone covers.
        let needs_strips =
            self.cfg.strips_at_gateway() && self.cfg.grid.level(tile as usize) == Level::Zero;
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
                self.actions.send(origin, Message::Coverage { frame, tile });
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
    pub(super) fn finish(&mut self, i: usize, complete: bool) {
        let Some(f) = self.frames[i].take() else {
            return;
        };
        let frame = f.key;
        self.relays_frame_done(frame);
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
                .send(frame.origin, Message::FrameDone { frame, complete });
        }
        if !complete {
            self.stats.frames_failed += 1;
        }
        // A tile or stripe being computed here still finishes: `on_computed` discards it.
    }
}
