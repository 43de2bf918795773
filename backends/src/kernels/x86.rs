//! AVX2 + FMA micro-kernels (x86_64): the generic kernel of [`super::wide`] on ymm registers
//! ([`Ymm`], 8 lanes; tiles of 6 channels × 2 vectors, 16 columns: 12 accumulators, 2 input
//! vectors and 1 broadcast weight fit the 16 ymm registers). The partial last vector of a row
//! goes through a stack copy. 3×3 tiles of 6 channels × 16 columns and 4 × 24 use inline
//! assembly for their tap loop (fixed registers, see [`row_3`]) and the generic accumulator
//! load and [`Post`] epilogue around it.
//!
//! The CPU is checked at run time (`is_x86_feature_detected!` with `std`, the compile-time
//! target features without it). The only `unsafe` of the x86 path: the [`Ymm`] operations and
//! [`row`], which checks every index the kernel touches, then calls
//! `#[target_feature(enable = "avx2,fma")]` code into which the generic kernel and the
//! intrinsics are inlined (checked on the compiled code: ymm `vfmadd231ps`, no calls).

#[cfg(feature = "std")]
extern crate std;

use core::arch::x86_64::*;

use super::row::{Post, Row};
use super::wide::{self, Vector};

/// f32 lanes per ymm register.
const L: usize = 8;

/// True when this CPU runs AVX2 and FMA.
pub(super) fn available() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "avx2", target_feature = "fma"))
    }
}

/// A ymm register of 8 f32 lanes.
#[derive(Clone, Copy)]
pub(super) struct Ymm(__m256);

// One intrinsic per operation (the partial load/store: the trait's stack copy). The methods
// carry no `#[target_feature]` (which would forbid `#[inline(always)]`): they are inlined into the
// `avx2,fma` functions below, and the intrinsics then into those.
impl Vector for Ymm {
    const LANES: usize = L;
    const TILE: usize = 2;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA (the trait's contract).
        Ymm(unsafe { _mm256_setzero_ps() })
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA.
        Ymm(unsafe { _mm256_set1_ps(x) })
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA, and that `*p` is readable.
        Ymm(unsafe { _mm256_broadcast_ss(&*p) })
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA, and that 8 values at `p` are readable.
        Ymm(unsafe { _mm256_loadu_ps(p) })
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees AVX2 and FMA, and that 8 values at `p` are writable.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }

    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA.
        Ymm(unsafe { _mm256_fmadd_ps(a.0, b.0, c.0) })
    }

    #[inline(always)]
    unsafe fn leaky(self, tenth: Self) -> Self {
        // max(y, 0.1·y) is `y ≤ 0 ? 0.1·y : y` bit for bit: both zeros keep their sign, and
        // MAXPS returns its second operand (0.1·y, the same NaN) for a NaN.
        // SAFETY: the caller guarantees AVX2 and FMA.
        Ymm(unsafe { _mm256_max_ps(self.0, _mm256_mul_ps(self.0, tenth.0)) })
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
    // SAFETY: the CPU has AVX2 and FMA (checked above), `row_avx2`'s target features.
    unsafe { row_avx2::<N>(job, post, out, oplane, orow) }
}

/// [`row`] compiled with AVX2 and FMA: the generic kernel on ymm registers, 3×3 rows in
/// [`row_3`], after `wide::checked` bounded every index they form.
#[target_feature(enable = "avx2,fma")]
fn row_avx2<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    if !wide::checked::<Ymm, N>(job, out, oplane, orow) {
        return;
    }
    let out = out.as_mut_ptr();
    // SAFETY: this function runs only where AVX2 and FMA are (its target features), and
    // `checked` passed: `wide::row_generic`'s contract for `row_from` from `j0` (`K` = 1 or 0)
    // and for `row_3` (`k = 3`). The inline-asm tiles of `row_3` read only the input rows and
    // weights the generic kernel would, and write only the ymm registers they declare.
    unsafe {
        match job.k {
            1 => wide::row_from::<Ymm, N, 1>(job, post, out, oplane, orow, job.j0),
            3 => row_3::<N>(job, post, out, oplane, orow),
            _ => wide::row_from::<Ymm, N, 0>(job, post, out, oplane, orow, job.j0),
        }
    }
}

