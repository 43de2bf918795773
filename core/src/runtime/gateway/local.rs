//! The gateway as a node of its own: a data source (`submit_frame`) and the fallback worker
//! that computes tiles or stripes while no edge is alive (`Config::gateway_fallback`).

use crate::ftp::{Level, Mode};
use crate::time::Instant;
use crate::wire::{FrameKey, Policy, GATEWAY};

use super::super::source::{oldest, End};
use super::super::{Action, RuntimeError, SubmitError, Verdict, Work, MAX_FRAMES_PER_SOURCE};
use super::Gateway;

impl Gateway {
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
                    if mode == Mode::Reuse && self.cfg.grid.level(tile as usize) == Level::Zero {
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

    /// Computes here while no edge is alive and nothing computes yet (with
    /// [`Config::gateway_fallback`](super::super::Config::gateway_fallback)).
    pub(super) fn fallback(&mut self) {
        if !self.cfg.gateway_fallback || self.computing.is_some() || self.alive_edges() > 0 {
            return;
        }
        let work = match self.cfg.policy {
            Policy::Bodp | Policy::Modnn => self.local_stripe(),
            _ => self.local_tile(),
        };
        if let Some(w) = work {
            self.computing = Some(w);
            self.actions.push(Action::Compute(w));
        }
    }

    /// The head tile of the oldest frame with tiles queued here.
    fn local_tile(&mut self) -> Option<Work> {
        let i = oldest(
            &self.frames,
            |f| f.seq,
            |f| f.src.as_ref().is_some_and(|s| s.queued() > 0),
        )?;
        let (grid, reuse) = (self.cfg.grid, self.cfg.reuse_mode().at_gateway());
        self.frames[i].as_mut().and_then(|f| {
            let src = f.src.as_mut()?;
            // The gateway holds every strip it covered, so nothing is fetched.
            let pick = src.pick(&grid, reuse, End::Head)?;
            src.run(pick.tile, self.now);
            Some(Work::Tile {
                frame: f.key,
                tile: pick.tile,
                mode: pick.mode,
            })
        })
    }
}
