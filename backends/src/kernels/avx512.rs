//! AVX-512F micro-kernels (x86_64): the generic kernel of [`super::wide`] on zmm registers
//! ([`Zmm`], 16 lanes).
//!
//! Tiles are 6 output channels × 4 zmm vectors (64 columns): 24 accumulators, 4 input vectors
//! and 1 broadcast weight, 29 of the 32 zmm registers. The rest of a row takes one tile of 3, 2
//! or 1 vectors whose last vector is loaded and stored under a mask (`_mm512_maskz_loadu_ps` /
//! `_mm512_mask_storeu_ps`; masked-off lanes are not accessed, so they cannot fault). Input
//! vectors are always read whole: the padded rows are rounded up to 16 columns. A narrow rest
//! of a 3×3 row (1 or 2 vectors) can run over 2–4 output rows at once ([`rows`], see
//! `wide::rows`), so its broadcast weights feed as many FMAs as a full tile's.
//!
//! The CPU is checked at run time (`is_x86_feature_detected!("avx512f")` with `std`, the
//! compile-time target features without it); AVX-512F includes the 512-bit FMA. The only
//! `unsafe` of this path: the [`Zmm`] operations and [`row`], which checks every index the
//! kernel touches, then calls `#[target_feature(enable = "avx512f")]` code into which the
//! whole generic kernel and the intrinsics are inlined.
//!
//! Verification: [`super::Isa::Soft16`] runs the same generic kernel on a software vector and
//! equals the scalar path bit for bit on any machine; where the CPU has AVX-512F (the
//! project's AMD Zen 5 machines do) the property tests run this path itself as well. The `Zmm`
//! impl below is one intrinsic per operation; the Winograd stages use the same type.

#[cfg(feature = "std")]
extern crate std;

use core::arch::x86_64::*;

use super::row::{Post, Row};
use super::wide::{self, Vector};

/// f32 lanes per zmm register.
const L: usize = 16;

/// Independent zmm FMA chains per iteration of [`peak`] (2 FMA pipes × 4 cycles latency need
/// 8; twice that leaves slack).
pub(super) const PEAK_CHAINS: u64 = 16;

/// True when this CPU runs AVX-512F.
pub(super) fn available() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "avx512f")
    }
}

/// A zmm register of 16 f32 lanes.
#[derive(Clone, Copy)]
pub(super) struct Zmm(pub(super) __m512);

/// Mask of lanes `0..n` (all 16 for `n ≥ 16`).
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    if n >= L {
        u16::MAX
    } else {
        (1u16 << n) - 1
    }
}

// One intrinsic per operation (two for `leaky`). The methods carry no `#[target_feature]`
// (which would forbid `#[inline(always)]`): they are inlined into the `avx512f` function
// `row_avx512`, and the intrinsics then into it (checked on the compiled code: no calls
// remain).
impl Vector for Zmm {
    const LANES: usize = L;
    const TILE: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller guarantees AVX-512F (the trait's contract).
        Zmm(unsafe { _mm512_setzero_ps() })
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        Zmm(unsafe { _mm512_set1_ps(x) })
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: the caller guarantees AVX-512F, and that `*p` is readable.
        Zmm(unsafe { _mm512_set1_ps(*p) })
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees AVX-512F, and that 16 values at `p` are readable.
        Zmm(unsafe { _mm512_loadu_ps(p) })
    }

    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self {
        // SAFETY: the caller guarantees AVX-512F, and that the first `n` values at `p` are readable;
        // lanes at and above `n` are masked off, so they are not accessed.
        Zmm(unsafe { _mm512_maskz_loadu_ps(lanes(n), p) })
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees AVX-512F, and that 16 values at `p` are writable.
        unsafe { _mm512_storeu_ps(p, self.0) }
    }

    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        // SAFETY: the caller guarantees AVX-512F, and that the first `n` values at `p` are writable;
        // lanes at and above `n` are masked off, so they are not accessed.
        unsafe { _mm512_mask_storeu_ps(p, lanes(n), self.0) }
    }

    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        Zmm(unsafe { _mm512_fmadd_ps(a.0, b.0, c.0) })
    }

    #[inline(always)]
    unsafe fn leaky(self, tenth: Self) -> Self {
        // max(y, 0.1·y) with VMAXPS (`a > b ? a : b` per lane, `b` for a NaN or two zeros) is
        // the scalar `y ≤ 0 ? 0.1·y : y` bit for bit: for y > 0 (and +∞ is equal either way)
        // it is y; for y ≤ 0 it is 0.1·y, zeros keeping their sign; for a NaN it is 0.1·y,
        // the same NaN. `wide::Soft` computes exactly this expression.
        // SAFETY: the caller guarantees AVX-512F.
        Zmm(unsafe { _mm512_max_ps(self.0, _mm512_mul_ps(self.0, tenth.0)) })
    }
}

