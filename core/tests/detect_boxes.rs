//! Region decoding, letterbox correction and NMS on crafted YOLOv2 outputs.

use proptest::prelude::*;
use tessera_core::detect::{
    decode, detect, iou, nms_sort, BBox, Count, DetectError, Detection, Letterbox, DEFAULT_NMS,
    DEFAULT_THRESH,
};
use tessera_core::kernel::tail::{entry_index, region, TailError};
use tessera_core::model::{cfg, LayerKind, RegionParams, Shape};

const CELLS: usize = 19 * 19;
const SIZE: usize = 85;

fn yolo_region() -> (RegionParams, Shape) {
    let net = cfg::parse(include_str!("../../data/yolov2-608.cfg")).unwrap();
    let l = &net.layers()[31];
    let LayerKind::Region(p) = &l.kind else {
        panic!("layer 31 is the region");
    };
    (p.clone(), l.input)
}

/// Pre-activation logits: nothing anywhere (objectness logit −20), plus `objects` given as
/// (anchor, col, row, class, tx, ty, tw, th).
fn logits(objects: &[(usize, usize, usize, usize, [f32; 4])]) -> Vec<f32> {
    let mut x = vec![0.0f32; CELLS * SIZE * 5];
    for n in 0..5 {
        for loc in 0..CELLS {
            x[entry_index(SIZE, CELLS, n, 4, loc)] = -20.0;
        }
    }
    for &(n, col, row, class, t) in objects {
        let loc = row * 19 + col;
        for (e, v) in t.iter().enumerate() {
            x[entry_index(SIZE, CELLS, n, e, loc)] = *v;
        }
        x[entry_index(SIZE, CELLS, n, 4, loc)] = 10.0;
        x[entry_index(SIZE, CELLS, n, 5 + class, loc)] = 10.0;
    }
    x
}

fn activated(objects: &[(usize, usize, usize, usize, [f32; 4])]) -> Vec<f32> {
    let (p, shape) = yolo_region();
    let x = logits(objects);
    let mut out = vec![0.0f32; x.len()];
    region(&x, shape, &p, &mut out).unwrap();
    out
}

const SQUARE: Letterbox = Letterbox {
    net_w: 608,
    net_h: 608,
    image_w: 608,
    image_h: 608,
};

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn one_anchor_at_cell_col5_row3_gives_its_box() {
    let (p, shape) = yolo_region();
    let out = activated(&[(2, 5, 3, 16, [0.0; 4])]);
    let mut dets = [Detection::default(); 8];
    let c = detect(
        &out,
        shape,
        &p,
        &SQUARE,
        DEFAULT_THRESH,
        DEFAULT_NMS,
        &mut dets,
    )
    .unwrap();
    assert_eq!(
        c,
        Count {
            kept: 1,
            found: 1,
            dropped: 0
        }
    );
    let d = dets[0];
    assert_eq!(d.class, 16);
    assert_eq!(d.index as usize, 2 * CELLS + 3 * 19 + 5);
    // σ(0) = 0.5: centre of cell (5, 3); e^0 · anchor 2 (3.33843, 5.47434) / 19.
    assert!(close(d.x, 5.5 / 19.0) && close(d.y, 3.5 / 19.0), "{d:?}");
    assert!(
        close(d.w, 3.33843 / 19.0) && close(d.h, 5.47434 / 19.0),
        "{d:?}"
    );
    let obj = 1.0 / (1.0 + (-10.0f64).exp());
    let cls = 10f64.exp() / (10f64.exp() + 79.0);
    assert!(close(d.objectness, obj as f32));
    assert!(close(d.prob, (obj * cls) as f32), "{}", d.prob);
}

