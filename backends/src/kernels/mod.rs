//! Fast conv kernels: FMA micro-kernels vectorised over output columns, for x86_64 (AVX-512F or
//! AVX2+FMA, chosen at run time), aarch64 (NEON) and armv7 (NEON + VFPv4, inline assembly,
//! checked in the HWCAP at run time), a portable scalar-FMA path with the same results, and
//! (with `std`) a tile's output channels split over threads.
//!
//! `wide` holds the one tile kernel of all intrinsic paths, generic over a vector type (lanes
//! and tile width); `x86`, `avx512` and `neon` add their vector type, entry and peak loop.
//!
//! | module | [`Isa`] | tile (channels × columns) |
//! |---|---|---|
//! | `x86` + `wide` | `Avx2Fma` | 6 × 16 (2 ymm); 3×3: 6 × 16 and 4 × 24 in inline asm |
//! | `avx512` + `wide` | `Avx512` | 6 × 64 (4 zmm), masked tails |
//! | `wide` | `Soft16` | the AVX-512 instantiation on a software vector: its test oracle |
//! | `neon` + `wide` | `Neon` | 6 × 16 (4 q) |
//! | `armv7` | `Armv7Neon` | 6 × 8, 6 × 4 (inline asm) |
//! | here | `Scalar` | one output at a time, any stride |
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
//! skipped), `a_o = γ/(√σ² + ε)` and `b_o = β − μ·a_o` are the batch norm and bias folded in
//! double precision (`tessera_core::kernel::batch_norm::fold`, ε Darknet's 10⁻⁶) and rounded to f32 (without batch norm `a = 1`, `b = β`). Nothing in it
//! depends on the output region, on which lane of a vector or which thread computes the
//! output, or on the instruction set: every micro-kernel and the scalar path agree bit for bit
//! (armv7 NEON flushes subnormals to zero: there, for normal numbers), a tiled run equals the
//! full frame bit for bit, and `n` threads equal one.
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
//! `√n·u` relative). Max pools are exact: a direct 2×2/2 path and [`Portable`] elsewhere, both
//! bit-identical to the reference.
//!
//! # Layout and blocking
//!
//! The input region a conv needs is copied once per call into a zero-padded CHW buffer (rows of
//! the map the region needs, columns widened by the padding and rounded up to whole 16-lane
//! vectors, planes an odd number of cache lines apart so a column block's channels spread over
//! the L1 sets; kept per thread between calls) — except a 1×1 stride-1 conv whose input view
//! is its output region, which reads each channel plane in place as one long row (its last
//! `area mod 16` columns from a small padded copy) — and the weights are packed per block of
//! output channels as `[c][ky][kx][o]`, so the micro-kernels never test borders and read one
//! weight stream. A micro-kernel computes up to 6 output channels × a few vectors of columns of
//! one output row (table above), broadcasting each weight against shifted input vectors; the
//! last block of a row is narrower and stores only its valid columns. When one
//! output row's input does not fit in L1, input channels are cut into chunks (sums carried in
//! the output between chunks, exactly) and every channel block runs on an L1-resident column
//! block. Filter counts that are not multiples of 6 end with two balanced blocks (32 = 6·4 +
//! 4 + 4). Strides other than 1 take the scalar path.
//!
//! # Threads
//!
//! With `std` and [`Fma::with_threads`], the padding copy is split over channels and the conv
//! over equal contiguous ranges of output channels, each cut into its own blocks
//! (`std::thread::scope`); max pools over channels. Each output is computed by exactly one thread with the same operations, so the
//! result does not depend on the thread count.

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

use alloc::vec::Vec;

use tessera_core::kernel::{
    batch_norm, check_conv_call, input_span, KernelError, Kernels, Portable,
};
use tessera_core::model::weights::ConvParams;
use tessera_core::model::{Activation, Conv, MaxPool, Shape};
use tessera_core::region::{Region, Span};
use tessera_core::tensor::{FeatureView, FeatureViewMut};

#[cfg(target_arch = "arm")]
#[allow(unsafe_code)]
mod armv7;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512;
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod neon;
#[allow(unsafe_code)]
mod wide;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

/// Output channels per micro-kernel call.
const R: usize = 6;
/// Columns the padded rows are rounded up to (the widest vector, in f32 lanes: AVX-512's 16).
const LANES: usize = 16;