/// Computes `N` output channels of one row segment (stride 1) into
/// `out[r·oplane + orow + j]`.
pub(super) fn row<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    assert!(available());
    // SAFETY: the CPU has AVX-512F (checked above), `row_avx512`'s target feature.
    unsafe { row_avx512::<N>(job, post, out, oplane, orow) }
}

/// [`row`] compiled with AVX-512F: the generic kernel on zmm registers, after
/// `wide::checked` bounded every index it forms.
#[target_feature(enable = "avx512f")]
fn row_avx512<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    if wide::checked::<Zmm, N>(job, out, oplane, orow) {
        // SAFETY: this function runs only where AVX-512F is (its target feature), and
        // `checked` passed: `row_generic`'s contract (partial vectors are loaded and stored
        // under a mask).
        unsafe { wide::row_generic::<Zmm, N>(job, post, out.as_mut_ptr(), oplane, orow) }
    }
}

/// Computes `N` output channels of `rows` consecutive output rows of a narrow 3×3 row segment
/// (see [`wide::rows_generic`]): row `i` reads from `job.base + i·job.row` and writes
/// `out[r·oplane + orow + i·ostep + j]`.
pub(super) fn rows<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
    rows: usize,
    ostep: usize,
) {
    assert!(available());
    // SAFETY: the CPU has AVX-512F (checked above), `rows_avx512`'s target feature.
    unsafe { rows_avx512::<N>(job, post, out, oplane, orow, rows, ostep) }
}

/// [`rows`] compiled with AVX-512F, after `wide::checked_rows` bounded every index.
#[target_feature(enable = "avx512f")]
fn rows_avx512<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
    rows: usize,
    ostep: usize,
) {
    if wide::checked_rows::<Zmm, N>(job, out, oplane, orow, rows, ostep) {
        // SAFETY: this function runs only where AVX-512F is (its target feature), and
        // `checked_rows` passed: `rows_generic`'s contract.
        unsafe {
            wide::rows_generic::<Zmm, N>(job, post, out.as_mut_ptr(), oplane, orow, rows, ostep)
        }
    }
}

/// [`PEAK_CHAINS`] independent chains of `acc = acc·m + a` on zmm registers, `iters` times
/// (`PEAK_CHAINS · 32` flops per iteration); returns a checksum so the loop is not removed.
pub(super) fn peak(iters: u64) -> f32 {
    assert!(available());
    // SAFETY: the CPU has AVX-512F (checked above), `peak_avx512`'s target feature.
    unsafe { peak_avx512(iters) }
}

/// The loop of [`peak`], compiled with AVX-512F.
#[target_feature(enable = "avx512f")]
fn peak_avx512(iters: u64) -> f32 {
    // Opaque constants, so the compiler cannot fold the loop.
    let m = _mm512_set1_ps(core::hint::black_box(0.999_999));
    let a = _mm512_set1_ps(core::hint::black_box(1e-6));
    let mut acc = [_mm512_set1_ps(core::hint::black_box(1.0)); PEAK_CHAINS as usize];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, m, a);
        }
    }
    let mut s = _mm512_setzero_ps();
    for v in acc {
        s = _mm512_add_ps(s, v);
    }
    _mm512_reduce_add_ps(s)
}
