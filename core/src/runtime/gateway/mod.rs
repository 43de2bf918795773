//! The gateway: the frames it tracks and the edges connected to it, one module per policy —
//! WSH's central tile queue, WST's victim registry, WST-S's strip cache and coverage, BODP's
//! layer-by-layer coordinator (gateway-resident maps), MoDNN's (worker-resident stripes) — and
//! the gateway as a source and fallback worker of its own.

mod bodp;
mod frames;
mod local;
pub(super) mod modnn;
mod peers;
mod relay;
mod wsh;
mod wst;
mod wst_s;

use tessera_log::{debug, info};

use crate::time::Instant;
use crate::wire::{Message, NodeId, Policy};

use self::frames::{Awaiting, GwFrame};
use self::peers::Peer;
use self::relay::{Relay, MAX_RELAYS};
use super::queue::Actions;
use super::{Action, Config, RuntimeError, Stats, Verdict, Work, MAX_EDGES, MAX_GATEWAY_FRAMES};
use crate::time::earliest;

/// What handling a message gives: the verdict on its payload, or why it was refused.
type Handled = Result<Verdict, RuntimeError>;

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
    /// Link reuse: strip requests relayed to the holding edge.
    relays: [Option<Relay>; MAX_RELAYS],
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
            relays: [None; MAX_RELAYS],
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
        let Some(p) = self.peer(from) else {
            return Err(RuntimeError::UnknownPeer { peer: from });
        };
        let v = match *msg {
            // Session messages belong to the transport; one passed up anyway changes nothing.
            Message::Heartbeat | Message::Hello { .. } | Message::Reject { .. } => Verdict::Accept,
            _ => match self.cfg.policy {
                Policy::Wsh => self.on_wsh(p, from, msg)?,
                Policy::Wst => self.on_wst(p, from, msg)?,
                Policy::WstS => self.on_wst_s(p, from, msg)?,
                Policy::Bodp => self.on_bodp(p, from, msg)?,
                Policy::Modnn => self.on_modnn(p, from, msg)?,
            },
        };
        if v == Verdict::Discard {
            self.stats.discarded += 1;
        }
        self.kick();
        Ok(v)
    }

    /// `tile` names a tile of the grid.
    fn check_tile(&self, tile: u16) -> Result<(), RuntimeError> {
        let tiles = self.cfg.tiles();
        if tile < tiles {
            Ok(())
        } else {
            Err(RuntimeError::TileOutOfRange { tile, tiles })
        }
    }

    /// Pushes queued work to hungry WSH workers, starts or moves BODP stripes waiting for an
    /// edge, and computes here when no edge is alive.
    fn kick(&mut self) {
        match self.cfg.policy {
            Policy::Bodp | Policy::Modnn => self.bodp_kick(),
            Policy::Wsh => self.feed_hungry(),
            Policy::Wst | Policy::WstS => {}
        }
        self.fallback();
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
                .is_some_and(|b| b.late(now));
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
                at = earliest(at, b.next_deadline());
            }
        }
        at
    }
}
