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
    if job.j1 <= job.j0 {
        return;
    }
    // SAFETY: NEON is available (checked above); `check` bounds every input, weight and output
    // index the kernel forms (outputs are read and written only below `j1`).
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
    let mut j = job.j0;
    while j + 4 * L <= job.j1 {
        block::<N, 4, K>(job, post, out, oplane, orow, j, 4 * L);
        j += 4 * L;
    }
    let rem = job.j1 - j;
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

/// Loads the first `n` values at `p` (the rest 0).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn load_part(p: *const f32, n: usize) -> float32x4_t {
    if n >= L {
        vld1q_f32(p)
    } else {
        let mut t = [0.0f32; L];
        for i in 0..n {
            t[i] = *p.add(i);
        }
        vld1q_f32(t.as_ptr())
    }
}

/// Stores the first `n` lanes of `y` at `p`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn store_part(p: *mut f32, y: float32x4_t, n: usize) {
    if n >= L {
        vst1q_f32(p, y);
    } else {
        let mut t = [0.0f32; L];
        vst1q_f32(t.as_mut_ptr(), y);
        for i in 0..n {
            *p.add(i) = t[i];
        }
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
    let mut acc = [[vdupq_n_f32(0.0); V]; N];
    if !job.first {
        for r in 0..N {
            let o = out.add(r * oplane + orow + j);
            for v in 0..V {
                if L * v < n {
                    acc[r][v] = load_part(o.add(L * v), n - L * v);
                }
            }
        }
    }
    let inp = job.input.as_ptr().add(job.base + j);
    let wp = job.weights.as_ptr().add(job.ky0 * k * N);
    if K == 1 {
        // 1×1: one tap per channel; a flat loop (no kernel-row loop of one iteration).
        if job.nky == 1 {
            for c in 0..job.channels {
                let ir = inp.add(c * job.plane);
                let wr = wp.add(c * N);
                let mut x = [vdupq_n_f32(0.0); V];
                for v in 0..V {
                    x[v] = vld1q_f32(ir.add(L * v));
                }
                for r in 0..N {
                    let w = vld1q_dup_f32(wr.add(r));
                    for v in 0..V {
                        acc[r][v] = vfmaq_f32(acc[r][v], x[v], w);
                    }
                }
            }
        }
    } else {
        for c in 0..job.channels {
            let ic = inp.add(c * job.plane);
            let wc = wp.add(c * kk * N);
            for ky in 0..job.nky {
                let ir = ic.add(ky * job.row);
                let wr = wc.add(ky * k * N);
                for kx in 0..k {
                    let mut x = [vdupq_n_f32(0.0); V];
                    for v in 0..V {
                        x[v] = vld1q_f32(ir.add(kx + L * v));
                    }
                    for r in 0..N {
                        let w = vld1q_dup_f32(wr.add(kx * N + r));
                        for v in 0..V {
                            // acc + x·w with one rounding (FMLA).
                            acc[r][v] = vfmaq_f32(acc[r][v], x[v], w);
                        }
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
            let mut y = acc[r][v];
            if job.last {
                y = vfmaq_f32(b, y, a);
                if post.leaky {
                    let m = vcleq_f32(y, zero);
                    y = vbslq_f32(m, vmulq_f32(y, tenth), y);
                }
            }
            if L * v < n {
                store_part(o.add(L * v), y, n - L * v);
            }
        }
    }
}

/// 16 independent chains of `acc = acc + x·m` on q registers, `iters` times (128 flops per
/// iteration); returns a checksum so the loop is not removed.
pub(super) fn peak(iters: u64) -> f32 {
    assert!(available());
    // SAFETY: NEON is available (checked above); no memory is accessed.
    unsafe { peak_neon(iters) }
}

#[target_feature(enable = "neon")]
unsafe fn peak_neon(iters: u64) -> f32 {
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