#[test]
fn offsets_and_sizes_decode_with_logistic_and_exp() {
    let (p, shape) = yolo_region();
    let out = activated(&[(0, 18, 0, 3, [2.0, -1.0, 0.5, -0.25])]);
    let mut dets = [Detection::default(); 4];
    let c = decode(&out, shape, &p, &SQUARE, DEFAULT_THRESH, &mut dets).unwrap();
    assert_eq!(c.kept, 1);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let d = dets[0];
    assert!(close(d.x, ((18.0 + sig(2.0)) / 19.0) as f32));
    assert!(close(d.y, (sig(-1.0) / 19.0) as f32));
    assert!(close(d.w, (0.5f64.exp() * 0.57273 / 19.0) as f32));
    assert!(close(d.h, ((-0.25f64).exp() * 0.677385 / 19.0) as f32));
}

#[test]
fn letterbox_correction_undoes_the_grey_bars() {
    let wide = Letterbox {
        net_w: 608,
        net_h: 608,
        image_w: 640,
        image_h: 480,
    };
    assert_eq!(wide.inner(), Ok((608, 456)));
    // Bars of 76 rows above and below: network y 76/608 is the image's top edge.
    let b = wide
        .correct(BBox {
            x: 0.25,
            y: 76.0 / 608.0,
            w: 0.5,
            h: 0.375,
        })
        .unwrap();
    assert!(close(b.x, 0.25) && close(b.w, 0.5), "{b:?}");
    assert!(close(b.y, 0.0), "{b:?}");
    assert!(close(b.h, 0.5), "{b:?}");
    let tall = Letterbox {
        net_w: 608,
        net_h: 608,
        image_w: 480,
        image_h: 640,
    };
    assert_eq!(tall.inner(), Ok((456, 608)));
    let b = tall
        .correct(BBox {
            x: 0.5,
            y: 0.5,
            w: 0.75,
            h: 0.1,
        })
        .unwrap();
    assert!(
        close(b.x, 0.5) && close(b.w, 1.0) && close(b.h, 0.1),
        "{b:?}"
    );
    assert_eq!(SQUARE.correct(b), Ok(b));
    let zero = Letterbox { image_w: 0, ..wide };
    assert_eq!(zero.inner(), Err(DetectError::ZeroSize));
    // 1×10000 image in a 608 square: the letterboxed image is 0 columns wide.
    let sliver = Letterbox {
        image_w: 1,
        image_h: 10000,
        ..wide
    };
    assert_eq!(sliver.correct(b), Err(DetectError::ZeroSize));
}

#[test]
fn decoded_boxes_are_relative_to_the_original_image() {
    let (p, shape) = yolo_region();
    let out = activated(&[(2, 9, 9, 0, [0.0; 4])]);
    let wide = Letterbox {
        net_w: 608,
        net_h: 608,
        image_w: 640,
        image_h: 480,
    };
    let mut dets = [Detection::default(); 2];
    decode(&out, shape, &p, &wide, DEFAULT_THRESH, &mut dets).unwrap();
    let d = dets[0];
    // Centre cell stays centred; the height grows by 608/456.
    assert!(close(d.x, 0.5) && close(d.y, 0.5), "{d:?}");
    assert!(close(d.h, 5.47434 / 19.0 * 608.0 / 456.0), "{d:?}");
    assert!(close(d.w, 3.33843 / 19.0), "{d:?}");
}

fn det(class: u16, prob: f32, x: f32, index: u32) -> Detection {
    Detection {
        x,
        y: 0.5,
        w: 0.2,
        h: 0.2,
        class,
        prob,
        objectness: prob,
        index,
    }
}

#[test]
fn nms_suppresses_overlaps_within_a_class_only() {
    let mut dets = [
        det(0, 0.7, 0.9, 0),  // far from the others: kept
        det(0, 0.8, 0.51, 1), // IoU ≈ 0.9 with the best: suppressed
        det(1, 0.6, 0.5, 2),  // same box, other class: kept
        det(0, 0.9, 0.5, 3),  // best of class 0
    ];
    let kept = nms_sort(&mut dets, DEFAULT_NMS);
    assert_eq!(kept, 3);
    let order: Vec<(u16, u32)> = dets[..kept].iter().map(|d| (d.class, d.index)).collect();
    assert_eq!(order, [(0, 3), (0, 0), (1, 2)], "by probability");
}

