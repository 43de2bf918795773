//! The x86_64 lane vectors: [`Zmm`] (one AVX-512F register, the direct kernels' vector) and
//! [`Ymm2`] (two AVX2 registers, FMA). One intrinsic (or a fixed shuffle sequence) per
//! operation; the methods carry no `#[target_feature]` (which would forbid
//! `#[inline(always)]`): they are inlined into the `avx512f` / `avx2,fma` entry functions of
//! `isa`, whose callers check the CPU.
//!
//! Data movement: [`Zmm`] deinterleaves a row's taps with `vpermt2ps` (four loads and eight
//! permutes give the four phases of 64 values; the two taps of the next block are the first
//! two phases moved down one lane with `valignd`) and interleaves output rows the same way
//! back; [`Ymm2`] gathers the taps (`vgatherdps`) and interleaves through the stack.

use core::arch::x86_64::*;

pub(super) use super::super::avx512::Zmm;
use super::super::wide::Vector;
use super::super::x86::Ymm;
use super::lanes::{Lanes, W};

/// `vpermt2ps` index vector.
#[inline(always)]
unsafe fn idx(i: [i32; 16]) -> __m512i {
    // SAFETY: the caller guarantees AVX-512F.
    unsafe {
        _mm512_setr_epi32(
            i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], i[8], i[9], i[10], i[11], i[12], i[13],
            i[14], i[15],
        )
    }
}

/// Even lanes of `a` then even lanes of `b` (`[a₀, a₂, …, a₁₄, b₀, …, b₁₄]`).
const EVENS: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
/// Odd lanes of `a` then of `b`.
const ODDS: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
/// Lanes `4i, 4i + 1` of `a:b` (values of phases 0 and 1 of 32 consecutive values).
const PH01: [i32; 16] = [0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29];
/// Lanes `4i + 2, 4i + 3` of `a:b`.
const PH23: [i32; 16] = [2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31];
/// `[a₀, b₀, a₁, b₁, …, a₇, b₇]`.
const ZIP_LO: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
/// `[a₈, b₈, …, a₁₅, b₁₅]`.
const ZIP_HI: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];
/// Pairs `a₂ᵢ a₂ᵢ₊₁ b₂ᵢ b₂ᵢ₊₁` for `i < 4`.
const PAIRS_LO: [i32; 16] = [0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23];
/// The same for `4 ≤ i < 8`.
const PAIRS_HI: [i32; 16] = [8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31];

impl Zmm {
    /// Lanes `1..16` of `self`, then lane 0 of `next` (`valignd`).
    #[inline(always)]
    unsafe fn shift_in(self, next: Zmm) -> Zmm {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe {
            Zmm(_mm512_castsi512_ps(_mm512_alignr_epi32::<1>(
                _mm512_castps_si512(next.0),
                _mm512_castps_si512(self.0),
            )))
        }
    }

    /// `vpermt2ps` of `self:b` by `i`.
    #[inline(always)]
    unsafe fn perm(self, i: [i32; 16], b: Zmm) -> Zmm {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { Zmm(_mm512_permutex2var_ps(self.0, idx(i), b.0)) }
    }
}

