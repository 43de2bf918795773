//! Winograd convolutions for 3×3 stride-1 layers ([`Winograd`]): F(2×2,3×3) or F(4×4,3×3)
//! ([`Form`]), every other layer on the direct [`Fma`] kernels.
//!
//! A conv's outputs are computed in `m × m` blocks anchored at multiples of `m` in absolute
//! map coordinates: per block, the `α × α` input window (`α = m + 2`) of every input channel
//! is transformed (`Bᵀ d B`), multiplied element-wise with the transformed filters
//! (`U = G g Gᵀ`, computed once per layer by [`Winograd::prepare`]) and summed over input
//! channels — `α²` small GEMMs per chunk of blocks — and the sum is transformed back
//! (`Aᵀ M A`), then batch norm and activation are applied as in [`Fma`]. F4 does 36
//! multiplications per 16 outputs and input channel where direct convolution does 144.
//!
//! # Tiles stay bit-identical
//!
//! An output's value depends on where it sits in its block (each of the `m × m` positions is
//! a different sum), so blocks are anchored to the map, and a call computes every block its
//! output region touches, whole, exactly as the full frame does.
//!
//! With F4, a block's values also depend (through rounding) on its whole 6×6 input window,
//! not only on each output's 3×3 receptive field (F4's `Aᵀ` rows mix all of `M`'s rows, whose
//! `Bᵀ` rows mix inputs outside the field; in exact arithmetic those terms cancel, in floating
//! point they leave rounding). So an F4 call needs the input of the whole blocks:
//! [`Kernels::conv_alignment`] reports 4, and a plan made from
//! [`FusedStack::aligned`](tessera_core::ftp::FusedStack::aligned) rounds each F4 layer's
//! output region out to the block grid before taking its input region; a call whose input
//! view misses part of it is refused with [`KernelError::InputTooSmall`]. That widens tiles
//! (`tessera bench winograd` measures by how much).
//!
//! F2 needs no alignment: each row of its `Bᵀ` and `Aᵀ` touches only inputs of the outputs it
//! serves (output row 0 reads `Bᵀ` rows 0–2, which read input rows 0–2; output row 1 reads
//! rows 1–3, which read input rows 1–3), so every output is computed from its own receptive
//! field only, even in floating point. Inputs of a block outside the view are read as zero
//! and reach only outputs outside the region. F2 tiles plan exactly as direct ones.
//!
//! Each value is computed by one thread with the same operations whatever the region, chunk,
//! thread count or instruction set (`isa`), so tiled == full frame and `n` threads == one, bit
//! for bit.
//!
//! # Numerics
//!
//! Winograd's sums differ from direct convolution's: the transforms add and scale input
//! values before the products (F4's coefficients reach 5 in `Bᵀ`, 8 in `Aᵀ`), so the error
//! grows with `m`. The tests check every output against the reference within
//! `TOL_F2`/`TOL_F4 · Σ|w·x|`, and docs/kernels.md lists the measured worst case per layer.

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::marker::PhantomData;
use core::ops::Range;

use tessera_core::ftp::{FusedStack, Grid, Mode, PlanError};
use tessera_core::kernel::{aligned_input_region, check_conv_call, KernelError, Kernels};
use tessera_core::model::weights::{ConvParams, Weights};
use tessera_core::model::{Activation, Conv, LayerKind, MaxPool, Shape};
use tessera_core::region::Region;
use tessera_core::tensor::{FeatureView, FeatureViewMut};

pub mod choice;
mod columns;
mod filters;
mod form;
mod geo;
#[allow(unsafe_code)]
mod isa;
#[allow(unsafe_code)]
mod lanes;
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod neon;
mod split;
#[allow(unsafe_code)]
mod stages;
#[allow(unsafe_code)]
mod transform;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

pub use form::Form;

/// How a Winograd layer lays out its products ([`Winograd::with_layout`]); every layout
/// computes the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Per layer, by a count of the lanes its calls would pad ([`Winograd::channel_major`]).
    Auto,
    /// Blocks in the lanes: each chunk's blocks rounded up to whole lane vectors.
    Blocks,
    /// Output channels in the lanes (in groups of 16): no block lanes padded, the outputs
    /// transposed into their channel planes.
    Channels,
}

