//! Running one tile through the fused layers (docs/design.md §2.5, §3.3).
//!
//! [`run_tile`] is the only code path: a full frame is the single tile of a 1×1 grid. It uses
//! two caller-owned ping-pong buffers, each [`MemoryPlan::tile_buffer_elems`] long; the layer-0
//! input is read from the caller's view, or from the end of the second buffer where the caller
//! cut it ([`TileInput::InB`], buffers of [`MemoryPlan::tile_buffers_in_elems`]: a node then
//! holds no tile input beside them), and the last layer writes straight into `out`. The pairs
//! of [`PAIRS`](crate::ftp::band::PAIRS) run in row bands when the stack goes past them
//! ([`crate::ftp::band`]), the first two of them chained, so the largest outputs of the stack
//! never exist whole.
//!
//! [`MemoryPlan::tile_buffer_elems`]: crate::ftp::MemoryPlan::tile_buffer_elems
//! [`MemoryPlan::tile_buffers_in_elems`]: crate::ftp::MemoryPlan::tile_buffers_in_elems

use core::fmt;

use crate::ftp::band::{self, Band, Bands};
use crate::ftp::{FusedStack, Side, TilePlan};
use crate::kernel::{KernelError, Kernels};
use crate::model::weights::Weights;
use crate::model::LayerKind;
use crate::region::Region;
use crate::tensor::{copy_overlap, region_len, slide_rows, FeatureView, FeatureViewMut, ViewError};

/// Why a tile could not be run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecError {
    /// The plan was made for a stack of another length.
    PlanMismatch,
    /// The input view misses part of `plan.input(0)` or has the wrong channel count.
    InputMismatch {
        /// Region the tile needs.
        needed: Region,
        /// Region the view holds.
        have: Region,
    },
    /// A ping-pong buffer is shorter than the plan needs.
    BufferTooSmall {
        /// Elements needed in each buffer.
        needed: usize,
        /// Elements in the shorter buffer.
        available: usize,
    },
    /// The output slice is shorter than the grid tile × output channels.
    OutputTooSmall {
        /// Elements needed.
        needed: usize,
        /// Elements available.
        available: usize,
    },
    /// The weights do not hold parameters for conv layer `layer`.
    MissingWeights {
        /// Layer index.
        layer: usize,
    },
    /// A level-1 tile needs a strip the store does not have (the caller falls back to
    /// [`Mode::Plain`](crate::ftp::Mode::Plain)).
    MissingStrip {
        /// Sender tile.
        tile: usize,
        /// Layer whose output the strip belongs to.
        layer: usize,
        /// Side of the sender the receiver sits on.
        side: Side,
    },
    /// A stored strip does not cover the region or has the wrong channel count.
    StripMismatch {
        /// Sender tile.
        tile: usize,
        /// Layer whose output the strip belongs to.
        layer: usize,
        /// Side of the sender the receiver sits on.
        side: Side,
    },
    /// The strip store is full.
    StoreFull,
    /// A kernel refused its views.
    Kernel {
        /// Layer index.
        layer: usize,
        /// What the kernel reported.
        error: KernelError,
    },
    /// A region does not fit a buffer (size overflow or short slice).
    View(ViewError),
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::PlanMismatch => f.write_str("tile plan made for another stack"),
            ExecError::InputMismatch { needed, have } => {
                write!(f, "input view {have:?} does not hold needed {needed:?}")
            }
            ExecError::BufferTooSmall { needed, available } => {
                write!(
                    f,
                    "scratch buffer holds {available} values, tile needs {needed}"
                )
            }
            ExecError::OutputTooSmall { needed, available } => {
                write!(
                    f,
                    "output buffer holds {available} values, tile needs {needed}"
                )
            }
            ExecError::MissingWeights { layer } => write!(f, "no weights for layer {layer}"),
            ExecError::MissingStrip { tile, layer, side } => {
                write!(
                    f,
                    "missing strip: tile {tile}, layer {layer}, side {side:?}"
                )
            }
            ExecError::StripMismatch { tile, layer, side } => {
                write!(
                    f,
                    "strip does not fit: tile {tile}, layer {layer}, side {side:?}"
                )
            }
            ExecError::StoreFull => f.write_str("strip store full"),
            ExecError::Kernel { layer, error } => write!(f, "layer {layer}: {error}"),
            ExecError::View(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for ExecError {}

impl From<ViewError> for ExecError {
    fn from(e: ViewError) -> Self {
        ExecError::View(e)
    }
}

/// Where level-0 tiles leave strips and level-1 tiles pick them up.
///
/// A strip is keyed by the SENDER: its task id, the layer whose output it belongs to, and the
/// side of the sender on which the receiver sits. A receiver on side `s` of its neighbour `n`
/// therefore asks for `(n, layer, s.opposite())` of its own sides.
pub trait StripStore {
    /// Stores a copy of the strip `region` of `from` (exactly `plan.send(layer, side)` of the
    /// sender, all output channels; `from` covers it, often as part of the sender's whole
    /// layer output, so the strip is copied once, here: [`FeatureView::rows_in`] reads it).
    /// `from` borrows scratch memory that is overwritten afterwards.
    fn put(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        from: &FeatureView<'_>,
        region: Region,
    ) -> Result<(), ExecError>;

    /// Copies `part` of `from` into the strip `region` stored under the key, as [`put`]
    /// would store it whole: a part under a key that holds no strip of that region and
    /// channel count makes the strip (its other values zero until their parts come), a later
    /// part fills it in. A level-0 tile computing a layer in row bands sends its strips of that
    /// layer this way, band by band, instead of computing each strip again on its own. Parts
    /// may overlap (they then hold the same values). `from` covers `part`.
    ///
    /// [`put`]: StripStore::put
    fn put_part(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        from: &FeatureView<'_>,
        region: Region,
        part: Region,
    ) -> Result<(), ExecError>;

    /// The strip stored under that key, if any.
    fn get(&self, tile: usize, layer: usize, side: Side) -> Option<FeatureView<'_>>;
}

/// A store that keeps nothing: for Plain mode, where no strip is exchanged. Strips put by a
/// level-0 Reuse tile are dropped (its own output is unaffected).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStrips;

impl StripStore for NoStrips {
    fn put(
        &mut self,
        _: usize,
        _: usize,
        _: Side,
        _: &FeatureView<'_>,
        _: Region,
    ) -> Result<(), ExecError> {
        Ok(())
    }

    fn put_part(
        &mut self,
        _: usize,
        _: usize,
        _: Side,
        _: &FeatureView<'_>,
        _: Region,
        _: Region,
    ) -> Result<(), ExecError> {
        Ok(())
    }

    fn get(&self, _: usize, _: usize, _: Side) -> Option<FeatureView<'_>> {
        None
    }
}

