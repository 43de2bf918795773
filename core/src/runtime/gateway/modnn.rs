//! MoDNN as published (docs/design.md §5): a Biased One-Dimensional Partition whose stripes
//! stay on the workers across the fused layers.
//!
//! At layer 0 the output rows split into one stripe per alive edge, sized by its measured speed
//! (BODP's split), and each worker gets its stripe's input rows from the frame. Every later
//! layer keeps the same workers in the same order: a stripe boundary `b` of a layer with
//! `H_in` output rows maps to `(b·H_out + H_in/2) / H_in` of the next one ([`modnn_next_rows`]),
//! so a worker's next stripe lies over the rows it already holds. After each layer a worker
//! keeps its output and sends the gateway only the rows other stripes will read
//! ([`modnn_boundaries`]); the gateway, MoDNN's coordinator, forwards to each worker the rows
//! it lacks ([`modnn_missing`], [`Action::SendHalo`]) and the next layer starts when every
//! stripe is in (lock-step). The last layer's stripes come back whole.
//!
//! A worker that leaves or is late after layer 0 took rows nobody else holds: the frame starts
//! again from layer 0 over the other workers (MoDNN itself has no recovery). While no edge is
//! alive the gateway computes the frame itself, holding each whole map (as BODP); an edge that
//! comes up restarts such a frame over the edges.

use tessera_log::info;

use crate::ftp::{FusedStack, Side};
use crate::region::{Region, Span};
use crate::wire::{FrameKey, Message, NodeId, StripsView};

use super::super::{Action, Verdict};
use super::bodp::{Bodp, Stripe};
use super::{Gateway, Handled};

/// The rows of the next layer's stripe over `rows` of a layer with `in_height` output rows,
/// the next having `out_height`: each boundary scaled and rounded to nearest, so stripes that
/// tile one layer tile the next (possibly leaving some empty), `0` maps to `0` and `in_height`
/// to `out_height`.
pub fn modnn_next_rows(rows: Span, in_height: u32, out_height: u32) -> Span {
    let map = |b: u32| -> u32 {
        if in_height == 0 {
            return 0;
        }
        let (b, i, o) = (b as u64, in_height as u64, out_height as u64);
        ((b * o + i / 2) / i).min(o) as u32
    };
    let start = map(rows.start);
    Span::new(start, map(rows.end).max(start))
}

/// The rows of stripe `rows` of layer `layer`'s output that the stripes above it (first) and
/// below it (second) read at layer `layer + 1`; empty at the last layer.
pub fn modnn_boundaries(stack: &FusedStack<'_>, layer: usize, rows: Span) -> [Span; 2] {
    let none = [Span::new(rows.start, rows.start); 2];
    let (Some(l), Some(n)) = (stack.layers().get(layer), stack.layers().get(layer + 1)) else {
        return none;
    };
    let next = modnn_next_rows(rows, l.output.h, n.output.h);
    let width = Span::new(0, n.output.w);
    let reads = |row: u32| {
        stack
            .back(layer + 1, Region::new(width, Span::new(row, row + 1)))
            .y
    };
    let above = if next.start > 0 {
        let end = reads(next.start - 1).end.clamp(rows.start, rows.end);
        Span::new(rows.start, end)
    } else {
        none[0]
    };
    let below = if next.end < n.output.h {
        let start = reads(next.end).start.clamp(rows.start, rows.end);
        Span::new(start, rows.end)
    } else {
        Span::new(rows.end, rows.end)
    };
    [above, below]
}

/// The rows of layer `layer`'s input that computing `output` reads and that the worker holding
/// rows `held` of that input lacks: a band above `held` and one below (either may be empty).
pub fn modnn_missing(
    stack: &FusedStack<'_>,
    layer: usize,
    output: Region,
    held: Span,
) -> [Span; 2] {
    let need = stack.back(layer, output).y;
    let above = Span::new(need.start, need.end.min(held.start).max(need.start));
    let below = Span::new(need.start.max(held.end).min(need.end), need.end);
    [above, below]
}

/// The sides MoDNN's boundary bands are tagged with on the wire (`Strips` entries): the rows
/// for (or from) the stripes above, then below, as [`modnn_boundaries`] and [`modnn_missing`]
/// order them.
pub const MODNN_BAND_SIDES: [Side; 2] = [Side::Above, Side::Below];

impl Gateway {
    /// A MoDNN message from `from` (peer slot `p`): boundary rows (`Strips`) here, the rest as
    /// BODP.
    pub(super) fn on_modnn(&mut self, p: usize, from: NodeId, msg: &Message<'_>) -> Handled {
        match *msg {
            Message::Strips {
                frame,
                tile,
                strips,
            } => Ok(self.boundary_in(from, frame, tile, &strips)),
            _ => self.on_bodp(p, from, msg),
        }
    }

