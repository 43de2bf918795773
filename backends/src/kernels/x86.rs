//! AVX2 + FMA micro-kernels (x86_64). The only `unsafe` of the x86 path: [`row`] checks every
//! index the kernel touches, then calls the `#[target_feature]` code, after checking at run
//! time that the CPU has AVX2 and FMA. 3×3 tiles of 6 channels × 16 columns and 4 × 24 use
//! inline assembly for their tap loop (fixed registers, see [`row_3`]).
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
    // which `check` includes; outputs are read and written only below `j1`). The inline-asm
    // tiles of `row_3` run only on whole tiles inside `j0..j1`, read nothing else (the same
    // input rows and weights as `block`), write only the ymm registers they declare.
    unsafe {
        match job.k {
            1 => row_k::<N, 1>(job, post, out.as_mut_ptr(), oplane, orow),
            3 => row_3::<N>(job, post, out.as_mut_ptr(), oplane, orow),
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

/// 3×3 rows. Blocks of 6 channels × 16 columns and of 4 channels × 24 columns take
/// register-allocated micro-kernels (12 accumulators in ymm0–11, the input vectors and the
/// broadcast weight in ymm12–15: the compiler's allocation of the 4 × 24 tile spills and the
/// 4 × 16 tile has too few chains to fill the FMA pipes); other channel counts and the rest of
/// the row take [`block`]. Each output is the same chain of fused multiply-adds in the same
/// order either way (`acc = w·x + acc` per tap, one rounding), so results are unchanged.
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
        _ => return row_k::<N, 3>(job, post, out, oplane, orow),
    };
    let mut j = job.j0;
    while j + width <= job.j1 {
        if N == 6 {
            tile6x2(job, post, out, oplane, orow, j);
        } else {
            tile4x3(job, post, out, oplane, orow, j);
        }
        j += width;
    }
    while j < job.j1 {
        let rem = (job.j1 - j).min(2 * L);
        if rem > L {
            block::<N, 2, 3>(job, post, out, oplane, orow, j, rem);
        } else {
            block::<N, 1, 3>(job, post, out, oplane, orow, j, rem);
        }
        j += rem;
    }
}

/// 6 channels × 16 columns at output column `j` (all 16 stored), 3×3.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile6x2(job: &Row<'_>, post: &Post, out: *mut f32, oplane: usize, orow: usize, j: usize) {
    const N: usize = 6;
    let mut acc = start::<N, 2>(job, out, oplane, orow, j);
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
                inout("ymm0") acc[0][0],
                inout("ymm1") acc[0][1],
                inout("ymm2") acc[1][0],
                inout("ymm3") acc[1][1],
                inout("ymm4") acc[2][0],
                inout("ymm5") acc[2][1],
                inout("ymm6") acc[3][0],
                inout("ymm7") acc[3][1],
                inout("ymm8") acc[4][0],
                inout("ymm9") acc[4][1],
                inout("ymm10") acc[5][0],
                inout("ymm11") acc[5][1],
                out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                options(nostack, readonly, preserves_flags),
            );
        }
    }
    finish::<N, 2>(job, post, acc, out, oplane, orow, j);
}

/// 4 channels × 24 columns at output column `j` (all 24 stored), 3×3.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile4x3(job: &Row<'_>, post: &Post, out: *mut f32, oplane: usize, orow: usize, j: usize) {
    const N: usize = 4;
    let mut acc = start::<N, 3>(job, out, oplane, orow, j);
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
                inout("ymm0") acc[0][0],
                inout("ymm1") acc[0][1],
                inout("ymm2") acc[0][2],
                inout("ymm3") acc[1][0],
                inout("ymm4") acc[1][1],
                inout("ymm5") acc[1][2],
                inout("ymm6") acc[2][0],
                inout("ymm7") acc[2][1],
                inout("ymm8") acc[2][2],
                inout("ymm9") acc[3][0],
                inout("ymm10") acc[3][1],
                inout("ymm11") acc[3][2],
                out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                options(nostack, readonly, preserves_flags),
            );
        }
    }
    finish::<N, 3>(job, post, acc, out, oplane, orow, j);
}

/// The accumulators of a full `N` × `V` tile at column `j`: zero, or the sums stored by the
/// previous chunk.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn start<const N: usize, const V: usize>(
    job: &Row<'_>,
    out: *mut f32,
    oplane: usize,
    orow: usize,
    j: usize,
) -> [[__m256; V]; N] {
    let mut acc = [[_mm256_setzero_ps(); V]; N];
    if !job.first {
        for r in 0..N {
            let o = out.add(r * oplane + orow + j);
            for v in 0..V {
                acc[r][v] = _mm256_loadu_ps(o.add(L * v));
            }
        }
    }
    acc
}

/// Stores a full `N` × `V` tile at column `j`, with [`Post`] on the last chunk (as [`block`]).
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn finish<const N: usize, const V: usize>(
    job: &Row<'_>,
    post: &Post,
    acc: [[__m256; V]; N],
    out: *mut f32,
    oplane: usize,
    orow: usize,
    j: usize,
) {
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
                    y = _mm256_max_ps(y, _mm256_mul_ps(y, tenth));
                }
            }
            _mm256_storeu_ps(o.add(L * v), y);
        }
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
