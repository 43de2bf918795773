//! The lane vector the stages are written over ([`Lanes`]: 16 f32 lanes, one Winograd block
//! per lane) and its portable implementation [`Plain`]: the generic path, the oracle of the
//! property tests, and on aarch64 (where NEON and fused multiply-add are baseline) the NEON
//! path through the compiler's vectoriser. `x86` adds AVX-512F ([`Zmm`](super::x86::Zmm)) and
//! AVX2+FMA ([`Ymm2`](super::x86::Ymm2)).
//!
//! Every arithmetic operation is lane-wise with the rounding of its scalar counterpart (`fma`
//! rounds once), and the data movements (`taps`, `store_interleaved`) only copy values, so
//! every implementation computes the same bits.
// Lane loops index two arrays at once.
#![allow(clippy::needless_range_loop)]

/// Lanes per vector: blocks per transform vector and per GEMM column group.
pub(super) const W: usize = 16;

/// `a·b + c` with one rounding.
#[inline(always)]
pub(super) fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(feature = "std"))]
    {
        libm::fmaf(a, b, c)
    }
}

/// A vector of [`W`] f32 lanes.
///
/// # Safety
///
/// Implementations may need CPU features (AVX-512F for `Zmm`, AVX2 and FMA for `Ymm2`): the
/// methods are `unsafe` and callers guarantee those features. Pointer methods also require
/// every address they name to be valid: `W` values for `load`/`store`, one for `broadcast`,
/// `[p, p + TAPS_READ)` for `taps`, `M·W` values for `store_interleaved`.
pub(super) trait Lanes: Copy {
    /// Most 16-lane column groups of a GEMM tile (its accumulators are `MR × NV` vectors).
    const MAX_NV: usize;
    /// All lanes 0.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// `W` values at `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self;
    /// All lanes `*p`.
    unsafe fn broadcast(p: *const f32) -> Self;
    /// Stores the lanes at `p` (unaligned).
    unsafe fn store(self, p: *mut f32);
    /// `self + b`.
    unsafe fn add(self, b: Self) -> Self;
    /// `self − b`.
    unsafe fn sub(self, b: Self) -> Self;
    /// `self · b`.
    unsafe fn mul(self, b: Self) -> Self;
    /// `a·b + c`, one rounding.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// Per lane `y > 0.1·y ? y : 0.1·y` (the leaky activation: `y ≤ 0 → 0.1·y`; zeros keep
    /// their sign), `tenth` being `splat(0.1)`.
    unsafe fn leaky(self, tenth: Self) -> Self;
    /// The `A` taps of `W` consecutive blocks of side `M` along a row: tap `s`, lane `j` is
    /// `p[M·j + s]` (`A = M + 2`; reads `[p, p + TAPS_READ)`).
    unsafe fn taps<const M: usize, const A: usize>(p: *const f32) -> [Self; A];
    /// Writes `v[q]` lane `j` to `p[M·j + q]` for `q < M`: `M·W` consecutive values.
    unsafe fn store_interleaved<const M: usize>(v: &[Self; M], p: *mut f32);
}

/// Values a `taps` call may read from its pointer on: enough for every implementation (the
/// AVX-512 one loads four whole vectors, then two shifted by one block).
pub(super) const TAPS_READ: usize = 4 * W + 4 + W + 2;

/// The portable lane vector: a loop of the scalar operation per lane.
#[derive(Clone, Copy)]
pub(super) struct Plain([f32; W]);

impl Plain {
    #[inline(always)]
    fn map2(self, b: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        let mut r = [0.0; W];
        for i in 0..W {
            r[i] = f(self.0[i], b.0[i]);
        }
        Plain(r)
    }
}

impl Lanes for Plain {
    // 6 × 16 accumulators: 24 NEON registers on aarch64.
    const MAX_NV: usize = 1;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Plain([0.0; W])
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Plain([x; W])
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: `W` values at `p` are readable (the trait's contract).
        Plain(unsafe { p.cast::<[f32; W]>().read_unaligned() })
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: `*p` is readable (the trait's contract).
        Plain([unsafe { *p }; W])
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: `W` values at `p` are writable (the trait's contract).
        unsafe { p.cast::<[f32; W]>().write_unaligned(self.0) }
    }

    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        self.map2(b, |x, y| x + y)
    }

    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        self.map2(b, |x, y| x - y)
    }

    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        self.map2(b, |x, y| x * y)
    }

    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        let mut r = [0.0; W];
        for i in 0..W {
            r[i] = fma(a.0[i], b.0[i], c.0[i]);
        }
        Plain(r)
    }

    #[inline(always)]
    unsafe fn leaky(self, tenth: Self) -> Self {
        self.map2(tenth, |y, t| {
            let s = y * t;
            if y > s {
                y
            } else {
                s
            }
        })
    }

    #[inline(always)]
    unsafe fn taps<const M: usize, const A: usize>(p: *const f32) -> [Self; A] {
        let mut r = [Plain([0.0; W]); A];
        for (s, v) in r.iter_mut().enumerate() {
            for j in 0..W {
                // SAFETY: `M·j + s < M·W + A ≤ TAPS_READ` values at `p` are readable.
                v.0[j] = unsafe { *p.add(M * j + s) };
            }
        }
        r
    }

    #[inline(always)]
    unsafe fn store_interleaved<const M: usize>(v: &[Self; M], p: *mut f32) {
        for j in 0..W {
            for (q, vq) in v.iter().enumerate() {
                // SAFETY: `M·j + q < M·W` values at `p` are writable (the trait's contract).
                unsafe { *p.add(M * j + q) = vq.0[j] };
            }
        }
    }
}