impl Lanes for Zmm {
    // 6 × 4 accumulators, 4 column vectors and a broadcast: 29 of the 32 zmm registers.
    const MAX_NV: usize = 4;
    // Not used: a ymm FMA issues as one instruction like a zmm one, and on Zen 5 (full
    // 512-bit pipes) it takes as long; its broadcast would be a second load per weight.
    // Measured: layer 4's 17-block tile calls ran slower with a ymm tail (10.5 ms against
    // 10.4, `tessera bench kernels --tiled-only`).
    type Half = Ymm;
    const HALVES: bool = false;
    const HALF_NV: usize = 0;

    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: SSE (x86_64 baseline); a prefetch reads nothing and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }

    #[inline(always)]
    unsafe fn store_lanes(self, p: *mut f32, lo: usize, hi: usize) {
        // Lanes `lo..hi` set; a masked-off lane is neither written nor faults.
        let mask = ((1u32 << hi) - (1u32 << lo)) as __mmask16;
        // SAFETY: AVX-512F (the caller); the lanes written are valid (the contract).
        unsafe { _mm512_mask_storeu_ps(p, mask, self.0) }
    }

    #[inline(always)]
    unsafe fn transpose(v: &mut [Self; W]) {
        // SAFETY: AVX-512F (the caller); shuffles only.
        unsafe {
            // Per 128-bit lane `k` (columns 4k..4k + 4): rows paired, then quads: `u[g][c]`
            // holds column `4k + c` of rows `4g..4g + 4` in lane `k`.
            let mut u = [[_mm512_setzero_ps(); 4]; 4];
            for g in 0..4 {
                let r = |i: usize| v[4 * g + i].0;
                let t0 = _mm512_castps_pd(_mm512_unpacklo_ps(r(0), r(1)));
                let t1 = _mm512_castps_pd(_mm512_unpackhi_ps(r(0), r(1)));
                let t2 = _mm512_castps_pd(_mm512_unpacklo_ps(r(2), r(3)));
                let t3 = _mm512_castps_pd(_mm512_unpackhi_ps(r(2), r(3)));
                u[g][0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
                u[g][1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
                u[g][2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
                u[g][3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
            }
            // Row `4k + c` of the result: lane `k` of `u[0][c]`, `u[1][c]`, `u[2][c]`, `u[3][c]`.
            for c in 0..4 {
                let p01 = _mm512_shuffle_f32x4::<0x44>(u[0][c], u[1][c]);
                let q01 = _mm512_shuffle_f32x4::<0xEE>(u[0][c], u[1][c]);
                let p23 = _mm512_shuffle_f32x4::<0x44>(u[2][c], u[3][c]);
                let q23 = _mm512_shuffle_f32x4::<0xEE>(u[2][c], u[3][c]);
                v[c] = Zmm(_mm512_shuffle_f32x4::<0x88>(p01, p23));
                v[4 + c] = Zmm(_mm512_shuffle_f32x4::<0xDD>(p01, p23));
                v[8 + c] = Zmm(_mm512_shuffle_f32x4::<0x88>(q01, q23));
                v[12 + c] = Zmm(_mm512_shuffle_f32x4::<0xDD>(q01, q23));
            }
        }
    }

    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        Zmm(unsafe { _mm512_add_ps(self.0, b.0) })
    }

    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        Zmm(unsafe { _mm512_sub_ps(self.0, b.0) })
    }

    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        Zmm(unsafe { _mm512_mul_ps(self.0, b.0) })
    }

    #[inline(always)]
    unsafe fn taps<const M: usize, const A: usize>(p: *const f32) -> [Self; A] {
        // SAFETY: AVX-512F, and `[p, p + TAPS_READ)` readable (the trait's
        // contract): the loads below reach `p + 4·W + W + 1` at most.
        unsafe {
            let mut r = [Self::zero(); A];
            match M {
                4 => {
                    let a = [
                        Self::load(p),
                        Self::load(p.add(W)),
                        Self::load(p.add(2 * W)),
                        Self::load(p.add(3 * W)),
                    ];
                    let (p01, p23) = (a[0].perm(PH01, a[1]), a[0].perm(PH23, a[1]));
                    let (q01, q23) = (a[2].perm(PH01, a[3]), a[2].perm(PH23, a[3]));
                    let ph0 = p01.perm(EVENS, q01);
                    let ph1 = p01.perm(ODDS, q01);
                    r[0] = ph0;
                    r[1] = ph1;
                    r[2] = p23.perm(EVENS, q23);
                    r[3] = p23.perm(ODDS, q23);
                    r[4] = ph0.shift_in(Self::load(p.add(4 * W)));
                    r[5] = ph1.shift_in(Self::load(p.add(4 * W + 1)));
                }
                2 => {
                    let (a0, a1) = (Self::load(p), Self::load(p.add(W)));
                    let ph0 = a0.perm(EVENS, a1);
                    let ph1 = a0.perm(ODDS, a1);
                    r[0] = ph0;
                    r[1] = ph1;
                    r[2] = ph0.shift_in(Self::load(p.add(2 * W)));
                    r[3] = ph1.shift_in(Self::load(p.add(2 * W + 1)));
                }
                _ => unreachable!("block side {M}"),
            }
            r
        }
    }

    #[inline(always)]
    unsafe fn store_interleaved<const M: usize>(v: &[Self; M], p: *mut f32) {
        // SAFETY: AVX-512F and `M·W` writable values at `p` (the contract).
        unsafe {
            match M {
                4 => {
                    let (ab_lo, ab_hi) = (v[0].perm(ZIP_LO, v[1]), v[0].perm(ZIP_HI, v[1]));
                    let (cd_lo, cd_hi) = (v[2].perm(ZIP_LO, v[3]), v[2].perm(ZIP_HI, v[3]));
                    ab_lo.perm(PAIRS_LO, cd_lo).store(p);
                    ab_lo.perm(PAIRS_HI, cd_lo).store(p.add(W));
                    ab_hi.perm(PAIRS_LO, cd_hi).store(p.add(2 * W));
                    ab_hi.perm(PAIRS_HI, cd_hi).store(p.add(3 * W));
                }
                2 => {
                    v[0].perm(ZIP_LO, v[1]).store(p);
                    v[0].perm(ZIP_HI, v[1]).store(p.add(W));
                }
                _ => unreachable!("block side {M}"),
            }
        }
    }
}

