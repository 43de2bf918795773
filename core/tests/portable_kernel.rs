//! `Portable` must equal `Reference` bit for bit on any layer, region and view, refuse the same
//! bad inputs with the same errors, and give tiles identical to the full frame.

use proptest::prelude::*;
use tessera_core::kernel::{KernelError, Kernels, Portable, Reference};
use tessera_core::model::weights::{BatchNorm, ConvParams};
use tessera_core::model::{Activation, Conv, MaxPool, Shape};
use tessera_core::rng::SplitMix64;
use tessera_core::tensor::{FeatureView, FeatureViewMut};
use tessera_core::{Region, Span};

/// Deterministic values in [-1, 1) with some exact ±0 and repeats (ties matter for maxpool).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let x = rng.next_u64();
            match x % 16 {
                0 => 0.0,
                1 => -0.0,
                2 => 0.5,
                _ => ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0,
            }
        })
        .collect()
}

/// A conv layer with its parameters.
struct Layer {
    conv: Conv,
    map: Shape,
    biases: Vec<f32>,
    bn: Option<[Vec<f32>; 3]>,
    weights: Vec<f32>,
}

impl Layer {
    fn new(conv: Conv, map: Shape, seed: u64) -> Self {
        let n = conv.filters as usize;
        let bn = conv.batch_norm.then(|| {
            let v = values(seed ^ 1, 3 * n);
            [
                v[..n].iter().map(|x| 1.0 + x).collect(),
                v[n..2 * n].to_vec(),
                v[2 * n..].iter().map(|x| x.abs() + 0.01).collect(),
            ]
        });
        Layer {
            conv,
            map,
            biases: values(seed ^ 2, n),
            bn,
            weights: values(seed ^ 3, conv.weight_count(map.c).unwrap()),
        }
    }

    fn params(&self) -> ConvParams<'_> {
        ConvParams {
            biases: &self.biases,
            bn: self.bn.as_ref().map(|[s, m, v]| BatchNorm {
                scales: s,
                mean: m,
                variance: v,
            }),
            weights: &self.weights,
        }
    }

    fn out_map(&self) -> (u32, u32) {
        (
            self.conv.out_extent(self.map.w).unwrap(),
            self.conv.out_extent(self.map.h).unwrap(),
        )
    }
}

/// Runs a conv kernel on `out_region` from the map restricted to `view` (values are the full
/// map's, so any view of the same map holds the same numbers).
fn run_conv(
    k: &dyn Kernels,
    l: &Layer,
    params: &ConvParams<'_>,
    full: &[f32],
    view: Region,
    out_region: Region,
) -> (Result<(), KernelError>, Vec<f32>) {
    let data = crop(full, l.map, view);
    let input = FeatureView::new(&data, view, l.map.c).unwrap();
    let mut buf = vec![f32::NAN; out_region.area() as usize * l.conv.filters as usize];
    let mut out = FeatureViewMut::new(&mut buf, out_region, l.conv.filters).unwrap();
    let r = k.conv(&l.conv, l.map, params, &input, &mut out);
    (r, buf)
}

fn run_pool(
    k: &dyn Kernels,
    pool: &MaxPool,
    map: Shape,
    full: &[f32],
    view: Region,
    out_region: Region,
) -> (Result<(), KernelError>, Vec<f32>) {
    let data = crop(full, map, view);
    let input = FeatureView::new(&data, view, map.c).unwrap();
    let mut buf = vec![f32::NAN; out_region.area() as usize * map.c as usize];
    let mut out = FeatureViewMut::new(&mut buf, out_region, map.c).unwrap();
    let r = k.maxpool(pool, map, &input, &mut out);
    (r, buf)
}

/// The CHW values of `region` of a full `map`.
fn crop(full: &[f32], map: Shape, region: Region) -> Vec<f32> {
    let mut v = Vec::new();
    for c in 0..map.c {
        for y in region.y.start..region.y.end {
            let row = ((c * map.h + y) * map.w) as usize;
            v.extend_from_slice(&full[row + region.x.start as usize..row + region.x.end as usize]);
        }
    }
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Input interval for output interval `o` (as the kernels compute it), widened by `grow` on
/// each side and clamped to `0..n`.
fn grown(o: Span, size: u32, stride: u32, pad: u32, n: u32, grow: (u32, u32)) -> Span {
    let s = tessera_core::kernel::input_span(o, size, stride, pad, n);
    Span::new(s.start.saturating_sub(grow.0), (s.end + grow.1).min(n))
}

/// A sub-span of `0..n` picked by two fractions: edges and interiors both come up.
fn sub(n: u32, a: u32, b: u32) -> Span {
    let lo = (a as u64 * n as u64 / 1000) as u32;
    let len = 1 + (b as u64 * (n - lo) as u64 / 1001) as u32;
    Span::new(lo, (lo + len).min(n))
}

/// Snap fractions to whole-map edges sometimes.
fn frac() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(999u32), 0u32..1000]
}

