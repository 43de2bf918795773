//! Row bands of layer pairs: the outputs of layers 0, 1, 2, 4 and 6 never exist whole.
//!
//! The first layers have the largest outputs of the stack (high resolution, growing channel
//! counts), yet only the next layer reads each. A pair `(ℓ, ℓ+1)` starting at a layer of
//! [`PAIRS`] is run in bands: layer `ℓ+1`'s output `Ô_{ℓ+1}` is computed [`BAND_ROWS`] rows
//! at a time ([`BLOCK_BAND_ROWS`] in stacks aligned to block-wise kernels); for each band the tile computes the layer-`ℓ` rows that band reads
//! (`back_{ℓ+1}(band)`, overlap rows recomputed), stitches in received layer-`ℓ` strips, runs
//! layer `ℓ+1` on them and copies the result into `Ô_{ℓ+1}`. Every output value is still one
//! kernel call's sum in the same order, so banded tiles are bit-identical to unbanded ones.
//!
//! A level-0 Reuse tile sends its layer-`ℓ` strips band by band: each band puts the part of
//! each strip among the rows it computes (`StripStore::put_part`). A strip the bands do not
//! fill (rows or columns layer `ℓ+1` does not read) is then computed as a layer-`ℓ` region of
//! its own. A level-1 tile stitches the strips it receives into each band's layer-`ℓ+1` input.
//!
//! The pairs `(0, 1)` and `(2, 3)` are chained ([`CHAINED`]): each band of pair `(2, 3)`
//! computes the layer-1 rows it reads through pair `(0, 1)`, itself in bands, so `Ô_1` never
//! exists whole either; layer-1 send strips, like layer-0 and layer-2 ones, are sent in parts
//! as those rows are computed (YOLOv2's layer-1 strips thus cost no layer-0 work of their
//! own).
//!
//! Buffers: for chained pairs `Ô_3` fills one ping-pong buffer and the chain's scratch the
//! other; an unchained pair at layer 0 (whose input is the caller's view) puts `Ô_1` in one
//! and the band scratch in the other; for a later pair `Î_ℓ` holds one buffer, so the other
//! holds `Ô_{ℓ+1}` followed by the band scratch.

use super::{FusedStack, PlanError, Side, TilePlan};
use crate::region::{Region, Span};

/// Rows of layer `ℓ+1`'s output computed per band. YOLOv2's banded pairs recompute no rows
/// (their second layers are 2×2 pools and a 1×1 conv), so thin bands cost only more, smaller
/// kernel calls; each band's rows and their padded input copy are held at once.
pub const BAND_ROWS: u32 = 4;

/// Rows per band of a stack aligned to block-wise kernels (any layer of alignment > 1, see
/// `FusedStack::aligned`: Winograd F(4×4, 3×3)). Such a kernel pays per call: it reads the
/// layer's transformed filters (1.2 MiB for YOLOv2's layer 4) and pads each call's blocks to
/// whole lane vectors, so a 4-row band of a tile's layer 4 (one block row of 17 blocks) ran
/// its products over 32 lanes. Twice the rows halve the calls; the bands' scratch grows with
/// them (`buffer_elems` counts it).
pub const BLOCK_BAND_ROWS: u32 = 8;

/// Rows per band of `stack`: [`BLOCK_BAND_ROWS`] when it is aligned to block-wise kernels,
/// else [`BAND_ROWS`].
pub fn band_rows(stack: &FusedStack<'_>) -> u32 {
    if (0..stack.len()).any(|l| stack.alignment(l) > 1) {
        BLOCK_BAND_ROWS
    } else {
        BAND_ROWS
    }
}

/// First layers of the pairs run in bands. YOLOv2: conv 0 → maxpool 1 and conv 2 → maxpool 3
/// remove the two largest maps from the buffers; conv 4 → conv 1×1 5 and conv 6 → maxpool 7
/// cost no recomputation (their second layer has no row overlap) and shrink the conv kernel's
/// padded input copy, which then never spans more than a band of layers 0–6.
pub const PAIRS: [usize; 4] = [0, 2, 4, 6];

