//! Fast conv kernels: FMA micro-kernels vectorised over output columns, for x86_64 (AVX2+FMA,
//! chosen at run time) and aarch64 (NEON), a portable scalar-FMA path with the same results,
//! and (with `std`) a tile's output channels split over threads.
//!
//! # What every output is
//!
//! [`Fma`] defines output `(o, x, y)` of a conv as
//!
//! ```text
//! acc = 0.0
//! for c in 0..C, for ky in the kernel rows whose input row lies in the map, for kx in 0..k:
//!     acc = fma(w[o][c][ky][kx], x̃[c][y·s − p + ky][x·s − p + kx], acc)      (one rounding)
//! out = fma(acc, a_o, b_o), then leaky: out ≤ 0 → out · 0.1
//! ```
//!
//! where `x̃` is the input with zeros outside the map's columns (rows outside the map are
//! skipped), `a_o = γ/(√σ² + 10⁻⁶)` and `b_o = β − μ·a_o` are the batch norm and bias folded in
//! double precision and rounded to f32 (without batch norm `a = 1`, `b = β`). Nothing in it
//! depends on the output region, on which lane of a vector or which thread computes the
//! output, or on the instruction set: the AVX2 and NEON micro-kernels and the scalar path agree
//! bit for bit, a tiled run equals the full frame bit for bit, and `n` threads equal one.
//!
//! # How it differs from `Reference`/`Portable`
//!
//! Those round the product and the sum separately and apply Darknet's batch norm
//! `((acc − μ)/(√σ² + 10⁻⁶))·γ + β` step by step; here each tap is one fused multiply-add and the
//! batch norm is one fused affine map. Both sums are within `n·u·Σ|w·x|` of the exact one
//! (`n = C·k²` taps, `u = 2⁻²⁴`), so for every output
//!
//! ```text
//! |out − out_ref| ≤ 2(n + 4)·u·(|a|·(Σ|w·x| + |μ|) + |β|)
//! ```
//!
//! (the property tests check exactly this bound; observed errors are far smaller, about
//! `√n·u` relative). Max pools are exact and delegate to [`Portable`].
//!
//! # Layout and blocking
//!
//! The input region a conv needs is copied once per call into a zero-padded CHW buffer (rows of
//! the map the region needs, columns widened by the padding and rounded up to whole vectors), so
//! the micro-kernels never test borders. A micro-kernel computes 4 output channels × 24 columns
//! (AVX2: 4 × 3 ymm accumulators) or 4 × 16 (NEON: 4 × 4 q registers) of one output row,
//! broadcasting each weight and loading shifted input vectors; the last block of a row is
//! narrower and stores only its valid columns. Strides other than 1 take the scalar path.

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

use alloc::vec;
use alloc::vec::Vec;

use tessera_core::kernel::{input_span, KernelError, Kernels, Portable};
use tessera_core::model::weights::ConvParams;
use tessera_core::model::{Activation, Conv, MaxPool, Shape};
use tessera_core::region::Region;
use tessera_core::tensor::{FeatureView, FeatureViewMut};

#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod neon;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

/// Output channels per micro-kernel call.
const R: usize = 4;
/// Columns the padded rows are rounded up to (the widest vector, in f32 lanes).
const LANES: usize = 8;

/// The instruction set a [`Fma`] kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Scalar fused multiply-adds (any target; the oracle of the vector paths).
    Scalar,
    /// x86_64 AVX2 + FMA, 8 lanes.
    Avx2Fma,
    /// aarch64 Advanced SIMD, 4 lanes.
    Neon,
}

impl Isa {
    /// The fastest instruction set this machine runs (detected at run time with `std` on
    /// x86_64, from the compile-time target features without it).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            return Isa::Avx2Fma;
        }
        #[cfg(target_arch = "aarch64")]
        if neon::available() {
            return Isa::Neon;
        }
        Isa::Scalar
    }

    /// True when this machine can run `self`.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => x86::available(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::available(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// FMA conv kernels (see the module docs for the exact per-output definition).
#[derive(Clone, Copy, Debug)]
pub struct Fma {
    isa: Isa,
    threads: usize,
}

impl Default for Fma {
    fn default() -> Self {
        Fma::new()
    }
}

impl Fma {
    /// The fastest instruction set of this machine, one thread.
    pub fn new() -> Self {
        Fma {
            isa: Isa::detect(),
            threads: 1,
        }
    }

