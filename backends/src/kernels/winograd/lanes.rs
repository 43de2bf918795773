//! The lane vector the stages are written over ([`Lanes`]: a [`Vector`] of 16 f32 lanes, one
//! Winograd block per lane, with the sums, products and data movements the transforms need)
//! and its portable implementation [`Plain`] (the direct kernels' software vector with 16
//! lanes): the generic path, the oracle of the property tests, and on aarch64 (where NEON and
//! fused multiply-add are baseline) the NEON path through the compiler's vectoriser. `x86`
//! adds AVX-512F (the direct kernels' `Zmm`) and AVX2+FMA (`Ymm2`).
//!
//! Every arithmetic operation is lane-wise with the rounding of its scalar counterpart (`fma`
//! rounds once), and the data movements (`taps`, `store_interleaved`) only copy values, so
//! every implementation computes the same bits.
// Lane loops index two arrays at once.
#![allow(clippy::needless_range_loop)]

use super::super::wide::{Soft, Vector};

/// Lanes per vector: blocks per transform vector and per GEMM column group.
pub(super) const W: usize = 16;

/// Lanes of a half vector ([`Lanes::Half`]): the product stage's last column group of a chunk
/// when at most this many of its lanes hold blocks (see `columns`).
pub(super) const HALF: usize = W / 2;

/// A [`Vector`] of [`W`] lanes with what the Winograd stages add to the direct kernels' needs.
///
/// # Safety
///
/// As for [`Vector`]: callers guarantee the implementation's CPU features, and pointer methods
/// require every address they name to be valid: `[p, p + TAPS_READ)` for `taps`, `M·W`
/// values for `store_interleaved`.
pub(super) trait Lanes: Vector {
    /// Most 16-lane column groups of a GEMM tile (its accumulators are `MR × NV` vectors).
    const MAX_NV: usize;
    /// Half a vector ([`HALF`] lanes, the same operations and roundings) for a chunk's
    /// last, half-filled column group.
    type Half: Vector;
    /// Whether products use [`Lanes::Half`]: where a half vector takes half the
    /// instructions of a whole one.
    const HALVES: bool;
    /// Most full column groups a GEMM tile keeps in registers beside a half vector.
    const HALF_NV: usize;
    /// `self + b`.
    unsafe fn add(self, b: Self) -> Self;
    /// `self − b`.
    unsafe fn sub(self, b: Self) -> Self;
    /// `self · b`.
    unsafe fn mul(self, b: Self) -> Self;
    /// The `A` taps of `W` consecutive blocks of side `M` along a row: tap `s`, lane `j` is
    /// `p[M·j + s]` (`A = M + 2`; reads `[p, p + TAPS_READ)`).
    unsafe fn taps<const M: usize, const A: usize>(p: *const f32) -> [Self; A];
    /// Writes `v[q]` lane `j` to `p[M·j + q]` for `q < M`: `M·W` consecutive values.
    unsafe fn store_interleaved<const M: usize>(v: &[Self; M], p: *mut f32);
    /// Transposes `W` vectors as a `W × W` matrix: lane `j` of `v[i]` goes to lane `i` of
    /// `v[j]` (values only copied). By default through memory.
    #[inline(always)]
    unsafe fn transpose(v: &mut [Self; W]) {
        let mut a = [[0.0f32; W]; W];
        // SAFETY: every row of `a` holds `W` values.
        unsafe {
            for i in 0..W {
                v[i].store(a[i].as_mut_ptr());
            }
            let mut b = [[0.0f32; W]; W];
            for i in 0..W {
                for j in 0..W {
                    b[j][i] = a[i][j];
                }
            }
            for i in 0..W {
                v[i] = Self::load(b[i].as_ptr());
            }
        }
    }
    /// Writes lanes `lo..hi` (`lo < hi ≤ W`) to `p + lo .. p + hi`; only those addresses need
    /// be valid (`p` itself may lie outside the allocation). By default through memory.
    #[inline(always)]
    unsafe fn store_lanes(self, p: *mut f32, lo: usize, hi: usize) {
        let mut a = [0.0f32; W];
        // SAFETY: `a` holds `W` values; `p + j` (`lo ≤ j < hi`) is writable (the contract).
        unsafe {
            self.store(a.as_mut_ptr());
            for j in lo..hi {
                *p.wrapping_add(j) = a[j];
            }
        }
    }
    /// Hints that the cache line of `p` will be read soon: any address (a prefetch never
    /// faults or changes a value); a no-op by default.
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        let _ = p;
    }
}

/// Values a `taps` call may read from its pointer on: enough for every implementation (the
/// AVX-512 one loads four whole vectors, then two shifted by one block).
pub(super) const TAPS_READ: usize = 4 * W + 4 + W + 2;

/// The portable lane vector: a loop of the scalar operation per lane.
pub(super) type Plain = Soft<W, 1>;

impl<const T: usize> Soft<W, T> {
    #[inline(always)]
    fn map2(self, b: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        let mut r = [0.0; W];
        for i in 0..W {
            r[i] = f(self.0[i], b.0[i]);
        }
        Soft(r)
    }
}

impl<const T: usize> Lanes for Soft<W, T> {
    // 6 × 16 accumulators: 24 NEON registers on aarch64.
    const MAX_NV: usize = 1;
    // Half the scalar operations; also the oracle of the AVX2 and NEON half vectors.
    type Half = Soft<HALF, 1>;
    const HALVES: bool = true;
    const HALF_NV: usize = 0;

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
    unsafe fn taps<const M: usize, const A: usize>(p: *const f32) -> [Self; A] {
        let mut r = [Soft([0.0; W]); A];
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
