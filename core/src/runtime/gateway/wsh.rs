//! WSH at the gateway: a central queue of every source's tiles, handed out on request (oldest
//! frame first) and pushed to workers that asked while it was empty.

use crate::wire::{Message, NodeId, GATEWAY};

use super::super::source::{oldest, End};
use super::super::{Action, RuntimeError, Verdict, MAX_EDGES};
use super::{Gateway, Handled};

impl Gateway {
    /// A WSH message from `from` (peer slot `p`).
    pub(super) fn on_wsh(&mut self, p: usize, from: NodeId, msg: &Message<'_>) -> Handled {
        match *msg {
            Message::TaskRequest => {
                if !self.give_task(p, End::Head) {
                    self.actions.send(from, Message::NoTask);
                    if let Some(p) = self.peers[p].as_mut() {
                        p.hungry = true;
                    }
                }
                Ok(Verdict::Accept)
            }
            Message::FrameSubmit { frame, .. } => self.submitted(p, from, frame),
            Message::Result { frame, tile, .. } => self.result(from, frame, tile),
            _ => Err(RuntimeError::unexpected(from, msg)),
        }
    }

    /// Pushes queued tiles to the workers that asked while there were none.
    pub(super) fn feed_hungry(&mut self) {
        for p in 0..MAX_EDGES {
            if self.peers[p].is_some_and(|p| p.hungry) && !self.give_task(p, End::Head) {
                break;
            }
        }
    }

    /// Hands a queued tile (oldest frame first) to peer slot `p` from `end` of its frame's
    /// queue; false when none is queued. With stealing (WST: a thief's `StealTask` to the
    /// gateway) only the gateway's own frames have a queue here.
    pub(super) fn give_task(&mut self, p: usize, end: End) -> bool {
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
        let (grid, reuse) = (self.cfg.grid, self.cfg.reuse_mode().at_gateway());
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
        src.lend(pick.tile, to, self.now, deadline);
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
}