use super::conv::fold_all;
use super::pack::Prepacked;
use super::{Fma, Isa};
use filters::Prepared;
use geo::Chunk;
use geo::Geo;
use isa::Path;
use split::split;
use stages::{InputJob, ProductJob};

/// Output channels per GEMM tile row block.
const MR: usize = 6;

/// What storing one output value to its channel plane costs channel major, in lane
/// multiply-adds of the products ([`Winograd::channel_major`]), with what else channel major
/// loses on a whole map folded in. Fitted to YOLOv2-608 on AVX-512 before channel major's
/// output was transposed (docs/kernels.md): the 256→512 layers (F2 and F4 break even at 66
/// and 70) go channel major; kept for the other instruction sets, where nothing was measured.
const SCATTER: u64 = 32;

/// On AVX-512, layers of at least this many products per output value and output channel
/// (`α²·c / m²`) run channel major whatever their lanes pad: with the output transposed, their
/// whole maps are as fast that way and their tiles, which pad more lanes, faster. Fitted to
/// YOLOv2-608 (docs/kernels.md): F4 64→128 (144) gains, F4 32→64 (72) loses on its whole map.
const CM_PRODUCTS: usize = 144;

/// Fewest input channels a 3×3 layer needs to run as Winograd by default: below it (YOLOv2's
/// 3-channel layer 0) the transforms cost more than the products they save.
pub const MIN_CHANNELS: u32 = 16;

/// Winograd kernels for 3×3 stride-1 convs, [`Fma`] for the rest (see the module docs).
///
/// `'w` is the lifetime of the weights the kernel was [`prepare`](Winograd::prepare)d for.
#[derive(Clone, Debug)]
pub struct Winograd<'w> {
    direct: Fma,
    form: Form,
    min_channels: u32,
    /// Per class of layers, the method a cost model chose ([`Winograd::planned`]); layers
    /// not in it run in `form`.
    table: Option<Arc<Vec<(choice::Key, choice::Method)>>>,
    layout: Layout,
    prepared: Option<Arc<Vec<Prepared>>>,
    /// The direct layers' weights packed once ([`prepare`](Winograd::prepare)).
    packed: Option<Arc<Vec<Prepacked>>>,
    /// What holds the weights of a kernel [`prepare_owned`](Winograd::prepare_owned): kept
    /// alive, so the addresses its prepared layers are found by stay theirs.
    _owner: Option<Arc<dyn Any + Send + Sync>>,
    _weights: PhantomData<&'w [f32]>,
}

impl Default for Winograd<'_> {
    fn default() -> Self {
        Winograd::new()
    }
}

impl<'w> Winograd<'w> {
    /// F(4×4,3×3) on layers of at least [`MIN_CHANNELS`] input channels, the fastest
    /// instruction set of this machine, one thread; filters transformed per call until
    /// [`prepare`](Winograd::prepare)d.
    pub fn new() -> Self {
        Winograd {
            direct: Fma::new(),
            form: Form::F4,
            min_channels: MIN_CHANNELS,
            table: None,
            layout: Layout::Auto,
            prepared: None,
            packed: None,
            _owner: None,
            _weights: PhantomData,
        }
    }

    /// A given instruction set (for its vector variant; `Scalar` runs the generic code), or
    /// `None` if this machine cannot run it.
    pub fn with_isa(self, isa: Isa) -> Option<Self> {
        Some(Winograd {
            direct: Fma::with_isa(isa)?.with_threads(self.direct.threads()),
            ..self
        })
    }

    /// Splits each conv over `threads` threads (by block rows, or sharing each chunk's input
    /// transforms and splitting output channels where rows would pad more lanes: each thread
    /// writes only its own outputs; results do not depend on it).
    pub fn with_threads(self, threads: usize) -> Self {
        Winograd {
            direct: self.direct.with_threads(threads),
            ..self
        }
    }

