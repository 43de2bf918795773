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
//! | `avx512` + `wide` | `Avx512` | 6 × 64 (4 zmm), masked tails; narrow rests: 6 × 2–4 rows × 1–2 zmm |
//! | `wide` | `Soft16` | the AVX-512 instantiation on a software vector: its test oracle |
//! | `neon` + `wide` | `Neon` | 6 × 16 (4 q) |
//! | `armv7` | `Armv7Neon` | 6 × 8, 6 × 4 (inline asm) |
//! | `row` | `Scalar` | one output at a time, any stride |
//!
//! Around the micro-kernels, one concept per module: `detect` ([`Isa`], which instruction set
//! runs), `row` (the micro-kernels' unit of work and the scalar path), `pad` (the zero-padded
//! input copy), `pack` (weights packed per output channel block), `channels` (output channel
//! blocks and per-thread ranges), `blocking` (one thread's loop nest, blocked for L1), `conv`
//! (the padded and the flat 1×1 layouts), `param_key` (what finds a layer's prepared weights),
//! `scratch` (per-thread buffers), `threads` (how a
//! call's work is split over the kernel's threads), `workers` (the persistent worker threads)
//! and `pool` (max pools). This file holds the public surface ([`Fma`],
//! [`Isa`], [`fma_peak_loop`]) and the dispatch to them.
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
//! `√n·u` relative). Max pools are exact: a direct 2×2/2 path and [`Portable`](tessera_core::kernel::Portable) elsewhere, both
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
//! one output row (several rows for narrow ones on AVX-512: table above), broadcasting each
//! weight against shifted input vectors; the
//! last block of a row is narrower and stores only its valid columns. When one
//! output row's input does not fit in L1, input channels are cut into chunks (sums carried in
//! the output between chunks, exactly) and every channel block runs on an L1-resident column
//! block. Filter counts that are not multiples of 6 end with two balanced blocks (32 = 6·4 +
//! 4 + 4). Strides other than 1 take the scalar path.
//!
//! # Threads
//!
//! With `std` and [`Fma::with_threads`], a kernel owns `threads − 1` persistent worker threads
//! (`workers`), parked between calls and shared by its clones; a call hands them its parts
//! and runs the last one itself. The padding copy is split over channels, then the conv over
//! equal contiguous ranges of output channels, each thread cutting its range into its own
//! blocks and packing its own weights just before they run, or reading them packed once for
//! that thread count where a prepared `Winograd` holds its direct layers' weights (one dispatch
//! per conv, nothing serial between the threads); max pools over channels. Each output is computed by exactly
//! one thread with the same operations, so the result does not depend on the thread count.

use tessera_core::kernel::{check_conv_call, KernelError, Kernels};
use tessera_core::model::weights::ConvParams;
use tessera_core::model::{Conv, MaxPool, Shape};
use tessera_core::tensor::{copy_overlap, FeatureView, FeatureViewMut};

#[cfg(target_arch = "arm")]
#[allow(unsafe_code)]
mod armv7;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512;
mod blocking;
mod channels;
mod conv;
mod detect;
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod neon;
mod pack;
mod pad;
mod param_key;
mod pool;
mod row;
mod scratch;
mod threads;
#[allow(unsafe_code)]
mod wide;
pub mod winograd;
#[cfg(feature = "std")]
#[allow(unsafe_code)]
mod workers;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

pub use detect::Isa;
pub use winograd::{Form, Layout, Winograd, Work};

use channels::blocks;
use conv::fold_all;
use pack::Prepacked;
use pad::PadGeo;
use pool::maxpool;
use row::{fma, row_scalar, Post, Row};
#[cfg(feature = "std")]
pub(crate) use scratch::with_pad_lent;
use scratch::{with_out, with_pad};
use threads::{fill_split, pool_split, Team};

/// Output channels per micro-kernel call.
const R: usize = 6;
/// Columns the padded rows are rounded up to (the widest vector, in f32 lanes: AVX-512's 16).
const LANES: usize = 16;