    /// Boundary rows of stripe `stripe` of `frame`'s current layer from its worker: kept by
    /// the driver when they are for an open stripe of that worker, inside its rows, tagged
    /// above or below.
    fn boundary_in(
        &mut self,
        from: NodeId,
        frame: FrameKey,
        stripe: u16,
        strips: &StripsView<'_>,
    ) -> Verdict {
        let Some(b) = self
            .frame(frame)
            .and_then(|i| self.frames[i].as_ref())
            .and_then(|f| f.bodp.as_ref())
            .filter(|b| !b.resident)
        else {
            return Verdict::Discard;
        };
        let Some(s) = b.stripes.get(stripe as usize) else {
            return Verdict::Discard;
        };
        let mine = !s.done && (s.to == from || s.prev == Some(from));
        let fits = strips.iter().all(|e| {
            e.layer == b.layer
                && MODNN_BAND_SIDES.contains(&e.side)
                && s.rows.covers(&e.tensor.region.y)
        });
        if mine && fits {
            Verdict::Accept
        } else {
            Verdict::Discard
        }
    }

    /// Starts layer `layer` (≥ 1) of MoDNN frame slot `i` from the stripes of layer
    /// `layer − 1`: the same workers, their rows mapped by [`modnn_next_rows`]; each gets the
    /// rows it lacks ([`Action::SendHalo`]). A stripe left empty is done at once.
    pub(super) fn modnn_next(&mut self, i: usize, layer: u8) {
        let (Some((_, in_h)), Some((width, height))) = (
            self.cfg.layers.output(layer as usize - 1),
            self.cfg.layers.output(layer as usize),
        ) else {
            return;
        };
        let now = self.now;
        let deadline = now + self.cfg.tile_timeout;
        let Some(f) = self.frames[i].as_mut() else {
            return;
        };
        let frame = f.key;
        let Some(b) = f.bodp.as_mut() else {
            return;
        };
        let mut next: heapless::Vec<Stripe, { super::super::MAX_STRIPES }> = heapless::Vec::new();
        let mut sends: heapless::Vec<Action, { super::super::MAX_STRIPES }> = heapless::Vec::new();
        for (k, s) in b.stripes.iter().enumerate() {
            let rows = modnn_next_rows(s.rows, in_h, height);
            let _ = next.push(Stripe {
                rows,
                to: s.to,
                prev: None,
                sent: now,
                first_sent: now,
                deadline,
                done: rows.is_empty(),
                running: false,
            });
            if !rows.is_empty() {
                let _ = sends.push(Action::SendHalo {
                    to: s.to,
                    frame,
                    layer,
                    stripe: k as u16,
                    output: Region::new(Span::new(0, width), rows),
                    held: s.rows,
                });
            }
        }
        *b = Bodp {
            resident: false,
            layer,
            width,
            stripes: next,
        };
        for a in sends {
            if let Action::SendHalo { to, .. } = a {
                self.sent_stripe(to);
            }
            self.actions.push(a);
        }
    }

    /// MoDNN's part of re-dispatch for frame slot `i` (a stripe late, or its worker `gone`):
    /// true when it restarted the frame from layer 0 or found nothing to do; false leaves the
    /// stripe to BODP's re-dispatch (layer 0, whose input the gateway holds).
    pub(super) fn modnn_reassign(&mut self, i: usize, gone: Option<NodeId>) -> bool {
        let now = self.now;
        let edges = self.alive_edges() > 0;
        let Some((frame, b)) = self.frames[i]
            .as_ref()
            .and_then(|f| Some((f.key, f.bodp.as_ref()?)))
        else {
            return true;
        };
        let restart = if b.resident {
            // Computed here while no edge was alive: the edges take it over from layer 0.
            edges
        } else {
            let held_by_gone = gone.is_some_and(|g| {
                b.stripes
                    .iter()
                    .any(|s| s.to == g && (s.done || b.layer > 0))
            });
            let late = gone.is_none() && b.layer > 0 && b.late(now);
            held_by_gone || late
        };
        if !restart {
            return b.resident;
        }
        let late: heapless::Vec<NodeId, { super::super::MAX_STRIPES }> = b
            .stripes
            .iter()
            .filter(|s| gone.is_none() && !s.done && s.deadline <= now)
            .map(|s| s.to)
            .collect();
        let layer = b.layer;
        for id in late {
            // The late worker gets no new stripe until it answers.
            if let Some(p) = self.peer_mut(id) {
                p.late = true;
            }
        }
        self.stats.tiles_redispatched += 1;
        info!(
            "gateway: frame {}: MoDNN restarts from layer 0 (layer {}: a worker {})",
            frame,
            layer,
            if gone.is_some() { "left" } else { "is late" }
        );
        if let Some(f) = self.frames[i].as_mut() {
            f.bodp = None;
        }
        self.actions.push(Action::RestartLayers { frame });
        self.bodp_start(i, 0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_rows_tile_the_next_layer() {
        let cuts = [0u32, 101, 203, 304, 405, 507, 608];
        let mut end = 0;
        for w in cuts.windows(2) {
            let r = modnn_next_rows(Span::new(w[0], w[1]), 608, 304);
            assert_eq!(r.start, end);
            end = r.end;
        }
        assert_eq!(end, 304);
        assert_eq!(modnn_next_rows(Span::new(7, 9), 38, 38), Span::new(7, 9));
        assert!(modnn_next_rows(Span::new(3, 3), 10, 5).is_empty());
    }
}