/// 3×3 rows. Tiles of 6 channels × 16 columns and of 4 channels × 24 columns take
/// register-allocated micro-kernels (12 accumulators in ymm0–11, the input vectors and the
/// broadcast weight in ymm12–15: the compiler's allocation of the 4 × 24 tile spills and the
/// 4 × 16 tile has too few chains to fill the FMA pipes); other channel counts and the rest of
/// the row take the generic kernel. Each output is the same chain of fused multiply-adds in
/// the same order either way (`acc = w·x + acc` per tap, one rounding), so results are
/// unchanged.
///
/// # Safety
///
/// As [`row_avx2`], with `job.k == 3`.
#[target_feature(enable = "avx2,fma")]
unsafe fn row_3<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
) {
    let width = match N {
        6 => 2 * L,
        4 => 3 * L,
        // SAFETY: this function's contract is `row_from`'s from `j0`, with `K = k = 3`.
        _ => return unsafe { wide::row_from::<Ymm, N, 3>(job, post, out, oplane, orow, job.j0) },
    };
    let mut j = job.j0;
    while j + width <= job.j1 {
        // SAFETY: the tile `j..j + width` lies inside `j0..j1` with `j − j0` a multiple of 8
        // (`width` is one); the rest is this function's contract.
        unsafe {
            if N == 6 {
                tile6x2(job, post, out, oplane, orow, j);
            } else {
                tile4x3(job, post, out, oplane, orow, j);
            }
        }
        j += width;
    }
    // The rest (fewer than `width` columns; `j − j0` is a multiple of 8).
    // SAFETY: `j0 ≤ j ≤ j1` with `j − j0` a multiple of 8, `row_from`'s contract with this
    // function's.
    unsafe { wide::row_from::<Ymm, N, 3>(job, post, out, oplane, orow, j) };
}