#[test]
fn a_suppressed_box_suppresses_nothing() {
    // A overlaps B (IoU 0.6), B overlaps C (0.6), A and C less (1/3): Darknet keeps A and C.
    let mut dets = [
        det(0, 0.9, 0.40, 0),
        det(0, 0.8, 0.45, 1),
        det(0, 0.7, 0.50, 2),
    ];
    let ab = iou(&dets[0].bbox(), &dets[1].bbox());
    let ac = iou(&dets[0].bbox(), &dets[2].bbox());
    assert!(ab > DEFAULT_NMS && ac <= DEFAULT_NMS, "{ab} {ac}");
    let kept = nms_sort(&mut dets, DEFAULT_NMS);
    assert_eq!(kept, 2);
    assert_eq!((dets[0].index, dets[1].index), (0, 2));
}

#[test]
fn iou_is_darknets() {
    let a = BBox {
        x: 0.5,
        y: 0.5,
        w: 0.2,
        h: 0.2,
    };
    assert!(close(iou(&a, &a), 1.0));
    let b = BBox { x: 0.6, ..a };
    assert!(close(iou(&a, &b), 0.02 / 0.06));
    let far = BBox { x: 0.9, ..a };
    assert_eq!(iou(&a, &far), 0.0);
}

#[test]
fn nms_on_decoded_duplicates_keeps_the_best() {
    let (p, shape) = yolo_region();
    // Two anchors of neighbouring cells predicting the same place and class, and a third
    // object elsewhere.
    let out = activated(&[
        (1, 4, 4, 2, [0.0, 0.0, 1.2, 1.0]),
        (1, 5, 4, 2, [-9.0, 0.0, 1.2, 1.0]),
        (3, 15, 15, 7, [0.0; 4]),
    ]);
    let mut dets = [Detection::default(); 8];
    let c = detect(&out, shape, &p, &SQUARE, 0.5, DEFAULT_NMS, &mut dets).unwrap();
    assert_eq!(
        c,
        Count {
            kept: 2,
            found: 3,
            dropped: 0
        }
    );
    let mut classes: Vec<u16> = dets[..2].iter().map(|d| d.class).collect();
    classes.sort();
    assert_eq!(classes, [2, 7]);
}

#[test]
fn a_full_buffer_is_reported_not_overrun() {
    let (p, shape) = yolo_region();
    let objects: Vec<_> = (0..5).map(|i| (i, 2 * i, 3, i, [0.0; 4])).collect();
    let out = activated(&objects);
    let mut small = [Detection::default(); 2];
    let c = decode(&out, shape, &p, &SQUARE, DEFAULT_THRESH, &mut small).unwrap();
    assert_eq!(
        c,
        Count {
            kept: 2,
            found: 5,
            dropped: 3
        }
    );
    assert!(c.truncated());
    let c = detect(
        &out,
        shape,
        &p,
        &SQUARE,
        DEFAULT_THRESH,
        DEFAULT_NMS,
        &mut small,
    )
    .unwrap();
    assert!(c.truncated() && c.kept <= 2 && c.dropped == 3);
    let mut room = [Detection::default(); 5];
    let c = detect(
        &out,
        shape,
        &p,
        &SQUARE,
        DEFAULT_THRESH,
        DEFAULT_NMS,
        &mut room,
    )
    .unwrap();
    assert_eq!(
        c,
        Count {
            kept: 5,
            found: 5,
            dropped: 0
        }
    );
    assert!(!c.truncated());
    let c = decode(&out, shape, &p, &SQUARE, DEFAULT_THRESH, &mut []).unwrap();
    assert_eq!(
        c,
        Count {
            kept: 0,
            found: 5,
            dropped: 5
        }
    );
}