    /// A given instruction set, or `None` if this machine cannot run it.
    pub fn with_isa(isa: Isa) -> Option<Self> {
        isa.is_available().then_some(Fma { isa, threads: 1 })
    }

    /// Splits each conv's output channels over `threads` threads (at least 1; with `std` only,
    /// otherwise it stays 1). Results do not depend on it.
    pub fn with_threads(self, threads: usize) -> Self {
        let threads = if cfg!(feature = "std") {
            threads.max(1)
        } else {
            1
        };
        Fma { threads, ..self }
    }

    /// The instruction set in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Threads per conv.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// `a·b + c` with one rounding.
#[inline]
pub(crate) fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(feature = "std"))]
    {
        libm::fmaf(a, b, c)
    }
}

/// Folded batch norm, bias and activation of up to [`R`] output channels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Post {
    pub a: [f32; R],
    pub b: [f32; R],
    pub leaky: bool,
}

impl Post {
    #[inline]
    pub(crate) fn apply(&self, r: usize, acc: f32) -> f32 {
        let y = fma(acc, self.a[r], self.b[r]);
        if self.leaky && y <= 0.0 {
            y * 0.1
        } else {
            y
        }
    }
}

/// One output row segment of `n ≤ R` output channels, read from the padded input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row<'a> {
    /// Padded input, CHW.
    pub input: &'a [f32],
    /// Index of channel 0, first in-map kernel row, the column of output 0's tap `kx = 0`.
    pub base: usize,
    /// Elements between channels of the padded input.
    pub plane: usize,
    /// Elements between rows of the padded input.
    pub row: usize,
    /// Input channels.
    pub channels: usize,
    /// First kernel row inside the map, and how many are.
    pub ky0: usize,
    pub nky: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride (the vector paths need 1).
    pub stride: usize,
    /// Weights from the first output channel of the block on, `[o][c][ky][kx]`.
    pub weights: &'a [f32],
    /// Output columns.
    pub ncols: usize,
}

impl Row<'_> {
    /// Panics unless `n` channels of this row can be read, and written to `out` at
    /// `r·oplane + orow + j` for `r < n`, `j < ncols`, with vector reads of `lanes`.
    pub(crate) fn check(&self, n: usize, lanes: usize, out: usize, oplane: usize, orow: usize) {
        assert!(n >= 1 && n <= R);
        if self.ncols == 0 {
            return;
        }
        let kk = self.k * self.k;
        assert!(self.ky0 + self.nky <= self.k);
        assert!(n * self.channels * kk <= self.weights.len());
        assert!((n - 1) * oplane + orow + self.ncols <= out);
        if self.nky > 0 && self.channels > 0 {
            let cols = if self.stride == 1 {
                self.ncols.div_ceil(lanes) * lanes
            } else {
                (self.ncols - 1) * self.stride + 1
            };
            let last = self.base
                + (self.channels - 1) * self.plane
                + (self.nky - 1) * self.row
                + cols
                + self.k
                - 2;
            assert!(last < self.input.len());
        }
    }
}

/// The scalar path: any stride, the order of the module docs.
fn row_scalar(job: &Row<'_>, n: usize, post: &Post, out: &mut [f32], oplane: usize, orow: usize) {
    job.check(n, 1, out.len(), oplane, orow);
    let (k, kk) = (job.k, job.k * job.k);
    let ws = job.channels * kk;
    for r in 0..n {
        let w = &job.weights[r * ws..(r + 1) * ws];
        let dst = &mut out[r * oplane + orow..r * oplane + orow + job.ncols];
        for (j, d) in dst.iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for c in 0..job.channels {
                for ky in 0..job.nky {
                    let at = job.base + c * job.plane + ky * job.row + j * job.stride;
                    let src = &job.input[at..at + k];
                    let wr = &w[c * kk + (job.ky0 + ky) * k..][..k];
                    for (&wv, &xv) in wr.iter().zip(src) {
                        acc = fma(wv, xv, acc);
                    }
                }
            }
            *d = post.apply(r, acc);
        }
    }
}

