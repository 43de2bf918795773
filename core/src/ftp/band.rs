//! Row bands of layers 0 and 1: a tile's layer-0 output never exists whole.
//!
//! Layer 0 has the largest output of the stack (full resolution, many channels), yet only
//! layer 1 reads it. A banded tile computes layer 1's output `Ô_1` [`BAND_ROWS`] rows at a
//! time: for each band it computes the layer-0 rows that band reads (`back_1(band)`, overlap
//! rows recomputed), stitches in received layer-0 strips, runs layer 1 on them and copies the
//! result into `Ô_1`. Every output value is still one kernel call's sum in the same order, so
//! banded tiles are bit-identical to unbanded ones.
//!
//! Layer-0 strips a level-0 Reuse tile sends are computed separately, each as its own conv
//! output region (they are thin; computing them is cheaper than holding `Ô_0`), and a level-1
//! tile stitches the strips it receives into each band's layer-1 input.

use super::{FusedStack, PlanError, Side, TilePlan};
use crate::region::{Region, Span};

/// Rows of layer 1's output computed per band.
pub const BAND_ROWS: u32 = 8;

/// One band: `out` rows of `Ô_1`, the layer-1 input they read, and the part of it the tile
/// computes at layer 0 (the rest arrives as strips).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    /// Rows of layer 1's output (all of `Ô_1`'s columns).
    pub out: Region,
    /// `back_1(out)`: the layer-0 output rows layer 1 reads for this band.
    pub input: Region,
    /// `input ∩ Ô_0`: what the tile computes of layer 0 for this band.
    pub computed: Region,
}

/// The bands of a banded tile, top to bottom.
#[derive(Clone, Copy, Debug)]
pub struct Bands<'s, 'n> {
    stack: &'s FusedStack<'n>,
    out: Region,
    own: Region,
    next: u32,
}

impl Iterator for Bands<'_, '_> {
    type Item = Band;

    fn next(&mut self) -> Option<Band> {
        if self.next >= self.out.y.end {
            return None;
        }
        let end = self.next.saturating_add(BAND_ROWS).min(self.out.y.end);
        let out = Region::new(self.out.x, Span::new(self.next, end));
        self.next = end;
        let input = self.stack.back(1, out);
        Some(Band {
            out,
            input,
            computed: input.intersect(&self.own),
        })
    }
}

/// The bands `run_tile` computes layers 0 and 1 of `plan` in, or `None` when it runs them
/// whole: the stack must go past layer 1 (the last layer writes the caller's output directly)
/// and the tile must compute something at layer 1.
pub fn bands<'s, 'n>(stack: &'s FusedStack<'n>, plan: &TilePlan) -> Option<Bands<'s, 'n>> {
    let out = plan.output(1);
    if stack.len() < 3 || out.is_empty() {
        return None;
    }
    Some(Bands {
        stack,
        out,
        own: plan.output(0),
        next: out.y.start,
    })
}

/// Values in `channels × r`, checked.
fn elems(r: Region, channels: u32) -> Result<u64, PlanError> {
    r.area()
        .checked_mul(channels as u64)
        .ok_or(PlanError::Overflow)
}

/// Elements each of `run_tile`'s two ping-pong buffers needs for `plan`.
///
/// Unbanded: every intermediate output `Ô_ℓ` and stitched input `Î_{ℓ+1}`. Banded, layer 0's
/// terms are replaced by the largest layer-0 send strip and the largest band's scratch (its
/// computed layer-0 rows, their stitched copy when strips are received, and its layer-1 rows),
/// all held in the buffer not holding `Ô_1`.
pub fn scratch_elems(stack: &FusedStack<'_>, plan: &TilePlan) -> Result<u64, PlanError> {
    let layers = stack.layers();
    let banded = bands(stack, plan);
    let first = if banded.is_some() { 1 } else { 0 };
    let mut need = 0u64;
    for (l, layer) in layers.iter().enumerate().take(stack.len() - 1).skip(first) {
        let c = layer.output.c;
        need = need
            .max(elems(plan.output(l), c)?)
            .max(elems(plan.input(l + 1), c)?);
    }
    if let Some(bands) = banded {
        let (c0, c1) = (layers[0].output.c, layers[1].output.c);
        for side in Side::ALL {
            need = need.max(elems(plan.send(0, side), c0)?);
        }
        for b in bands {
            let mut n = elems(b.computed, c0)?;
            if b.computed != b.input {
                n = n
                    .checked_add(elems(b.input, c0)?)
                    .ok_or(PlanError::Overflow)?;
            }
            n = n
                .checked_add(elems(b.out, c1)?)
                .ok_or(PlanError::Overflow)?;
            need = need.max(n);
        }
    }
    Ok(need)
}
