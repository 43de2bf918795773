//! The FMA kernels: against the reference within the documented bound, bit for bit against the
//! scalar FMA path, across regions, threads and tiles (docs/design.md §2.7).
#![cfg(feature = "simd")]

use proptest::prelude::*;
use tessera_backends::kernels::{Fma, Isa};
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::kernel::{input_span, KernelError, Kernels, Reference};
use tessera_core::model::weights::{ConvParams, Weights};
use tessera_core::model::{MaxPool, Shape};
use tessera_core::region::{Region, Span};
use tessera_core::rng::SplitMix64;
use tessera_core::tensor::{FeatureView, FeatureViewMut};
use tessera_testkit::conv_layer::{window_holds, ConvSpec, RandomConv, UNTOUCHED};
use tessera_testkit::tiles::{build, net_params, same_bits, tiled, Spec};

/// The kernels under test: every instruction set this machine runs (the scalar path first,
/// then e.g. AVX2 and the AVX-512 code on its 16-lane software vector, or NEON).
fn kernels() -> Vec<Fma> {
    Isa::available()
        .map(|isa| Fma::with_isa(isa).unwrap())
        .collect()
}

/// One conv layer with random parameters (variances positive, as in a trained net).
#[derive(Debug)]
struct Layer(RandomConv);

impl std::ops::Deref for Layer {
    type Target = RandomConv;
    fn deref(&self) -> &RandomConv {
        &self.0
    }
}

impl Layer {
    #[allow(clippy::too_many_arguments)]
    fn new(
        w: u32,
        h: u32,
        c: u32,
        filters: u32,
        k: u32,
        stride: u32,
        pad: u32,
        bn: bool,
        leaky: bool,
        rng: &mut SplitMix64,
    ) -> Self {
        let spec = ConvSpec {
            w,
            h,
            c,
            filters,
            size: k,
            stride,
            pad,
            bn,
            leaky,
            bias_without_bn: true,
        };
        Layer(RandomConv::new(&spec, rng))
    }

    fn out_map(&self) -> (u32, u32) {
        (
            self.conv.out_extent(self.map.w).unwrap(),
            self.conv.out_extent(self.map.h).unwrap(),
        )
    }

    /// Runs `k` on `region`, from an input view holding exactly what the region needs.
    fn run<K: Kernels>(&self, k: &K, region: Region) -> Vec<f32> {
        self.run_from(k, region, self.needed(region)).unwrap()
    }

    /// [`Layer::run`] through a window of a buffer laid out as `layout`.
    fn run_window<K: Kernels>(&self, k: &K, region: Region, layout: Region) -> Vec<f32> {
        self.run_within(k, region, self.needed(region), layout)
            .unwrap()
    }

    /// The input region `region` reads.
    fn needed(&self, region: Region) -> Region {
        let c = &self.conv;
        Region::new(
            input_span(region.x, c.size, c.stride, c.pad, self.map.w),
            input_span(region.y, c.size, c.stride, c.pad, self.map.h),
        )
    }

    /// The documented bound on |FMA − reference| at output (o, x, y):
    /// 2(n + 4)·u·(|a|·(Σ|w·x| + |μ|) + |β|).
    fn bound(&self, o: usize, x: u32, y: u32) -> f64 {
        let c = &self.conv;
        let (k, s, p) = (c.size as i64, c.stride as i64, c.pad as i64);
        let (w, h) = (self.map.w as i64, self.map.h as i64);
        let mut sum = 0.0f64;
        for ci in 0..self.map.c as i64 {
            for ky in 0..k {
                for kx in 0..k {
                    let (iy, ix) = (y as i64 * s - p + ky, x as i64 * s - p + kx);
                    if iy < 0 || iy >= h || ix < 0 || ix >= w {
                        continue;
                    }
                    let wi = ((o as i64 * self.map.c as i64 + ci) * k + ky) * k + kx;
                    let xi = (ci * h + iy) * w + ix;
                    sum +=
                        (self.weights[wi as usize] as f64 * self.input[xi as usize] as f64).abs();
                }
            }
        }
        let n = (self.map.c as i64 * k * k) as f64;
        let (a, mu) = if c.batch_norm {
            let d = (self.variance[o] as f64).sqrt() + 1e-6;
            ((self.scales[o] as f64 / d).abs(), self.mean[o].abs() as f64)
        } else {
            (1.0, 0.0)
        };
        2.0 * (n + 4.0) * f32::EPSILON as f64 / 2.0 * (a * (sum + mu) + self.biases[o].abs() as f64)
    }
}