/// The pair whose input is never whole either: pair `(2, 3)` reads `Ô_1` band by band, each
/// band's rows computed on demand by pair `(0, 1)` from the tile input (the two layer-1 rows
/// neighbouring bands both read are carried from one band's input to the next, not computed
/// twice). YOLOv2's `Ô_1` is the largest map the pairs leave whole (1.8 MiB of a 5x5 tile's
/// 3.0 MiB of buffers); only `Ô_3` is.
pub const CHAINED: usize = 2;

/// One band of the pair `(ℓ, ℓ+1)`: `out` rows of `Ô_{ℓ+1}`, the layer-`ℓ+1` input they
/// read, and the part of it the tile computes at layer `ℓ` (the rest arrives as strips).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    /// Rows of layer `ℓ+1`'s output (all of `Ô_{ℓ+1}`'s columns).
    pub out: Region,
    /// `back_{ℓ+1}(out)`: the layer-`ℓ` output rows layer `ℓ+1` reads for this band.
    pub input: Region,
    /// `input ∩ Ô_ℓ`: what the tile computes of layer `ℓ` for this band.
    pub computed: Region,
}

/// The bands of a banded tile, top to bottom.
#[derive(Clone, Copy, Debug)]
pub struct Bands<'s, 'n> {
    stack: &'s FusedStack<'n>,
    layer: usize,
    out: Region,
    own: Region,
    next: u32,
    /// Rows per band ([`band_rows`]).
    rows: u32,
    anchored: bool,
}

impl Iterator for Bands<'_, '_> {
    type Item = Band;

    fn next(&mut self) -> Option<Band> {
        if self.next >= self.out.y.end {
            return None;
        }
        // Below a block-wise layer (see `FusedStack::aligned`) bands end on absolute
        // multiples of their height, so their layer-ℓ rows start on its block grid and no
        // band computes a block row twice.
        let step_end = if self.anchored {
            (self.next / self.rows + 1).saturating_mul(self.rows)
        } else {
            self.next.saturating_add(self.rows)
        };
        let end = step_end.min(self.out.y.end);
        let out = Region::new(self.out.x, Span::new(self.next, end));
        self.next = end;
        let input = self.stack.back(self.layer + 1, out);
        Some(Band {
            out,
            input,
            computed: input.intersect(&self.own),
        })
    }
}

/// The bands `run_tile` computes layers `layer` and `layer + 1` of `plan` in, or `None` when
/// it runs them one after the other whole: `layer` must start a pair of [`PAIRS`], the stack
/// must go past `layer + 1` (the last layer writes the caller's output directly) and the tile
/// must compute more than one band at `layer + 1` (a single band would hold the whole pair plus
/// its output, more than running the two layers whole).
pub fn bands<'s, 'n>(
    stack: &'s FusedStack<'n>,
    plan: &TilePlan,
    layer: usize,
) -> Option<Bands<'s, 'n>> {
    let out = plan.output(layer + 1);
    let rows = band_rows(stack);
    if !PAIRS.contains(&layer) || layer + 2 >= stack.len() || out.y.len() <= rows {
        return None;
    }
    Some(Bands {
        stack,
        layer,
        out,
        own: plan.output(layer),
        next: out.y.start,
        rows,
        anchored: stack.alignment(layer) > 1,
    })
}

/// The bands of pair `(layer, layer + 1)` over the rows of `out` (a region of `Ô_{layer+1}`
/// the tile computes itself) rather than over the tile's whole output.
pub fn bands_over<'s, 'n>(
    stack: &'s FusedStack<'n>,
    plan: &TilePlan,
    layer: usize,
    out: Region,
) -> Bands<'s, 'n> {
    Bands {
        stack,
        layer,
        out,
        own: plan.output(layer),
        next: out.y.start,
        rows: band_rows(stack),
        anchored: stack.alignment(layer) > 1,
    }
}

/// Whether `run_tile` chains the pairs `(0, 1)` and `(CHAINED, CHAINED + 1)` for `plan`:
/// both are banded, so `Ô_1` never exists whole.
pub fn chained(stack: &FusedStack<'_>, plan: &TilePlan) -> bool {
    bands(stack, plan, 0).is_some() && bands(stack, plan, CHAINED).is_some()
}

/// Scratch of one band `b` of pair `(l, l+1)`: its layer-`l` input (its computed rows written
/// in place, received strips stitched around them); its layer-`l+1` rows go straight into the
/// pair's output.
fn band_scratch(stack: &FusedStack<'_>, l: usize, b: &Band) -> Result<u64, PlanError> {
    elems(b.input, stack.layers()[l].output.c)
}