/// 6 channels × 16 columns at output column `j` (all 16 stored), 3×3.
///
/// # Safety
///
/// As [`row_3`], with the whole tile inside `job.j0..job.j1` and `j − j0` a multiple of 8.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile6x2(job: &Row<'_>, post: &Post, out: *mut f32, oplane: usize, orow: usize, j: usize) {
    const N: usize = 6;
    // SAFETY: this function's contract is `start`'s (and `finish`'s) for a whole tile.
    let mut acc = unsafe { wide::start::<Ymm, N, 2>(job, out, oplane, orow, j, 2 * L) };
    // Without kernel rows in the map or input channels there are no taps, and `check` bounds
    // neither `base` nor the weights: no pointer is formed from them.
    if job.nky > 0 && job.channels > 0 {
        // SAFETY: AVX2 and FMA are the caller's. A (c, ky) step reads the inputs
        // `base + c·plane + ky·row + j + 0..18` (columns `j + kx + 8v` for `kx < 3`,
        // `v < 2`) and the weights `(ky0 + c·3 + ky)·3·N + 0..3·N`: the bounds `wide::block`
        // states for its input and weights with `NV = 2`, `k = 3`, which `check` proved.
        unsafe {
            let inp = job.input.as_ptr().add(job.base + j);
            let wp = job.weights.as_ptr().add(job.ky0 * 3 * N);
            for c in 0..job.channels {
                for ky in 0..job.nky {
                    let ir = inp.add(c * job.plane + ky * job.row);
                    let wr = wp.add((c * 3 + ky) * 3 * N);
                    // Taps kx = 0, 1, 2 of this kernel row, in order: x[v] = the 8 inputs at column
                    // j + kx + 8v, then acc[r][v] = fma(w[kx][r], x[v], acc[r][v]) for every r, v.
                    core::arch::asm!(
                        "vmovups ymm12, [{ir} + 0]",
                        "vmovups ymm13, [{ir} + 32]",
                        "vbroadcastss ymm14, dword ptr [{wr} + 0]",
                        "vfmadd231ps ymm0, ymm14, ymm12",
                        "vfmadd231ps ymm1, ymm14, ymm13",
                        "vbroadcastss ymm15, dword ptr [{wr} + 4]",
                        "vfmadd231ps ymm2, ymm15, ymm12",
                        "vfmadd231ps ymm3, ymm15, ymm13",
                        "vbroadcastss ymm14, dword ptr [{wr} + 8]",
                        "vfmadd231ps ymm4, ymm14, ymm12",
                        "vfmadd231ps ymm5, ymm14, ymm13",
                        "vbroadcastss ymm15, dword ptr [{wr} + 12]",
                        "vfmadd231ps ymm6, ymm15, ymm12",
                        "vfmadd231ps ymm7, ymm15, ymm13",
                        "vbroadcastss ymm14, dword ptr [{wr} + 16]",
                        "vfmadd231ps ymm8, ymm14, ymm12",
                        "vfmadd231ps ymm9, ymm14, ymm13",
                        "vbroadcastss ymm15, dword ptr [{wr} + 20]",
                        "vfmadd231ps ymm10, ymm15, ymm12",
                        "vfmadd231ps ymm11, ymm15, ymm13",
                        "vmovups ymm12, [{ir} + 4]",
                        "vmovups ymm13, [{ir} + 36]",
                        "vbroadcastss ymm14, dword ptr [{wr} + 24]",
                        "vfmadd231ps ymm0, ymm14, ymm12",
                        "vfmadd231ps ymm1, ymm14, ymm13",
                        "vbroadcastss ymm15, dword ptr [{wr} + 28]",
                        "vfmadd231ps ymm2, ymm15, ymm12",
                        "vfmadd231ps ymm3, ymm15, ymm13",
                        "vbroadcastss ymm14, dword ptr [{wr} + 32]",
                        "vfmadd231ps ymm4, ymm14, ymm12",
                        "vfmadd231ps ymm5, ymm14, ymm13",
                        "vbroadcastss ymm15, dword ptr [{wr} + 36]",
                        "vfmadd231ps ymm6, ymm15, ymm12",
                        "vfmadd231ps ymm7, ymm15, ymm13",
                        "vbroadcastss ymm14, dword ptr [{wr} + 40]",
                        "vfmadd231ps ymm8, ymm14, ymm12",
                        "vfmadd231ps ymm9, ymm14, ymm13",
                        "vbroadcastss ymm15, dword ptr [{wr} + 44]",
                        "vfmadd231ps ymm10, ymm15, ymm12",
                        "vfmadd231ps ymm11, ymm15, ymm13",
                        "vmovups ymm12, [{ir} + 8]",
                        "vmovups ymm13, [{ir} + 40]",
                        "vbroadcastss ymm14, dword ptr [{wr} + 48]",
                        "vfmadd231ps ymm0, ymm14, ymm12",
                        "vfmadd231ps ymm1, ymm14, ymm13",
                        "vbroadcastss ymm15, dword ptr [{wr} + 52]",
                        "vfmadd231ps ymm2, ymm15, ymm12",
                        "vfmadd231ps ymm3, ymm15, ymm13",
                        "vbroadcastss ymm14, dword ptr [{wr} + 56]",
                        "vfmadd231ps ymm4, ymm14, ymm12",
                        "vfmadd231ps ymm5, ymm14, ymm13",
                        "vbroadcastss ymm15, dword ptr [{wr} + 60]",
                        "vfmadd231ps ymm6, ymm15, ymm12",
                        "vfmadd231ps ymm7, ymm15, ymm13",
                        "vbroadcastss ymm14, dword ptr [{wr} + 64]",
                        "vfmadd231ps ymm8, ymm14, ymm12",
                        "vfmadd231ps ymm9, ymm14, ymm13",
                        "vbroadcastss ymm15, dword ptr [{wr} + 68]",
                        "vfmadd231ps ymm10, ymm15, ymm12",
                        "vfmadd231ps ymm11, ymm15, ymm13",
                        ir = in(reg) ir,
                        wr = in(reg) wr,
                        inout("ymm0") acc[0][0].0,
                        inout("ymm1") acc[0][1].0,
                        inout("ymm2") acc[1][0].0,
                        inout("ymm3") acc[1][1].0,
                        inout("ymm4") acc[2][0].0,
                        inout("ymm5") acc[2][1].0,
                        inout("ymm6") acc[3][0].0,
                        inout("ymm7") acc[3][1].0,
                        inout("ymm8") acc[4][0].0,
                        inout("ymm9") acc[4][1].0,
                        inout("ymm10") acc[5][0].0,
                        inout("ymm11") acc[5][1].0,
                        out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                        options(nostack, readonly, preserves_flags),
                    );
                }
            }
        }
    }
    // SAFETY: as for `start`.
    unsafe { wide::finish::<Ymm, N, 2>(job, post, acc, out, oplane, orow, j, 2 * L) };
}