/// Runs one row segment of `n` channels on `isa`.
fn run_row(
    isa: Isa,
    job: &Row<'_>,
    n: usize,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma if job.stride == 1 => match n {
            4 => x86::row::<4>(job, post, out, oplane, orow),
            3 => x86::row::<3>(job, post, out, oplane, orow),
            2 => x86::row::<2>(job, post, out, oplane, orow),
            _ => x86::row::<1>(job, post, out, oplane, orow),
        },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon if job.stride == 1 => match n {
            4 => neon::row::<4>(job, post, out, oplane, orow),
            3 => neon::row::<3>(job, post, out, oplane, orow),
            2 => neon::row::<2>(job, post, out, oplane, orow),
            _ => neon::row::<1>(job, post, out, oplane, orow),
        },
        _ => row_scalar(job, n, post, out, oplane, orow),
    }
}

/// Everything the threads of one conv share.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    isa: Isa,
    pad: &'a [f32],
    /// Padded row length and rows per channel; first padded row's map row.
    wp: usize,
    rows: usize,
    iy0: i64,
    k: usize,
    s: usize,
    p: i64,
    h: i64,
    c: usize,
    weights: &'a [f32],
    /// Folded (a, b) per output channel.
    ab: &'a [(f32, f32)],
    leaky: bool,
    region: Region,
}

/// Kernel taps `t0..t1` of a `k`-wide window starting at `start` inside `0..extent`.
fn taps(start: i64, k: usize, extent: i64) -> (usize, usize) {
    let t0 = (-start).clamp(0, k as i64);
    let t1 = (extent - start).clamp(t0, k as i64);
    (t0 as usize, t1 as usize)
}

/// Computes output channels `oa..ob` of the region into `out` (their planes, CHW).
fn conv_range(ctx: &Ctx<'_>, oa: usize, ob: usize, out: &mut [f32]) {
    let ncols = ctx.region.width() as usize;
    let oplane = ncols * ctx.region.height() as usize;
    let ws = ctx.c * ctx.k * ctx.k;
    for y in ctx.region.y.start..ctx.region.y.end {
        let ys = y as i64 * ctx.s as i64 - ctx.p;
        let (ky0, ky1) = taps(ys, ctx.k, ctx.h);
        let prow = if ky1 > ky0 {
            (ys + ky0 as i64 - ctx.iy0) as usize
        } else {
            0
        };
        let orow = (y - ctx.region.y.start) as usize * ncols;
        let mut o = oa;
        while o < ob {
            let n = R.min(ob - o);
            let mut post = Post {
                a: [1.0; R],
                b: [0.0; R],
                leaky: ctx.leaky,
            };
            for r in 0..n {
                (post.a[r], post.b[r]) = ctx.ab[o + r];
            }
            let job = Row {
                input: ctx.pad,
                base: prow * ctx.wp,
                plane: ctx.rows * ctx.wp,
                row: ctx.wp,
                channels: ctx.c,
                ky0,
                nky: ky1 - ky0,
                k: ctx.k,
                stride: ctx.s,
                weights: &ctx.weights[o * ws..],
                ncols,
            };
            run_row(
                ctx.isa,
                &job,
                n,
                &post,
                &mut out[(o - oa) * oplane..],
                oplane,
                orow,
            );
            o += n;
        }
    }
}

/// Checks the views and parameters against the layer (as the core kernels do).
fn check(
    conv: &Conv,
    map: Shape,
    params: &ConvParams<'_>,
    input: &FeatureView<'_>,
    out: &FeatureViewMut<'_>,
) -> Result<(), KernelError> {
    if input.channels() != map.c || out.channels() != conv.filters {
        return Err(KernelError::ChannelMismatch);
    }
    let n = conv.filters as usize;
    let bn_ok = match (&params.bn, conv.batch_norm) {
        (Some(bn), true) => bn.scales.len() == n && bn.mean.len() == n && bn.variance.len() == n,
        (None, false) => true,
        _ => false,
    };
    if !bn_ok || params.biases.len() != n || Some(params.weights.len()) != conv.weight_count(map.c)
    {
        return Err(KernelError::ParamsMismatch);
    }
    let out_map = Region::full(
        conv.out_extent(map.w).unwrap_or(0),
        conv.out_extent(map.h).unwrap_or(0),
    );
    let o = out.region();
    if !out_map.covers(&o) {
        return Err(KernelError::OutputOutsideMap);
    }
    let needed = Region::new(
        input_span(o.x, conv.size, conv.stride, conv.pad, map.w),
        input_span(o.y, conv.size, conv.stride, conv.pad, map.h),
    );
    if !input.region().covers(&needed) {
        return Err(KernelError::InputTooSmall {
            needed,
            have: input.region(),
        });
    }
    Ok(())
}

