//! What a detection is called and where it sits in the original image: COCO class names,
//! Darknet's pixel boxes and box colours.

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};

use tessera_core::detect::Detection;
use tessera_core::model::{LayerKind, Network};

/// The 80 COCO class names, one per line, in YOLOv2's class order.
pub const COCO_NAMES: &str = include_str!("../../../data/coco.names");

/// Name of class `class` (from [`COCO_NAMES`]), or `class N` past the list.
pub fn class_name(class: u16) -> String {
    COCO_NAMES
        .lines()
        .nth(class as usize)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| format!("class {class}"))
}

/// The class count of `net`'s `[region]` layer (80, COCO's, without one): how many box
/// colours a drawing spreads over.
pub fn class_count(net: &Network) -> u32 {
    match net.layers().last().map(|l| &l.kind) {
        Some(LayerKind::Region(r)) => r.classes,
        _ => 80,
    }
}

/// A box in pixels of the original image, edges inclusive, as Darknet's `draw_detections`
/// computes them (`(int)((x − w/2)·W)` …) and `draw_box` clamps them into the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelBox {
    /// Left column.
    pub left: i64,
    /// Top row.
    pub top: i64,
    /// Right column.
    pub right: i64,
    /// Bottom row.
    pub bottom: i64,
}

impl PixelBox {
    /// The pixel box of `d` in a `w × h` image (a box outside the image collapses onto its
    /// nearest edge).
    pub fn of(d: &Detection, w: usize, h: usize) -> Self {
        // Darknet: double arithmetic (`b.w/2.`), truncation to int, then clamping; `as i64`
        // saturates on infinities and maps NaN to 0.
        let (x, y, bw, bh) = (d.x as f64, d.y as f64, d.w as f64, d.h as f64);
        let (wf, hf) = (w as f64, h as f64);
        let (maxx, maxy) = ((w as i64 - 1).max(0), (h as i64 - 1).max(0));
        let px = |v: f64| (v as i64).clamp(0, maxx);
        let py = |v: f64| (v as i64).clamp(0, maxy);
        PixelBox {
            left: px((x - bw / 2.0) * wf),
            right: px((x + bw / 2.0) * wf),
            top: py((y - bh / 2.0) * hf),
            bottom: py((y + bh / 2.0) * hf),
        }
    }
}

/// Darknet's box colour for `class` of `classes`: `get_color` on its six-colour ramp at
/// offset `class·123457 mod classes`; `[r, g, b]` in `[0, 1]`.
pub fn class_color(class: u16, classes: u32) -> [f32; 3] {
    const COLORS: [[f32; 3]; 6] = [
        [1., 0., 1.],
        [0., 0., 1.],
        [0., 1., 1.],
        [0., 1., 0.],
        [1., 1., 0.],
        [1., 0., 0.],
    ];
    let classes = classes.max(1) as u64;
    let offset = (class as u64 * 123457) % classes;
    let color = |c: usize| {
        let ratio = offset as f32 / classes as f32 * 5.0;
        // `ratio` is finite and ≥ 0: truncation is Darknet's floor.
        let i = ratio as usize;
        let j = i + usize::from(ratio > i as f32);
        let r = ratio - i as f32;
        (1.0 - r) * COLORS[i.min(5)][c] + r * COLORS[j.min(5)][c]
    };
    [color(2), color(1), color(0)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotate::tests::det;

    #[test]
    fn names_come_from_coco() {
        assert_eq!(COCO_NAMES.lines().count(), 80);
        assert_eq!(class_name(0), "person");
        assert_eq!(class_name(16), "dog");
        assert_eq!(class_name(79), "toothbrush");
        assert_eq!(class_name(80), "class 80");
    }

    #[test]
    fn pixel_boxes_truncate_and_clamp_like_darknet() {
        let b = PixelBox::of(&det(0, 0.5, 0.5, 0.25, 0.5), 640, 480);
        assert_eq!(
            b,
            PixelBox {
                left: 240,
                top: 120,
                right: 400,
                bottom: 360
            }
        );
        let edge = PixelBox::of(&det(0, 0.0, 1.0, 0.5, 0.5), 100, 100);
        assert_eq!(
            (edge.left, edge.right, edge.top, edge.bottom),
            (0, 25, 75, 99)
        );
        let nan = PixelBox::of(&det(0, f32::NAN, 0.5, f32::INFINITY, 0.1), 10, 10);
        assert_eq!((nan.left, nan.right), (0, 0));
        let outside = PixelBox::of(&det(0, 1.5, -0.5, 0.2, 0.2), 10, 10);
        assert_eq!(
            (outside.left, outside.right, outside.top, outside.bottom),
            (9, 9, 0, 0)
        );
    }

    #[test]
    fn colors_follow_darknets_ramp() {
        // Class 0: offset 0, the ramp's first colour (magenta).
        assert_eq!(class_color(0, 80), [1.0, 0.0, 1.0]);
        // Class 1: offset 123457 mod 80 = 17, ratio 1.0625 between ramp entries 1 and 2; the
        // ramp's columns are read as (blue, green, red).
        let c = class_color(1, 80);
        assert!(
            c[0] == 1.0 && (c[1] - 0.0625).abs() < 1e-6 && c[2] == 0.0,
            "{c:?}"
        );
    }
}