/// Strips of layers `0..PARTED` may be sent in parts: those reach past every banded pair
/// ([`band::PAIRS`]) and its second layer.
const PARTED: usize = band::PAIRS[band::PAIRS.len() - 1] + 2;

/// The tile's store, and how far each strip sent in parts ([`StripStore::put_part`]) is
/// filled: the rows from its top down to `filled[layer][side]` arrived whole-width, in
/// order. A strip not filled by the time its layer is done is computed on its own and `put`.
struct Sending<'s, S> {
    store: &'s mut S,
    filled: [[u32; 4]; PARTED],
}

impl<'s, S: StripStore> Sending<'s, S> {
    fn new(store: &'s mut S) -> Self {
        Sending {
            store,
            filled: [[0; 4]; PARTED],
        }
    }

    /// Whether the strip `region` of `layer` on `side` arrived whole in parts.
    fn filled(&self, layer: usize, side: Side, region: Region) -> bool {
        self.filled
            .get(layer)
            .is_some_and(|f| f[side.index()] >= region.y.end)
    }
}

impl<S: StripStore> StripStore for Sending<'_, S> {
    fn put(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        from: &FeatureView<'_>,
        region: Region,
    ) -> Result<(), ExecError> {
        self.store.put(tile, layer, side, from, region)
    }

    fn put_part(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        from: &FeatureView<'_>,
        region: Region,
        part: Region,
    ) -> Result<(), ExecError> {
        self.store.put_part(tile, layer, side, from, region, part)?;
        if let Some(f) = self.filled.get_mut(layer) {
            let end = &mut f[side.index()];
            let from_top = (*end).max(region.y.start);
            // Whole-width parts that continue the filled rows extend them.
            if part.x == region.x && part.y.start <= from_top {
                *end = from_top.max(part.y.end);
            }
        }
        Ok(())
    }

    fn get(&self, tile: usize, layer: usize, side: Side) -> Option<FeatureView<'_>> {
        self.store.get(tile, layer, side)
    }
}

/// Scratch elements each ping-pong buffer needs for `plan`: every intermediate output and,
/// when strips are stitched in, the enlarged next input; for a banded tile (see
/// [`ftp::band`](crate::ftp::band)) one band of layer 0 instead of its whole output.
pub fn scratch_elems(stack: &FusedStack<'_>, plan: &TilePlan) -> Result<usize, ExecError> {
    let [a, b] = buffer_elems(stack, plan)?;
    Ok(a.max(b))
}

