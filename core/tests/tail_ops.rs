//! Tail ops against hand-computed Darknet results: reorg (and its inverse), route, region.

use tessera_core::kernel::tail::{
    entry_index, logistic, region, reorg, reorg_inverse, reorg_shape, route, softmax, TailError,
};
use tessera_core::model::{cfg, LayerKind, RegionParams, Shape};

fn s(w: u32, h: u32, c: u32) -> Shape {
    Shape::new(w, h, c)
}

/// `reorg_cpu(x, 2, 2, 4, 1, 2, 0, out)` by hand: out_c = 1, so the 2×2×4 input is read as a
/// 4×4 plane and `out[i + 2(j + 2k)] = x[(2i + k%2) + 4(2j + k/2)]`.
#[test]
fn reorg_matches_darknet_by_hand() {
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let mut out = [0.0f32; 16];
    assert_eq!(reorg(&x, s(2, 2, 4), 2, &mut out), Ok(s(1, 1, 16)));
    let expect = [
        0., 2., 8., 10., 1., 3., 9., 11., 4., 6., 12., 14., 5., 7., 13., 15.,
    ];
    assert_eq!(out, expect);
}

/// A second hand case with two output channels: 4×2×8, stride 2 (out_c = 2). Element k=5,
/// j=1, i=3: c2 = 1, offset = 2, w2 = 6, h2 = 3, out_index = 6 + 8·(3 + 4·1) = 62.
#[test]
fn reorg_index_arithmetic_for_a_wider_map() {
    let x: Vec<f32> = (0..64).map(|v| v as f32).collect();
    let mut out = vec![0.0f32; 64];
    assert_eq!(reorg(&x, s(4, 2, 8), 2, &mut out), Ok(s(2, 1, 32)));
    let in_index = 3 + 4 * (1 + 2 * 5);
    assert_eq!(out[in_index], 62.0);
    // k=0 reads the first plane's even columns of even rows.
    assert_eq!(&out[..8], &[0., 2., 4., 6., 16., 18., 20., 22.]);
}

#[test]
fn reorg_is_a_permutation_and_inverse_undoes_it() {
    let shape = s(38, 38, 64);
    let n = 38 * 38 * 64;
    let x: Vec<f32> = (0..n).map(|v| v as f32 * 0.5 - 7.0).collect();
    let mut y = vec![0.0f32; n];
    assert_eq!(reorg(&x, shape, 2, &mut y), Ok(s(19, 19, 256)));
    assert_ne!(x, y);
    let mut sorted = y.clone();
    sorted.sort_by(f32::total_cmp);
    assert_eq!(sorted, x, "every input value appears exactly once");
    let mut back = vec![0.0f32; n];
    reorg_inverse(&y, shape, 2, &mut back).unwrap();
    assert_eq!(back, x);
}

#[test]
fn reorg_rejects_bad_shapes_and_buffers() {
    let x = [0.0f32; 48];
    let mut out = [0.0f32; 48];
    assert_eq!(
        reorg(&x, s(3, 4, 4), 2, &mut out),
        Err(TailError::ReorgIndivisible)
    );
    assert_eq!(
        reorg(&x, s(4, 2, 6), 2, &mut out),
        Err(TailError::ReorgIndivisible),
        "c must be a multiple of s² for Darknet's out_c"
    );
    assert_eq!(
        reorg(&x, s(4, 4, 3), 0, &mut out),
        Err(TailError::ReorgIndivisible)
    );
    assert_eq!(
        reorg(&x[..47], s(4, 3, 4), 1, &mut out),
        Err(TailError::Length {
            expected: 48,
            found: 47
        })
    );
    assert!(reorg(&x, s(4, 3, 4), 1, &mut out[..40]).is_err());
    assert_eq!(
        reorg_shape(s(u32::MAX, 2, u32::MAX - 3), 2),
        Err(TailError::ReorgIndivisible)
    );
    assert_eq!(
        reorg_shape(s(2, 2, 1 << 30), 4),
        Err(TailError::ReorgIndivisible)
    );
    assert_eq!(reorg_shape(s(4, 4, 1 << 30), 2), Err(TailError::Overflow));
}

#[test]
fn route_concatenates_channels() {
    let a = [1.0f32, 2., 3., 4.];
    let b = [5.0f32, 6., 7., 8., 9., 10., 11., 12.];
    let mut out = [0.0f32; 12];
    let shape = route(&[(&b, s(2, 2, 2)), (&a, s(2, 2, 1))], &mut out).unwrap();
    assert_eq!(shape, s(2, 2, 3));
    assert_eq!(out, [5., 6., 7., 8., 9., 10., 11., 12., 1., 2., 3., 4.]);
    assert_eq!(
        route(&[(&a, s(2, 2, 1)), (&a, s(4, 1, 1))], &mut out[..8]),
        Err(TailError::RouteMismatch)
    );
    assert_eq!(route(&[], &mut out), Err(TailError::RouteMismatch));
    assert_eq!(
        route(&[(&a, s(2, 2, 1))], &mut out),
        Err(TailError::Length {
            expected: 4,
            found: 12
        })
    );
    assert!(route(&[(&a[..3], s(2, 2, 1))], &mut out[..4]).is_err());
}