/// FMA conv kernels (see the module docs for the exact per-output definition).
///
/// Clones share the threads of [`with_threads`](Fma::with_threads).
#[derive(Clone, Debug)]
pub struct Fma {
    isa: Isa,
    team: Team,
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
            team: Team::default(),
        }
    }

    /// A given instruction set, or `None` if this machine cannot run it.
    pub fn with_isa(isa: Isa) -> Option<Self> {
        isa.is_available().then(|| Fma {
            isa,
            team: Team::default(),
        })
    }

    /// Splits each conv's output channels over `threads` threads (at least 1; with `std` only,
    /// otherwise it stays 1). Results do not depend on it. Starts `threads − 1` worker
    /// threads, parked between calls and ended when the last clone of this kernel is dropped
    /// (none if `threads` is the current count).
    pub fn with_threads(self, threads: usize) -> Self {
        if threads.max(1) == self.threads() {
            return self;
        }
        Fma {
            team: Team::new(threads),
            ..self
        }
    }

    /// The instruction set in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Threads per conv.
    pub fn threads(&self) -> usize {
        self.team.threads()
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

impl Fma {
    /// `params`' weights packed once for this kernel's calls of `conv` (whose filters they
    /// are): what [`conv_with`](Fma::conv_with) reads instead of packing them per call.
    fn prepack(&self, conv: &Conv, params: &ConvParams<'_>) -> Prepacked {
        let ab = fold_all(params, conv.filters as usize);
        Prepacked::new(params, ab, self.call_threads(conv))
    }

    /// Threads a call of `conv` runs on: no more than it has output channel blocks.
    fn call_threads(&self, conv: &Conv) -> usize {
        self.threads().min(blocks(conv.filters as usize).count())
    }

    /// [`Kernels::conv`] with `params`' weights read from the one of `pre` packed for this
    /// call, if any (else packed per call).
    fn conv_with(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        pre: &[Prepacked],
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        check_conv_call(conv, map, params, input, out)?;
        let region = out.region();
        if region.is_empty() {
            return Ok(());
        }
        let threads = self.call_threads(conv);
        let pre = pre.iter().find(|p| p.is_for(params, threads));
        let flat = conv.size == 1 && conv.stride == 1 && conv.pad == 0;
        if flat && input.region() == region {
            // The flat path writes each plane's region as one run: whole rows of the output's
            // buffer (a dense view, or a window of full-width rows: a band).
            if out.layout().x == region.x {
                self.conv_flat(conv, map, params, pre, input, threads, out);
            } else {
                // Part rows of a wider buffer: computed flat, then copied in (the padded path
                // would copy the input, which a 1×1 conv reads from more channels).
                // `out`'s buffer holds more than `len` values: neither step can fail.
                let len = region.area() as usize * conv.filters as usize;
                with_out(len, |buf| {
                    let mut dense = FeatureViewMut::new(buf, region, conv.filters)
                        .map_err(|_| KernelError::OutputOutsideMap)?;
                    self.conv_flat(conv, map, params, pre, input, threads, &mut dense);
                    copy_overlap(&dense.as_view(), out);
                    Ok::<(), KernelError>(())
                })?;
            }
            return Ok(());
        }
        let geo = PadGeo::new(conv, map, region);
        with_pad(geo.len, |pad| {
            if threads <= 1 {
                geo.fill(input, 0, pad);
            } else {
                fill_split(&self.team, &geo, input, map.c as usize, threads, pad);
            }
            self.conv_padded(conv, map, params, pre, &geo, pad, threads, out);
        });
        Ok(())
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
        self.conv_with(conv, map, params, &[], input, out)
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        let threads = self.threads().min(map.c as usize);
        if threads <= 1 || input.channels() != map.c || out.channels() != map.c {
            return maxpool(pool, map, input, out);
        }
        pool_split(&self.team, pool, map, input, out, threads)
    }
}