/// Scratch elements of the first and of the second ping-pong buffer for `plan` (see
/// [`band::buffer_elems`]): [`run_tile`] takes buffers of
/// these sizes, or larger.
pub fn buffer_elems(stack: &FusedStack<'_>, plan: &TilePlan) -> Result<[usize; 2], ExecError> {
    elems_of(band::buffer_elems(stack, plan))
}

/// A plan's two buffer sizes as `usize`.
fn elems_of(r: Result<[u64; 2], crate::ftp::PlanError>) -> Result<[usize; 2], ExecError> {
    let overflow = |_| ExecError::View(ViewError::Overflow);
    let [a, b] = r.map_err(|_| ExecError::View(ViewError::Overflow))?;
    Ok([
        usize::try_from(a).map_err(overflow)?,
        usize::try_from(b).map_err(overflow)?,
    ])
}

/// Which memory holds the current layer's input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    Input,
    A,
    B,
}

/// `(which, other)` of the two buffers (`which` is never `Src::Input`).
fn pick<'x>(a: &'x mut [f32], b: &'x mut [f32], which: Src) -> (&'x mut [f32], &'x mut [f32]) {
    if which == Src::B {
        (b, a)
    } else {
        (a, b)
    }
}

fn layer_step<K: Kernels>(
    kernels: &K,
    stack: &FusedStack<'_>,
    weights: &Weights<'_>,
    l: usize,
    input: &FeatureView<'_>,
    out: &mut FeatureViewMut<'_>,
) -> Result<(), ExecError> {
    let layer = &stack.layers()[l];
    let res = match &layer.kind {
        LayerKind::Conv(c) => {
            let params = weights
                .conv(l)
                .ok_or(ExecError::MissingWeights { layer: l })?;
            kernels.conv(c, layer.input, &params, input, out)
        }
        LayerKind::MaxPool(p) => kernels.maxpool(p, layer.input, input, out),
        // FusedStack::new admits only conv and maxpool.
        _ => return Err(ExecError::PlanMismatch),
    };
    res.map_err(|error| ExecError::Kernel { layer: l, error })
}

/// The strip of layer `l` this level-1 tile receives from its neighbour on `side`, checked
/// to cover `r` with `c` channels.
fn received<'s, S: StripStore>(
    strips: &'s S,
    plan: &TilePlan,
    l: usize,
    side: Side,
    r: Region,
    c: u32,
) -> Result<FeatureView<'s>, ExecError> {
    let from = side.opposite();
    let missing = ExecError::MissingStrip {
        tile: plan.neighbour(side).unwrap_or(usize::MAX),
        layer: l,
        side: from,
    };
    let tile = plan.neighbour(side).ok_or(missing)?;
    let strip = strips.get(tile, l, from).ok_or(missing)?;
    if strip.channels() != c || !strip.region().covers(&r) {
        return Err(ExecError::StripMismatch {
            tile,
            layer: l,
            side: from,
        });
    }
    Ok(strip)
}

/// Copies the layer-`l` strips this tile receives into `x` (each where it meets `x`'s region).
fn receive<S: StripStore>(
    x: &mut FeatureViewMut<'_>,
    strips: &S,
    plan: &TilePlan,
    l: usize,
) -> Result<(), ExecError> {
    for side in Side::ALL {
        let r = plan.receive(l, side).intersect(&x.region());
        if r.is_empty() {
            continue;
        }
        copy_overlap(&received(strips, plan, l, side, r, x.channels())?, x);
    }
    Ok(())
}

/// What every step of one tile reads: the kernels, the fused layers, their weights and the
/// tile's plan.
struct Tile<'t, K> {
    kernels: &'t K,
    stack: &'t FusedStack<'t>,
    weights: &'t Weights<'t>,
    plan: &'t TilePlan,
}