/// 16 lanes in two ymm registers (AVX2 + FMA).
#[derive(Clone, Copy)]
pub(super) struct Ymm2(__m256, __m256);

impl Vector for Ymm2 {
    const LANES: usize = W;
    const TILE: usize = 1;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller guarantees AVX2.
        unsafe { Ymm2(_mm256_setzero_ps(), _mm256_setzero_ps()) }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the caller guarantees AVX2.
        unsafe { Ymm2(_mm256_set1_ps(x), _mm256_set1_ps(x)) }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: AVX2 and 16 readable values at `p` (the trait's contract).
        unsafe { Ymm2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: AVX2 and a readable `*p` (the trait's contract).
        let x = unsafe { _mm256_broadcast_ss(&*p) };
        Ymm2(x, x)
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: AVX2 and 16 writable values at `p` (the trait's contract).
        unsafe {
            _mm256_storeu_ps(p, self.0);
            _mm256_storeu_ps(p.add(8), self.1);
        }
    }

    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA.
        unsafe {
            Ymm2(
                _mm256_fmadd_ps(a.0, b.0, c.0),
                _mm256_fmadd_ps(a.1, b.1, c.1),
            )
        }
    }

    #[inline(always)]
    unsafe fn leaky(self, tenth: Self) -> Self {
        // As `Zmm::leaky`: MAXPS gives `y > s ? y : s`.
        // SAFETY: the caller guarantees AVX2.
        unsafe {
            Ymm2(
                _mm256_max_ps(self.0, _mm256_mul_ps(self.0, tenth.0)),
                _mm256_max_ps(self.1, _mm256_mul_ps(self.1, tenth.1)),
            )
        }
    }
}

impl Lanes for Ymm2 {
    // 6 × 2 ymm accumulators, 2 column vectors and a broadcast: 15 of the 16 ymm registers.
    const MAX_NV: usize = 1;
    // One ymm instead of two: 6 accumulators, alone in a tile.
    type Half = Ymm;
    const HALVES: bool = true;
    const HALF_NV: usize = 0;

    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: SSE (x86_64 baseline); a prefetch reads nothing and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }

    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: the caller guarantees AVX2.
        unsafe { Ymm2(_mm256_add_ps(self.0, b.0), _mm256_add_ps(self.1, b.1)) }
    }

    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: the caller guarantees AVX2.
        unsafe { Ymm2(_mm256_sub_ps(self.0, b.0), _mm256_sub_ps(self.1, b.1)) }
    }

    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        // SAFETY: the caller guarantees AVX2.
        unsafe { Ymm2(_mm256_mul_ps(self.0, b.0), _mm256_mul_ps(self.1, b.1)) }
    }

    #[inline(always)]
    unsafe fn taps<const M: usize, const A: usize>(p: *const f32) -> [Self; A] {
        // SAFETY: AVX2, and every gathered address `p + M·j + s` (`j < W`,
        // `s < A`) is below `p + TAPS_READ`, readable (the trait's contract).
        unsafe {
            let step = M as i32;
            let ix = _mm256_setr_epi32(
                0,
                step,
                2 * step,
                3 * step,
                4 * step,
                5 * step,
                6 * step,
                7 * step,
            );
            let mut r = [Self::zero(); A];
            for (s, v) in r.iter_mut().enumerate() {
                *v = Ymm2(
                    _mm256_i32gather_ps::<4>(p.add(s), ix),
                    _mm256_i32gather_ps::<4>(p.add(s + 8 * M), ix),
                );
            }
            r
        }
    }

    #[inline(always)]
    unsafe fn store_interleaved<const M: usize>(v: &[Self; M], p: *mut f32) {
        let mut t = [[0.0f32; W]; M];
        for (tq, vq) in t.iter_mut().zip(v) {
            // SAFETY: AVX2 (the caller), and `tq` holds `W` values.
            unsafe { vq.store(tq.as_mut_ptr()) };
        }
        for j in 0..W {
            for (q, tq) in t.iter().enumerate() {
                // SAFETY: `M·j + q < M·W` values at `p` are writable (the trait's contract).
                unsafe { *p.add(M * j + q) = tq[j] };
            }
        }
    }
}