    /// Runs every Winograd layer in `form`.
    pub fn with_form(self, form: Form) -> Self {
        Winograd {
            form,
            prepared: None,
            packed: None,
            _owner: None,
            ..self
        }
    }

    /// Lays out the products of every Winograd layer as `layout` (default [`Layout::Auto`]);
    /// results do not depend on it.
    pub fn with_layout(self, layout: Layout) -> Self {
        Winograd {
            layout,
            prepared: None,
            packed: None,
            _owner: None,
            ..self
        }
    }

    /// Runs 3×3 stride-1 layers of at least `c` input channels as Winograd (the rest direct).
    pub fn with_min_channels(self, c: u32) -> Self {
        Winograd {
            min_channels: c,
            ..self
        }
    }

    /// Transforms the filters of every Winograd layer of `weights` once, and packs the direct
    /// layers' weights for this kernel's threads; later calls with those layers' parameters
    /// use them (a tile's call would otherwise pack its layer's weights again).
    pub fn prepare<'a>(self, weights: &Weights<'a>) -> Winograd<'a> {
        self.prepared(weights, None)
    }

    /// As [`prepare`](Winograd::prepare), for the weights `view` finds in `owner`, which the
    /// kernel then holds: a kernel of no borrowed lifetime, for a thread that keeps it (a
    /// node's compute thread, whose model is shared). `view`'s error is returned as it is.
    pub fn prepare_owned<T, E>(
        self,
        owner: Arc<T>,
        view: impl FnOnce(&T) -> Result<Weights<'_>, E>,
    ) -> Result<Winograd<'static>, E>
    where
        T: Send + Sync + 'static,
    {
        let weights = view(&owner)?;
        let held: Arc<dyn Any + Send + Sync> = owner.clone();
        Ok(self.prepared(&weights, Some(held)))
    }

    /// What [`prepare`](Winograd::prepare) and [`prepare_owned`](Winograd::prepare_owned)
    /// make. The lifetime `'a` is the callers' to tie: to the weights, or to nothing when
    /// `owner` holds them.
    fn prepared<'a>(
        self,
        weights: &Weights<'_>,
        owner: Option<Arc<dyn Any + Send + Sync>>,
    ) -> Winograd<'a> {
        let net = weights.network();
        let mut done = Vec::new();
        let mut packed = Vec::new();
        for (l, layer) in net.layers().iter().enumerate().take(weights.layers()) {
            let (LayerKind::Conv(conv), Some(params)) = (&layer.kind, weights.conv(l)) else {
                continue;
            };
            if let Some(form) = self.form_for(conv, layer.input) {
                let cm = self.channel_major(form, conv, layer.input);
                done.push(Prepared::new(form, &params, layer.input.c as usize, cm));
            } else {
                packed.push(self.direct.prepack(conv, &params));
            }
        }
        Winograd {
            direct: self.direct,
            form: self.form,
            min_channels: self.min_channels,
            table: self.table,
            layout: self.layout,
            prepared: Some(Arc::new(done)),
            packed: Some(Arc::new(packed)),
            _owner: owner,
            _weights: PhantomData,
        }
    }

    /// True once [`prepare`](Winograd::prepare)d (or
    /// [`prepare_owned`](Winograd::prepare_owned)): calls with those weights reuse the
    /// transformed filters.
    pub fn is_prepared(&self) -> bool {
        self.prepared.is_some()
    }

    /// The instruction set in use.
    pub fn isa(&self) -> Isa {
        self.direct.isa()
    }

    /// Threads per conv.
    pub fn threads(&self) -> usize {
        self.direct.threads()
    }

    /// The direct kernel of the layers it does not transform, on the same threads (its
    /// workers are this kernel's: calls of both from one thread share them).
    pub fn direct(&self) -> &Fma {
        &self.direct
    }

    /// The form of the Winograd layers.
    pub fn form(&self) -> Form {
        self.form
    }

    /// Chooses F4, F2 or direct per layer of `stack` for one frame on `grid` in `mode`, by the
    /// cost model of [`choice`]: the method per layer that makes the whole plan cheapest
    /// (tiles widened by F4's block alignment included). Layers of equal conv and input
    /// shape share a method. Every node that plans the same stack, grid and mode gets the
    /// same choice, so tiles stay bit-identical to the full frame run with this kernel.
    /// [`prepare`](Winograd::prepare) afterwards, for the chosen forms.
    pub fn planned(
        self,
        stack: &FusedStack<'_>,
        grid: &Grid,
        mode: Mode,
    ) -> Result<Self, PlanError> {
        let table = choice::choose(&self, stack, grid, mode)?;
        Ok(self.with_table(table))
    }

    /// The form each layer of `stack` runs in (`None`: direct; pools `None`).
    pub fn layer_forms(&self, stack: &FusedStack<'_>) -> Vec<Option<Form>> {
        stack
            .layers()
            .iter()
            .map(|l| match &l.kind {
                LayerKind::Conv(c) => self.form_for(c, l.input),
                _ => None,
            })
            .collect()
    }

    /// This kernel with a method per class of layers (the rest in its form).
    fn with_table(self, table: Vec<(choice::Key, choice::Method)>) -> Self {
        Winograd {
            table: Some(Arc::new(table)),
            prepared: None,
            packed: None,
            _owner: None,
            ..self
        }
    }

    /// True for the convs this kernel may transform: 3×3 stride-1 of at least its minimum
    /// input channels.
    pub fn eligible(&self, conv: &Conv, map: Shape) -> bool {
        conv.size == 3 && conv.stride == 1 && conv.pad <= 2 && map.c >= self.min_channels
    }

    /// The form `conv` runs in, or `None` for direct convolution.
    pub fn form_for(&self, conv: &Conv, map: Shape) -> Option<Form> {
        if !self.eligible(conv, map) {
            return None;
        }
        let chosen = self.table.as_deref().and_then(|t| {
            t.iter()
                .find(|(key, _)| *key == (*conv, map))
                .map(|&(_, method)| method)
        });
        chosen.unwrap_or(Some(self.form))
    }

    /// What one call of `conv` over output `region` computes on one thread (`None`: the layer
    /// runs direct). Counted from the same block grid and chunks the call uses, so a bench
    /// can tell rounding to blocks and padded lanes apart from time.
    pub fn work(&self, conv: &Conv, map: Shape, region: Region) -> Option<Work> {
        let form = self.form_for(conv, map)?;
        if region.is_empty() {
            return Some(Work {
                form,
                blocks: 0,
                lanes: 0,
            });
        }
        let geo = Geo::new(form, conv, map, region);
        let step = if self.channel_major(form, conv, map) {
            1
        } else {
            isa::lane_step(Path::of(self.isa()))
        };
        let lanes = geo
            .chunks(0, geo.nby)
            .map(|ch| columns::used_by(ch.n * geo.nbx, step))
            .sum::<usize>();
        Some(Work {
            form,
            blocks: (geo.nbx * geo.nby) as u64,
            lanes: lanes as u64,
        })
    }

    /// Whether `conv` (in `form`, on input `map`) runs its products with output channels in
    /// the lanes (`stages::product_cm`). [`Layout::Auto`] counts, on the layer's whole-map
    /// call (one thread), what each layout adds: blocks in the lanes pad each chunk's blocks
    /// to whole vectors (`α²·c·k` multiply-adds per padded lane), channel major transposes
    /// its outputs into the channel planes (`SCATTER`, 32 lane multiply-adds per value); on
    /// AVX-512 a layer of at least `CM_PRODUCTS` products per output value runs channel major
    /// anyway (measured: its whole map no slower, its tiles faster). A layer's choice does not
    /// depend on the call, so its filters are laid out once (docs/kernels.md).
    pub fn channel_major(&self, form: Form, conv: &Conv, map: Shape) -> bool {
        match self.layout {
            Layout::Blocks => false,
            Layout::Channels => true,
            Layout::Auto => {
                // 3×3 stride 1: the output map is the input widened by `2·pad − 2`.
                let grow = |x: u32| (x + 2 * conv.pad).saturating_sub(2);
                let (w, h) = (grow(map.w), grow(map.h));
                if w == 0 || h == 0 {
                    return false;
                }
                let geo = Geo::new(form, conv, map, Region::full(w, h));
                let step = isa::lane_step(Path::of(self.isa()));
                let padded: usize = geo
                    .chunks(0, geo.nby)
                    .map(|ch| columns::used_by(ch.n * geo.nbx, step) - ch.n * geo.nbx)
                    .sum();
                let blocks = geo.nbx * geo.nby;
                let by_blocks = (padded * geo.e * geo.c * geo.kp) as u64;
                let by_channels =
                    (blocks * geo.m * geo.m * geo.k.div_ceil(lanes::W) * lanes::W) as u64 * SCATTER;
                let deep = geo.e * geo.c >= CM_PRODUCTS * geo.m * geo.m;
                by_blocks > by_channels || (deep && Path::of(self.isa()) == avx512())
            }
        }
    }

    fn prepared_for(&self, form: Form, params: &ConvParams<'_>, cm: bool) -> Option<&Prepared> {
        let all = self.prepared.as_deref()?;
        all.iter().find(|p| p.is_for(form, params, cm))
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        form: Form,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) {
        let region = out.region();
        let cm = self.channel_major(form, conv, map);
        let strides = out.strides();
        let geo = Geo::new(form, conv, map, region).writing(strides);
        let geo = if cm { geo.channel_major() } else { geo };
        let owned;
        let (u, post): (&[f32], &[(f32, f32)]) = match self.prepared_for(form, params, cm) {
            Some(p) => (&p.u, &p.post),
            None => {
                let t = filters::filters_of(form, params.weights, geo.c, geo.k, cm);
                owned = (t, fold_all(params, geo.k));
                (&owned.0, &owned.1)
            }
        };
        let job = Rows {
            path: Path::of(self.isa()),
            geo: &geo,
            input,
            u,
            post,
            leaky: conv.activation == Activation::Leaky,
        };
        split(
            &self.direct.team,
            &job,
            &mut out.data()[strides.offset..],
            self.threads(),
        );
    }
}