/// Scratch pair `(0, 1)` needs to compute `Ô_1` over `out` in bands.
fn rows_scratch(stack: &FusedStack<'_>, plan: &TilePlan, out: Region) -> Result<u64, PlanError> {
    let mut need = 0;
    if out.is_empty() {
        return Ok(0);
    }
    for b in bands_over(stack, plan, 0, out) {
        need = need.max(band_scratch(stack, 0, &b)?);
    }
    Ok(need)
}

/// Scratch of the chained pairs beside `Ô_3` (see [`CHAINED`]): for each layer-0 send strip
/// its values; for each layer-1 one its values and pair `(0, 1)`'s bands; for each layer-2
/// send strip and each band of pair `(2, 3)` the `Î_2` rows it reads (`Ô_1` rows made by pair
/// `(0, 1)`, received strips stitched in) and then its own layer-2 scratch.
fn chain_scratch(stack: &FusedStack<'_>, plan: &TilePlan) -> Result<u64, PlanError> {
    let layers = stack.layers();
    let (c0, c1, c2) = (layers[0].output.c, layers[1].output.c, layers[2].output.c);
    let mut need = 0u64;
    // Î_2 over `x`, then `after` more.
    let with_input = |x: Region, after: u64| -> Result<u64, PlanError> {
        let own = x.intersect(&plan.output(1));
        add(elems(x, c1)?, rows_scratch(stack, plan, own)?.max(after))
    };
    for side in Side::ALL {
        need = need.max(elems(plan.send(0, side), c0)?);
        let r1 = plan.send(1, side);
        if !r1.is_empty() {
            need = need.max(add(elems(r1, c1)?, rows_scratch(stack, plan, r1)?)?);
        }
        let r2 = plan.send(2, side);
        if !r2.is_empty() {
            need = need.max(with_input(stack.back(2, r2), elems(r2, c2)?)?);
        }
    }
    for b in bands_over(stack, plan, CHAINED, plan.output(CHAINED + 1)) {
        let own = band_scratch(stack, CHAINED, &b)?;
        need = need.max(if b.computed.is_empty() {
            own
        } else {
            with_input(stack.back(CHAINED, b.computed), own)?
        });
    }
    Ok(need)
}

/// Values in `channels × r`, checked.
fn elems(r: Region, channels: u32) -> Result<u64, PlanError> {
    r.area()
        .checked_mul(channels as u64)
        .ok_or(PlanError::Overflow)
}

/// Elements each of `run_tile`'s two ping-pong buffers needs for `plan`: the larger of
/// [`buffer_elems`]' two.
pub fn scratch_elems(stack: &FusedStack<'_>, plan: &TilePlan) -> Result<u64, PlanError> {
    let [a, b] = buffer_elems(stack, plan)?;
    Ok(a.max(b))
}

/// The region the buffer of an unbanded layer `ℓ`'s output is laid out as: the next input
/// `Î_{ℓ+1}` when it covers `Ô_ℓ` (the layer writes its rows in place and received strips
/// fill the rest), else `Ô_ℓ` (stitched into `Î_{ℓ+1}` in the other buffer).
pub fn output_layout(plan: &TilePlan, l: usize) -> Region {
    let (out, next) = (plan.output(l), plan.input(l + 1));
    if next.covers(&out) {
        next
    } else {
        out
    }
}

