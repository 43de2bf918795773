//! WST-S at the gateway: WST plus the strip cache of level-0 tiles (strips delivered with a
//! result, served to thieves that run a level-1 tile in Reuse mode).

use crate::ftp::Level;
use crate::wire::{Message, NodeId};

use super::super::source::Reuse;

use super::super::{Action, RuntimeError, Verdict, REJECT_NO_STRIPS};
use super::{Gateway, Handled};

impl Gateway {
    /// A WST-S message from `from` (peer slot `p`).
    pub(super) fn on_wst_s(&mut self, p: usize, from: NodeId, msg: &Message<'_>) -> Handled {
        match *msg {
            Message::Strips { frame, tile, .. } => {
                self.check_tile(tile)?;
                if self.cfg.grid.level(tile as usize) != Level::Zero {
                    return Err(RuntimeError::unexpected(from, msg));
                }
                if self.cfg.reuse_mode() == Reuse::Link {
                    return Ok(self.relay_strips(from, frame, tile));
                }
                Ok(self.strips(frame, tile))
            }
            Message::StripRequest { frame, tile, sides } => {
                self.check_tile(tile)?;
                if sides & 0xf0 != 0 {
                    return Err(RuntimeError::unexpected(from, msg));
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
                } else if self.cfg.reuse_mode() == Reuse::Link {
                    self.relay_request(from, frame, tile, sides);
                } else {
                    self.actions.send(
                        from,
                        Message::Reject {
                            code: REJECT_NO_STRIPS,
                        },
                    );
                }
                Ok(Verdict::Accept)
            }
            _ => self.on_wst(p, from, msg),
        }
    }
}