/// The AVX-512 path, or one that never matches where it does not exist.
fn avx512() -> Path {
    #[cfg(target_arch = "x86_64")]
    return Path::Avx512;
    #[cfg(not(target_arch = "x86_64"))]
    return Path::Generic;
}

/// What one Winograd call computes ([`Winograd::work`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Work {
    /// The form the call runs in.
    pub form: Form,
    /// Blocks of `m × m` outputs (the region rounded out to whole blocks).
    pub blocks: u64,
    /// Block lanes the products run over: each chunk's blocks rounded up to whole lane
    /// vectors, or half ones where the instruction set has cheap halves (the padded lanes
    /// cost as much as the used ones).
    pub lanes: u64,
}

/// What every thread of a call shares (read only).
struct Rows<'a> {
    path: Path,
    geo: &'a Geo,
    input: &'a FeatureView<'a>,
    u: &'a [f32],
    post: &'a [(f32, f32)],
    leaky: bool,
}

impl Rows<'_> {
    /// Transforms input `channels` of `chunk` into `v` (per transform element, the `V` rows of
    /// those channels) with this thread's buffers `s`.
    fn input(&self, chunk: Chunk, channels: Range<usize>, v: &mut [&mut [f32]], s: &mut Scratch) {
        let geo = self.geo;
        grow(&mut s.row, geo.row_len());
        grow(&mut s.h, geo.h_len(chunk.n));
        isa::input(
            self.path,
            InputJob {
                geo,
                chunk,
                input: self.input,
                row: &mut s.row,
                h: &mut s.h,
                channels,
                v,
            },
        );
    }

    /// Multiplies output channel blocks `kb` over every block of `chunk` (`v`: its `V` of all
    /// input channels, products in `m`) and transforms them into `out`: per output channel of
    /// `kb`, the region rows from map row `y0` on that the chunk covers.
    fn product(
        &self,
        chunk: Chunk,
        kb: Range<usize>,
        v: &[f32],
        m: &mut Vec<f32>,
        out: &mut [&mut [f32]],
        y0: usize,
    ) {
        let geo = self.geo;
        let len = if geo.is_channel_major() {
            chunk.n * geo.nbx * geo.cm_strides(kb.len() * geo.kr).1
        } else {
            kb.len() * MR * geo.e * geo.pp(chunk.n)
        };
        grow(m, len);
        isa::product(
            self.path,
            ProductJob {
                geo,
                chunk,
                kb0: kb.start,
                nkb: kb.len(),
                u: self.u,
                v,
                m: &mut m[..len],
                post: self.post,
                leaky: self.leaky,
                out,
                y0,
            },
        );
    }

    /// Computes output channel blocks `kb` of block `rows` (call-relative) chunk by
    /// chunk with this thread's scratch; `out` holds, per output channel of `kb`, the region
    /// rows from map row `y0` on that those blocks cover.
    fn run(&self, rows: Range<usize>, kb: Range<usize>, out: &mut [&mut [f32]], y0: usize) {
        let geo = self.geo;
        with_scratch(|s| {
            for chunk in geo.chunks(rows.start, rows.end) {
                let pp = geo.pp(chunk.n);
                let len = geo.c * geo.e * pp;
                grow(&mut s.v, len);
                let mut v = core::mem::take(&mut s.v);
                self.input(chunk, 0..geo.c, &mut xi_rows(&mut v[..len], geo.c * pp), s);
                self.product(chunk, kb.clone(), &v[..len], &mut s.m, out, y0);
                s.v = v;
            }
        });
    }
}

