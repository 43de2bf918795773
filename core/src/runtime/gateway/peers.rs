//! The gateway's edges: who is connected, what each asked for, and what happens when one comes
//! or goes.

use tessera_log::info;

use crate::time::Instant;
use crate::wire::{Message, NodeId, GATEWAY};

use super::super::MAX_FRAMES_PER_SOURCE;
use super::{Awaiting, Gateway, MAX_GATEWAY_FRAMES};

/// A connected edge.
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer {
    pub(super) id: NodeId,
    /// Asked for work and got none: push work (WSH) or a `Register` (WST) when some appears.
    pub(super) hungry: bool,
    /// Highest frame number seen from this peer as a data source.
    pub(super) latest: Option<u32>,
    /// BODP: last measured rows per second (0: not measured yet).
    pub(super) speed: u64,
    /// BODP: stripes sent and not answered.
    pub(super) outstanding: u8,
    /// BODP: a stripe of it timed out and nothing came back since.
    pub(super) late: bool,
}

/// True when `n` is a frame number after `latest` within the per-source window.
pub(super) fn is_newer(latest: Option<u32>, n: u32) -> bool {
    match latest {
        None => true,
        Some(l) => (1..=2 * MAX_FRAMES_PER_SOURCE as u32).contains(&n.wrapping_sub(l)),
    }
}

impl Gateway {
    /// Edges connected (`on_connected`, not `on_disconnected` since).
    pub fn alive_edges(&self) -> usize {
        self.peers.iter().flatten().count()
    }

    /// The slot of connected edge `id`.
    pub(super) fn peer(&self, id: NodeId) -> Option<usize> {
        self.peers
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.id == id))
    }

    /// Connected edge `id`'s state.
    pub(super) fn peer_mut(&mut self, id: NodeId) -> Option<&mut Peer> {
        let p = self.peer(id)?;
        self.peers[p].as_mut()
    }

    /// The highest frame number seen from `origin` as a data source.
    pub(super) fn latest(&self, origin: NodeId) -> Option<u32> {
        self.peer(origin)
            .and_then(|p| self.peers[p].as_ref())
            .and_then(|p| p.latest)
    }

    /// A connection to edge `peer` is up (the transport already authenticated it): it counts
    /// as alive and gets work. Beyond [`MAX_EDGES`](super::super::MAX_EDGES) edges a newcomer
    /// is not tracked and its messages are refused with
    /// [`RuntimeError::UnknownPeer`](super::super::RuntimeError::UnknownPeer).
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
                    Message::FrameDone {
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
        self.relays_peer_gone(peer);
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
}
