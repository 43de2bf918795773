//! Gateway-resident BODP, MoDNN's Biased One-Dimensional Partition with the gateway holding
//! every feature map (docs/design.md §5): for each fused layer in lock-step, the output rows
//! split into one stripe per alive edge sized by its measured speed, each stripe's input rows
//! shipped out, late stripes re-dispatched to the fastest other edge, the next layer started
//! when every stripe is in. The lock-step, the split and the re-dispatch serve MoDNN as
//! published too (`modnn`), whose stripes stay on the workers.

use heapless::Vec;
use tessera_log::info;

use crate::region::{Region, Span};
use crate::time::Instant;
use crate::wire::{FrameKey, Message, NodeId, Policy, GATEWAY};

use super::super::source::oldest;
use super::super::{Action, RuntimeError, Verdict, Work, MAX_EDGES, MAX_EDGE_WORK, MAX_STRIPES};
use super::{Gateway, Handled};
use crate::time::earliest;

/// One stripe of the current layer of a BODP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stripe {
    /// Output rows.
    pub(super) rows: Span,
    /// Current assignee (the gateway itself when no edge is alive).
    pub(super) to: NodeId,
    /// The previous assignee, whose late result is still accepted.
    pub(super) prev: Option<NodeId>,
    /// When it was sent to `to` (speed measurement).
    pub(super) sent: Instant,
    /// When it was first sent (measures a late `prev`).
    pub(super) first_sent: Instant,
    /// When it is re-dispatched.
    pub(super) deadline: Instant,
    /// Result in.
    pub(super) done: bool,
    /// The gateway is computing it.
    pub(super) running: bool,
}

/// The lock-step state of one BODP frame.
#[derive(Clone, Debug)]
pub(super) struct Bodp {
    /// The gateway holds each layer's whole map (BODP, or a MoDNN frame computed here while no
    /// edge was alive); otherwise the workers keep their stripes (MoDNN).
    pub(super) resident: bool,
    pub(super) layer: u8,
    pub(super) width: u32,
    pub(super) stripes: Vec<Stripe, MAX_STRIPES>,
}

impl Bodp {
    /// The output region of stripe `stripe`.
    pub(super) fn region(&self, stripe: usize) -> Option<Region> {
        self.stripes
            .get(stripe)
            .map(|s| Region::new(Span::new(0, self.width), s.rows))
    }

    /// Every stripe is in.
    pub(super) fn all_done(&self) -> bool {
        self.stripes.iter().all(|s| s.done)
    }

    /// Waits for an edge: not split yet, or a stripe parked at the gateway while not running.
    fn waiting(&self) -> bool {
        self.stripes.is_empty() || self.stripes.iter().any(|s| s.to == GATEWAY && !s.running)
    }

    /// The earliest re-dispatch deadline of a stripe out at a worker.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.stripes
            .iter()
            .filter(|s| !s.done && !s.running)
            .fold(None, |at, s| earliest(at, Some(s.deadline)))
    }

    /// A stripe out at a worker is past its deadline.
    pub(super) fn late(&self, now: Instant) -> bool {
        self.stripes.iter().any(|s| !s.done && s.deadline <= now)
    }
}

impl Gateway {
    /// A BODP message from `from` (peer slot `p`).
    pub(super) fn on_bodp(&mut self, p: usize, from: NodeId, msg: &Message<'_>) -> Handled {
        match *msg {
            Message::FrameSubmit { frame, .. } => self.submitted(p, from, frame),
            Message::LayerResult {
                frame,
                layer,
                stripe,
                ..
            } => {
                if layer as usize >= self.cfg.layers.len() {
                    return Err(RuntimeError::StripeOutOfRange { layer, stripe });
                }
                if let Some(p) = self.peers[p].as_mut() {
                    p.outstanding = p.outstanding.saturating_sub(1);
                    p.late = false;
                }
                let rows = match *msg {
                    Message::LayerResult { output, .. } => output.region.y,
                    _ => Span::default(),
                };
                match self.frame(frame) {
                    // A result for other rows belongs to an earlier split of this layer.
                    Some(i)
                        if self
                            .stripe_rows(i, layer, stripe)
                            .is_some_and(|r| r != rows) =>
                    {
                        Ok(Verdict::Discard)
                    }
                    Some(i) => self.stripe_in(i, from, layer, stripe),
                    None => Ok(Verdict::Discard),
                }
            }
            _ => Err(RuntimeError::unexpected(from, msg)),
        }
    }

    /// The rows of `stripe` of frame slot `i`'s current layer, if that is `layer`.
    fn stripe_rows(&self, i: usize, layer: u8, stripe: u16) -> Option<Span> {
        let b = self.frames[i].as_ref()?.bodp.as_ref()?;
        (b.layer == layer).then(|| b.stripes.get(stripe as usize).map(|s| s.rows))?
    }

    /// BODP: the output region of `stripe` of `frame`'s current layer `layer` (where an
    /// accepted `LayerResult` goes).
    pub fn stripe_region(&self, frame: FrameKey, layer: u8, stripe: u16) -> Option<Region> {
        let f = self.frames.iter().flatten().find(|f| f.key == frame)?;
        let b = f.bodp.as_ref().filter(|b| b.layer == layer)?;
        b.region(stripe as usize)
    }