#[derive(Debug, Clone)]
struct ConvCase {
    k: u32,
    s: u32,
    p: u32,
    c: u32,
    f: u32,
    w: u32,
    h: u32,
    bn: bool,
    leaky: bool,
    rx: (u32, u32),
    ry: (u32, u32),
    grow: (u32, u32, u32, u32),
    seed: u64,
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (prop_oneof![Just(1u32), Just(3), Just(5), Just(7)], 1u32..=3)
        .prop_flat_map(|(k, s)| {
            (
                (
                    Just(k),
                    Just(s),
                    prop_oneof![4 => 0..=k / 2, 1 => 0..=k],
                    1u32..=9,
                    1u32..=19,
                ),
                (k..k + 40, k..k + 24, any::<bool>(), any::<bool>()),
                (
                    (frac(), frac()),
                    (frac(), frac()),
                    (0u32..3, 0u32..3, 0u32..3, 0u32..3),
                ),
                any::<u64>(),
            )
        })
        .prop_map(
            |((k, s, p, c, f), (w, h, bn, leaky), (rx, ry, grow), seed)| ConvCase {
                k,
                s,
                p,
                c,
                f,
                w,
                h,
                bn,
                leaky,
                rx,
                ry,
                grow,
                seed,
            },
        )
}

fn layer_of(t: &ConvCase) -> Layer {
    let conv = Conv {
        filters: t.f,
        size: t.k,
        stride: t.s,
        pad: t.p,
        batch_norm: t.bn,
        activation: if t.leaky {
            Activation::Leaky
        } else {
            Activation::Linear
        },
    };
    Layer::new(conv, Shape::new(t.w, t.h, t.c), t.seed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn conv_matches_reference_bit_for_bit(t in conv_case()) {
        let l = layer_of(&t);
        let (ow, oh) = l.out_map();
        let o = Region::new(sub(ow, t.rx.0, t.rx.1), sub(oh, t.ry.0, t.ry.1));
        let (k, s, p) = (t.k, t.s, t.p);
        let view = Region::new(
            grown(o.x, k, s, p, t.w, (t.grow.0, t.grow.1)),
            grown(o.y, k, s, p, t.h, (t.grow.2, t.grow.3)),
        );
        let full = values(t.seed ^ 4, (t.w * t.h * t.c) as usize);
        let params = l.params();
        let (rr, want) = run_conv(&Reference, &l, &params, &full, view, o);
        let (rp, got) = run_conv(&Portable, &l, &params, &full, view, o);
        prop_assert_eq!(rr, Ok(()));
        prop_assert_eq!(rp, Ok(()));
        prop_assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn conv_tile_equals_full_frame(t in conv_case()) {
        let l = layer_of(&t);
        let (ow, oh) = l.out_map();
        let all = Region::full(ow, oh);
        let o = Region::new(sub(ow, t.rx.0, t.rx.1), sub(oh, t.ry.0, t.ry.1));
        let full = values(t.seed ^ 4, (t.w * t.h * t.c) as usize);
        let params = l.params();
        let (r, whole) = run_conv(&Portable, &l, &params, &full, Region::full(t.w, t.h), all);
        prop_assert_eq!(r, Ok(()));
        let view = Region::new(
            grown(o.x, t.k, t.s, t.p, t.w, (0, 0)),
            grown(o.y, t.k, t.s, t.p, t.h, (0, 0)),
        );
        let (r, tile) = run_conv(&Portable, &l, &params, &full, view, o);
        prop_assert_eq!(r, Ok(()));
        let want = crop(&whole, Shape::new(ow, oh, t.f), o);
        prop_assert_eq!(bits(&tile), bits(&want));
    }

    #[test]
    fn conv_errors_match_reference(t in conv_case(), which in 0u32..7) {
        let mut l = layer_of(&t);
        let (ow, oh) = l.out_map();
        let mut o = Region::new(sub(ow, t.rx.0, t.rx.1), sub(oh, t.ry.0, t.ry.1));
        let mut view = Region::new(
            grown(o.x, t.k, t.s, t.p, t.w, (0, 0)),
            grown(o.y, t.k, t.s, t.p, t.h, (0, 0)),
        );
        // An output whose taps all lie in the padding needs no input: nothing to shrink.
        prop_assume!(which > 1 || !view.is_empty());
        match which {
            // View one column or row short of what the output needs.
            0 => view.x.end -= 1,
            1 => view.y.start += 1,
            2 => { l.weights.pop(); }
            3 => { l.biases.push(0.0); }
            4 => l.conv.batch_norm = !l.conv.batch_norm,
            5 => o.x = Span::new(o.x.start, ow + 1),
            _ => o.y = Span::new(oh, oh + 2),
        }
        let full = values(t.seed ^ 4, (t.w * t.h * t.c) as usize);
        let params = l.params();
        let (rr, _) = run_conv(&Reference, &l, &params, &full, view, o);
        let (rp, _) = run_conv(&Portable, &l, &params, &full, view, o);
        prop_assert!(rr.is_err());
        prop_assert_eq!(rp, rr);
    }

    #[test]
    fn maxpool_matches_reference_bit_for_bit(
        (z, s) in (1u32..=4, 1u32..=3),
        pad_frac in 0u32..4,
        (w, h, c) in (4u32..40, 4u32..30, 1u32..=5),
        (rx, ry) in ((frac(), frac()), (frac(), frac())),
        grow in (0u32..3, 0u32..3),
        seed in any::<u64>(),
    ) {
        let pool = MaxPool { size: z, stride: s, pad: pad_frac % (z + 2) };
        let map = Shape::new(w, h, c);
        let (ow, oh) = (pool.out_extent(w).unwrap(), pool.out_extent(h).unwrap());
        let o = Region::new(sub(ow, rx.0, rx.1), sub(oh, ry.0, ry.1));
        let q = pool.offset();
        let view = Region::new(grown(o.x, z, s, q, w, grow), grown(o.y, z, s, q, h, grow));
        let full = values(seed, (w * h * c) as usize);
        let (rr, want) = run_pool(&Reference, &pool, map, &full, view, o);
        let (rp, got) = run_pool(&Portable, &pool, map, &full, view, o);
        prop_assert_eq!(rr, Ok(()));
        prop_assert_eq!(rp, Ok(()));
        prop_assert_eq!(bits(&got), bits(&want));
        // Too-small view and out-of-map output: same typed errors.
        prop_assume!(!view.is_empty());
        let short = Region::new(Span::new(view.x.start, view.x.end - 1), view.y);
        prop_assert_eq!(
            run_pool(&Portable, &pool, map, &full, short, o).0,
            run_pool(&Reference, &pool, map, &full, short, o).0
        );
        let outside = Region::new(Span::new(o.x.start, ow + 1), o.y);
        let r = run_pool(&Portable, &pool, map, &full, view, outside).0;
        prop_assert_eq!(r, Err(KernelError::OutputOutsideMap));
    }
}

/// YOLOv2 layer 0 geometry (3×3, pad 1, BN, leaky) on a corner tile and an interior tile.
#[test]
fn yolo_like_tiles_are_bit_exact() {
    let conv = Conv {
        filters: 8,
        size: 3,
        stride: 1,
        pad: 1,
        batch_norm: true,
        activation: Activation::Leaky,
    };
    let l = Layer::new(conv, Shape::new(61, 47, 3), 7);
    let full = values(11, 61 * 47 * 3);
    let params = l.params();
    for o in [
        Region::new(Span::new(0, 27), Span::new(0, 17)),
        Region::new(Span::new(13, 50), Span::new(9, 40)),
        Region::new(Span::new(40, 61), Span::new(30, 47)),
        Region::full(61, 47),
    ] {
        let view = Region::new(
            grown(o.x, 3, 1, 1, 61, (0, 0)),
            grown(o.y, 3, 1, 1, 47, (0, 0)),
        );
        let (_, want) = run_conv(&Reference, &l, &params, &full, view, o);
        let (r, got) = run_conv(&Portable, &l, &params, &full, view, o);
        assert_eq!(r, Ok(()));
        assert_eq!(bits(&got), bits(&want));
    }
}

/// Channel-count mismatches and empty outputs behave like the reference.
#[test]
fn channel_mismatch_and_empty_output() {
    let conv = Conv {
        filters: 5,
        size: 3,
        stride: 2,
        pad: 1,
        batch_norm: false,
        activation: Activation::Linear,
    };
    let l = Layer::new(conv, Shape::new(9, 9, 2), 3);
    let params = l.params();
    let data = values(1, 9 * 9 * 3);
    let input = FeatureView::new(&data, Region::full(9, 9), 3).unwrap();
    let mut buf = [0.0f32; 5 * 25];
    let mut out = FeatureViewMut::new(&mut buf, Region::full(5, 5), 5).unwrap();
    assert_eq!(
        Portable.conv(&conv, l.map, &params, &input, &mut out),
        Err(KernelError::ChannelMismatch)
    );
    let input = FeatureView::new(&data, Region::full(9, 9), 2).unwrap();
    let mut out = FeatureViewMut::new(&mut buf, Region::default(), 5).unwrap();
    assert_eq!(
        Portable.conv(&conv, l.map, &params, &input, &mut out),
        Ok(())
    );
    let pool = MaxPool {
        size: 2,
        stride: 2,
        pad: 0,
    };
    let mut out = FeatureViewMut::new(&mut buf, Region::full(4, 4), 3).unwrap();
    assert_eq!(
        Portable.maxpool(&pool, Shape::new(9, 9, 2), &input, &mut out),
        Err(KernelError::ChannelMismatch)
    );
}