impl<K: Kernels> Tile<'_, K> {
    /// Layer `l` on `input` into `out`.
    fn step(
        &self,
        l: usize,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), ExecError> {
        layer_step(self.kernels, self.stack, self.weights, l, input, out)
    }

    /// `Ô_l` in `buf` laid out as [`band::output_layout`] (the next input, when it covers
    /// `Ô_l`).
    fn laid_out<'b>(&self, l: usize, buf: &'b mut [f32]) -> Result<FeatureViewMut<'b>, ExecError> {
        let (out, layout) = (self.plan.output(l), band::output_layout(self.plan, l));
        Ok(FeatureViewMut::within(buf, layout, out, self.channels(l))?)
    }

    /// Output channels of layer `l`.
    fn channels(&self, l: usize) -> u32 {
        self.stack.layers()[l].output.c
    }

    /// The parts of the layer-`l` send strips that lie in `rows`, just computed in `from`
    /// ([`StripStore::put_part`]).
    fn send_parts<S: StripStore>(
        &self,
        l: usize,
        from: &FeatureView<'_>,
        rows: Region,
        strips: &mut S,
    ) -> Result<(), ExecError> {
        for side in Side::ALL {
            let r = self.plan.send(l, side);
            let part = r.intersect(&rows);
            if !part.is_empty() {
                strips.put_part(self.plan.tile(), l, side, from, r, part)?;
            }
        }
        Ok(())
    }

    /// The banded pair `(l, l+1)`: `Ô_{l+1}` into `dst` (laid out as
    /// [`band::output_layout`]), `spare` as scratch. Each band computes its layer-`l` rows
    /// (sending the parts of the layer-`l` strips among them), stitches received layer-`l`
    /// strips in, and runs layer `l+1` into `dst`; a strip the bands did not fill is then
    /// computed as a region of its own.
    fn banded_pair<S: StripStore>(
        &self,
        l: usize,
        bands: Bands<'_, '_>,
        input: &FeatureView<'_>,
        dst: &mut [f32],
        spare: &mut [f32],
        strips: &mut Sending<'_, S>,
    ) -> Result<(), ExecError> {
        let mut whole = self.laid_out(l + 1, dst)?;
        self.band_rows(l, bands, input, &mut whole, spare, strips)?;
        self.send_rest(l, input, spare, strips)
    }

    /// The layer-`l` send strips of the first layer of a banded pair that its bands did not
    /// fill, each computed from `input` as a region of its own (in `spare`) and `put`.
    fn send_rest<S: StripStore>(
        &self,
        l: usize,
        input: &FeatureView<'_>,
        spare: &mut [f32],
        strips: &mut Sending<'_, S>,
    ) -> Result<(), ExecError> {
        for side in Side::ALL {
            let r = self.plan.send(l, side);
            if r.is_empty() || strips.filled(l, side, r) {
                continue;
            }
            let mut s = FeatureViewMut::new(&mut *spare, r, self.channels(l))?;
            self.step(l, input, &mut s)?;
            strips.put(self.plan.tile(), l, side, &s.as_view(), r)?;
        }
        Ok(())
    }

    /// `bands` of pair `(l, l+1)`: each band's layer-`l` rows from `input`, received layer-`l`
    /// strips stitched in, layer `l+1` computed into the band's rows of `whole` (which covers
    /// them: every caller bands the rows of the view it passes). `spare` is scratch.
    fn band_rows<S: StripStore>(
        &self,
        l: usize,
        bands: impl Iterator<Item = Band>,
        input: &FeatureView<'_>,
        whole: &mut FeatureViewMut<'_>,
        spare: &mut [f32],
        strips: &mut S,
    ) -> Result<(), ExecError> {
        let c0 = self.channels(l);
        for b in bands {
            // The band's layer-`l` input laid out whole; its own rows (inside it) are written
            // in place and the received strips around them, so nothing is copied twice.
            let (x, _) = split(spare, region_len(&b.input, c0)?)?;
            if !b.computed.is_empty() {
                let mut own = FeatureViewMut::within(&mut *x, b.input, b.computed, c0)?;
                self.step(l, input, &mut own)?;
                self.send_parts(l, &own.as_view(), b.computed, strips)?;
            }
            let mut x = FeatureViewMut::new(x, b.input, c0)?;
            if b.computed != b.input {
                receive(&mut x, strips, self.plan, l)?;
            }
            // Straight into the band's rows of `whole`.
            self.step(l + 1, &x.as_view(), &mut whole.window(b.out)?)?;
        }
        Ok(())
    }

    /// `Î_2` over `region` for the chained pairs ([`band::CHAINED`]): the tile's own `Ô_1`
    /// rows computed by pair `(0, 1)` in bands from the tile `input`, received layer-1 strips
    /// stitched in. `buf` may start with `held`, the previous band's `Î_2` (empty: nothing
    /// held); the rows both read (layer 2's 3×3 window reaches two rows past a band) are moved
    /// to where `region` holds them, not computed again. Returns the view (at the start of
    /// `buf`) and the rest of `buf`.
    fn chained_input<'b, S: StripStore>(
        &self,
        input: &FeatureView<'_>,
        region: Region,
        held: Region,
        buf: &'b mut [f32],
        strips: &mut S,
    ) -> Result<(FeatureViewMut<'b>, &'b mut [f32]), ExecError> {
        let c = self.channels(1);
        let mut fresh = region;
        if !held.is_empty() {
            let kept = slide_rows(buf, held, region, c)?;
            // Only rows kept at the top count: the rest of the region is then one block.
            if !kept.is_empty() && kept.y.start == region.y.start {
                fresh.y.start = kept.y.end;
            }
        }
        let (x, rest) = split(buf, region_len(&region, c)?)?;
        let mut x = FeatureViewMut::new(x, region, c)?;
        if fresh.is_empty() {
            return Ok((x, rest));
        }
        let own = fresh.intersect(&self.plan.output(1));
        if !own.is_empty() {
            let bands = band::bands_over(self.stack, self.plan, 0, own);
            self.band_rows(0, bands, input, &mut x, rest, strips)?;
            self.send_parts(1, &x.as_view(), own, strips)?;
        }
        receive(&mut x.window(fresh)?, strips, self.plan, 1)?;
        Ok((x, rest))
    }

    /// The chained pairs `(0, 1)` and `(2, 3)` ([`band::CHAINED`]): `Ô_3` into `dst` from
    /// the tile `input`, `spare` as scratch; `Ô_0`, `Ô_1` and `Ô_2` exist only band by band.
    /// The bands send the parts of the layer-0, 1 and 2 strips they compute; a strip they did
    /// not fill is then computed as a region of its own.
    fn chain<S: StripStore>(
        &self,
        input: &FeatureView<'_>,
        dst: &mut [f32],
        spare: &mut [f32],
        strips: &mut Sending<'_, S>,
    ) -> Result<(), ExecError> {
        const L: usize = band::CHAINED;
        let (stack, plan) = (self.stack, self.plan);
        let mut whole = self.laid_out(L + 1, dst)?;
        let bands = band::bands(stack, plan, L).ok_or(ExecError::PlanMismatch)?;
        // The `Î_2` the start of `spare` holds from the previous band (see `chained_input`).
        let mut held = Region::default();
        for b in bands {
            let one = core::iter::once(b);
            if b.computed.is_empty() {
                // Every layer-2 row of this band arrives as strips: no `Î_2` is read.
                self.band_rows(L, one, input, &mut whole, spare, strips)?;
                held = Region::default();
                continue;
            }
            let region = stack.back(L, b.computed);
            let (x, rest) = self.chained_input(input, region, held, spare, strips)?;
            self.band_rows(L, one, &x.as_view(), &mut whole, rest, strips)?;
            held = region;
        }
        self.send_rest(0, input, spare, strips)?;
        for side in Side::ALL {
            let r = plan.send(1, side);
            if r.is_empty() || strips.filled(1, side, r) {
                continue;
            }
            let (s, rest) = split(spare, region_len(&r, self.channels(1))?)?;
            let mut s = FeatureViewMut::new(s, r, self.channels(1))?;
            self.band_rows(
                0,
                band::bands_over(stack, plan, 0, r),
                input,
                &mut s,
                rest,
                strips,
            )?;
            strips.put(plan.tile(), 1, side, &s.as_view(), r)?;
        }
        for side in Side::ALL {
            let r = plan.send(L, side);
            if r.is_empty() || strips.filled(L, side, r) {
                continue;
            }
            let (x, rest) =
                self.chained_input(input, stack.back(L, r), Region::default(), spare, strips)?;
            let (s, _) = split(rest, region_len(&r, self.channels(L))?)?;
            let mut s = FeatureViewMut::new(s, r, self.channels(L))?;
            self.step(L, &x.as_view(), &mut s)?;
            strips.put(plan.tile(), L, side, &s.as_view(), r)?;
        }
        Ok(())
    }
}

