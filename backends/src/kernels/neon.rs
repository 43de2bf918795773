//! aarch64 Advanced SIMD (NEON) micro-kernels: the generic kernel of [`super::wide`] on q
//! registers ([`Q`], 4 lanes; tiles of 6 channels × 4 vectors, 16 columns: 24 accumulators,
//! 4 input vectors and 1 broadcast weight of the 32 q registers). The partial last vector of
//! a row goes through a stack copy.
//!
//! NEON is part of the aarch64 base ISA on every Linux target. The only `unsafe` of this path:
//! the [`Q`] operations and [`row`], which checks every index the kernel touches, then calls
//! `#[target_feature(enable = "neon")]` code into which the generic kernel and the intrinsics
//! are inlined. (armv7 NEON is a separate inline-assembly design, `super::armv7`.)

use core::arch::aarch64::*;

use super::row::{Post, Row};
use super::wide::{self, Vector};

/// f32 lanes per q register.
const L: usize = 4;

/// True when NEON is available (always on aarch64 Linux targets).
pub(super) fn available() -> bool {
    cfg!(target_feature = "neon")
}

/// A q register of 4 f32 lanes.
#[derive(Clone, Copy)]
pub(super) struct Q(float32x4_t);

// One intrinsic per operation (the leaky select in three; the partial load/store: the trait's
// stack copy). The methods carry no `#[target_feature]` (which would forbid `#[inline(always)]`):
// they are inlined into the `neon` function `row_neon`, and the intrinsics then into it.
impl Vector for Q {
    const LANES: usize = L;
    const TILE: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller guarantees NEON (the trait's contract).
        Q(unsafe { vdupq_n_f32(0.0) })
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the caller guarantees NEON.
        Q(unsafe { vdupq_n_f32(x) })
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: the caller guarantees NEON, and that `*p` is readable.
        Q(unsafe { vld1q_dup_f32(p) })
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees NEON, and that 4 values at `p` are readable.
        Q(unsafe { vld1q_f32(p) })
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees NEON, and that 4 values at `p` are writable.
        unsafe { vst1q_f32(p, self.0) }
    }

    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // c + a·b with one rounding (FMLA).
        // SAFETY: the caller guarantees NEON.
        Q(unsafe { vfmaq_f32(c.0, a.0, b.0) })
    }

    #[inline(always)]
    unsafe fn leaky(self, tenth: Self) -> Self {
        // The scalar rule itself: 0.1·y where y ≤ 0, else y.
        // SAFETY: the caller guarantees NEON.
        unsafe {
            let m = vcleq_f32(self.0, vdupq_n_f32(0.0));
            Q(vbslq_f32(m, vmulq_f32(self.0, tenth.0), self.0))
        }
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
    // SAFETY: NEON is available (checked above), `row_neon`'s target feature.
    unsafe { row_neon::<N>(job, post, out, oplane, orow) }
}

/// [`row`] compiled with NEON: the generic kernel on q registers, after `wide::checked`
/// bounded every index it forms.
#[target_feature(enable = "neon")]
fn row_neon<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    if wide::checked::<Q, N>(job, out, oplane, orow) {
        // SAFETY: this function runs only where NEON is (its target feature), and `checked`
        // passed: `row_generic`'s contract.
        unsafe { wide::row_generic::<Q, N>(job, post, out.as_mut_ptr(), oplane, orow) }
    }
}

/// 16 independent chains of `acc = acc + x·m` on q registers, `iters` times (128 flops per
/// iteration); returns a checksum so the loop is not removed.
pub(super) fn peak(iters: u64) -> f32 {
    assert!(available());
    // SAFETY: NEON is available (checked above), `peak_neon`'s target feature.
    unsafe { peak_neon(iters) }
}

/// The loop of [`peak`], compiled with NEON.
#[target_feature(enable = "neon")]
fn peak_neon(iters: u64) -> f32 {
    // Opaque constants, so the compiler cannot fold the loop.
    let m = vdupq_n_f32(core::hint::black_box(0.999_999));
    let a = vdupq_n_f32(core::hint::black_box(1e-6));
    let mut acc = [vdupq_n_f32(core::hint::black_box(1.0)); 16];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = vfmaq_f32(a, *v, m);
        }
    }
    let mut s = vdupq_n_f32(0.0);
    for v in acc {
        s = vaddq_f32(s, v);
    }
    vaddvq_f32(s)
}
