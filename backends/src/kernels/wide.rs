//! The 16-lane conv micro-kernel, written once over a vector trait ([`V16`]) and instantiated
//! twice: with AVX-512F registers (`avx512::Zmm`, x86_64 only) and with [`Soft16`], a
//! portable software vector that does one scalar fused multiply-add per lane.
//!
//! Why generic: the development and CI machines have no AVX-512 (and no emulator for it), so
//! the AVX-512 kernel could not otherwise be run before it meets real hardware. Its tiling,
//! masks (the partial last vector of a row), pointer arithmetic and chunk/post logic all live
//! here; the `Zmm` instantiation adds only a one-line-per-operation trait impl. [`Soft16`] runs
//! exactly this code on any target ([`super::Isa::Soft16`]), so the property tests compare it
//! with the scalar path bit for bit and thereby test everything of the AVX-512 path but the
//! intrinsics themselves. Every operation of [`V16`] is lane-wise and rounds like its scalar
//! counterpart (one rounding for `fma`), so both instantiations compute the same bits.
//!
//! Tiles: `N ≤ 6` output channels × `NV ≤ 4` vectors (64 columns) of one output row; full
//! 64-column tiles, then one narrower tile (`NV = ceil(rest / 16)`) whose last vector is
//! loaded and stored under a mask. Per output the chain is the one of the module docs of
//! [`super`]: `acc = fma(w, x, acc)` over channels, kernel rows and taps in order.
#![allow(clippy::needless_range_loop)]

use super::{Post, Row};

/// f32 lanes per vector.
pub(super) const W: usize = 16;

/// A vector of 16 f32 lanes. Every operation is lane-wise with the rounding of the scalar
/// operation (IEEE round to nearest even; `fma` rounds once).
///
/// # Safety
///
/// The methods are `unsafe` because an implementation may need CPU features (AVX-512F for
/// `Zmm`): callers guarantee them. Pointer methods additionally require the addressed lanes
/// (`n` for the `_part` methods, all 16 otherwise) to be valid for reads or writes; lanes at
/// and above `n` are neither read nor written.
pub(super) trait V16: Copy {
    /// All lanes 0.0.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// 16 values at `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self;
    /// The first `n ≤ 16` values at `p`; lanes `n..` are 0 and their addresses not read.
    unsafe fn load_part(p: *const f32, n: usize) -> Self;
    /// Stores all lanes at `p` (unaligned).
    unsafe fn store(self, p: *mut f32);
    /// Stores lanes `0..n` (`n ≤ 16`) at `p`; nothing at and above `p + n` is written.
    unsafe fn store_part(self, p: *mut f32, n: usize);
    /// `a·b + c` with one rounding.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// `a·b`.
    unsafe fn mul(a: Self, b: Self) -> Self;
    /// `if a > b { a } else { b }` per lane (x86 MAXPS: `b` when either is NaN or both are
    /// zeros).
    unsafe fn max(a: Self, b: Self) -> Self;
}

/// The software 16-lane vector: every operation is a loop of the scalar one over the lanes
/// (`fma` is [`super::fma`], the scalar path's). Slow; it exists to run the generic kernel,
/// and hence the AVX-512 path's code, on machines without AVX-512.
#[derive(Clone, Copy)]
pub(super) struct Soft16([f32; W]);

impl Soft16 {
    /// Lane-wise `f` of `a` and `b`.
    #[inline(always)]
    fn zip(a: Self, b: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        Soft16(core::array::from_fn(|i| f(a.0[i], b.0[i])))
    }
}

impl V16 for Soft16 {
    #[inline(always)]
    unsafe fn zero() -> Self {
        Soft16([0.0; W])
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Soft16([x; W])
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Soft16(core::array::from_fn(|i| *p.add(i)))
    }

    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self {
        Soft16(core::array::from_fn(
            |i| if i < n { *p.add(i) } else { 0.0 },
        ))
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        for i in 0..W {
            *p.add(i) = self.0[i];
        }
    }

    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        for i in 0..n.min(W) {
            *p.add(i) = self.0[i];
        }
    }

    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Soft16(core::array::from_fn(|i| super::fma(a.0[i], b.0[i], c.0[i])))
    }

    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        Soft16::zip(a, b, |x, y| x * y)
    }

    #[inline(always)]
    unsafe fn max(a: Self, b: Self) -> Self {
        // Exactly MAXPS: the second operand unless the first is greater (NaN, ±0 → `b`).
        Soft16::zip(a, b, |x, y| if x > y { x } else { y })
    }
}