#[test]
fn thresholds_apply_to_objectness_and_class_probability() {
    let (p, shape) = yolo_region();
    let mut out = activated(&[(0, 1, 1, 0, [0.0; 4])]);
    let loc = 19 + 1;
    // Objectness 0.5, class probabilities 0.5 and 0.4: products 0.25 and 0.2.
    out[entry_index(SIZE, CELLS, 0, 4, loc)] = 0.5;
    out[entry_index(SIZE, CELLS, 0, 5, loc)] = 0.5;
    out[entry_index(SIZE, CELLS, 0, 6, loc)] = 0.4;
    let mut dets = [Detection::default(); 4];
    let c = decode(&out, shape, &p, &SQUARE, DEFAULT_THRESH, &mut dets).unwrap();
    assert_eq!(c.kept, 1);
    assert_eq!(dets[0].prob, 0.25);
    let c = decode(&out, shape, &p, &SQUARE, 0.19, &mut dets).unwrap();
    assert_eq!(c.kept, 2);
    let c = decode(&out, shape, &p, &SQUARE, 0.5, &mut dets).unwrap();
    assert_eq!(c.kept, 0, "objectness must exceed the threshold too");
}

#[test]
fn bad_inputs_are_typed_errors() {
    let (p, shape) = yolo_region();
    let out = activated(&[]);
    let mut dets = [Detection::default(); 4];
    assert_eq!(
        decode(&out[1..], shape, &p, &SQUARE, DEFAULT_THRESH, &mut dets),
        Err(DetectError::Region(TailError::Length {
            expected: out.len(),
            found: out.len() - 1
        }))
    );
    for t in [f32::NAN, -0.1, 1.5] {
        assert_eq!(
            decode(&out, shape, &p, &SQUARE, t, &mut dets),
            Err(DetectError::BadThreshold)
        );
        assert_eq!(
            detect(&out, shape, &p, &SQUARE, DEFAULT_THRESH, t, &mut dets),
            Err(DetectError::BadThreshold)
        );
    }
    let other = Shape::new(19, 19, 424);
    assert_eq!(
        decode(
            &out[..19 * 19 * 424],
            other,
            &p,
            &SQUARE,
            DEFAULT_THRESH,
            &mut dets
        ),
        Err(DetectError::Region(TailError::RegionMismatch))
    );
    let zero = Letterbox { net_w: 0, ..SQUARE };
    assert_eq!(
        decode(&out, shape, &p, &zero, DEFAULT_THRESH, &mut dets),
        Err(DetectError::ZeroSize)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any region output (NaN and infinities included) decodes without panicking; what
    /// survives NMS passed the threshold and no two boxes of a class overlap beyond it.
    #[test]
    fn decode_and_nms_hold_their_contract(
        raw in proptest::collection::vec(
            prop_oneof![
                8 => -8.0f32..8.0,
                1 => Just(f32::NAN),
                1 => Just(f32::INFINITY),
                1 => Just(f32::NEG_INFINITY),
            ],
            2 * 2 * 2 * 8,
        ),
        thresh in 0.0f32..0.6,
        nms in 0.0f32..1.0,
        image_w in 1u32..2000,
        image_h in 1u32..2000,
    ) {
        let mut anchors = heapless::Vec::new();
        anchors.push((1.0, 1.5)).unwrap();
        anchors.push((2.0, 0.5)).unwrap();
        let p = RegionParams { classes: 3, coords: 4, num: 2, anchors, softmax: true, thresh: 0.6 };
        let shape = Shape::new(2, 2, 16);
        let mut act = vec![0.0f32; raw.len()];
        region(&raw, shape, &p, &mut act).unwrap();
        let lb = Letterbox { net_w: 64, net_h: 64, image_w, image_h };
        let mut dets = [Detection::default(); 24];
        match detect(&act, shape, &p, &lb, thresh, nms, &mut dets) {
            Ok(c) => {
                prop_assert!(!c.truncated());
                let kept = &dets[..c.kept];
                for (i, a) in kept.iter().enumerate() {
                    prop_assert!(a.prob > thresh && a.objectness > thresh);
                    for b in &kept[i + 1..] {
                        prop_assert!(a.prob >= b.prob);
                        if a.class == b.class {
                            let overlap = iou(&a.bbox(), &b.bbox());
                            prop_assert!(overlap <= nms || overlap.is_nan());
                        }
                    }
                }
            }
            Err(e) => prop_assert_eq!(e, DetectError::ZeroSize),
        }
    }
}