/// `buf` cut after `n` values; a short buffer is [`ExecError::BufferTooSmall`] (the caller
/// checked [`scratch_elems`], so this never fires for a well-sized buffer).
fn split(buf: &mut [f32], n: usize) -> Result<(&mut [f32], &mut [f32]), ExecError> {
    if buf.len() < n {
        return Err(ExecError::BufferTooSmall {
            needed: n,
            available: buf.len(),
        });
    }
    Ok(buf.split_at_mut(n))
}

/// The tile's input and the second buffer's scratch for the first step: `held` whole beside a
/// caller's view, or its head beside an input cut into its end ([`TileInput::InB`]).
fn first<'h>(
    stack: &FusedStack<'_>,
    plan: &TilePlan,
    input: TileInput<'h>,
    held: &'h mut [f32],
) -> Result<(FeatureView<'h>, &'h mut [f32]), ExecError> {
    match input {
        TileInput::View(input) => Ok((*input, held)),
        TileInput::InB => {
            let (head, tail) = held.split_at_mut(slot_at(stack, plan, held.len())?);
            let input = FeatureView::new(tail, plan.input(0), stack.input().c)?;
            Ok((input, head))
        }
    }
}

/// Where a tile's layer-0 input is.
#[derive(Clone, Copy, Debug)]
pub enum TileInput<'j> {
    /// A view covering `plan.input(0)` with all input channels, held by the caller.
    View(&'j FeatureView<'j>),
    /// Cut by the caller into the end of `buf_b` ([`input_slot`]): the tile reads it during its
    /// first step, which takes its scratch from the rest of `buf_b`, so a node holds no input
    /// beside the two buffers ([`buffer_elems_in`] sizes them).
    InB,
}

