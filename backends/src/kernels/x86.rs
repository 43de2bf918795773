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
    if job.ncols == 0 {
        return;
    }
    // SAFETY: the CPU has AVX2 and FMA (checked above); `check` bounds every input, weight and
    // output index the kernel forms (input reads up to the row rounded to whole vectors, which
    // `check` includes; outputs only up to `ncols`).
    unsafe {
        match job.k {
            1 => row_k::<N, 1>(job, post, out.as_mut_ptr(), oplane, orow),
            3 => row_k::<N, 3>(job, post, out.as_mut_ptr(), oplane, orow),
            _ => row_k::<N, 0>(job, post, out.as_mut_ptr(), oplane, orow),
        }
    }
}

/// Blocks of 3 vectors (24 columns), then one narrower block for the rest.
#[target_feature(enable = "avx2,fma")]
unsafe fn row_k<const N: usize, const K: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
) {
    let ncols = job.ncols;
    let mut j = 0;
    while j + 3 * L <= ncols {
        block::<N, 3, K>(job, post, out, oplane, orow, j, 3 * L);
        j += 3 * L;
    }
    let rem = ncols - j;
    if rem > 2 * L {
        block::<N, 3, K>(job, post, out, oplane, orow, j, rem);
    } else if rem > L {
        block::<N, 2, K>(job, post, out, oplane, orow, j, rem);
    } else if rem > 0 {
        block::<N, 1, K>(job, post, out, oplane, orow, j, rem);
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
    let ws = job.channels * kk;
    let mut acc = [[_mm256_setzero_ps(); V]; N];
    let inp = job.input.as_ptr().add(job.base + j);
    let wp = job.weights.as_ptr().add(job.ky0 * k);
    for c in 0..job.channels {
        let ic = inp.add(c * job.plane);
        let wc = wp.add(c * kk);
        for ky in 0..job.nky {
            let ir = ic.add(ky * job.row);
            let wr = wc.add(ky * k);
            for kx in 0..k {
                let mut x = [_mm256_setzero_ps(); V];
                for v in 0..V {
                    x[v] = _mm256_loadu_ps(ir.add(kx + L * v));
                }
                for r in 0..N {
                    let w = _mm256_broadcast_ss(&*wr.add(r * ws + kx));
                    for v in 0..V {
                        acc[r][v] = _mm256_fmadd_ps(w, x[v], acc[r][v]);
                    }
                }
            }
        }
    }
    let zero = _mm256_setzero_ps();
    let tenth = _mm256_set1_ps(0.1);
    for r in 0..N {
        let a = _mm256_set1_ps(post.a[r]);
        let b = _mm256_set1_ps(post.b[r]);
        let o = out.add(r * oplane + orow + j);
        for v in 0..V {
            let mut y = _mm256_fmadd_ps(acc[r][v], a, b);
            if post.leaky {
                let m = _mm256_cmp_ps::<_CMP_LE_OQ>(y, zero);
                y = _mm256_blendv_ps(y, _mm256_mul_ps(y, tenth), m);
            }
            let lo = L * v;
            if lo + L <= n {
                _mm256_storeu_ps(o.add(lo), y);
            } else if lo < n {
                let mut t = [0.0f32; L];
                _mm256_storeu_ps(t.as_mut_ptr(), y);
                for i in 0..n - lo {
                    *o.add(lo + i) = t[i];
                }
            }
        }
    }
}