/// The instruction set a [`Fma`] kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Scalar fused multiply-adds (any target; the oracle of the vector paths).
    Scalar,
    /// x86_64 AVX2 + FMA, 8 lanes.
    Avx2Fma,
    /// aarch64 Advanced SIMD, 4 lanes.
    Neon,
    /// x86_64 AVX-512F, 16 lanes (chosen over AVX2 where the CPU has it).
    Avx512,
    /// The AVX-512 kernel's code on a 16-lane software vector (one scalar FMA per lane): runs
    /// on any target, slowly. It is the oracle that tests the AVX-512 path's tiling, masks and
    /// indexing on machines without AVX-512; [`Isa::detect`] never picks it.
    Soft16,
    /// armv7 Advanced SIMD with VFPv4's fused `VFMA` (a Pi 3 on a 32-bit OS), 4 lanes, in
    /// inline assembly. ARMv7 NEON arithmetic flushes subnormals to zero, so it agrees with
    /// the other paths bit for bit except where an operand or a result is subnormal; tiles and
    /// threads still equal the full frame bit for bit on it.
    Armv7Neon,
}

impl Isa {
    /// Every instruction set, available here or not.
    pub const ALL: [Isa; 6] = [
        Isa::Scalar,
        Isa::Avx2Fma,
        Isa::Neon,
        Isa::Avx512,
        Isa::Soft16,
        Isa::Armv7Neon,
    ];

    /// Every instruction set this machine runs, [`Isa::Scalar`] first.
    pub fn available() -> impl Iterator<Item = Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_available())
    }

    /// The fastest instruction set this machine runs (detected at run time with `std` on
    /// x86_64, from the compile-time target features without it).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            return Isa::Avx512;
        }
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            return Isa::Avx2Fma;
        }
        #[cfg(target_arch = "aarch64")]
        if neon::available() {
            return Isa::Neon;
        }
        #[cfg(target_arch = "arm")]
        if armv7::available() {
            return Isa::Armv7Neon;
        }
        Isa::Scalar
    }

    /// True when this machine can run `self`.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar | Isa::Soft16 => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => x86::available(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx512::available(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::available(),
            #[cfg(target_arch = "arm")]
            Isa::Armv7Neon => armv7::available(),
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

/// Runs a register-only FMA loop on `isa` (independent chains, enough to fill the FMA pipes)
/// for `iters` iterations; returns the flops performed and a checksum. Time it to measure the
/// machine's single-core FMA peak.
pub fn fma_peak_loop(isa: Isa, iters: u64) -> (u64, f32) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => (iters * 12 * 8 * 2, x86::peak(iters)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => (iters * avx512::PEAK_CHAINS * 16 * 2, avx512::peak(iters)),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => (iters * 16 * 4 * 2, neon::peak(iters)),
        #[cfg(target_arch = "arm")]
        Isa::Armv7Neon => (iters * armv7::PEAK_CHAINS * 4 * 2, armv7::peak(iters)),
        _ => {
            let (m, a) = (
                core::hint::black_box(0.999_999),
                core::hint::black_box(1e-6),
            );
            let mut acc = [core::hint::black_box(1.0f32); 8];
            for _ in 0..iters {
                for v in acc.iter_mut() {
                    *v = fma(*v, m, a);
                }
            }
            (iters * 8 * 2, acc.iter().sum())
        }
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

/// One output row segment of `n ≤ R` output channels over a chunk of input channels, read from
/// the padded input. Chunks after the first continue the sums stored in `out` (a stored f32 is
/// reloaded exactly, so the per-output order is unchanged); the last applies [`Post`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row<'a> {
    /// Padded input, CHW.
    pub input: &'a [f32],
    /// Index of the chunk's first channel, first in-map kernel row, the column of output 0's
    /// tap `kx = 0`.
    pub base: usize,
    /// Elements between channels of the padded input.
    pub plane: usize,
    /// Elements between rows of the padded input.
    pub row: usize,
    /// Input channels of the chunk.
    pub channels: usize,
    /// First kernel row inside the map, and how many are.
    pub ky0: usize,
    pub nky: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride (the vector paths need 1).
    pub stride: usize,
    /// Packed weights of the block from the chunk's first input channel on, `[c][ky][kx][n]`
    /// (the `n` output channels of the block interleaved).
    pub weights: &'a [f32],
    /// Output columns `j0..j1` of the row (`j0` a multiple of 16).
    pub j0: usize,
    pub j1: usize,
    /// First chunk (sums start at 0) and last chunk (apply [`Post`]).
    pub first: bool,
    pub last: bool,
}

