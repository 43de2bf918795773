//! AVX2 + FMA micro-kernels (x86_64). The only `unsafe` of the x86 path: [`row`] checks every
//! index the kernel touches, then calls the `#[target_feature]` code, after checking at run
//! time that the CPU has AVX2 and FMA.
#![allow(clippy::needless_range_loop)]

#[cfg(feature = "std")]
extern crate std;

use core::arch::x86_64::*;

use super::{Post, Row};

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
    // SAFETY: the CPU has AVX2 and FMA (checked above); `check` bounds every input, weight and
    // output index the kernel forms (input reads up to the segment rounded to whole vectors,
    // which `check` includes; outputs are read and written only below `j1`).
    unsafe {
        match job.k {
            1 => row_k::<N, 1>(job, post, out.as_mut_ptr(), oplane, orow),
            3 => row_k::<N, 3>(job, post, out.as_mut_ptr(), oplane, orow),
            _ => row_k::<N, 0>(job, post, out.as_mut_ptr(), oplane, orow),
        }
    }
}

/// Blocks of 2 vectors (16 columns), then one narrower block for the rest.
#[target_feature(enable = "avx2,fma")]
unsafe fn row_k<const N: usize, const K: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
) {
    let mut j = job.j0;
    while j + 2 * L <= job.j1 {
        block::<N, 2, K>(job, post, out, oplane, orow, j, 2 * L);
        j += 2 * L;
    }
    let rem = job.j1 - j;
    if rem > L {
        block::<N, 2, K>(job, post, out, oplane, orow, j, rem);
    } else if rem > 0 {
        block::<N, 1, K>(job, post, out, oplane, orow, j, rem);
    }
}

/// Loads the first `n` values at `p` (the rest 0).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load_part(p: *const f32, n: usize) -> __m256 {
    if n >= L {
        _mm256_loadu_ps(p)
    } else {
        let mut t = [0.0f32; L];
        for i in 0..n {
            t[i] = *p.add(i);
        }
        _mm256_loadu_ps(t.as_ptr())
    }
}

/// Stores the first `n` lanes of `y` at `p`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store_part(p: *mut f32, y: __m256, n: usize) {
    if n >= L {
        _mm256_storeu_ps(p, y);
    } else {
        let mut t = [0.0f32; L];
        _mm256_storeu_ps(t.as_mut_ptr(), y);
        for i in 0..n {
            *p.add(i) = t[i];
        }
    }
}

/// `N` channels × `V` vectors of columns starting at output column `j`; stores the first `n`.
#[target_feature(enable = "avx2,fma")]
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
    let mut acc = [[_mm256_setzero_ps(); V]; N];
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
                let mut x = [_mm256_setzero_ps(); V];
                for v in 0..V {
                    x[v] = _mm256_loadu_ps(ir.add(L * v));
                }
                for r in 0..N {
                    let w = _mm256_broadcast_ss(&*wr.add(r));
                    for v in 0..V {
                        acc[r][v] = _mm256_fmadd_ps(w, x[v], acc[r][v]);
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
                    let mut x = [_mm256_setzero_ps(); V];
                    for v in 0..V {
                        x[v] = _mm256_loadu_ps(ir.add(kx + L * v));
                    }
                    for r in 0..N {
                        let w = _mm256_broadcast_ss(&*wr.add(kx * N + r));
                        for v in 0..V {
                            acc[r][v] = _mm256_fmadd_ps(w, x[v], acc[r][v]);
                        }
                    }
                }
            }
        }
    }
    let tenth = _mm256_set1_ps(0.1);
    for r in 0..N {
        let a = _mm256_set1_ps(post.a[r]);
        let b = _mm256_set1_ps(post.b[r]);
        let o = out.add(r * oplane + orow + j);
        for v in 0..V {
            let mut y = acc[r][v];
            if job.last {
                y = _mm256_fmadd_ps(y, a, b);
                if post.leaky {
                    // max(y, 0.1·y) is `y ≤ 0 ? 0.1·y : y` bit for bit: both zeros keep
                    // their sign, and MAXPS returns its second operand (0.1·y, the same NaN)
                    // for a NaN.
                    y = _mm256_max_ps(y, _mm256_mul_ps(y, tenth));
                }
            }
            if L * v < n {
                store_part(o.add(L * v), y, n - L * v);
            }
        }
    }
}

/// 12 independent chains of `acc = acc·m + a` on ymm registers, `iters` times (192 flops per
/// iteration); returns a checksum so the loop is not removed.
pub(super) fn peak(iters: u64) -> f32 {
    assert!(available());
    // SAFETY: the CPU has AVX2 and FMA (checked above); no memory is accessed.
    unsafe { peak_avx2(iters) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn peak_avx2(iters: u64) -> f32 {
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
    _mm256_storeu_ps(t.as_mut_ptr(), s);
    t.iter().sum()
}
