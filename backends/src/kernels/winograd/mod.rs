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
#[allow(unsafe_code)]
mod stages;
#[allow(unsafe_code)]
mod transform;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

pub use form::Form;

use super::threads::Team;
use super::{Fma, Isa};
use filters::Prepared;
use geo::Geo;
use isa::Path;
use stages::{InputJob, ProductJob};

/// Output channels per GEMM tile row block.
const MR: usize = 6;

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
    prepared: Option<Arc<Vec<Prepared>>>,
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
            prepared: None,
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

    /// Splits each conv over `threads` threads (by block rows, or by output channels for deep
    /// layers and thin calls: each thread writes only its own outputs; results do not depend
    /// on it).
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

    /// Transforms the filters of every Winograd layer of `weights` once; later calls with
    /// those layers' parameters use them.
    pub fn prepare<'a>(self, weights: &Weights<'a>) -> Winograd<'a> {
        let net = weights.network();
        let mut done = Vec::new();
        for (l, layer) in net.layers().iter().enumerate().take(weights.layers()) {
            let (LayerKind::Conv(conv), Some(params)) = (&layer.kind, weights.conv(l)) else {
                continue;
            };
            if let Some(form) = self.form_for(conv, layer.input) {
                done.push(Prepared::new(form, &params, layer.input.c as usize));
            }
        }
        Winograd {
            direct: self.direct,
            form: self.form,
            min_channels: self.min_channels,
            table: self.table,
            prepared: Some(Arc::new(done)),
            _weights: PhantomData,
        }
    }

    /// The instruction set in use.
    pub fn isa(&self) -> Isa {
        self.direct.isa()
    }

    /// Threads per conv.
    pub fn threads(&self) -> usize {
        self.direct.threads()
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
        let lanes = geo
            .chunks(0, geo.nby)
            .map(|ch| columns::used_by(ch.n * geo.nbx, isa::lane_step(Path::of(self.isa()))))
            .sum::<usize>();
        Some(Work {
            form,
            blocks: (geo.nbx * geo.nby) as u64,
            lanes: lanes as u64,
        })
    }

    fn prepared_for(&self, form: Form, params: &ConvParams<'_>) -> Option<&Prepared> {
        let all = self.prepared.as_deref()?;
        all.iter().find(|p| p.is_for(form, params))
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
        let geo = Geo::new(form, conv, map, region);
        let owned;
        let (u, post): (&[f32], &[(f32, f32)]) = match self.prepared_for(form, params) {
            Some(p) => (&p.u, &p.post),
            None => {
                let mut t = alloc::vec![0.0; filters::len(form, geo.c, geo.k)];
                filters::transform(form, params.weights, geo.c, geo.k, &mut t);
                owned = (t, filters::post(params, geo.k));
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
        split(&self.direct.team, &job, out.data(), self.threads());
    }
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
    /// Computes output channel blocks `kb` of block `rows` (call-relative) chunk by
    /// chunk with this thread's scratch; `out` holds, per output channel of `kb`, the region
    /// rows from map row `y0` on that those blocks cover.
    fn run(&self, rows: Range<usize>, kb: Range<usize>, out: &mut [&mut [f32]], y0: usize) {
        let geo = self.geo;
        let nkb = kb.len();
        with_scratch(|s| {
            for chunk in geo.chunks(rows.start, rows.end) {
                let pp = geo.pp(chunk.n);
                grow(&mut s.row, geo.row_len());
                grow(&mut s.h, geo.prow(chunk.n) * geo.h_row());
                grow(&mut s.v, geo.c * geo.e * pp);
                grow(&mut s.m, nkb * MR * geo.e * pp);
                isa::input(
                    self.path,
                    InputJob {
                        geo,
                        chunk,
                        input: self.input,
                        row: &mut s.row,
                        h: &mut s.h,
                        v: &mut s.v[..geo.c * geo.e * pp],
                    },
                );
                isa::product(
                    self.path,
                    ProductJob {
                        geo,
                        chunk,
                        kb0: kb.start,
                        u: self.u,
                        v: &s.v[..geo.c * geo.e * pp],
                        m: &mut s.m[..nkb * MR * geo.e * pp],
                        post: self.post,
                        leaky: self.leaky,
                        out: &mut *out,
                        y0,
                    },
                );
            }
        });
    }
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
            return self.direct.conv(conv, map, params, input, out);
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

/// Output channels per thread from which a small call ([`SPLIT_BLOCKS`]) splits its output
/// channels between threads rather than its block rows: split by rows, each thread would read
/// all of the large transformed filters for a few blocks and leave its last lane vectors part
/// empty; split by channels, each thread reads only its own filters and transforms the whole
/// (small) input itself.
const SPLIT_CHANNELS: usize = 256;

/// Blocks below which a deep call ([`SPLIT_CHANNELS`]) splits by channels: tiles of the deep
/// layers (a 13×13 tile is 16 F4 blocks). Whole 38×38 maps (100 F4 blocks) split by rows:
/// with the filters prefetched in the GEMM, the input transform each thread repeats costs
/// more than the filters it shares (YOLOv2 layers 12/14 on 2 threads: 1.86× one thread by
/// rows, 1.76× by channels).
const SPLIT_BLOCKS: usize = 64;

/// Runs the call over `threads` threads (the caller's thread takes the last share), each with
/// its own scratch, writing only its own outputs, so threads share nothing they write and need
/// no barrier. Small calls of deep layers ([`SPLIT_CHANNELS`]) and calls of fewer block rows
/// than threads split output channel blocks (each thread transforms every input block); the rest split the
/// `block rows × channel blocks` work in row-major order into equal shares ([`shares`]), so
/// an odd number of block rows does not leave one thread a whole row more: a row two threads
/// share is input-transformed by both, each multiplying its own channel blocks. `out` is the
/// output over the region, `[k][y][x]`.
fn split(team: &Team, job: &Rows<'_>, out: &mut [f32], threads: usize) {
    let geo = job.geo;
    let r = geo.region;
    let (m, rw, rh) = (geo.m, r.width() as usize, r.height() as usize);
    let nkb = geo.kp / MR;
    // Also by channels when there are fewer block rows than threads (the thin bands of
    // banded layers: one block row of F4 per band of layer 4).
    let deep_and_small = geo.k >= SPLIT_CHANNELS * threads && geo.nbx * geo.nby < SPLIT_BLOCKS;
    let by_channels = threads > 1 && (deep_and_small || geo.nby < threads);
    let threads = if by_channels {
        threads.clamp(1, nkb)
    } else {
        threads.clamp(1, geo.nby * nkb)
    };
    // Each thread's pieces (block rows, channel blocks), in row-major order over threads,
    // each cut into chunks of nearly equal rows (9 rows in chunks of 7 would leave a chunk
    // of 2: its own pass over the transformed filters for little work).
    let pieces: Vec<Vec<(Range<usize>, Range<usize>)>> = (0..threads)
        .map(|t| {
            let mine = if by_channels {
                alloc::vec![(0..geo.nby, nkb * t / threads..nkb * (t + 1) / threads)]
            } else {
                shares(geo.nby, nkb, threads, t)
            };
            mine.into_iter()
                .flat_map(|(rows, kb)| {
                    let n = rows.len().div_ceil(geo.rows);
                    let cut = move |i: usize| rows.start + rows.len() * i / n;
                    (0..n).map(move |i| (cut(i)..cut(i + 1), kb.clone()))
                })
                .collect()
        })
        .collect();
    // First region row of block row `b` (call-relative), clamped to the region.
    let row_of = |b: usize| ((geo.by0 + b) * m).clamp(r.y.start as usize, r.y.end as usize);
    let mut parts: Vec<Vec<Part<'_>>> = pieces
        .iter()
        .map(|mine| {
            mine.iter()
                .map(|(rows, kb)| Part {
                    rows: rows.clone(),
                    kb: kb.clone(),
                    out: Vec::with_capacity((kb.len() * MR).min(geo.k)),
                    y0: row_of(rows.start),
                })
                .collect()
        })
        .collect();
    // Each plane's rows go, in order, to the pieces holding its channel block: for any one
    // channel block, those pieces come in row order and cover every block row once.
    for (k, plane) in out.chunks_exact_mut(rw * rh).take(geo.k).enumerate() {
        let mut rest = plane;
        for part in parts.iter_mut().flatten() {
            if !part.kb.contains(&(k / MR)) {
                continue;
            }
            let rows = part.rows.clone();
            let (mine, tail) = rest.split_at_mut((row_of(rows.end) - row_of(rows.start)) * rw);
            part.out.push(mine);
            rest = tail;
        }
    }
    team.map(parts, |mut mine| mine.iter_mut().for_each(|p| p.run(job)));
}

/// Thread `t`'s share of `nby` block rows × `nkb` channel blocks split over `threads` in
/// row-major order: pieces `(block rows, channel blocks)` — a partial first row, whole rows, a
/// partial last row — that together hold `nby·nkb·t/threads..nby·nkb·(t+1)/threads`.
fn shares(nby: usize, nkb: usize, threads: usize, t: usize) -> Vec<(Range<usize>, Range<usize>)> {
    let total = nby * nkb;
    let (mut u, end) = (total * t / threads, total * (t + 1) / threads);
    let mut pieces = Vec::new();
    while u < end {
        let (b, j) = (u / nkb, u % nkb);
        if j != 0 || end < (b + 1) * nkb {
            let j1 = nkb.min(j + (end - u));
            pieces.push((b..b + 1, j..j1));
            u += j1 - j;
        } else {
            let b1 = end / nkb;
            pieces.push((b..b1, 0..nkb));
            u = b1 * nkb;
        }
    }
    pieces
}

/// One thread's share of a call: block rows, output channel blocks, and its output planes'
/// rows from map row `y0` on.
struct Part<'o> {
    rows: Range<usize>,
    kb: Range<usize>,
    out: Vec<&'o mut [f32]>,
    y0: usize,
}

impl Part<'_> {
    fn run(&mut self, job: &Rows<'_>) {
        job.run(self.rows.clone(), self.kb.clone(), &mut self.out, self.y0);
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

#[cfg(test)]
mod tests {
    extern crate alloc;

    use alloc::vec::Vec;

    use super::shares;

    /// The shares tile `rows × channel blocks` in row-major order, thread after thread, each
    /// within one unit of the others, and a share of whole rows is one piece.
    #[test]
    fn shares_split_the_work_evenly_in_order() {
        for nby in 1..24 {
            for nkb in 1..12 {
                for threads in 1..=4.min(nby * nkb) {
                    let mut next = 0;
                    let mut sizes = Vec::new();
                    for t in 0..threads {
                        let mut size = 0;
                        for (rows, kb) in shares(nby, nkb, threads, t) {
                            assert!(!rows.is_empty() && !kb.is_empty() && rows.end <= nby);
                            assert!(kb.end <= nkb);
                            assert!(rows.len() == 1 || kb == (0..nkb), "{rows:?} {kb:?}");
                            assert_eq!(rows.start * nkb + kb.start, next);
                            next = (rows.end - 1) * nkb + kb.end;
                            size += rows.len() * kb.len();
                        }
                        sizes.push(size);
                    }
                    assert_eq!(next, nby * nkb);
                    let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                    assert!(hi - lo <= 1, "{nby}×{nkb} on {threads}: {sizes:?}");
                }
            }
        }
        // YOLOv2's layer 8 in F4 on two threads: 19 block rows of 43 channel blocks.
        assert_eq!(shares(19, 43, 2, 0), [(0..9, 0..43), (9..10, 0..21)]);
        assert_eq!(shares(19, 43, 2, 1), [(9..10, 21..43), (10..19, 0..43)]);
    }
}