/// Where a [`TileInput::InB`] tile's input goes: the last `|plan.input(0)| · C_0` values of
/// `buf_b`, channel by channel, row by row over `plan.input(0)`.
pub fn input_slot<'b>(
    stack: &FusedStack<'_>,
    plan: &TilePlan,
    buf_b: &'b mut [f32],
) -> Result<&'b mut [f32], ExecError> {
    let at = slot_at(stack, plan, buf_b.len())?;
    Ok(&mut buf_b[at..])
}

/// Where [`input_slot`] starts in a second buffer of `len` values.
fn slot_at(stack: &FusedStack<'_>, plan: &TilePlan, len: usize) -> Result<usize, ExecError> {
    let n = region_len(&plan.input(0), stack.input().c)?;
    len.checked_sub(n).ok_or(ExecError::BufferTooSmall {
        needed: n,
        available: len,
    })
}

/// [`buffer_elems`] when the input is cut into the second buffer ([`TileInput::InB`]; see
/// [`band::buffer_elems_in`]).
pub fn buffer_elems_in(stack: &FusedStack<'_>, plan: &TilePlan) -> Result<[usize; 2], ExecError> {
    elems_of(band::buffer_elems_in(stack, plan))
}

/// One tile to run, each part named: the model, the tile's plan and input, the scratch
/// buffers and the strip store [`run_tile`] works with.
#[derive(Debug)]
pub struct TileJob<'j, K, S> {
    /// The layer kernels.
    pub kernels: &'j K,
    /// The fused layers `0..L`.
    pub stack: &'j FusedStack<'j>,
    /// Their weights.
    pub weights: &'j Weights<'j>,
    /// The tile's regions at every layer.
    pub plan: &'j TilePlan,
    /// Where the layer-0 input is.
    pub input: TileInput<'j>,
    /// First ping-pong buffer: at least the first [`buffer_elems`] value long.
    pub buf_a: &'j mut [f32],
    /// Second ping-pong buffer: at least the second [`buffer_elems`] value long (of
    /// [`buffer_elems_in`] with [`TileInput::InB`]).
    pub buf_b: &'j mut [f32],
    /// Where a level-0 Reuse tile puts its strips and a level-1 Reuse tile gets its
    /// neighbours'.
    pub strips: &'j mut S,
}