/// `r` grown by 0–3 on each side (not past 0): a buffer an output window of `r` lies in.
fn around(rng: &mut SplitMix64, r: Region) -> Region {
    let mut more = || rng.below(4) as u32;
    Region::new(
        Span::new(r.x.start.saturating_sub(more()), r.x.end + more()),
        Span::new(r.y.start.saturating_sub(more()), r.y.end + more()),
    )
}

/// A random sub-region of the output map (tile edges anywhere).
fn sub_region(rng: &mut SplitMix64, (w, h): (u32, u32)) -> Region {
    let mut below = |n: u32| rng.below(n as usize) as u32;
    let x0 = below(w);
    let y0 = below(h);
    let x1 = x0 + 1 + below(w - x0);
    let y1 = y0 + 1 + below(h - y0);
    Region::new(Span::new(x0, x1), Span::new(y0, y1))
}

fn layer_strategy() -> impl Strategy<Value = (Layer, u64)> {
    (
        1u32..=70,
        1u32..=20,
        1u32..=9,
        1u32..=11,
        prop::sample::select(vec![1u32, 3, 3, 5]),
        prop::sample::select(vec![1u32, 1, 2]),
        prop::bool::weighted(0.15),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_filter_map(
            "kernel larger than the map",
            |(w, h, c, f, k, s, no_pad, bn, leaky, seed)| {
                let pad = if no_pad { 0 } else { k / 2 };
                if w + 2 * pad < k || h + 2 * pad < k {
                    return None;
                }
                let mut rng = SplitMix64::new(seed);
                let l = Layer::new(w, h, c, f, k, s, pad, bn, leaky, &mut rng);
                Some((l, rng.next_u64()))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every kernel is within the bound of the reference, on the full map and on a random
    /// region; on that region it equals its own full-map result bit for bit; all kernels
    /// (scalar, AVX2, AVX-512's code on 16 software lanes, NEON) agree bit for bit; 2 and 3
    /// threads equal 1.
    #[test]
    fn fma_matches_reference_and_itself((layer, seed) in layer_strategy()) {
        let mut rng = SplitMix64::new(seed);
        let (ow, oh) = layer.out_map();
        let full = Region::full(ow, oh);
        let expect = layer.run(&Reference, full);
        let sub = sub_region(&mut rng, (ow, oh));
        let mut first: Option<Vec<f32>> = None;
        for k in kernels() {
            let got = layer.run(&k, full);
            for o in 0..layer.conv.filters as usize {
                for y in 0..oh {
                    for x in 0..ow {
                        let i = (o * oh as usize + y as usize) * ow as usize + x as usize;
                        let err = (got[i] as f64 - expect[i] as f64).abs();
                        let tol = layer.bound(o, x, y);
                        prop_assert!(
                            err <= tol,
                            "{:?} o{o} ({x},{y}): {} vs ref {} (err {err:e} > {tol:e})",
                            k.isa(), got[i], expect[i]
                        );
                    }
                }
            }
            let part = layer.run(&k, sub);
            for o in 0..layer.conv.filters {
                for y in sub.y.start..sub.y.end {
                    for x in sub.x.start..sub.x.end {
                        let a = part[((o * sub.height() + y - sub.y.start) * sub.width()
                            + x - sub.x.start) as usize];
                        let b = got[((o * oh + y) * ow + x) as usize];
                        prop_assert_eq!(a.to_bits(), b.to_bits(), "{:?} region {:?}", k.isa(), sub);
                    }
                }
            }
            for t in [2, 3] {
                let threaded = layer.run(&k.clone().with_threads(t), sub);
                prop_assert!(same_bits(&threaded, &part), "{:?} {t} threads", k.isa());
            }
            // Through a window of a larger buffer: the region alone written, the same bits.
            let layout = around(&mut rng, sub);
            for t in [1, 2] {
                let win = layer.run_window(&k.clone().with_threads(t), sub, layout);
                let holds = window_holds(&win, layout, sub, layer.conv.filters, &part);
                prop_assert!(holds.is_ok(), "{:?} {t} threads: {}", k.isa(), holds.unwrap_err());
            }
            match &first {
                None => first = Some(got),
                Some(f) => prop_assert!(same_bits(f, &got), "{:?} differs from the scalar path", k.isa()),
            }
        }
    }
}

/// Wide YOLO-like rows (column blocks, remainders, channel chunks, 1×1 and 3×3) on every
/// kernel: bit-exact across ISAs and threads, and within the bound of the reference.
#[test]
fn yolo_like_shapes() {
    let mut rng = SplitMix64::new(42);
    for (w, h, c, f, k) in [
        (76, 5, 32, 9, 3),
        (38, 6, 64, 13, 1),
        (61, 4, 3, 32, 3),
        (50, 3, 17, 8, 3),
        // Input channels cut into L1 chunks (sums carried through the output).
        (50, 3, 60, 7, 3),
        (20, 2, 400, 7, 1),
        // Rows over 64 columns (AVX-512's widest tile) with chunks and remainders.
        (150, 3, 60, 7, 3),
        (131, 2, 300, 11, 1),
    ] {
        let layer = Layer::new(w, h, c, f, k, 1, k / 2, true, true, &mut rng);
        let full = Region::full(w, h);
        let expect = layer.run(&Reference, full);
        let base = layer.run(&Fma::new(), full);
        for (o, chunk) in base.chunks(w as usize * h as usize).enumerate() {
            for (i, (&g, &e)) in chunk.iter().zip(&expect[o * chunk.len()..]).enumerate() {
                let (x, y) = (i as u32 % w, i as u32 / w);
                assert!((g as f64 - e as f64).abs() <= layer.bound(o, x, y));
            }
        }
        // The full map as a window of a buffer wider and taller than it (an FTP tile's
        // output written into its next layer's input), and its rows but the first as a
        // window of full-width rows (a band of a larger output: 1×1 convs stay flat).
        let layout = Region::new(Span::new(0, w + 3), Span::new(0, h + 2));
        let band = Region::new(full.x, Span::new(1, h));
        let band_layout = Region::new(full.x, Span::new(0, h + 2));
        let band_base: Vec<f32> = base
            .chunks(w as usize * h as usize)
            .flat_map(|plane| &plane[w as usize..])
            .copied()
            .collect();
        for kern in kernels() {
            for t in [1, 2, 4] {
                let kern = kern.clone().with_threads(t);
                assert!(same_bits(&layer.run(&kern, full), &base));
                let win = layer.run_window(&kern, full, layout);
                if let Err(e) = window_holds(&win, layout, full, f, &base) {
                    panic!("{:?} {t} threads: {e}", kern.isa());
                }
                let win = layer.run_window(&kern, band, band_layout);
                if let Err(e) = window_holds(&win, band_layout, band, f, &band_base) {
                    panic!("{:?} {t} threads, rows: {e}", kern.isa());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Max pools equal the reference bit for bit (full map, a region, threads).
    #[test]
    fn maxpool_matches_reference(
        w in 1u32..=41,
        h in 1u32..=23,
        c in 1u32..=6,
        cfg in prop::sample::select(vec![(2u32, 2u32, 1u32), (2, 2, 0), (3, 2, 2), (2, 1, 1)]),
        seed in any::<u64>(),
    ) {
        let (size, stride, pad) = cfg;
        let pool = MaxPool { size, stride, pad };
        let (Ok(ow), Ok(oh)) = (pool.out_extent(w), pool.out_extent(h)) else {
            return Ok(());
        };
        prop_assume!(ow > 0 && oh > 0);
        let mut rng = SplitMix64::new(seed);
        let map = Shape::new(w, h, c);
        let input: Vec<f32> = (0..(w * h * c) as usize).map(|_| rng.uniform_f32(-1.0, 1.0)).collect();
        let iv = FeatureView::new(&input, Region::full(w, h), c).unwrap();
        for region in [Region::full(ow, oh), sub_region(&mut rng, (ow, oh))] {
            let len = region.area() as usize * c as usize;
            let mut want = vec![0.0; len];
            let mut ov = FeatureViewMut::new(&mut want, region, c).unwrap();
            Reference.maxpool(&pool, map, &iv, &mut ov).unwrap();
            for t in [1, 2, 3] {
                let mut got = vec![f32::NAN; len];
                let mut ov = FeatureViewMut::new(&mut got, region, c).unwrap();
                Fma::new().with_threads(t).maxpool(&pool, map, &iv, &mut ov).unwrap();
                prop_assert!(same_bits(&got, &want), "{pool:?} {region:?} {t} threads");
                // Through a window of a larger buffer: the region alone written.
                let layout = around(&mut rng, region);
                let mut buf = vec![UNTOUCHED; layout.area() as usize * c as usize];
                let mut ov = FeatureViewMut::within(&mut buf, layout, region, c).unwrap();
                Fma::new().with_threads(t).maxpool(&pool, map, &iv, &mut ov).unwrap();
                let holds = window_holds(&buf, layout, region, c, &want);
                prop_assert!(holds.is_ok(), "{pool:?} {t} threads: {}", holds.unwrap_err());
            }
        }
    }
}

/// The views are checked as the core kernels check them.
#[test]
fn errors_match_the_reference() {
    let mut rng = SplitMix64::new(3);
    let layer = Layer::new(9, 7, 2, 3, 3, 1, 1, true, true, &mut rng);
    let params = layer.params();
    let input = vec![0.0; 9 * 7 * 2];
    let full_in = FeatureView::new(&input, Region::full(9, 7), 2).unwrap();
    let small_in = FeatureView::new(&input, Region::full(4, 4), 2).unwrap();
    let mut out = vec![0.0; 10 * 10 * 3];
    let cases: [(Region, &FeatureView<'_>, u32); 4] = [
        (Region::full(10, 7), &full_in, 3),
        (Region::full(9, 7), &small_in, 3),
        (Region::full(9, 7), &full_in, 2),
        (Region::full(3, 3), &full_in, 3),
    ];
    for (region, iv, ch) in cases {
        let mut ov = FeatureViewMut::new(&mut out, region, ch).unwrap();
        let want = Reference.conv(&layer.conv, layer.map, &params, iv, &mut ov);
        let got = Fma::new().conv(&layer.conv, layer.map, &params, iv, &mut ov);
        assert_eq!(got, want);
    }
    let bad = ConvParams {
        weights: &layer.weights[1..],
        ..params
    };
    let mut ov = FeatureViewMut::new(&mut out, Region::full(9, 7), 3).unwrap();
    assert_eq!(
        Fma::new().conv(&layer.conv, layer.map, &bad, &full_in, &mut ov),
        Err(KernelError::ParamsMismatch)
    );
}

// ---- tiles == full frame through the executor ----------------------------------------------

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        3 => (prop::sample::select(vec![1u32, 3, 3, 5]), 1u32..=2, 1u32..=6)
            .prop_map(|(k, s, f)| Some((k, if k == 1 { 1 } else { s }, f))),
        1 => Just(None),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Stitched tiles (plain and reuse) equal the 1×1 grid bit for bit, per kernel and with
    /// 2 threads.
    #[test]
    fn tiles_equal_full_frame_bit_for_bit(
        specs in prop::collection::vec(spec(), 2..=6),
        w in 8u32..=56,
        h in 8u32..=40,
        c in 1u32..=5,
        rows in 1u32..=5,
        cols in 1u32..=5,
        seed in any::<u64>(),
    ) {
        let net = build(w, h, c, &specs);
        prop_assume!(!net.layers().is_empty());
        let upto = net.layers().len();
        let stack = FusedStack::new(&net, upto).unwrap();
        let o = stack.output();
        let (rows, cols) = (1 + (rows - 1) % o.h.min(5), 1 + (cols - 1) % o.w.min(5));
        let grid = Grid::new(rows, cols, Partition::Balanced, &stack).unwrap();
        let one = Grid::new(1, 1, Partition::Balanced, &stack).unwrap();
        let mut rng = SplitMix64::new(seed);
        let data = net_params(&net, upto, &mut rng);
        let weights = Weights::new(&net, upto, &data).unwrap();
        let input: Vec<f32> = (0..stack.input().elements().unwrap()).map(|_| rng.uniform_f32(-1.0, 1.0)).collect();
        for k in kernels() {
            let whole = tiled(&k, &stack, &one, Mode::Plain, &weights, &input);
            for mode in [Mode::Plain, Mode::Reuse] {
                let got = tiled(&k, &stack, &grid, mode, &weights, &input);
                prop_assert!(same_bits(&got, &whole), "{:?} {mode:?} {rows}x{cols}", k.isa());
            }
            let two = tiled(&k.clone().with_threads(2), &stack, &grid, Mode::Reuse, &weights, &input);
            prop_assert!(same_bits(&two, &whole), "{:?} 2 threads", k.isa());
        }
    }
}

/// On ARM Linux the vector path is the one detected (so the tests above exercise it, under
/// qemu-user in CI as on a Pi): NEON on aarch64, NEON + VFPv4 from the HWCAP on armv7.
#[test]
fn arm_detects_its_vector_path() {
    let detected = Isa::detect();
    assert!(Isa::available().any(|isa| isa == detected));
    #[cfg(target_arch = "aarch64")]
    assert_eq!(detected, Isa::Neon);
    #[cfg(all(target_arch = "arm", target_os = "linux"))]
    assert_eq!(detected, Isa::Armv7Neon);
}
