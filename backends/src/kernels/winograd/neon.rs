//! The aarch64 lane vector [`Q4`]: 16 lanes in four NEON q registers (its half vector: two). NEON and fused
//! multiply-add are baseline on aarch64, so no CPU check is needed. One intrinsic per register
//! and operation; the taps of a row come deinterleaved from `ld4` (`ld2` for F2), and output
//! rows go back interleaved with `st4` (`st2`), where the portable vector leaves the shuffles
//! to the compiler.

use core::arch::aarch64::*;

use super::super::wide::Vector;
use super::lanes::Lanes;

/// `4·N` lanes in `N` q registers (lanes `4i..4i + 4` in register `i`).
#[derive(Clone, Copy)]
pub(super) struct Qn<const N: usize>([float32x4_t; N]);

/// 16 lanes in four q registers: the lane vector.
pub(super) type Q4 = Qn<4>;

impl<const N: usize> Qn<N> {
    /// `f` on each register.
    #[inline(always)]
    fn each(f: impl Fn(usize) -> float32x4_t) -> Self {
        Qn(core::array::from_fn(f))
    }
}

impl<const N: usize> Vector for Qn<N> {
    const LANES: usize = 4 * N;
    const TILE: usize = 1;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: NEON is baseline on aarch64.
        Qn::each(|_| unsafe { vdupq_n_f32(0.0) })
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: NEON is baseline on aarch64.
        Qn::each(|_| unsafe { vdupq_n_f32(x) })
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: `4·N` readable values at `p` (the trait's contract).
        Qn::each(|i| unsafe { vld1q_f32(p.add(4 * i)) })
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: `*p` is readable (the trait's contract).
        let x = unsafe { vld1q_dup_f32(p) };
        Qn([x; N])
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        for (i, r) in self.0.iter().enumerate() {
            // SAFETY: `4·N` writable values at `p` (the trait's contract).
            unsafe { vst1q_f32(p.add(4 * i), *r) };
        }
    }

    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: NEON is baseline on aarch64; `vfmaq_f32(c, a, b)` is `c + a·b`, one rounding.
        Qn::each(|i| unsafe { vfmaq_f32(c.0[i], a.0[i], b.0[i]) })
    }

    #[inline(always)]
    unsafe fn leaky(self, tenth: Self) -> Self {
        // `y > s ? y : s` with `s = 0.1·y`, as the portable vector (a NaN compares false: `s`).
        // SAFETY: NEON is baseline on aarch64.
        Qn::each(|i| unsafe {
            let (y, s) = (self.0[i], vmulq_f32(self.0[i], tenth.0[i]));
            vbslq_f32(vcgtq_f32(y, s), y, s)
        })
    }
}

impl Lanes for Q4 {
    // 6 × 4 accumulators, 4 column registers and a broadcast: 29 of the 32 q registers.
    const MAX_NV: usize = 1;
    // Two q registers instead of four: 6 × 2 accumulators, alone in a tile.
    type Half = Qn<2>;
    const HALVES: bool = true;
    const HALF_NV: usize = 0;

    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: `prfm` is a hint: it changes no register, flag or memory and never faults,
        // whatever the address.
        unsafe {
            core::arch::asm!(
                "prfm pldl1keep, [{p}]",
                p = in(reg) p,
                options(nostack, readonly, preserves_flags)
            );
        }
    }

    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: NEON is baseline on aarch64.
        Qn::each(|i| unsafe { vaddq_f32(self.0[i], b.0[i]) })
    }

    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: NEON is baseline on aarch64.
        Qn::each(|i| unsafe { vsubq_f32(self.0[i], b.0[i]) })
    }

    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        // SAFETY: NEON is baseline on aarch64.
        Qn::each(|i| unsafe { vmulq_f32(self.0[i], b.0[i]) })
    }

    #[inline(always)]
    unsafe fn taps<const M: usize, const A: usize>(p: *const f32) -> [Self; A] {
        let mut r = [Qn([zero_q(); 4]); A];
        match M {
            4 => {
                for i in 0..4 {
                    // SAFETY: reads `p[16i..16i + 16]` and `p[16i + 4..16i + 20]`, below
                    // `TAPS_READ` (the trait's contract).
                    let (a, b) =
                        unsafe { (vld4q_f32(p.add(16 * i)), vld4q_f32(p.add(16 * i + 4))) };
                    (r[0].0[i], r[1].0[i], r[2].0[i], r[3].0[i]) = (a.0, a.1, a.2, a.3);
                    (r[4].0[i], r[5].0[i]) = (b.0, b.1);
                }
            }
            2 => {
                for i in 0..4 {
                    // SAFETY: reads `p[8i..8i + 8]` and `p[8i + 2..8i + 10]`, below `TAPS_READ`.
                    let (a, b) = unsafe { (vld2q_f32(p.add(8 * i)), vld2q_f32(p.add(8 * i + 2))) };
                    (r[0].0[i], r[1].0[i]) = (a.0, a.1);
                    (r[2].0[i], r[3].0[i]) = (b.0, b.1);
                }
            }
            _ => unreachable!("block side {M}"),
        }
        r
    }

    #[inline(always)]
    unsafe fn store_interleaved<const M: usize>(v: &[Self; M], p: *mut f32) {
        match M {
            4 => {
                for i in 0..4 {
                    let x = float32x4x4_t(v[0].0[i], v[1].0[i], v[2].0[i], v[3].0[i]);
                    // SAFETY: writes `p[16i..16i + 16]`, inside the `4·W` values of the contract.
                    unsafe { vst4q_f32(p.add(16 * i), x) };
                }
            }
            2 => {
                for i in 0..4 {
                    let x = float32x4x2_t(v[0].0[i], v[1].0[i]);
                    // SAFETY: writes `p[8i..8i + 8]`, inside the `2·W` values of the contract.
                    unsafe { vst2q_f32(p.add(8 * i), x) };
                }
            }
            _ => unreachable!("block side {M}"),
        }
    }
}

/// A zero register (NEON is baseline on aarch64).
#[inline(always)]
fn zero_q() -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vdupq_n_f32(0.0) }
}