/// Runs layers `0..L` of `job.stack` on one planned tile and returns the grid tile of the last
/// layer's output, written at the start of `out`.
///
/// A `job.input` view must cover `plan.input(0)` with all input channels; an input in the
/// second buffer ([`TileInput::InB`]) fills its [`input_slot`], and `buf_b` needs the second
/// [`buffer_elems_in`] value. `buf_a` and `buf_b` need the
/// two [`buffer_elems`] values (at most `MemoryPlan::tile_buffers_elems`; [`scratch_elems`]
/// each always does). A level-0 Reuse tile
/// `put`s each of its send strips as soon as the layer is done (the layers run in bands send
/// theirs in parts, band by band, with [`StripStore::put_part`]; a strip the bands do not
/// fill is computed on its own after them); a level-1 Reuse tile stitches each
/// next input (each band's, in a banded pair) from its own output plus the strips it `get`s,
/// and fails with [`ExecError::MissingStrip`] when one is absent.
pub fn run_tile<'o, K: Kernels, S: StripStore>(
    job: TileJob<'_, K, S>,
    out: &'o mut [f32],
) -> Result<FeatureView<'o>, ExecError> {
    let TileJob {
        kernels,
        stack,
        weights,
        plan,
        input,
        buf_a,
        buf_b,
        strips,
    } = job;
    if plan.len() != stack.len() {
        return Err(ExecError::PlanMismatch);
    }
    let [need_a, need_b] = match input {
        TileInput::View(input) => {
            let needed = plan.input(0);
            if !input.region().covers(&needed) || input.channels() != stack.input().c {
                return Err(ExecError::InputMismatch {
                    needed,
                    have: input.region(),
                });
            }
            buffer_elems(stack, plan)?
        }
        TileInput::InB => buffer_elems_in(stack, plan)?,
    };
    for (needed, available) in [(need_a, buf_a.len()), (need_b, buf_b.len())] {
        if available < needed {
            return Err(ExecError::BufferTooSmall { needed, available });
        }
    }
    let last = stack.len() - 1;
    let (tile_region, out_c) = (plan.output(last), stack.output().c);
    let out_len = region_len(&tile_region, out_c)?;
    if out.len() < out_len {
        return Err(ExecError::OutputTooSmall {
            needed: out_len,
            available: out.len(),
        });
    }

    let tile = Tile {
        kernels,
        stack,
        weights,
        plan,
    };
    let strips = &mut Sending::new(strips);
    let mut src = Src::Input;
    let mut l = 0;
    while l < last {
        // Write into the buffer not holding the input.
        let dst = if src == Src::A { Src::B } else { Src::A };
        // The region `dst` is laid out as once layer `l` (as advanced) is done.
        let layout = if l == 0 && band::chained(stack, plan) {
            // Layers 0-3 at once; what follows handles layer 3's output.
            let l3 = band::CHAINED + 1;
            let o_len = region_len(&band::output_layout(plan, l3), stack.layers()[l3].output.c)?;
            let (free, held) = pick(buf_a, buf_b, dst);
            let (o, _) = split(free, o_len)?;
            let (input, held) = first(stack, plan, input, held)?;
            tile.chain(&input, o, held, strips)?;
            l = l3;
            band::output_layout(plan, l)
        } else if let Some(bands) = band::bands(stack, plan, l) {
            // Layer l exists only band by band; what follows handles layer l + 1's output.
            let laid = band::output_layout(plan, l + 1);
            let o_len = region_len(&laid, stack.layers()[l + 1].output.c)?;
            let (free, held) = pick(buf_a, buf_b, dst);
            if src == Src::Input {
                let (o, _) = split(free, o_len)?;
                let (input, held) = first(stack, plan, input, held)?;
                tile.banded_pair(l, bands, &input, o, held, strips)?;
            } else {
                let i = FeatureView::new(held, plan.input(l), stack.layers()[l].input.c)?;
                let (o, spare) = split(free, o_len)?;
                tile.banded_pair(l, bands, &i, o, spare, strips)?;
            }
            l += 1;
            laid
        } else {
            let layer = &stack.layers()[l];
            let (free, held) = pick(buf_a, buf_b, dst);
            let laid = band::output_layout(plan, l);
            let mut o = FeatureViewMut::within(free, laid, plan.output(l), layer.output.c)?;
            if src == Src::Input {
                tile.step(l, &first(stack, plan, input, held)?.0, &mut o)?;
            } else {
                let i = FeatureView::new(held, plan.input(l), layer.input.c)?;
                tile.step(l, &i, &mut o)?;
            }
            laid
        };
        let cout = stack.layers()[l].output.c;
        let computed = plan.output(l);
        // The other buffer's content (this layer's input) is dead now: use it as scratch.
        let (done, spare) = pick(buf_a, buf_b, dst);
        let done_view = FeatureView::new(done, layout, cout)?;
        for side in Side::ALL {
            let r = plan.send(l, side);
            if !r.is_empty() {
                strips.put(plan.tile(), l, side, &done_view, r)?;
            }
        }
        let next = plan.input(l + 1);
        if next == layout {
            // Written in place into the next input: the received strips go around it.
            if layout != computed {
                let mut x = FeatureViewMut::new(done, next, cout)?;
                receive(&mut x, &*strips, plan, l)?;
            }
            src = dst;
            l += 1;
            continue;
        }
        let done = FeatureView::new(done, computed, cout)?;
        let mut stitched = FeatureViewMut::new(spare, next, cout)?;
        copy_overlap(&done, &mut stitched);
        receive(&mut stitched, &*strips, plan, l)?;
        // The plan checked that Ô_ℓ plus the strips cover Î_{ℓ+1}.
        src = if dst == Src::A { Src::B } else { Src::A };
        l += 1;
    }
    {
        let held: &[f32] = match src {
            Src::A => buf_a,
            _ => buf_b,
        };
        let mut o = FeatureViewMut::new(&mut *out, tile_region, out_c)?;
        if src == Src::Input {
            let input = match input {
                TileInput::View(input) => *input,
                TileInput::InB => {
                    let at = slot_at(stack, plan, buf_b.len())?;
                    FeatureView::new(&buf_b[at..], plan.input(0), stack.input().c)?
                }
            };
            tile.step(last, &input, &mut o)?;
        } else {
            let i = FeatureView::new(held, plan.input(last), stack.layers()[last].input.c)?;
            tile.step(last, &i, &mut o)?;
        }
    }
    Ok(FeatureView::new(out, tile_region, out_c)?)
}