    /// Starts or moves the stripes of frames waiting for an edge (oldest first), while there is
    /// room for actions and an edge is alive.
    pub(super) fn bodp_kick(&mut self) {
        if self.alive_edges() == 0 {
            return;
        }
        while self.actions.room() {
            let Some(i) = oldest(
                &self.frames,
                |f| f.seq,
                |f| f.bodp.as_ref().is_some_and(Bodp::waiting),
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
                .is_some_and(Bodp::waiting);
            if stuck {
                break; // no edge has room; retried on the next event
            }
        }
    }

    /// A stripe parked at the gateway, to compute here (no edge alive).
    pub(super) fn local_stripe(&mut self) -> Option<Work> {
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
                            output: Region::new(Span::new(0, width), s.rows),
                        }
                    })
            })
            .next()
    }

    /// Alive workers and their weights (unmeasured ones get the mean of the measured): those
    /// with room and not late, else any with room in their work queue.
    pub(super) fn workers(
        &self,
        exclude: Option<NodeId>,
    ) -> heapless::Vec<(NodeId, u64), MAX_EDGES> {
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

    /// One more stripe out at `to`.
    pub(super) fn sent_stripe(&mut self, to: NodeId) {
        if let Some(p) = self.peer_mut(to) {
            p.outstanding = p.outstanding.saturating_add(1);
        }
    }

    /// Splits layer `layer` of frame slot `i` over the workers with room and sends the stripes
    /// (the gateway keeps them when no edge is alive).
    pub(super) fn bodp_start(&mut self, i: usize, layer: u8) {
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
                let resident = self.cfg.policy == Policy::Bodp;
                if let Some(f) = self.frames[i].as_mut() {
                    f.bodp = Some(Bodp {
                        resident,
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
        let spans = split(height, &weights);
        let mut b = Bodp {
            resident: self.cfg.policy == Policy::Bodp || workers.iter().any(|w| w.0 == GATEWAY),
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
                    output: Region::new(Span::new(0, width), *rows),
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
    pub(super) fn bodp_reassign(&mut self, i: usize, gone: Option<NodeId>) {
        let now = self.now;
        let timeout = self.cfg.tile_timeout;
        let fallback = self.cfg.gateway_fallback;
        let n = match self.frames[i].as_ref().and_then(|f| f.bodp.as_ref()) {
            Some(b) => b.stripes.len(),
            None => return,
        };
        if self.cfg.policy == Policy::Modnn && self.modnn_reassign(i, gone) {
            return;
        }
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
                if let Some(p) = self.peer_mut(s.to) {
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
                    output: Region::new(Span::new(0, width), s.rows),
                });
            }
        }
    }

    /// A stripe result for frame slot `i` from `from` (the gateway itself when computed here).
    pub(super) fn stripe_in(
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
        if !b.resident {
            // MoDNN: the stripe stays where it was computed.
            s.to = from;
        }
        let resident = b.resident;
        let all = b.all_done();
        let frame = f.key;
        if from != GATEWAY {
            let us = (now - sent).total_micros().max(1);
            if let Some(p) = self.peer_mut(from) {
                p.speed = (rows * 1_000_000_000 / us).max(1);
            }
        }
        if all {
            self.actions.push(Action::LayerComplete { frame, layer });
            if layer as usize + 1 >= self.cfg.layers.len() {
                self.finish(i, true);
            } else if resident {
                self.bodp_start(i, layer + 1);
            } else {
                self.modnn_next(i, layer + 1);
            }
        }
        Ok(Verdict::Accept)
    }
}

/// Splits rows `0..height` into `weights.len()` non-empty bands proportional to the weights
/// (each at least 1). The caller passes at most `height` weights, each `>= 1`.
pub(super) fn split(height: u32, weights: &[u64]) -> Vec<Span, MAX_STRIPES> {
    let n = weights.len().min(MAX_STRIPES).min(height as usize).max(1);
    let weights = &weights[..n.min(weights.len())];
    let total: u128 = weights
        .iter()
        .map(|&w| w.max(1) as u128)
        .sum::<u128>()
        .max(1);
    let mut bounds = [0u32; MAX_STRIPES + 1];
    let mut cum: u128 = 0;
    for k in 1..n {
        cum += weights.get(k - 1).copied().unwrap_or(1).max(1) as u128;
        let b = (height as u128 * cum / total) as u32;
        let lo = bounds[k - 1] + 1;
        let hi = height - (n - k) as u32;
        bounds[k] = b.clamp(lo, hi);
    }
    bounds[n] = height;
    let mut out = Vec::new();
    for k in 0..n {
        let _ = out.push(Span::new(bounds[k], bounds[k + 1]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_biased_and_covers() {
        let s = split(38, &[1, 1]);
        assert_eq!(s.as_slice(), &[Span::new(0, 19), Span::new(19, 38)]);
        let s = split(100, &[3, 1]);
        assert_eq!(s.as_slice(), &[Span::new(0, 75), Span::new(75, 100)]);
        let s = split(3, &[1, 1000, 1]);
        assert!(s.iter().all(|r| !r.is_empty()));
        assert_eq!(s.last().unwrap().end, 3);
        let s = split(2, &[1, 1, 1, 1]);
        assert_eq!(s.len(), 2);
    }
}
