//! Tests of the generic kernel: every software geometry (and the hardware ones this machine
//! runs) against the scalar path bit for bit, and the Miri-sized `pointer_` tests.

extern crate std;

use std::vec;
use std::vec::Vec;

use super::super::row::{row_scalar, Post, Row};
use super::super::{Fma, Isa, LANES, R};
use super::{
    checked, row_generic, row_soft, row_soft_as, rows_soft, rows_soft_as, Outlined, Soft, Vector,
};

use tessera_core::kernel::{input_span, Kernels};
use tessera_core::model::weights::{BatchNorm, ConvParams};
use tessera_core::model::{Activation, Conv, Shape};
use tessera_core::region::{Region, Span};
use tessera_core::rng::SplitMix64;
use tessera_core::tensor::{FeatureView, FeatureViewMut};

/// The workspace's SplitMix64 with the draws these tests use.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(SplitMix64::new(seed))
    }

    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        self.0.uniform_f32(-1.0, 1.0)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0.below(n)
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// A safe row entry: `N` channels of a row job into `out[r·oplane + orow + j]`.
type RowFn = fn(&Row<'_>, &Post, &mut [f32], usize, usize);

/// The entries of one kernel for `N = 1..=6`, as [`RowFn`]s (or, with a leading `[Type]`,
/// as that entry type: `[RowsFn]` for the multi-row kernels).
macro_rules! entries {
    ([$t:ty] $f:ident $(:: $g:ident)* $(, $c:literal)*) => {
        [
            $f$(::$g)*::<$($c,)* 1>,
            $f$(::$g)*::<$($c,)* 2>,
            $f$(::$g)*::<$($c,)* 3>,
            $f$(::$g)*::<$($c,)* 4>,
            $f$(::$g)*::<$($c,)* 5>,
            $f$(::$g)*::<$($c,)* 6>,
        ] as [$t; 6]
    };
    ($($k:tt)*) => {
        entries!([RowFn] $($k)*)
    };
}

/// Runs one random row job of `n` channels, `channels` input channels, kernel side `k`,
/// columns `j0..j0 + width` through `run` (a kernel reading whole vectors of `lanes`) and
/// `row_scalar`; both outputs.
///
/// The input and output buffers are exactly as long as [`Row::check`] demands for `lanes`
/// (no input at all when the row has no taps), so any access past what it bounds is out of
/// bounds, which Miri reports.
#[allow(clippy::too_many_arguments)]
fn one_row(
    rng: &mut Rng,
    run: RowFn,
    lanes: usize,
    n: usize,
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
    let weights: Vec<f32> = (0..channels * k * k * n).map(|_| rng.f()).collect();
    let mut post = Post {
        a: [1.0; R],
        b: [0.0; R],
        leaky,
    };
    for r in 0..n {
        post.a[r] = rng.f() + 1.5;
        post.b[r] = rng.f();
    }
    let orow = rng.below(3);
    let oplane = orow + j1 + rng.below(20);
    let mut stored: Vec<f32> = (0..n * oplane).map(|_| rng.f() * 4.0).collect();
    stored.truncate((n - 1) * oplane + orow + j1);
    let input_len = if nky == 0 || channels == 0 {
        0
    } else {
        // `check`'s last input index, plus one.
        let cols = j0 + width.div_ceil(lanes) * lanes;
        ky0 * wp + (channels - 1) * plane + (nky - 1) * wp + cols + k - 1
    };
    let job = Row {
        input: &input[..input_len],
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
    run(&job, &post, &mut a, oplane, orow);
    row_scalar(&job, n, &post, &mut b, oplane, orow);
    (a, b)
}

/// Random rows of every channel count through `runs` (`runs[n − 1]` takes `n` channels)
/// against the scalar path, bit for bit (outputs beyond `j1` untouched by both).
fn rows(name: &str, rng: &mut Rng, lanes: usize, runs: [RowFn; 6]) {
    for (run, n) in runs.into_iter().zip(1..) {
        for k in [1, 3, 5] {
            // Every remainder after 0, 1 or 2 full tiles (64 columns or fewer), and more
            // tiles.
            for width in 1..=64 * 2 + 63 {
                let channels = [1, 2, 3, 7][rng.below(4)];
                let j0 = 16 * rng.below(3);
                row_case(name, rng, run, lanes, n, k, channels, j0, width);
            }
        }
    }
}

/// [`one_row`] with random first/last/leaky flags; asserts both outputs equal bit for bit.
#[allow(clippy::too_many_arguments)]
fn row_case(
    name: &str,
    rng: &mut Rng,
    run: RowFn,
    lanes: usize,
    n: usize,
    k: usize,
    channels: usize,
    j0: usize,
    width: usize,
) {
    let (first, last, leaky) = (rng.below(2) == 0, rng.below(2) == 0, rng.below(2) == 0);
    let (a, b) = one_row(
        rng, run, lanes, n, k, channels, j0, width, first, last, leaky,
    );
    assert!(
        same_bits(&a, &b),
        "{name} n={n} k={k} c={channels} j0={j0} w={width} first={first} last={last} \
         leaky={leaky}"
    );
}

/// `row_soft` (the AVX-512 geometry) equals `row_scalar` bit for bit.
#[test]
fn soft16_rows_equal_scalar() {
    rows("soft16", &mut Rng::new(0x5eed_1616), 16, entries!(row_soft));
}

/// The generic kernel with the AVX2 (8 lanes × 2) and NEON (4 lanes × 4) geometries, and a
/// 3-vector tile, equals `row_scalar` bit for bit on any machine.
#[test]
fn narrow_geometries_equal_scalar() {
    let mut rng = Rng::new(0x5eed_0804);
    rows("soft 8x2", &mut rng, 8, entries!(row_soft_as, 8, 2));
    rows("soft 4x4", &mut rng, 4, entries!(row_soft_as, 4, 4));
    rows("soft 8x3", &mut rng, 8, entries!(row_soft_as, 8, 3));
}

/// The hardware instantiations this machine runs (AVX2 with its inline-asm 3×3 tiles,
/// AVX-512, NEON) equal `row_scalar` bit for bit on every tail width.
#[test]
fn hardware_rows_equal_scalar() {
    let mut rng = Rng::new(0x5eed_4a4d);
    #[cfg(target_arch = "x86_64")]
    {
        use super::super::{avx512, x86};
        if x86::available() {
            rows("avx2", &mut rng, 8, entries!(x86::row));
        }
        if avx512::available() {
            rows("avx512", &mut rng, 16, entries!(avx512::row));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use super::super::neon;
        if neon::available() {
            rows("neon", &mut rng, 4, entries!(neon::row));
        }
    }
    // Other targets have no instantiation to test here.
    let _ = &mut rng;
}

/// `V` with the trait's default partial load and store (through a stack copy, as `Ymm` and
/// `Q` do) instead of its own: runs the AVX2 and NEON partial-vector code on a software
/// vector.
#[derive(Clone, Copy)]
struct Copied<V>(V);

impl<V: Vector> Vector for Copied<V> {
    const LANES: usize = V::LANES;
    const TILE: usize = V::TILE;

    unsafe fn zero() -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Copied(unsafe { V::zero() })
    }

    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Copied(unsafe { V::splat(x) })
    }

    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Copied(unsafe { V::broadcast(p) })
    }

    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Copied(unsafe { V::load(p) })
    }

    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller's contract is `V`'s.
        unsafe { self.0.store(p) }
    }

    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Copied(unsafe { V::fma(a.0, b.0, c.0) })
    }

    unsafe fn leaky(self, tenth: Self) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Copied(unsafe { self.0.leaky(tenth.0) })
    }
}

