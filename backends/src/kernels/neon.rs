//! aarch64 Advanced SIMD (NEON) micro-kernels. NEON is part of the aarch64 base ISA on every
//! Linux target; the only `unsafe` of this path is in [`row`], after bounds checks.
//!
//! armv7 (a Pi 3 running a 32-bit OS) uses the scalar path: its NEON intrinsics are unstable
//! in Rust (`stdarch_arm_neon_intrinsics`, nightly only), ARMv7 NEON arithmetic always flushes
//! denormals to zero (so it could not agree bit for bit with the scalar path), and the
//! `armv7-unknown-linux-gnueabihf` target enables neither NEON nor VFPv4's fused VFMA.
#![allow(clippy::needless_range_loop)]

use core::arch::aarch64::*;

use super::{Post, Row};

/// f32 lanes per q register.
const L: usize = 4;

/// True when NEON is available (always on aarch64 Linux targets).
pub(super) fn available() -> bool {
    cfg!(target_feature = "neon")
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
    assert!(job.stride == 1 && available());
    job.check(N, L, out.len(), oplane, orow);
    if job.ncols == 0 {
        return;
    }
    // SAFETY: NEON is available (checked above); `check` bounds every input, weight and output
    // index the kernel forms.
    unsafe {
        match job.k {
            1 => row_k::<N, 1>(job, post, out.as_mut_ptr(), oplane, orow),
            3 => row_k::<N, 3>(job, post, out.as_mut_ptr(), oplane, orow),
            _ => row_k::<N, 0>(job, post, out.as_mut_ptr(), oplane, orow),
        }
    }
}

/// Blocks of 4 vectors (16 columns), then one narrower block for the rest.
#[target_feature(enable = "neon")]
unsafe fn row_k<const N: usize, const K: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
) {
    let ncols = job.ncols;
    let mut j = 0;
    while j + 4 * L <= ncols {
        block::<N, 4, K>(job, post, out, oplane, orow, j, 4 * L);
        j += 4 * L;
    }
    let rem = ncols - j;
    if rem > 3 * L {
        block::<N, 4, K>(job, post, out, oplane, orow, j, rem);
    } else if rem > 2 * L {
        block::<N, 3, K>(job, post, out, oplane, orow, j, rem);
    } else if rem > L {
        block::<N, 2, K>(job, post, out, oplane, orow, j, rem);
    } else if rem > 0 {
        block::<N, 1, K>(job, post, out, oplane, orow, j, rem);
    }
}

/// `N` channels × `V` vectors of columns starting at output column `j`; stores the first `n`.
#[target_feature(enable = "neon")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const N: usize, const V: usize, const K: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
    j: usize,
    n: usize,
) {
    let k = if K == 0 { job.k } else { K };
    let kk = k * k;
    let ws = job.channels * kk;
    let mut acc = [[vdupq_n_f32(0.0); V]; N];
    let inp = job.input.as_ptr().add(job.base + j);
    let wp = job.weights.as_ptr().add(job.ky0 * k);
    for c in 0..job.channels {
        let ic = inp.add(c * job.plane);
        let wc = wp.add(c * kk);
        for ky in 0..job.nky {
            let ir = ic.add(ky * job.row);
            let wr = wc.add(ky * k);
            for kx in 0..k {
                let mut x = [vdupq_n_f32(0.0); V];
                for v in 0..V {
                    x[v] = vld1q_f32(ir.add(kx + L * v));
                }
                for r in 0..N {
                    let w = vld1q_dup_f32(wr.add(r * ws + kx));
                    for v in 0..V {
                        // acc + x·w with one rounding (FMLA).
                        acc[r][v] = vfmaq_f32(acc[r][v], x[v], w);
                    }
                }
            }
        }
    }
    let zero = vdupq_n_f32(0.0);
    let tenth = vdupq_n_f32(0.1);
    for r in 0..N {
        let a = vdupq_n_f32(post.a[r]);
        let b = vdupq_n_f32(post.b[r]);
        let o = out.add(r * oplane + orow + j);
        for v in 0..V {
            let mut y = vfmaq_f32(b, acc[r][v], a);
            if post.leaky {
                let m = vcleq_f32(y, zero);
                y = vbslq_f32(m, vmulq_f32(y, tenth), y);
            }
            let lo = L * v;
            if lo + L <= n {
                vst1q_f32(o.add(lo), y);
            } else if lo < n {
                let mut t = [0.0f32; L];
                vst1q_f32(t.as_mut_ptr(), y);
                for i in 0..n - lo {
                    *o.add(lo + i) = t[i];
                }
            }
        }
    }
}