/// Key and placement of one strip in an [`ArrayStripStore`].
#[derive(Clone, Copy, Debug)]
struct Slot {
    tile: usize,
    layer: usize,
    side: Side,
    at: usize,
    region: Region,
    channels: u32,
}

/// A fixed-capacity, allocation-free strip store: up to `SLOTS` strips sharing an arena of
/// `ELEMS` f32. Strips are appended; storing a key again appends a fresh copy that shadows the
/// old one. [`ExecError::StoreFull`] when either capacity is exceeded; `clear` between frames.
#[derive(Clone, Debug)]
pub struct ArrayStripStore<const SLOTS: usize, const ELEMS: usize> {
    arena: [f32; ELEMS],
    used: usize,
    slots: [Option<Slot>; SLOTS],
    count: usize,
}

impl<const SLOTS: usize, const ELEMS: usize> Default for ArrayStripStore<SLOTS, ELEMS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SLOTS: usize, const ELEMS: usize> ArrayStripStore<SLOTS, ELEMS> {
    /// An empty store.
    pub const fn new() -> Self {
        ArrayStripStore {
            arena: [0.0; ELEMS],
            used: 0,
            slots: [None; SLOTS],
            count: 0,
        }
    }

    /// Forgets every strip.
    pub fn clear(&mut self) {
        self.used = 0;
        self.count = 0;
        self.slots = [None; SLOTS];
    }

    /// Number of strips held.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// True when no strip is held.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl<const SLOTS: usize, const ELEMS: usize> ArrayStripStore<SLOTS, ELEMS> {
    /// The newest slot stored under the key.
    fn slot(&self, tile: usize, layer: usize, side: Side) -> Option<&Slot> {
        self.slots[..self.count]
            .iter()
            .rev()
            .flatten()
            .find(|s| (s.tile, s.layer, s.side) == (tile, layer, side))
    }

    /// Room for a new strip `region` of `channels` under the key, appended after the others
    /// (shadowing an older one): its values, not yet written.
    fn append(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        region: Region,
        channels: u32,
    ) -> Result<&mut [f32], ExecError> {
        let at = self.used;
        let end = at
            .checked_add(region_len(&region, channels)?)
            .filter(|&e| e <= ELEMS)
            .ok_or(ExecError::StoreFull)?;
        let slot = self.slots.get_mut(self.count).ok_or(ExecError::StoreFull)?;
        *slot = Some(Slot {
            tile,
            layer,
            side,
            at,
            region,
            channels,
        });
        self.used = end;
        self.count += 1;
        Ok(&mut self.arena[at..end])
    }
}

impl<const SLOTS: usize, const ELEMS: usize> StripStore for ArrayStripStore<SLOTS, ELEMS> {
    fn put(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        from: &FeatureView<'_>,
        region: Region,
    ) -> Result<(), ExecError> {
        // A strip the view misses is refused as such, before the store counts its room.
        from.check_covers(region)?;
        let values = self.append(tile, layer, side, region, from.channels())?;
        Ok(from.copy_part(region, values, region)?)
    }

    fn put_part(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        from: &FeatureView<'_>,
        region: Region,
        part: Region,
    ) -> Result<(), ExecError> {
        from.check_covers(part)?;
        let channels = from.channels();
        let values = match self.slot(tile, layer, side) {
            Some(s) if (s.region, s.channels) == (region, channels) => {
                let (at, len) = (s.at, region_len(&region, channels)?);
                &mut self.arena[at..at + len]
            }
            _ => {
                let values = self.append(tile, layer, side, region, channels)?;
                values.fill(0.0);
                values
            }
        };
        Ok(from.copy_part(part, values, region)?)
    }

    fn get(&self, tile: usize, layer: usize, side: Side) -> Option<FeatureView<'_>> {
        // Newest first, so a re-put key shadows the old copy.
        let s = self.slot(tile, layer, side)?;
        FeatureView::new(&self.arena[s.at..self.used], s.region, s.channels).ok()
    }
}