/// `v` (a chunk's `V[ξ][c][pp]`) cut into its rows per transform element, `per` values each.
fn xi_rows(v: &mut [f32], per: usize) -> Vec<&mut [f32]> {
    v.chunks_exact_mut(per).collect()
}

impl Kernels for Winograd<'_> {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        let Some(form) = self.form_for(conv, map) else {
            let pre = self.packed.as_deref().map_or(&[][..], |all| &all[..]);
            return self.direct.conv_with(conv, map, params, pre, input, out);
        };
        check_conv_call(conv, map, params, input, out)?;
        let region = out.region();
        if region.is_empty() {
            return Ok(());
        }
        let needed = aligned_input_region(conv, map, form.alignment(), region)
            .ok_or(KernelError::OutputOutsideMap)?;
        if !input.region().covers(&needed) {
            return Err(KernelError::InputTooSmall {
                needed,
                have: input.region(),
            });
        }
        self.run(form, conv, map, params, input, out);
        Ok(())
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        self.direct.maxpool(pool, map, input, out)
    }

    fn conv_alignment(&self, conv: &Conv, map: Shape) -> u32 {
        self.form_for(conv, map).map_or(1, |f| f.alignment())
    }
}

/// Each thread's buffers, kept between calls.
#[derive(Default)]
struct Scratch {
    row: Vec<f32>,
    h: Vec<f32>,
    v: Vec<f32>,
    m: Vec<f32>,
}

/// Grows `v` to at least `len` elements (never shrinks: kept between calls).
fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.reserve_exact(len - v.len());
        v.resize(len, 0.0);
    }
}

#[cfg(feature = "std")]
std::thread_local! {
    static SCRATCH: core::cell::RefCell<Scratch> = core::cell::RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers (fresh ones without `std`).
fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    #[cfg(feature = "std")]
    {
        SCRATCH.with(|s| {
            let mut v = s.take();
            let r = f(&mut v);
            s.replace(v);
            r
        })
    }
    #[cfg(not(feature = "std"))]
    {
        f(&mut Scratch::default())
    }
}

/// Runs `f` with this thread's `V` buffer taken out of its scratch (its other buffers stay
/// for this thread's own parts of the call; a fresh one without `std`): the `V` that a call's
/// threads share.
fn with_v<T>(f: impl FnOnce(&mut Vec<f32>) -> T) -> T {
    #[cfg(feature = "std")]
    {
        let mut v = SCRATCH.with(|s| core::mem::take(&mut s.borrow_mut().v));
        let r = f(&mut v);
        SCRATCH.with(|s| s.borrow_mut().v = v);
        r
    }
    #[cfg(not(feature = "std"))]
    {
        f(&mut Vec::new())
    }
}
