//! WST-S with `reuse = "link"`: strips relayed through the gateway when the edge that needs
//! them has no connection to the edge that holds them. The gateway knows the holder (the edge
//! whose result of the level-0 tile came in), forwards the `StripRequest` there, and sends the
//! `Strips` on to the asker from its cache when they come. At most [`MAX_RELAYS`] relays wait
//! at once; past that, or with no known holder, the asker gets `Reject` (and recomputes).

use crate::wire::{FrameKey, Message, NodeId, GATEWAY};

use super::super::{Action, Verdict, REJECT_NO_STRIPS};
use super::Gateway;

/// Most strip requests the gateway relays at once.
pub const MAX_RELAYS: usize = 16;

/// A relayed strip request waiting for the holder's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Relay {
    frame: FrameKey,
    tile: u16,
    sides: u8,
    to: NodeId,
    holder: NodeId,
}

impl Gateway {
    /// `from` asks for strips the gateway does not hold: forward the request to the edge
    /// that computed `tile`, or refuse.
    pub(super) fn relay_request(&mut self, from: NodeId, frame: FrameKey, tile: u16, sides: u8) {
        let holder = self
            .frame(frame)
            .and_then(|i| self.frames[i].as_ref())
            .and_then(|f| f.by.get(tile as usize).copied())
            .filter(|&h| h != GATEWAY && h != from && self.peer(h).is_some());
        let slot = self.relays.iter().position(Option::is_none);
        let (Some(holder), Some(slot)) = (holder, slot) else {
            let code = REJECT_NO_STRIPS;
            self.actions.send(from, Message::Reject { code });
            return;
        };
        self.relays[slot] = Some(Relay {
            frame,
            tile,
            sides,
            to: from,
            holder,
        });
        let ask = Message::StripRequest { frame, tile, sides };
        self.actions.send(holder, ask);
    }

    /// `Strips` of `tile` from `from`: sent on to every asker waiting for them (`Accept`: the
    /// driver caches them first), or `Discard` when nobody waits.
    pub(super) fn relay_strips(&mut self, from: NodeId, frame: FrameKey, tile: u16) -> Verdict {
        let mut v = Verdict::Discard;
        for slot in self.relays.iter_mut() {
            let Some(r) = *slot else { continue };
            if (r.frame, r.tile, r.holder) != (frame, tile, from) {
                continue;
            }
            *slot = None;
            v = Verdict::Accept;
            self.stats.strips_relayed += 1;
            self.actions.push(Action::SendStrips {
                to: r.to,
                frame,
                tile,
                sides: r.sides,
            });
        }
        v
    }

    /// `frame` is retired: relays still waiting for its strips are dropped, so a holder that
    /// never answers cannot keep a slot past its frame.
    pub(super) fn relays_frame_done(&mut self, frame: FrameKey) {
        for slot in self.relays.iter_mut() {
            if slot.is_some_and(|r| r.frame == frame) {
                *slot = None;
            }
        }
    }

    /// Edge `peer` is gone: relays it asked for are dropped, and those waiting on it as
    /// holder are refused (the asker recomputes).
    pub(super) fn relays_peer_gone(&mut self, peer: NodeId) {
        for slot in self.relays.iter_mut() {
            let Some(r) = *slot else { continue };
            if r.to == peer {
                *slot = None;
            } else if r.holder == peer {
                *slot = None;
                let code = REJECT_NO_STRIPS;
                self.actions.send(r.to, Message::Reject { code });
            }
        }
    }
}
