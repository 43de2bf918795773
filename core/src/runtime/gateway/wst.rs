//! WST at the gateway: a registry of victims (sources with stealable tiles, the gateway's own
//! frames included), round-robin victim choice for thieves, and wake-up notices for thieves it
//! turned away.

use crate::wire::{Message, NodeId, GATEWAY};

use super::super::source::End;
use super::super::{RuntimeError, Verdict};
use super::peers::is_newer;
use super::{Gateway, Handled};

impl Gateway {
    /// A WST message from `from` (peer slot `p`); also WST-S's apart from strips.
    pub(super) fn on_wst(&mut self, p: usize, from: NodeId, msg: &Message<'_>) -> Handled {
        match *msg {
            Message::Register { frame, tiles } => {
                if frame.origin != from {
                    return Err(RuntimeError::unexpected(from, msg));
                }
                let i = match self.frame(frame) {
                    Some(i) => Some(i),
                    None if is_newer(self.latest(from), frame.number) => self.create(frame, p),
                    None => None,
                };
                Ok(match i.and_then(|i| self.frames[i].as_mut()) {
                    Some(f) => {
                        f.registered = tiles > 0;
                        self.wake_thieves();
                        Verdict::Accept
                    }
                    None => Verdict::Discard,
                })
            }
            Message::Unregister { frame } => {
                if frame.origin != from {
                    return Err(RuntimeError::unexpected(from, msg));
                }
                Ok(
                    match self.frame(frame).and_then(|i| self.frames[i].as_mut()) {
                        Some(f) => {
                            f.registered = false;
                            Verdict::Accept
                        }
                        None => Verdict::Discard,
                    },
                )
            }
            Message::StealRequest => {
                let victim = self.choose_victim(from);
                self.actions.send(from, Message::StealReply { victim });
                if victim.is_none() {
                    if let Some(p) = self.peers[p].as_mut() {
                        p.hungry = true;
                    }
                }
                Ok(Verdict::Accept)
            }
            Message::StealTask => {
                if !self.give_task(p, End::Tail) {
                    self.actions.send(from, Message::NoTask);
                }
                Ok(Verdict::Accept)
            }
            Message::Result { frame, tile, .. } => self.result(from, frame, tile),
            _ => Err(RuntimeError::unexpected(from, msg)),
        }
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
    pub(super) fn wake_thieves(&mut self) {
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
                .send(thief, Message::Register { frame, tiles: 1 });
        }
    }
}
