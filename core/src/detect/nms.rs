//! Darknet's box IoU and `do_nms_sort`.

use super::{BBox, Detection};

/// Darknet's `overlap`: length of the intersection of two centred intervals (negative when
/// they are apart).
fn overlap(x1: f32, w1: f32, x2: f32, w2: f32) -> f32 {
    let l1 = x1 - w1 / 2.0;
    let l2 = x2 - w2 / 2.0;
    let left = if l1 > l2 { l1 } else { l2 };
    let r1 = x1 + w1 / 2.0;
    let r2 = x2 + w2 / 2.0;
    let right = if r1 < r2 { r1 } else { r2 };
    right - left
}

/// Intersection over union of two boxes, in float as Darknet's `box_iou`.
pub fn iou(a: &BBox, b: &BBox) -> f32 {
    let w = overlap(a.x, a.w, b.x, b.w);
    let h = overlap(a.y, a.h, b.y, b.h);
    let inter = if w < 0.0 || h < 0.0 { 0.0 } else { w * h };
    let union = a.w * a.h + b.w * b.h - inter;
    inter / union
}

/// Darknet's `do_nms_sort` on (box, class) detections: within each class, from the most
/// probable down, a detection not yet suppressed suppresses every later one whose IoU with it
/// is `> thresh`. The survivors are moved to the front, ordered by probability (highest
/// first, then class, then index); returns how many there are.
///
/// Darknet sorts with `qsort`, which leaves the order of equal probabilities unspecified; ties
/// are broken here by Darknet's detection index, one of the orders `qsort` may produce.
pub fn nms_sort(dets: &mut [Detection], thresh: f32) -> usize {
    dets.sort_unstable_by(|a, b| {
        a.class
            .cmp(&b.class)
            .then(b.prob.total_cmp(&a.prob))
            .then(a.index.cmp(&b.index))
    });
    // Suppressed detections are marked with probability 0, as Darknet does: candidates have
    // a probability above a non-negative threshold, so 0 never names a live one.
    for i in 0..dets.len() {
        if dets[i].prob == 0.0 {
            continue;
        }
        let a = dets[i].bbox();
        for j in i + 1..dets.len() {
            if dets[j].class != dets[i].class {
                break;
            }
            if iou(&a, &dets[j].bbox()) > thresh {
                dets[j].prob = 0.0;
            }
        }
    }
    let mut kept = 0;
    for i in 0..dets.len() {
        if dets[i].prob != 0.0 {
            dets.swap(kept, i);
            kept += 1;
        }
    }
    dets[..kept].sort_unstable_by(|a, b| {
        b.prob
            .total_cmp(&a.prob)
            .then(a.class.cmp(&b.class))
            .then(a.index.cmp(&b.index))
    });
    kept
}