/// Computes `N` output channels of one row segment (stride 1) into `out[r·oplane + orow + j]`
/// with the generic kernel on [`Soft16`] (see [`super::Isa::Soft16`]).
pub(super) fn row_soft<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    assert!(job.stride == 1);
    job.check(N, W, out.len(), oplane, orow);
    if job.j1 <= job.j0 {
        return;
    }
    // SAFETY: Soft16 needs no CPU feature; `check` bounds every input, weight and output index
    // the kernel forms (input reads up to the segment rounded to whole vectors, which `check`
    // includes; outputs are read and written only below `j1`), the stride is 1 and `j1 > j0`.
    unsafe { row_generic::<Soft16, N>(job, post, out.as_mut_ptr(), oplane, orow) }
}

/// The generic kernel: `N` output channels of `job` into `out[r·oplane + orow + j]`.
///
/// # Safety
///
/// `V`'s operations are usable on this CPU; `job.stride == 1`, `job.j1 > job.j0`, and
/// `job.check(N, 16, len, oplane, orow)` passed for a buffer of `len` elements at `out`.
#[inline(always)]
pub(super) unsafe fn row_generic<V: V16, const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
) {
    // k = 3 and k = 1 are the hot cases: a constant kernel side unrolls their tap loops.
    match job.k {
        1 => row_k::<V, N, 1>(job, post, out, oplane, orow),
        3 => row_k::<V, N, 3>(job, post, out, oplane, orow),
        _ => row_k::<V, N, 0>(job, post, out, oplane, orow),
    }
}

/// Full tiles of 4 vectors (64 columns), then one tile of `ceil(rest / 16)` vectors. `K` is
/// the kernel side, or 0 for "read it from `job`".
///
/// # Safety
///
/// As [`row_generic`].
#[inline(always)]
unsafe fn row_k<V: V16, const N: usize, const K: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
) {
    let mut j = job.j0;
    while j + 4 * W <= job.j1 {
        block::<V, N, 4, K>(job, post, out, oplane, orow, j, 4 * W);
        j += 4 * W;
    }
    let rem = job.j1 - j;
    match rem.div_ceil(W) {
        4 => block::<V, N, 4, K>(job, post, out, oplane, orow, j, rem),
        3 => block::<V, N, 3, K>(job, post, out, oplane, orow, j, rem),
        2 => block::<V, N, 2, K>(job, post, out, oplane, orow, j, rem),
        1 => block::<V, N, 1, K>(job, post, out, oplane, orow, j, rem),
        _ => {}
    }
}