/// Elements `run_tile`'s first and second ping-pong buffer need for `plan`, following which
/// buffer holds what: the first takes layer 0's output, then the two alternate.
///
/// Unbanded: a layer's output in the buffer not holding its input, laid out as
/// [`output_layout`] (`Î_{ℓ+1}` when that covers `Ô_ℓ`); its send strips, and the stitched
/// `Î_{ℓ+1}` when the output is laid out as `Ô_ℓ`, in the other one. For a banded pair at `ℓ`:
/// `Ô_{ℓ+1}` (laid out the same way) plus the pair's scratch (the largest layer-`ℓ` send strip
/// or band: its layer-`ℓ` input rows) in the buffer not holding `Î_ℓ`;
/// for the pair at layer 0, whose input is the caller's, the scratch goes to the other buffer.
/// Chained pairs (see [`CHAINED`]) put `Ô_3` in the first buffer and their scratch in the
/// second. The largest output of the stack sits in one buffer only, so the two need not be the
/// same size.
pub fn buffer_elems(stack: &FusedStack<'_>, plan: &TilePlan) -> Result<[u64; 2], PlanError> {
    let layers = stack.layers();
    let last = stack.len() - 1;
    let mut need = [0u64; 2];
    // Which buffer holds the current layer's input (`None`: the caller's input view).
    let mut src: Option<usize> = None;
    let mut l = 0;
    while l < last {
        let dst = if src == Some(0) { 1 } else { 0 };
        let other = 1 - dst;
        // The region `dst` is laid out as once layer `l` (as advanced) is done.
        let laid = if l == 0 && chained(stack, plan) {
            // Layers 0-3 at once from the caller's input: `Ô_3` here, the chain's scratch in
            // the other buffer.
            l = CHAINED + 1;
            let laid = output_layout(plan, l);
            need[dst] = need[dst].max(elems(laid, layers[l].output.c)?);
            need[other] = need[other].max(chain_scratch(stack, plan)?);
            laid
        } else if let Some(bands) = bands(stack, plan, l) {
            let c0 = layers[l].output.c;
            let c1 = layers[l + 1].output.c;
            let mut scratch = 0u64;
            for side in Side::ALL {
                scratch = scratch.max(elems(plan.send(l, side), c0)?);
            }
            for b in bands {
                scratch = scratch.max(band_scratch(stack, l, &b)?);
            }
            let laid = output_layout(plan, l + 1);
            let o = elems(laid, c1)?;
            if src.is_none() {
                need[dst] = need[dst].max(o);
                need[other] = need[other].max(scratch);
            } else {
                need[dst] = need[dst].max(add(o, scratch)?);
            }
            l += 1;
            laid
        } else {
            let laid = output_layout(plan, l);
            need[dst] = need[dst].max(elems(laid, layers[l].output.c)?);
            laid
        };
        // Send strips and a stitched next input go to the buffer holding this layer's input.
        let c = layers[l].output.c;
        for side in Side::ALL {
            need[other] = need[other].max(elems(plan.send(l, side), c)?);
        }
        let next = plan.input(l + 1);
        if next == laid {
            src = Some(dst);
        } else {
            need[other] = need[other].max(elems(next, c)?);
            src = Some(other);
        }
        l += 1;
    }
    Ok(need)
}

/// Elements the first step of `run_tile` (layer 0 alone, its banded pair, or the chained
/// pairs) takes in the second buffer while it still reads the tile's input: the chain's or the
/// pair's scratch, none for a layer 0 computed whole into the first buffer. Everything the
/// second buffer holds after that step comes once the input is dead.
pub fn input_scratch_elems(stack: &FusedStack<'_>, plan: &TilePlan) -> Result<u64, PlanError> {
    if stack.len() < 2 {
        // The only layer writes straight into the caller's output.
        return Ok(0);
    }
    if chained(stack, plan) {
        return chain_scratch(stack, plan);
    }
    let Some(bands) = bands(stack, plan, 0) else {
        return Ok(0);
    };
    let c0 = stack.layers()[0].output.c;
    let mut scratch = 0u64;
    for side in Side::ALL {
        scratch = scratch.max(elems(plan.send(0, side), c0)?);
    }
    for b in bands {
        scratch = scratch.max(band_scratch(stack, 0, &b)?);
    }
    Ok(scratch)
}

/// [`buffer_elems`] for a tile whose input the caller cut into the end of the second buffer
/// (`exec::TileInput::InB`): the second also holds the input beside the first step's
/// scratch ([`input_scratch_elems`]), and is grown only where the two exceed what it needs
/// anyway.
pub fn buffer_elems_in(stack: &FusedStack<'_>, plan: &TilePlan) -> Result<[u64; 2], PlanError> {
    let [a, b] = buffer_elems(stack, plan)?;
    let input = elems(plan.input(0), stack.input().c)?;
    Ok([a, b.max(add(input_scratch_elems(stack, plan)?, input)?)])
}

fn add(a: u64, b: u64) -> Result<u64, PlanError> {
    a.checked_add(b).ok_or(PlanError::Overflow)
}