impl Row<'_> {
    /// Panics unless `n` channels of this row can be read, and written to `out` at
    /// `r·oplane + orow + j` for `r < n`, `j < j1`, with vector reads of `lanes`.
    pub(crate) fn check(&self, n: usize, lanes: usize, out: usize, oplane: usize, orow: usize) {
        assert!((1..=R).contains(&n));
        if self.j1 <= self.j0 {
            return;
        }
        assert!(self.j0.is_multiple_of(LANES) || self.stride != 1);
        let kk = self.k * self.k;
        assert!(self.ky0 + self.nky <= self.k);
        assert!(self.channels * kk * n <= self.weights.len());
        assert!((n - 1) * oplane + orow + self.j1 <= out);
        if self.nky > 0 && self.channels > 0 {
            let cols = if self.stride == 1 {
                self.j0 + (self.j1 - self.j0).div_ceil(lanes) * lanes
            } else {
                (self.j1 - 1) * self.stride + 1
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
    for r in 0..n {
        let w = |t: usize| job.weights[t * n + r];
        let dst = &mut out[r * oplane + orow + job.j0..r * oplane + orow + job.j1];
        for (j, d) in (job.j0..job.j1).zip(dst.iter_mut()) {
            let mut acc = if job.first { 0.0f32 } else { *d };
            for c in 0..job.channels {
                for ky in 0..job.nky {
                    let at = job.base + c * job.plane + ky * job.row + j * job.stride;
                    let src = &job.input[at..at + k];
                    let t = c * kk + (job.ky0 + ky) * k;
                    for (kx, &xv) in src.iter().enumerate() {
                        acc = fma(w(t + kx), xv, acc);
                    }
                }
            }
            *d = if job.last { post.apply(r, acc) } else { acc };
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
    // `row::<N>` of a vector module for the block's channel count (a const generic: one
    // monomorphised kernel per N).
    macro_rules! by_n {
        ($row:path) => {{
            use $row as row;
            match n {
                6 => row::<6>(job, post, out, oplane, orow),
                5 => row::<5>(job, post, out, oplane, orow),
                4 => row::<4>(job, post, out, oplane, orow),
                3 => row::<3>(job, post, out, oplane, orow),
                2 => row::<2>(job, post, out, oplane, orow),
                _ => row::<1>(job, post, out, oplane, orow),
            }
        }};
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma if job.stride == 1 => by_n!(x86::row),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon if job.stride == 1 => by_n!(neon::row),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if job.stride == 1 => by_n!(avx512::row),
        Isa::Soft16 if job.stride == 1 => by_n!(wide::row_soft),
        #[cfg(target_arch = "arm")]
        Isa::Armv7Neon if job.stride == 1 => by_n!(armv7::row),
        _ => row_scalar(job, n, post, out, oplane, orow),
    }
}

/// Everything the threads of one conv share.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    isa: Isa,
    /// Threads of the conv: the output channel blocks are [`thread_blocks`]`(filters, threads)`.
    threads: usize,
    pad: &'a [f32],
    /// Padded row length; elements between channels of the padded input (see
    /// [`PadGeo::plane`]); first padded row's map row.
    wp: usize,
    plane: usize,
    iy0: i64,
    k: usize,
    s: usize,
    p: i64,
    h: i64,
    c: usize,
    /// Weights packed per output channel block (see [`blocks`]): `[block][c][ky][kx][o - o0]`.
    packed: &'a [f32],
    /// Folded (a, b) per output channel.
    ab: &'a [(f32, f32)],
    leaky: bool,
    region: Region,
    /// Elements between output planes, and the output column of the region's column 0 (the
    /// flat 1×1 path computes a plane as one row, its last columns apart).
    oplane: usize,
    ocol0: usize,
}

/// Kernel taps `t0..t1` of a `k`-wide window starting at `start` inside `0..extent`.
fn taps(start: i64, k: usize, extent: i64) -> (usize, usize) {
    let t0 = (-start).clamp(0, k as i64);
    let t1 = (extent - start).clamp(t0, k as i64);
    (t0 as usize, t1 as usize)
}

/// Bytes of input one row or column block may occupy in L1 across all output channel blocks.
const L1_BUDGET: usize = 24 * 1024;
/// Output columns of one block when the input is blocked for L1 (a multiple of the AVX2 and
/// NEON micro-kernels' widths).
const XBLOCK: usize = 48;
/// The same for the 16-lane kernel (AVX-512 and its software twin): one full 6 × 64 tile, for
/// 1×1 convs too (a multiple of [`LANES`], so every block starts on a whole vector).
const XBLOCK_WIDE: usize = 64;

/// Computes output channels `oa..ob` of the region into `out` (their planes, CHW).
///
/// When one output row's input (all channels × kernel rows × row width) fits in L1, rows are
/// computed whole, channel block by channel block. Otherwise the input channels are cut into
/// chunks whose column block (48 columns, 16 for 1×1; 64 for the 16-lane kernel) fits in L1,
/// and for each chunk, row and column block all output channel blocks run on that
/// L1-resident block.
fn conv_range(ctx: &Ctx<'_>, oa: usize, ob: usize, out: &mut [f32]) {
    let ncols = ctx.region.width() as usize;
    let oplane = ctx.oplane;
    let kk = ctx.k * ctx.k;
    let row_bytes = ctx.c * ctx.k * ctx.wp * 4;
    let (chunk, xblock) = if row_bytes <= L1_BUDGET || ctx.s != 1 {
        (ctx.c, ncols.max(1))
    } else {
        let xb = match ctx.isa {
            // Narrower rows (13, 19, 38 columns) are sized by the whole vectors they read, so
            // their chunks hold as many channels as fit.
            Isa::Avx512 | Isa::Soft16 => XBLOCK_WIDE.min(ncols.div_ceil(LANES) * LANES),
            _ if ctx.k == 1 => 16,
            _ => XBLOCK,
        };
        let per_channel = ctx.k * (xb + ctx.k - 1) * 4;
        ((L1_BUDGET / per_channel).clamp(1, ctx.c), xb)
    };
    let mut c0 = 0;
    while c0 < ctx.c {
        let c1 = (c0 + chunk).min(ctx.c);
        for y in ctx.region.y.start..ctx.region.y.end {
            let ys = y as i64 * ctx.s as i64 - ctx.p;
            let (ky0, ky1) = taps(ys, ctx.k, ctx.h);
            let prow = if ky1 > ky0 {
                (ys + ky0 as i64 - ctx.iy0) as usize
            } else {
                0
            };
            let orow = (y - ctx.region.y.start) as usize * ncols + ctx.ocol0;
            let mut j0 = 0;
            while j0 < ncols {
                let j1 = (j0 + xblock).min(ncols);
                let mine = thread_blocks(ctx.ab.len(), ctx.threads);
                for (o, n) in mine.filter(|&(o, _)| o >= oa && o < ob) {
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
                        base: c0 * ctx.plane + prow * ctx.wp,
                        plane: ctx.plane,
                        row: ctx.wp,
                        channels: c1 - c0,
                        ky0,
                        nky: ky1 - ky0,
                        k: ctx.k,
                        stride: ctx.s,
                        weights: &ctx.packed[(o * ctx.c + c0 * n) * kk..],
                        j0,
                        j1,
                        first: c0 == 0,
                        last: c1 == ctx.c,
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
                }
                j0 = j1;
            }
        }
        c0 = c1;
    }
}

/// Batch norm and bias of output channel `o` folded into `(a, b)` (see the module docs).
fn fold(params: &ConvParams<'_>, o: usize) -> (f32, f32) {
    let f = batch_norm::fold(params, o);
    (f.scale as f32, f.shift)
}

/// Geometry of the zero-padded copy of the input a region needs: row length, rows per channel
/// and their first map row, the first map column, and the element count.
#[derive(Clone, Copy, Debug)]
struct PadGeo {
    wp: usize,
    nrows: usize,
    /// Elements between channel planes: `nrows·wp` rounded up to an odd number of 64-byte
    /// lines, so the same column of successive channels falls in successive L1 sets (a plane
    /// of a whole number of 4 KiB pages put every channel of a column block in the same few
    /// sets: 1×1 convs read 128–512 channels per block).
    plane: usize,
    iy0: u32,
    xin0: i64,
    len: usize,
}

impl PadGeo {
    fn new(conv: &Conv, map: Shape, region: Region) -> Self {
        let (k, s, p) = (conv.size as usize, conv.stride as usize, conv.pad as i64);
        let ncols = region.width() as usize;
        let wp = (ncols.div_ceil(LANES) * LANES + k - 1).max((ncols - 1) * s + k);
        let rows = input_span(region.y, conv.size, conv.stride, conv.pad, map.h);
        let nrows = rows.len() as usize;
        let lines = (nrows * wp).div_ceil(16);
        let plane = (lines | 1) * 16;
        PadGeo {
            wp,
            nrows,
            iy0: rows.start,
            xin0: region.x.start as i64 * s as i64 - p,
            plane,
            len: map.c as usize * plane,
        }
    }

    /// Fills channels `c0..` of the padded buffer (`dst` holds whole channel planes): the
    /// columns the view holds are copied, all others (padding, rounding) are zero.
    fn fill(&self, input: &FeatureView<'_>, c0: usize, dst: &mut [f32]) {
        let view = input.region();
        // Map columns of a padded row that the view holds (it covers all that are needed).
        let a = self.xin0.max(view.x.start as i64);
        let b = (self.xin0 + self.wp as i64).min(view.x.end as i64);
        if b <= a || self.nrows == 0 {
            dst.fill(0.0);
            return;
        }
        let (da, sa, n) = (
            (a - self.xin0) as usize,
            (a - view.x.start as i64) as usize,
            (b - a) as usize,
        );
        for (ci, plane) in dst.chunks_exact_mut(self.plane).enumerate() {
            let (rows, gap) = plane.split_at_mut(self.nrows * self.wp);
            gap.fill(0.0);
            for (row, iy) in rows.chunks_exact_mut(self.wp).zip(self.iy0..) {
                let src = input.row((c0 + ci) as u32, iy);
                row[..da].fill(0.0);
                row[da..da + n].copy_from_slice(&src[sa..sa + n]);
                row[da + n..].fill(0.0);
            }
        }
    }
}

#[cfg(feature = "std")]
std::thread_local! {
    /// Each thread's padded-input buffer, kept between calls (no page faults per call).
    static SCRATCH: core::cell::RefCell<Scratch> = const {
        core::cell::RefCell::new(Scratch { pad: Vec::new(), packed: Vec::new() })
    };
}

/// Buffers of one conv call: the padded input and the packed weights.
#[derive(Default)]
struct Scratch {
    pad: Vec<f32>,
    packed: Vec<f32>,
}

impl Scratch {
    /// Grows the buffers to at least `pad` and `packed` elements (never shrinks them: they are
    /// kept between calls).
    fn reserve(&mut self, pad: usize, packed: usize) {
        for (v, len) in [(&mut self.pad, pad), (&mut self.packed, packed)] {
            if v.len() < len {
                // Exactly: a doubled capacity would stay resident for good.
                v.reserve_exact(len - v.len());
                v.resize(len, 0.0);
            }
        }
    }
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

impl Kernels for Fma {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        check_conv_call(conv, map, params, input, out)?;
        let region = out.region();
        if region.is_empty() {
            return Ok(());
        }
        let n = conv.filters as usize;
        let threads = self.threads.min(blocks(n).count());
        if conv.size == 1 && conv.stride == 1 && conv.pad == 0 && input.region() == region {
            with_scratch(|scratch| self.conv_flat(conv, map, params, input, threads, scratch, out));
            return Ok(());
        }
        let geo = PadGeo::new(conv, map, region);
        with_scratch(|scratch| {
            let per = conv.weight_count(map.c).unwrap_or(0) / n;
            scratch.reserve(geo.len, group_len(n, per) * per);
            let pad = &mut scratch.pad[..geo.len];
            if threads <= 1 {
                geo.fill(input, 0, pad);
            } else {
                fill_split(&geo, input, map.c as usize, threads, pad);
            }
            self.conv_padded(conv, map, params, &geo, pad, &mut scratch.packed, out);
        });
        Ok(())
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        let threads = self.threads.min(map.c as usize);
        if threads <= 1 || input.channels() != map.c || out.channels() != map.c {
            return maxpool(pool, map, input, out);
        }
        pool_split(pool, map, input, out, threads)
    }
}

impl Fma {
    /// A 1×1 stride-1 conv whose input view is its output region: each channel plane is one
    /// contiguous row, read in place (no padded copy); the plane's last `area mod 16` columns
    /// run on a small zero-padded copy, so whole-vector reads stay inside the buffers. Each
    /// output is the same chain as on the padded path.
    #[allow(clippy::too_many_arguments)]
    fn conv_flat(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        threads: usize,
        scratch: &mut Scratch,
        out: &mut FeatureViewMut<'_>,
    ) {
        let n = conv.filters as usize;
        let c = map.c as usize;
        let area = out.region().area() as usize;
        let main = area - area % LANES;
        let tail_len = c * LANES;
        let group = group_len(n, c);
        scratch.reserve(tail_len, group.min(n) * c);
        let tail = &mut scratch.pad[..tail_len];
        let src = input.data();
        for (ci, dst) in tail.chunks_exact_mut(LANES).enumerate() {
            let part = &src[ci * area + main..(ci + 1) * area];
            dst[..part.len()].copy_from_slice(part);
            dst[part.len()..].fill(0.0);
        }
        let tail: &[f32] = tail;
        let ab: Vec<(f32, f32)> = (0..n).map(|o| fold(params, o)).collect();
        let row = |cols: usize| Region::new(Span::new(0, cols as u32), Span::new(0, 1));
        let data = out.data();
        // Output channels in groups of `group_len`, each group's weights packed just before
        // it runs (as on the padded path): a 1×1 512→256 layer packs 1 MiB at most, not 2.
        let mut g0 = 0;
        while g0 < n {
            let gn = group.min(n - g0);
            let threads = threads.min(blocks(gn).count());
            let packed = &mut scratch.packed[..gn * c];
            pack(
                &params.weights[g0 * c..(g0 + gn) * c],
                gn,
                c,
                threads,
                packed,
            );
            let base = Ctx {
                threads,
                isa: self.isa,
                pad: src,
                wp: area,
                plane: area,
                iy0: 0,
                k: 1,
                s: 1,
                p: 0,
                h: 1,
                c,
                packed,
                ab: &ab[g0..g0 + gn],
                leaky: conv.activation == Activation::Leaky,
                region: row(main),
                oplane: area,
                ocol0: 0,
            };
            let rest = Ctx {
                pad: tail,
                wp: LANES,
                plane: LANES,
                region: row(area - main),
                ocol0: main,
                ..base
            };
            let data = &mut data[g0 * area..(g0 + gn) * area];
            for ctx in [base, rest] {
                if ctx.region.is_empty() {
                    continue;
                }
                split(&ctx, gn, threads, data);
            }
            g0 += gn;
        }
    }

    /// The conv proper, on the padded input: output channels in groups of [`group_len`], each
    /// group's weights packed into `packed` just before it runs.
    #[allow(clippy::too_many_arguments)]
    fn conv_padded(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        geo: &PadGeo,
        pad: &[f32],
        packed: &mut [f32],
        out: &mut FeatureViewMut<'_>,
    ) {
        let region = out.region();
        let n = conv.filters as usize;
        let per = params.weights.len() / n;
        let group = group_len(n, per);
        let ab: Vec<(f32, f32)> = (0..n).map(|o| fold(params, o)).collect();
        let oplane = region.area() as usize;
        let data = out.data();
        let mut g0 = 0;
        while g0 < n {
            let gn = group.min(n - g0);
            let threads = self.threads.min(blocks(gn).count());
            let packed = &mut packed[..gn * per];
            pack(
                &params.weights[g0 * per..(g0 + gn) * per],
                gn,
                per,
                threads,
                packed,
            );
            let ab = &ab[g0..g0 + gn];
            let data = &mut data[g0 * oplane..(g0 + gn) * oplane];
            self.conv_group(conv, map, geo, pad, packed, ab, threads, data, region);
            g0 += gn;
        }
    }

    /// Output channels of one group (`ab.len()` of them, weights in `packed`) into `data`.
    #[allow(clippy::too_many_arguments)]
    fn conv_group(
        &self,
        conv: &Conv,
        map: Shape,
        geo: &PadGeo,
        pad: &[f32],
        packed: &[f32],
        ab: &[(f32, f32)],
        threads: usize,
        data: &mut [f32],
        region: Region,
    ) {
        let ctx = Ctx {
            threads,
            isa: self.isa,
            pad,
            wp: geo.wp,
            plane: geo.plane,
            iy0: geo.iy0 as i64,
            k: conv.size as usize,
            s: conv.stride as usize,
            p: conv.pad as i64,
            h: map.h as i64,
            c: map.c as usize,
            packed,
            ab,
            leaky: conv.activation == Activation::Leaky,
            region,
            oplane: region.area() as usize,
            ocol0: 0,
        };
        split(&ctx, ab.len(), threads, data);
    }
}

/// Most packed weights a conv holds at once, in f32 (256 KiB): a conv with more is run in groups
/// of output channels, each packed just before it runs, so a 3×3 256→512 layer keeps 256 KiB of
/// packed weights instead of a 4.5 MiB copy of its whole layer.
const PACK_ELEMS: usize = 1 << 16;

/// Output channels per packing group of a conv with `filters` outputs of `per` weights each:
/// all of them when they fit [`PACK_ELEMS`], else whole blocks of [`R`] (at least one) that
/// fit. Which group an output falls in does not change its sum.
fn group_len(filters: usize, per: usize) -> usize {
    if filters * per <= PACK_ELEMS {
        return filters.max(1);
    }
    (PACK_ELEMS / per.max(1) / R).max(1) * R
}

/// Output channel blocks `(o0, n)` of a conv with `filters` outputs: blocks of [`R`]; a
/// remainder of at most `R / 2` is merged with the last full block and the two split evenly
/// (e.g. 32 = 6+6+6+6+4+4), so no block is much narrower than the micro-kernel.
fn blocks(filters: usize) -> impl Iterator<Item = (usize, usize)> {
    let (full, rem) = (filters / R, filters % R);
    let split = full >= 1 && rem > 0 && rem <= R / 2;
    let plain = if split { full - 1 } else { full };
    let mut tail = [(0, 0); 2];
    let mut k = 0;
    if split {
        let m = R + rem;
        tail = [
            (plain * R, m.div_ceil(2)),
            (plain * R + m.div_ceil(2), m / 2),
        ];
        k = 2;
    } else if rem > 0 {
        tail[0] = (plain * R, rem);
        k = 1;
    }
    (0..plain)
        .map(|b| (b * R, R))
        .chain(tail.into_iter().take(k))
}

/// Output channels `a..b` of thread `t` of `threads`: contiguous ranges of (nearly) equal
/// size.
fn thread_range(filters: usize, threads: usize, t: usize) -> (usize, usize) {
    (filters * t / threads, filters * (t + 1) / threads)
}

/// The output channel blocks of a conv run on `threads` threads: each thread's
/// [`thread_range`] cut into [`blocks`], so the threads get equal work (32 filters on 2
/// threads: 6+6+4 | 6+6+4, where splitting whole blocks gives 18 | 14). Which block an output
/// channel falls in does not change its sum, so results do not depend on it.
fn thread_blocks(filters: usize, threads: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..threads).flat_map(move |t| {
        let (a, b) = thread_range(filters, threads, t);
        blocks(b - a).map(move |(o, n)| (a + o, n))
    })
}

/// Packs `[o][t]` weights (`per` taps each) block by block ([`thread_blocks`]) as
/// `[block][t][o - o0]`.
fn pack(weights: &[f32], filters: usize, per: usize, threads: usize, packed: &mut [f32]) {
    for (o0, n) in thread_blocks(filters, threads) {
        let dst = &mut packed[o0 * per..(o0 + n) * per];
        for r in 0..n {
            let src = &weights[(o0 + r) * per..(o0 + r + 1) * per];
            for (t, &w) in src.iter().enumerate() {
                dst[t * n + r] = w;
            }
        }
    }
}

/// Fills the padded buffer with channel ranges on `threads` threads.
#[cfg(feature = "std")]
fn fill_split(geo: &PadGeo, input: &FeatureView<'_>, c: usize, threads: usize, pad: &mut [f32]) {
    let plane = geo.plane;
    let threads = threads.min(c).max(1);
    std::thread::scope(|scope| {
        let mut rest = pad;
        let mut c0 = 0;
        for t in 0..threads {
            let c1 = c * (t + 1) / threads;
            let (mine, tail) = rest.split_at_mut((c1 - c0) * plane);
            rest = tail;
            let start = c0;
            if t + 1 == threads {
                geo.fill(input, start, mine);
            } else {
                scope.spawn(move || geo.fill(input, start, mine));
            }
            c0 = c1;
        }
    });
}

#[cfg(not(feature = "std"))]
fn fill_split(geo: &PadGeo, input: &FeatureView<'_>, _: usize, _: usize, pad: &mut [f32]) {
    geo.fill(input, 0, pad);
}

/// A 2×2 stride-2 pool whose windows all lie inside the map and the view takes a direct path;
/// anything else goes to [`Portable`]. Both keep the running maximum in tap order with
/// `if v > max`, so they agree bit for bit (with the reference too).
fn maxpool(
    pool: &MaxPool,
    map: Shape,
    input: &FeatureView<'_>,
    out: &mut FeatureViewMut<'_>,
) -> Result<(), KernelError> {
    let o = out.region();
    let v = input.region();
    let direct = pool.size == 2
        && pool.stride == 2
        && pool.offset() == 0
        && input.channels() == map.c
        && out.channels() == map.c
        && !o.is_empty()
        && 2 * o.x.end <= map.w
        && 2 * o.y.end <= map.h
        && v.x.start <= 2 * o.x.start
        && v.y.start <= 2 * o.y.start
        && 2 * o.x.end <= v.x.end
        && 2 * o.y.end <= v.y.end
        && pool.out_extent(map.w).is_ok_and(|w| o.x.end <= w)
        && pool.out_extent(map.h).is_ok_and(|h| o.y.end <= h);
    if !direct {
        return Portable.maxpool(pool, map, input, out);
    }
    let x0 = (2 * o.x.start - v.x.start) as usize;
    let n = o.width() as usize;
    for c in 0..map.c {
        for y in o.y.start..o.y.end {
            let r0 = &input.row(c, 2 * y)[x0..x0 + 2 * n];
            let r1 = &input.row(c, 2 * y + 1)[x0..x0 + 2 * n];
            let dst = out.row_mut(c, y);
            for ((d, a), b) in dst
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                let mut m = -f32::MAX;
                for t in [a[0], a[1], b[0], b[1]] {
                    m = if t > m { t } else { m };
                }
                *d = m;
            }
        }
    }
    Ok(())
}

/// Max pool with channel ranges on `threads` threads (a pool is exact, so results equal one
/// thread's).
#[cfg(feature = "std")]
fn pool_split(
    pool: &MaxPool,
    map: Shape,
    input: &FeatureView<'_>,
    out: &mut FeatureViewMut<'_>,
    threads: usize,
) -> Result<(), KernelError> {
    let (ir, or) = (input.region(), out.region());
    let (iplane, oplane) = (ir.area() as usize, or.area() as usize);
    let c = map.c as usize;
    let src = input.data();
    let dst = out.data();
    std::thread::scope(|scope| {
        let mut rest = dst;
        let mut handles = Vec::new();
        let mut result = Ok(());
        let mut c0 = 0;
        for t in 0..threads {
            let c1 = c * (t + 1) / threads;
            let (mine, tail) = rest.split_at_mut((c1 - c0) * oplane);
            rest = tail;
            let part = &src[c0 * iplane..c1 * iplane];
            let shape = Shape::new(map.w, map.h, (c1 - c0) as u32);
            let mut job = move || -> Result<(), KernelError> {
                let iv = FeatureView::new(part, ir, shape.c)
                    .map_err(|_| KernelError::ChannelMismatch)?;
                let mut ov = FeatureViewMut::new(mine, or, shape.c)
                    .map_err(|_| KernelError::ChannelMismatch)?;
                maxpool(pool, shape, &iv, &mut ov)
            };
            if t + 1 == threads {
                result = job();
            } else {
                handles.push(scope.spawn(job));
            }
            c0 = c1;
        }
        for h in handles {
            let r = h.join().expect("pool thread panicked");
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

#[cfg(not(feature = "std"))]
fn pool_split(
    pool: &MaxPool,
    map: Shape,
    input: &FeatureView<'_>,
    out: &mut FeatureViewMut<'_>,
    _: usize,
) -> Result<(), KernelError> {
    maxpool(pool, map, input, out)
}

/// Runs the conv's `n` output channels: on this thread for one thread, else each thread's
/// [`thread_range`] on a scoped thread (the caller's thread takes the last range).
#[cfg(feature = "std")]
fn split(ctx: &Ctx<'_>, n: usize, threads: usize, data: &mut [f32]) {
    if threads <= 1 {
        return conv_range(ctx, 0, n, data);
    }
    let oplane = ctx.oplane;
    std::thread::scope(|scope| {
        let mut rest = data;
        let mut o = 0;
        for t in 0..threads {
            let end = thread_range(n, threads, t).1;
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
fn split(ctx: &Ctx<'_>, n: usize, _: usize, data: &mut [f32]) {
    conv_range(ctx, 0, n, data);
}

#[cfg(test)]
mod tests {
    use super::Vec;
    use super::{blocks, thread_blocks, R};

    /// Thread blocks tile `0..filters` in order with blocks of at most `R`, each thread's
    /// channels differ from the others' by at most one, and one thread's blocks are `blocks`.
    #[test]
    fn thread_blocks_partition_the_filters_evenly() {
        for filters in 1..200 {
            assert!(thread_blocks(filters, 1).eq(blocks(filters)));
            for threads in 1..=blocks(filters).count().min(8) {
                let mut next = 0;
                let mut per_thread = [0usize; 8];
                for (o, n) in thread_blocks(filters, threads) {
                    assert_eq!(o, next, "{filters} filters, {threads} threads");
                    assert!((1..=R).contains(&n));
                    let t = (0..threads)
                        .find(|&t| o < filters * (t + 1) / threads)
                        .unwrap();
                    assert!(
                        o + n <= filters * (t + 1) / threads,
                        "a block spans threads"
                    );
                    per_thread[t] += n;
                    next = o + n;
                }
                assert_eq!(next, filters);
                let used = &per_thread[..threads];
                let (lo, hi) = (used.iter().min().unwrap(), used.iter().max().unwrap());
                assert!(hi - lo <= 1, "{filters} on {threads}: {used:?}");
            }
        }
        // YOLOv2's layer 0 on 2 threads: 16 channels each (whole blocks would give 18 | 14).
        assert_eq!(
            thread_blocks(32, 2).collect::<Vec<_>>(),
            [(0, 6), (6, 6), (12, 4), (16, 6), (22, 6), (28, 4)]
        );
    }
}