/// One tile: `N` channels × `NV` vectors of columns from output column `j`, of which the first
/// `n` are valid (`16·(NV − 1) < n ≤ 16·NV`). Input vectors are read whole (the padded row
/// covers them, see [`Row::check`]); outputs only below `j + n`.
///
/// # Safety
///
/// As [`row_generic`], and `j..j + n` lies inside `job.j0..job.j1` with `j − j0` a multiple of
/// 16.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<V: V16, const N: usize, const NV: usize, const K: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
    j: usize,
    n: usize,
) {
    debug_assert!(W * (NV - 1) < n && n <= W * NV);
    let k = if K == 0 { job.k } else { K };
    let kk = k * k;
    // Accumulators: zero, or the sums the previous chunk stored (reloaded exactly).
    let mut acc = [[V::zero(); NV]; N];
    if !job.first {
        for r in 0..N {
            let o = out.add(r * oplane + orow + j);
            for v in 0..NV {
                acc[r][v] = if v + 1 < NV {
                    V::load(o.add(W * v))
                } else {
                    V::load_part(o.add(W * v), n - W * v)
                };
            }
        }
    }
    let inp = job.input.as_ptr().add(job.base + j);
    let wp = job.weights.as_ptr().add(job.ky0 * k * N);
    if K == 1 {
        // 1×1: one tap per channel, a flat channel loop (`nky` is 0 or 1).
        if job.nky == 1 {
            for c in 0..job.channels {
                let ir = inp.add(c * job.plane);
                let wr = wp.add(c * N);
                let mut x = [V::zero(); NV];
                for v in 0..NV {
                    x[v] = V::load(ir.add(W * v));
                }
                for r in 0..N {
                    let w = V::splat(*wr.add(r));
                    for v in 0..NV {
                        acc[r][v] = V::fma(w, x[v], acc[r][v]);
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
                    // x[v] = the 16 inputs at column j + kx + 16v; then every (r, v) takes its
                    // tap (c, ky, kx), in the order of the module docs.
                    let mut x = [V::zero(); NV];
                    for v in 0..NV {
                        x[v] = V::load(ir.add(kx + W * v));
                    }
                    for r in 0..N {
                        let w = V::splat(*wr.add(kx * N + r));
                        for v in 0..NV {
                            acc[r][v] = V::fma(w, x[v], acc[r][v]);
                        }
                    }
                }
            }
        }
    }
    let tenth = V::splat(0.1);
    for r in 0..N {
        let a = V::splat(post.a[r]);
        let b = V::splat(post.b[r]);
        let o = out.add(r * oplane + orow + j);
        for v in 0..NV {
            let mut y = acc[r][v];
            if job.last {
                y = V::fma(y, a, b);
                if post.leaky {
                    // max(y, 0.1·y) with MAXPS semantics (`y > 0.1·y ? y : 0.1·y`) is the
                    // scalar `y ≤ 0 ? 0.1·y : y` bit for bit: for y > 0 (and +∞ is equal
                    // either way) it is y; for y ≤ 0 it is 0.1·y, zeros keeping their sign;
                    // for a NaN it is 0.1·y, the same NaN.
                    y = V::max(y, V::mul(y, tenth));
                }
            }
            if v + 1 < NV {
                y.store(o.add(W * v));
            } else {
                y.store_part(o.add(W * v), n - W * v);
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    extern crate std;

    use std::vec;
    use std::vec::Vec;

    use super::super::{row_scalar, Fma, Isa, Post, Row, LANES, R};
    use super::row_soft;

    use tessera_core::kernel::{input_span, Kernels};
    use tessera_core::model::weights::{BatchNorm, ConvParams};
    use tessera_core::model::{Activation, Conv, Shape};
    use tessera_core::region::{Region, Span};
    use tessera_core::tensor::{FeatureView, FeatureViewMut};

    /// splitmix64.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in [-1, 1).
        fn f(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// Runs one random row job of `n` channels, `channels` input channels, kernel side `k`,
    /// columns `j0..j0 + width` through `row_soft::<N>` and `row_scalar`; both outputs.
    #[allow(clippy::too_many_arguments)]
    fn one_row<const N: usize>(
        rng: &mut Rng,
        k: usize,
        channels: usize,
        j0: usize,
        width: usize,
        first: bool,
        last: bool,
        leaky: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let j1 = j0 + width;
        // A padded input like `PadGeo`'s: rows rounded to whole vectors plus k − 1, k rows per
        // channel (all kernel rows inside the map, or a random sub-range of them).
        let wp = j1.div_ceil(LANES) * LANES + k - 1;
        let ky0 = if rng.below(4) == 0 { rng.below(k) } else { 0 };
        let nky = if ky0 > 0 || rng.below(4) == 0 {
            rng.below(k - ky0 + 1)
        } else {
            k
        };
        let plane = k * wp;
        let input: Vec<f32> = (0..channels * plane).map(|_| rng.f()).collect();
        let weights: Vec<f32> = (0..channels * k * k * N).map(|_| rng.f()).collect();
        let mut post = Post {
            a: [1.0; R],
            b: [0.0; R],
            leaky,
        };
        for r in 0..N {
            post.a[r] = rng.f() + 1.5;
            post.b[r] = rng.f();
        }
        let orow = rng.below(3);
        let oplane = orow + j1 + rng.below(20);
        let stored: Vec<f32> = (0..N * oplane).map(|_| rng.f() * 4.0).collect();
        let job = Row {
            input: &input,
            base: ky0 * wp,
            plane,
            row: wp,
            channels,
            ky0,
            nky,
            k,
            stride: 1,
            weights: &weights,
            j0,
            j1,
            first,
            last,
        };
        let mut a = stored.clone();
        let mut b = stored;
        row_soft::<N>(&job, &post, &mut a, oplane, orow);
        row_scalar(&job, N, &post, &mut b, oplane, orow);
        (a, b)
    }

    fn rows_of<const N: usize>(rng: &mut Rng) {
        for k in [1, 3, 5] {
            // Every remainder 1..=63 after 0, 1 or 2 full 64-column tiles.
            for width in 1..=64 * 2 + 63 {
                let channels = [1, 2, 3, 7][rng.below(4)];
                let j0 = 16 * rng.below(3);
                let (first, last, leaky) =
                    (rng.below(2) == 0, rng.below(2) == 0, rng.below(2) == 0);
                let (a, b) = one_row::<N>(rng, k, channels, j0, width, first, last, leaky);
                assert!(
                    same_bits(&a, &b),
                    "N={N} k={k} c={channels} j0={j0} w={width} first={first} last={last} leaky={leaky}"
                );
            }
        }
    }

    /// `row_soft` equals `row_scalar` bit for bit (outputs beyond `j1` untouched by both).
    #[test]
    fn soft16_rows_equal_scalar() {
        let mut rng = Rng(0x5eed_1616);
        rows_of::<1>(&mut rng);
        rows_of::<2>(&mut rng);
        rows_of::<3>(&mut rng);
        rows_of::<4>(&mut rng);
        rows_of::<5>(&mut rng);
        rows_of::<6>(&mut rng);
    }

    /// Leaky on signed zeros, infinities and NaN: the MAXPS-style max equals the scalar rule.
    #[test]
    fn soft16_leaky_special_values() {
        let specials = [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(1),
            f32::from_bits(0x8000_0001),
            f32::MIN_POSITIVE,
            -1.0,
            1.0,
        ];
        let n = 16 * 2 + 5;
        let input = vec![0.0f32; 64];
        let weights = vec![0.0f32; 1];
        let stored: Vec<f32> = (0..n).map(|i| specials[i % specials.len()]).collect();
        let job = Row {
            input: &input,
            base: 0,
            plane: 48,
            row: 48,
            channels: 1,
            ky0: 0,
            // No taps: the stored values reach the post-processing unchanged.
            nky: 0,
            k: 1,
            stride: 1,
            weights: &weights,
            j0: 0,
            j1: n,
            first: false,
            last: true,
        };
        let post = Post {
            a: [1.0; R],
            b: [0.0; R],
            leaky: true,
        };
        let (mut a, mut b) = (stored.clone(), stored);
        row_soft::<1>(&job, &post, &mut a, n, 0);
        row_scalar(&job, 1, &post, &mut b, n, 0);
        assert!(same_bits(&a, &b));
    }

    /// A whole conv on `isa` over `region` of the output.
    fn conv_on(
        isa: Isa,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &[f32],
        region: Region,
    ) -> Vec<f32> {
        let needed = Region::new(
            input_span(region.x, conv.size, conv.stride, conv.pad, map.w),
            input_span(region.y, conv.size, conv.stride, conv.pad, map.h),
        );
        let full = FeatureView::new(input, Region::full(map.w, map.h), map.c).unwrap();
        let mut buf = vec![0.0; needed.area() as usize * map.c as usize];
        let mut iv = FeatureViewMut::new(&mut buf, needed, map.c).unwrap();
        tessera_core::tensor::copy_overlap(&full, &mut iv);
        let mut out = vec![f32::NAN; region.area() as usize * conv.filters as usize];
        let mut ov = FeatureViewMut::new(&mut out, region, conv.filters).unwrap();
        Fma::with_isa(isa)
            .unwrap()
            .conv(conv, map, params, &iv.as_view(), &mut ov)
            .unwrap();
        out
    }

    /// YOLO-like convs (3×3 with L1 chunking and 64-column blocks, 1×1 with chunking, small
    /// maps, odd filter counts) on Soft16 equal the scalar path bit for bit, whole and tiled.
    #[test]
    fn soft16_conv_equals_scalar() {
        let mut rng = Rng(0xc0_5e16);
        // (w, h, c, filters, k, pad)
        let layers = [
            (150, 3, 40, 16, 3, 1),
            (76, 4, 64, 13, 3, 1),
            (38, 3, 128, 10, 1, 0),
            (19, 5, 512, 7, 1, 0),
            (13, 13, 5, 8, 3, 1),
            (37, 6, 9, 6, 5, 2),
            (70, 2, 3, 32, 3, 1),
        ];
        for (w, h, c, filters, k, pad) in layers {
            let conv = Conv {
                filters,
                size: k,
                stride: 1,
                pad,
                batch_norm: true,
                activation: Activation::Leaky,
            };
            let map = Shape::new(w, h, c);
            let n = filters as usize;
            let biases: Vec<f32> = (0..n).map(|_| rng.f()).collect();
            let scales: Vec<f32> = (0..n).map(|_| rng.f() + 1.5).collect();
            let mean: Vec<f32> = (0..n).map(|_| rng.f() * 0.5).collect();
            let variance: Vec<f32> = (0..n).map(|_| rng.f().abs() + 0.1).collect();
            let weights: Vec<f32> = (0..conv.weight_count(c).unwrap())
                .map(|_| rng.f())
                .collect();
            let input: Vec<f32> = (0..(w * h * c) as usize).map(|_| rng.f()).collect();
            let params = ConvParams {
                biases: &biases,
                bn: Some(BatchNorm {
                    scales: &scales,
                    mean: &mean,
                    variance: &variance,
                }),
                weights: &weights,
            };
            let (ow, oh) = (conv.out_extent(w).unwrap(), conv.out_extent(h).unwrap());
            let x0 = rng.below(ow as usize / 2) as u32;
            let regions = [
                Region::full(ow, oh),
                Region::new(Span::new(x0, ow), Span::new(oh / 2, oh)),
            ];
            for region in regions {
                let a = conv_on(Isa::Soft16, &conv, map, &params, &input, region);
                let b = conv_on(Isa::Scalar, &conv, map, &params, &input, region);
                assert!(same_bits(&a, &b), "{conv:?} on {map:?}, {region:?}");
            }
        }
    }
}