/// Batch norm and bias of output channel `o` folded into `(a, b)` (see the module docs).
fn fold(params: &ConvParams<'_>, o: usize) -> (f32, f32) {
    match &params.bn {
        Some(bn) => {
            let denom = libm::sqrt(bn.variance[o] as f64) + 0.000001f32 as f64;
            let a = bn.scales[o] as f64 / denom;
            (
                a as f32,
                (params.biases[o] as f64 - bn.mean[o] as f64 * a) as f32,
            )
        }
        None => (1.0, params.biases[o]),
    }
}

/// Copies the input rows and columns the region needs into a zero-padded buffer; returns it
/// with its row length, rows per channel and first map row.
fn pad_input(
    conv: &Conv,
    map: Shape,
    input: &FeatureView<'_>,
    region: Region,
) -> (Vec<f32>, usize, usize, i64) {
    let (k, s, p) = (conv.size as usize, conv.stride as usize, conv.pad as i64);
    let ncols = region.width() as usize;
    let wp = (ncols.div_ceil(LANES) * LANES + k - 1).max((ncols - 1) * s + k);
    let rows = input_span(region.y, conv.size, conv.stride, conv.pad, map.h);
    let nrows = rows.len() as usize;
    let c = map.c as usize;
    let mut pad = vec![0.0f32; c * nrows * wp];
    let xin0 = region.x.start as i64 * s as i64 - p;
    let view = input.region();
    // Map columns of the padded row that the view holds (it covers all that are needed).
    let a = xin0.max(view.x.start as i64);
    let b = (xin0 + wp as i64).min(view.x.end as i64);
    if b > a && nrows > 0 {
        let (da, sa, len) = (
            (a - xin0) as usize,
            (a - view.x.start as i64) as usize,
            (b - a) as usize,
        );
        for (ci, plane) in pad.chunks_exact_mut(nrows * wp).enumerate() {
            for (dst, iy) in plane.chunks_exact_mut(wp).zip(rows.start..rows.end) {
                let src = input.row(ci as u32, iy);
                dst[da..da + len].copy_from_slice(&src[sa..sa + len]);
            }
        }
    }
    (pad, wp, nrows, rows.start as i64)
}

impl Kernels for Fma {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        check(conv, map, params, input, out)?;
        let region = out.region();
        if region.is_empty() {
            return Ok(());
        }
        let (pad, wp, rows, iy0) = pad_input(conv, map, input, region);
        let n = conv.filters as usize;
        let ab: Vec<(f32, f32)> = (0..n).map(|o| fold(params, o)).collect();
        let ctx = Ctx {
            isa: self.isa,
            pad: &pad,
            wp,
            rows,
            iy0,
            k: conv.size as usize,
            s: conv.stride as usize,
            p: conv.pad as i64,
            h: map.h as i64,
            c: map.c as usize,
            weights: params.weights,
            ab: &ab,
            leaky: conv.activation == Activation::Leaky,
            region,
        };
        let data = out.data();
        let blocks = n.div_ceil(R);
        let threads = self.threads.min(blocks);
        if threads <= 1 {
            conv_range(&ctx, 0, n, data);
        } else {
            split(&ctx, n, blocks, threads, data);
        }
        Ok(())
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        Portable.maxpool(pool, map, input, out)
    }
}

/// Runs contiguous ranges of channel blocks on `threads` scoped threads (the caller's thread
/// takes the last range).
#[cfg(feature = "std")]
fn split(ctx: &Ctx<'_>, n: usize, blocks: usize, threads: usize, data: &mut [f32]) {
    let oplane = ctx.region.area() as usize;
    std::thread::scope(|scope| {
        let mut rest = data;
        let mut o = 0;
        for t in 0..threads {
            let end = (blocks * (t + 1) / threads * R).min(n);
            let (mine, tail) = rest.split_at_mut((end - o) * oplane);
            rest = tail;
            let oa = o;
            if t + 1 == threads {
                conv_range(ctx, oa, end, mine);
            } else {
                scope.spawn(move || conv_range(ctx, oa, end, mine));
            }
            o = end;
        }
    });
}

#[cfg(not(feature = "std"))]
fn split(ctx: &Ctx<'_>, n: usize, _: usize, _: usize, data: &mut [f32]) {
    conv_range(ctx, 0, n, data);
}