/// 4 channels × 24 columns at output column `j` (all 24 stored), 3×3.
///
/// # Safety
///
/// As [`row_3`], with the whole tile inside `job.j0..job.j1` and `j − j0` a multiple of 8.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile4x3(job: &Row<'_>, post: &Post, out: *mut f32, oplane: usize, orow: usize, j: usize) {
    const N: usize = 4;
    // SAFETY: this function's contract is `start`'s (and `finish`'s) for a whole tile.
    let mut acc = unsafe { wide::start::<Ymm, N, 3>(job, out, oplane, orow, j, 3 * L) };
    // Without kernel rows in the map or input channels there are no taps, and `check` bounds
    // neither `base` nor the weights: no pointer is formed from them.
    if job.nky > 0 && job.channels > 0 {
        // SAFETY: AVX2 and FMA are the caller's. A (c, ky) step reads the inputs
        // `base + c·plane + ky·row + j + 0..26` (columns `j + kx + 8v` for `kx < 3`,
        // `v < 3`) and the weights `(ky0 + c·3 + ky)·3·N + 0..3·N`: the bounds `wide::block`
        // states for its input and weights with `NV = 3`, `k = 3`, which `check` proved.
        unsafe {
            let inp = job.input.as_ptr().add(job.base + j);
            let wp = job.weights.as_ptr().add(job.ky0 * 3 * N);
            for c in 0..job.channels {
                for ky in 0..job.nky {
                    let ir = inp.add(c * job.plane + ky * job.row);
                    let wr = wp.add((c * 3 + ky) * 3 * N);
                    // Taps kx = 0, 1, 2 of this kernel row, in order: x[v] = the 8 inputs at column
                    // j + kx + 8v, then acc[r][v] = fma(w[kx][r], x[v], acc[r][v]) for every r, v.
                    core::arch::asm!(
                        "vmovups ymm12, [{ir} + 0]",
                        "vmovups ymm13, [{ir} + 32]",
                        "vmovups ymm14, [{ir} + 64]",
                        "vbroadcastss ymm15, dword ptr [{wr} + 0]",
                        "vfmadd231ps ymm0, ymm15, ymm12",
                        "vfmadd231ps ymm1, ymm15, ymm13",
                        "vfmadd231ps ymm2, ymm15, ymm14",
                        "vbroadcastss ymm15, dword ptr [{wr} + 4]",
                        "vfmadd231ps ymm3, ymm15, ymm12",
                        "vfmadd231ps ymm4, ymm15, ymm13",
                        "vfmadd231ps ymm5, ymm15, ymm14",
                        "vbroadcastss ymm15, dword ptr [{wr} + 8]",
                        "vfmadd231ps ymm6, ymm15, ymm12",
                        "vfmadd231ps ymm7, ymm15, ymm13",
                        "vfmadd231ps ymm8, ymm15, ymm14",
                        "vbroadcastss ymm15, dword ptr [{wr} + 12]",
                        "vfmadd231ps ymm9, ymm15, ymm12",
                        "vfmadd231ps ymm10, ymm15, ymm13",
                        "vfmadd231ps ymm11, ymm15, ymm14",
                        "vmovups ymm12, [{ir} + 4]",
                        "vmovups ymm13, [{ir} + 36]",
                        "vmovups ymm14, [{ir} + 68]",
                        "vbroadcastss ymm15, dword ptr [{wr} + 16]",
                        "vfmadd231ps ymm0, ymm15, ymm12",
                        "vfmadd231ps ymm1, ymm15, ymm13",
                        "vfmadd231ps ymm2, ymm15, ymm14",
                        "vbroadcastss ymm15, dword ptr [{wr} + 20]",
                        "vfmadd231ps ymm3, ymm15, ymm12",
                        "vfmadd231ps ymm4, ymm15, ymm13",
                        "vfmadd231ps ymm5, ymm15, ymm14",
                        "vbroadcastss ymm15, dword ptr [{wr} + 24]",
                        "vfmadd231ps ymm6, ymm15, ymm12",
                        "vfmadd231ps ymm7, ymm15, ymm13",
                        "vfmadd231ps ymm8, ymm15, ymm14",
                        "vbroadcastss ymm15, dword ptr [{wr} + 28]",
                        "vfmadd231ps ymm9, ymm15, ymm12",
                        "vfmadd231ps ymm10, ymm15, ymm13",
                        "vfmadd231ps ymm11, ymm15, ymm14",
                        "vmovups ymm12, [{ir} + 8]",
                        "vmovups ymm13, [{ir} + 40]",
                        "vmovups ymm14, [{ir} + 72]",
                        "vbroadcastss ymm15, dword ptr [{wr} + 32]",
                        "vfmadd231ps ymm0, ymm15, ymm12",
                        "vfmadd231ps ymm1, ymm15, ymm13",
                        "vfmadd231ps ymm2, ymm15, ymm14",
                        "vbroadcastss ymm15, dword ptr [{wr} + 36]",
                        "vfmadd231ps ymm3, ymm15, ymm12",
                        "vfmadd231ps ymm4, ymm15, ymm13",
                        "vfmadd231ps ymm5, ymm15, ymm14",
                        "vbroadcastss ymm15, dword ptr [{wr} + 40]",
                        "vfmadd231ps ymm6, ymm15, ymm12",
                        "vfmadd231ps ymm7, ymm15, ymm13",
                        "vfmadd231ps ymm8, ymm15, ymm14",
                        "vbroadcastss ymm15, dword ptr [{wr} + 44]",
                        "vfmadd231ps ymm9, ymm15, ymm12",
                        "vfmadd231ps ymm10, ymm15, ymm13",
                        "vfmadd231ps ymm11, ymm15, ymm14",
                        ir = in(reg) ir,
                        wr = in(reg) wr,
                        inout("ymm0") acc[0][0].0,
                        inout("ymm1") acc[0][1].0,
                        inout("ymm2") acc[0][2].0,
                        inout("ymm3") acc[1][0].0,
                        inout("ymm4") acc[1][1].0,
                        inout("ymm5") acc[1][2].0,
                        inout("ymm6") acc[2][0].0,
                        inout("ymm7") acc[2][1].0,
                        inout("ymm8") acc[2][2].0,
                        inout("ymm9") acc[3][0].0,
                        inout("ymm10") acc[3][1].0,
                        inout("ymm11") acc[3][2].0,
                        out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                        options(nostack, readonly, preserves_flags),
                    );
                }
            }
        }
    }
    // SAFETY: as for `start`.
    unsafe { wide::finish::<Ymm, N, 3>(job, post, acc, out, oplane, orow, j, 3 * L) };
}

/// 12 independent chains of `acc = acc·m + a` on ymm registers, `iters` times (192 flops per
/// iteration); returns a checksum so the loop is not removed.
pub(super) fn peak(iters: u64) -> f32 {
    assert!(available());
    // SAFETY: the CPU has AVX2 and FMA (checked above), `peak_avx2`'s target features.
    unsafe { peak_avx2(iters) }
}

/// The loop of [`peak`], compiled with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
fn peak_avx2(iters: u64) -> f32 {
    // Opaque constants, so the compiler cannot fold the loop.
    let m = _mm256_set1_ps(core::hint::black_box(0.999_999));
    let a = _mm256_set1_ps(core::hint::black_box(1e-6));
    let mut acc = [_mm256_set1_ps(core::hint::black_box(1.0)); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, m, a);
        }
    }
    let mut t = [0.0f32; L];
    let mut s = _mm256_setzero_ps();
    for v in acc {
        s = _mm256_add_ps(s, v);
    }
    // SAFETY: `t` holds the 8 values stored.
    unsafe { _mm256_storeu_ps(t.as_mut_ptr(), s) };
    t.iter().sum()
}