/// The generic kernel on `Copied<Soft<L, T>>`: the AVX2 (`8, 2`) or NEON (`4, 4`)
/// geometry with their partial-vector code (each operation a call, as [`Outlined`] makes them).
fn row_copied<const L: usize, const T: usize, const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    type V<const L: usize, const T: usize> = Copied<Outlined<Soft<L, T>>>;
    if checked::<V<L, T>, N>(job, out, oplane, orow) {
        // SAFETY: a software vector needs no CPU feature; `checked` did what
        // `row_generic` asks.
        unsafe { row_generic::<V<L, T>, N>(job, post, out.as_mut_ptr(), oplane, orow) }
    }
}

/// The software kernels that run the pointer code of the SIMD paths: the AVX-512 geometry
/// with its own partial vectors, the AVX2 and NEON geometries with the stack copies.
fn pointer_kernels() -> [(&'static str, usize, usize, [RowFn; 6]); 3] {
    [
        ("soft16", 16, 4, entries!(row_soft)),
        ("copied 8x2", 8, 2, entries!(row_copied, 8, 2)),
        ("copied 4x4", 4, 4, entries!(row_copied, 4, 4)),
    ]
}

/// The generic kernel's pointer code on tight buffers, sized for Miri (`ci/run` runs the
/// tests named `pointer_` under it, where any access outside what [`Row::check`] bounds is
/// an error): every tile width (partial and whole tiles, a whole tile and a rest), kernel
/// sides 1 and 3 (their constant paths) and 2 (read from the job), 0 to 2 input channels,
/// against the scalar path bit for bit.
#[test]
fn pointer_paths_equal_scalar_on_tight_buffers() {
    let mut rng = Rng::new(0x5eed_3141);
    for (name, lanes, tile, runs) in pointer_kernels() {
        let full = lanes * tile;
        for (run, n) in runs
            .into_iter()
            .zip(1..)
            .filter(|(_, n)| [1, 4, 6].contains(n))
        {
            for k in [1, 3, 2] {
                for width in [
                    1,
                    lanes + 1,
                    2 * lanes + 3,
                    full - 1,
                    full,
                    full + lanes + 3,
                ] {
                    let channels = rng.below(3);
                    let j0 = 16 * rng.below(2);
                    row_case(name, &mut rng, run, lanes, n, k, channels, j0, width);
                }
            }
        }
    }
}

/// Rows without taps (no kernel row inside the map, or no input channels) form no pointer
/// from `base` or the weights, which [`Row::check`] does not bound then: here an empty
/// input with `base` far past it, and no weights with `ky0 > 0`. Natively nothing is
/// read either way; under Miri an out-of-bounds offset is an error.
#[test]
fn pointer_paths_without_taps() {
    let mut rng = Rng::new(0x5eed_0000);
    for (name, _, _, runs) in pointer_kernels() {
        for (nky, channels, ky0) in [(0, 2, 0), (0, 2, 3), (1, 0, 2)] {
            for (run, n) in runs
                .into_iter()
                .zip(1..)
                .filter(|(_, n)| [1, 6].contains(n))
            {
                let k = 3;
                let weights: Vec<f32> = (0..channels * k * k * n).map(|_| rng.f()).collect();
                let post = Post {
                    a: [1.5; R],
                    b: [-0.25; R],
                    leaky: true,
                };
                let (j0, j1) = (16, 16 + 37);
                let job = Row {
                    input: &[],
                    base: 1000,
                    plane: 500,
                    row: 50,
                    channels,
                    ky0,
                    nky,
                    k,
                    stride: 1,
                    weights: &weights,
                    j0,
                    j1,
                    first: false,
                    last: true,
                };
                let oplane = j1 + 3;
                let stored: Vec<f32> = (0..(n - 1) * oplane + j1).map(|_| rng.f() * 4.0).collect();
                let (mut a, mut b) = (stored.clone(), stored);
                run(&job, &post, &mut a, oplane, 0);
                row_scalar(&job, n, &post, &mut b, oplane, 0);
                assert!(same_bits(&a, &b), "{name} n={n} nky={nky} c={channels}");
            }
        }
    }
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
/// maps, odd filter counts, rows computed in groups) on Soft16 equal the scalar path bit for
/// bit, whole and tiled.
#[test]
fn soft16_conv_equals_scalar() {
    let mut rng = Rng::new(0xc0_5e16);
    // (w, h, c, filters, k, pad)
    let layers = [
        (150, 3, 40, 16, 3, 1),
        (76, 4, 64, 13, 3, 1),
        (38, 3, 128, 10, 1, 0),
        (19, 5, 512, 7, 1, 0),
        (13, 13, 5, 8, 3, 1),
        (37, 6, 9, 6, 5, 2),
        (70, 2, 3, 32, 3, 1),
        // Row groups: a full tile and a 1-vector rest (4-row tiles), a 2-vector rest with
        // L1 chunks (2-row tiles).
        (80, 9, 24, 7, 3, 1),
        (90, 8, 40, 12, 3, 1),
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

/// A safe multi-row entry: `N` channels of `rows` rows of a 3×3 job, row `i` into
/// `out[r·oplane + orow + i·ostep + j]`.
type RowsFn = fn(&Row<'_>, &Post, &mut [f32], usize, usize, usize, usize);

/// One random multi-row job (3×3, `rows` rows of columns `j0..j0 + width`, random kernel
/// rows in the map, first/last/leaky flags) through `run` and, row by row, through
/// `row_scalar`; asserts both outputs equal bit for bit. Input and output buffers are exactly
/// as long as the last row's [`Row::check`] demands for `lanes`, so Miri reports any access
/// past them.
#[allow(clippy::too_many_arguments)]
fn rows_case(
    name: &str,
    rng: &mut Rng,
    run: RowsFn,
    lanes: usize,
    n: usize,
    rows: usize,
    channels: usize,
    j0: usize,
    width: usize,
) {
    let k = 3;
    let j1 = j0 + width;
    let wp = j1.div_ceil(LANES) * LANES + k - 1;
    let ky0 = if rng.below(4) == 0 { rng.below(k) } else { 0 };
    let nky = if ky0 > 0 || rng.below(4) == 0 {
        rng.below(k - ky0 + 1)
    } else {
        k
    };
    let plane = (k + rows - 1) * wp;
    let input: Vec<f32> = (0..channels * plane).map(|_| rng.f()).collect();
    let weights: Vec<f32> = (0..channels * k * k * n).map(|_| rng.f()).collect();
    let (first, last, leaky) = (rng.below(2) == 0, rng.below(2) == 0, rng.below(2) == 0);
    let mut post = Post {
        a: [1.0; R],
        b: [0.0; R],
        leaky,
    };
    for r in 0..n {
        post.a[r] = rng.f() + 1.5;
        post.b[r] = rng.f();
    }
    let orow = rng.below(3);
    let ostep = j1 + rng.below(4);
    let oplane = orow + (rows - 1) * ostep + j1 + rng.below(20);
    let mut stored: Vec<f32> = (0..n * oplane).map(|_| rng.f() * 4.0).collect();
    stored.truncate((n - 1) * oplane + orow + (rows - 1) * ostep + j1);
    let input_len = if nky == 0 || channels == 0 {
        0
    } else {
        let cols = j0 + width.div_ceil(lanes) * lanes;
        (ky0 + rows - 1) * wp + (channels - 1) * plane + (nky - 1) * wp + cols + k - 1
    };
    let job = Row {
        input: &input[..input_len],
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
    run(&job, &post, &mut a, oplane, orow, rows, ostep);
    for i in 0..rows {
        let one = Row {
            base: job.base + i * wp,
            ..job
        };
        row_scalar(&one, n, &post, &mut b, oplane, orow + i * ostep);
    }
    assert!(
        same_bits(&a, &b),
        "{name} n={n} rows={rows} c={channels} j0={j0} w={width} ky0={ky0} nky={nky} \
         first={first} last={last} leaky={leaky}"
    );
}

/// The multi-row kernels of `lanes`-lane vectors and `tile`-vector tiles: every row count
/// and width a tile takes (`rows · ceil(width / lanes) ≤ tile`), against the scalar path
/// row by row.
fn rows_all(
    name: &str,
    rng: &mut Rng,
    lanes: usize,
    tile: usize,
    runs: [RowsFn; 6],
    widths: &[usize],
) {
    // Under Miri (slow): the narrowest and widest channel counts, the most rows, at most 2
    // input channels.
    let all = !cfg!(miri);
    for (run, n) in runs
        .into_iter()
        .zip(1..)
        .filter(|(_, n)| all || [1, 6].contains(n))
    {
        for &width in widths {
            let most = tile / width.div_ceil(lanes);
            for rows in if all { 2 } else { most }..=most {
                let channels = rng.below(if all { 4 } else { 3 });
                let j0 = 16 * rng.below(2);
                rows_case(name, rng, run, lanes, n, rows, channels, j0, width);
            }
        }
    }
}

/// The multi-row tiles (AVX-512 geometry, and 8 lanes × 2 for the generic code), and the
/// AVX-512 ones where this machine has AVX-512F, equal the scalar path row by row, on tight
/// buffers (Miri runs the `pointer_` tests).
#[test]
fn pointer_rows_equal_scalar_on_tight_buffers() {
    let mut rng = Rng::new(0x5eed_4044);
    rows_all(
        "soft16",
        &mut rng,
        16,
        4,
        entries!([RowsFn] rows_soft),
        &[1, 13, 16, 17, 32],
    );
    rows_all(
        "soft 8x2",
        &mut rng,
        8,
        2,
        entries!([RowsFn] rows_soft_as, 8, 2),
        &[1, 5, 8],
    );
    #[cfg(target_arch = "x86_64")]
    {
        use super::super::avx512;
        if avx512::available() && !cfg!(miri) {
            let widths: Vec<usize> = (1..=32).collect();
            rows_all(
                "avx512",
                &mut rng,
                16,
                4,
                entries!([RowsFn] avx512::rows),
                &widths,
            );
        }
    }
}