fn params(num: u32, classes: u32, softmax: bool) -> RegionParams {
    let mut anchors = heapless::Vec::new();
    for i in 0..num {
        anchors.push((1.0 + i as f32, 2.0 + i as f32)).unwrap();
    }
    RegionParams {
        classes,
        coords: 4,
        num,
        anchors,
        softmax,
        thresh: 0.6,
    }
}

#[test]
fn region_activates_as_darknet() {
    let (w, h, num, classes) = (3u32, 2u32, 2u32, 3u32);
    let size = (4 + 1 + classes) as usize;
    let cells = (w * h) as usize;
    let shape = s(w, h, num * size as u32);
    let input: Vec<f32> = (0..shape.elements().unwrap())
        .map(|i| ((i * 37) % 23) as f32 / 4.0 - 2.5)
        .collect();
    let mut out = vec![0.0f32; input.len()];
    region(&input, shape, &params(num, classes, true), &mut out).unwrap();
    for n in 0..num as usize {
        for loc in 0..cells {
            let at = |e| entry_index(size, cells, n, e, loc);
            for e in [0, 1, 4] {
                let x = input[at(e)] as f64;
                assert_eq!(out[at(e)], (1.0 / (1.0 + (-x).exp())) as f32, "entry {e}");
            }
            for e in [2, 3] {
                assert_eq!(out[at(e)], input[at(e)], "w, h stay raw");
            }
            let logits: Vec<f64> = (0..classes as usize)
                .map(|j| input[at(5 + j)] as f64)
                .collect();
            let max = logits.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            let mut total = 0.0f32;
            for (j, l) in logits.iter().enumerate() {
                let p = out[at(5 + j)];
                assert!(((l - max).exp() / z - p as f64).abs() < 1e-6);
                total += p;
            }
            assert!((total - 1.0).abs() < 1e-6);
        }
    }
    let mut plain = vec![0.0f32; input.len()];
    region(&input, shape, &params(num, classes, false), &mut plain).unwrap();
    let cls = entry_index(size, cells, 1, 5, 4);
    assert_eq!(plain[cls], logistic(input[cls]));
}

#[test]
fn region_rejects_mismatched_maps() {
    let shape = s(2, 2, 16);
    let x = [0.0f32; 64];
    let mut out = [0.0f32; 64];
    assert_eq!(
        region(&x, shape, &params(2, 4, true), &mut out),
        Err(TailError::RegionMismatch),
        "2·(4+1+4) = 18 channels, not 16"
    );
    let mut p = params(2, 3, true);
    assert!(region(&x, shape, &p, &mut out).is_ok());
    p.anchors.pop();
    assert_eq!(
        region(&x, shape, &p, &mut out),
        Err(TailError::RegionMismatch)
    );
    assert!(region(&x[..63], shape, &params(2, 3, true), &mut out).is_err());
}

#[test]
fn softmax_handles_extremes_without_panicking() {
    let input = [1000.0f32, -1000.0, 0.0, f32::NAN];
    let mut out = [0.0f32; 4];
    softmax(&input[..3], 3, 1, &mut out[..3]);
    assert_eq!(out[..3], [1.0, 0.0, 0.0]);
    softmax(&input, 2, 2, &mut out);
    // Too short for the stride: left untouched.
    softmax(&input, 3, 2, &mut out);
    softmax(&input, 0, 1, &mut out);
    assert_eq!(logistic(0.0), 0.5);
    assert_eq!(logistic(-1000.0), 0.0);
    assert_eq!(logistic(1000.0), 1.0);
}

#[test]
fn yolov2_tail_shapes_agree_with_the_network() {
    let net = cfg::parse(include_str!("../../data/yolov2-608.cfg")).unwrap();
    let layers = net.layers();
    let LayerKind::Reorg(r) = &layers[27].kind else {
        panic!("layer 27 is the reorg");
    };
    assert_eq!(
        reorg_shape(layers[27].input, r.stride),
        Ok(layers[27].output)
    );
    assert_eq!(layers[27].output, s(19, 19, 256));
    let LayerKind::Route(rt) = &layers[25].kind else {
        panic!("layer 25 is a route");
    };
    assert_eq!(rt.layers.as_slice(), &[16], "route -9 from 25 is layer 16");
    let LayerKind::Region(p) = &layers[31].kind else {
        panic!("layer 31 is the region");
    };
    let x = vec![0.0f32; 19 * 19 * 425];
    let mut out = vec![0.0f32; x.len()];
    region(&x, layers[31].input, p, &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
    assert_eq!(out[entry_index(85, 361, 4, 4, 360)], 0.5);
    assert_eq!(out[entry_index(85, 361, 4, 5, 360)], 1.0 / 80.0);
}
