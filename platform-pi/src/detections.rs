//! Detections out: COCO class names, pixel boxes, an annotated image and a JSON report.

use std::path::Path;

use serde::Serialize;
use tessera_core::detect::Detection;

use crate::error::{Context, Error};
use crate::image::{write_png, Image};

/// The 80 COCO class names, one per line, in YOLOv2's class order.
pub const COCO_NAMES: &str = include_str!("../../data/coco.names");

/// Name of class `class` (from [`COCO_NAMES`]), or `class N` past the list.
pub fn class_name(class: u16) -> String {
    COCO_NAMES
        .lines()
        .nth(class as usize)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| format!("class {class}"))
}

/// A box in pixels of the original image, edges inclusive, as Darknet's `draw_detections`
/// computes them (`(int)((x − w/2)·W)` …) and `draw_box` clamps them into the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
        let (i, j) = (ratio.floor() as usize, ratio.ceil() as usize);
        let r = ratio - i as f32;
        (1.0 - r) * COLORS[i.min(5)][c] + r * COLORS[j.min(5)][c]
    };
    [color(2), color(1), color(0)]
}

/// Draws each detection's box on `img` in its class colour, `max(1, h·0.006)` pixels thick,
/// as Darknet's `draw_box_width` does.
pub fn draw(img: &mut Image, dets: &[Detection], classes: u32) {
    if img.w == 0 || img.h == 0 {
        return;
    }
    let width = ((img.h as f32 * 0.006) as i64).max(1);
    for d in dets {
        let b = PixelBox::of(d, img.w, img.h);
        let rgb = class_color(d.class, classes);
        for k in 0..width {
            rect(img, b.left + k, b.top + k, b.right - k, b.bottom - k, rgb);
        }
    }
}

/// One rectangle outline, clipped to the image.
fn rect(img: &mut Image, x1: i64, y1: i64, x2: i64, y2: i64, rgb: [f32; 3]) {
    let (w, h) = (img.w as i64, img.h as i64);
    let mut put = |x: i64, y: i64| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            for (c, &v) in rgb.iter().enumerate().take(img.c) {
                img.data[(c * img.h + y as usize) * img.w + x as usize] = v;
            }
        }
    };
    for x in x1..=x2 {
        put(x, y1);
        put(x, y2);
    }
    for y in y1..=y2 {
        put(x1, y);
        put(x2, y);
    }
}

/// Writes `img` with the detections drawn to `path` as PNG.
pub fn write_annotated(
    img: &Image,
    dets: &[Detection],
    classes: u32,
    path: &Path,
) -> Result<(), Error> {
    let mut annotated = img.clone();
    draw(&mut annotated, dets, classes);
    write_png(&annotated, path).context(|| format!("writing {}", path.display()))
}

/// The JSON report of one frame.
#[derive(Serialize)]
struct Report {
    image: Size,
    detections: Vec<Boxed>,
}

#[derive(Serialize)]
struct Size {
    width: usize,
    height: usize,
}

/// One detection; NaN and infinities (which JSON cannot hold) become `null`.
#[derive(Serialize)]
struct Boxed {
    class: String,
    class_id: u16,
    prob: f32,
    objectness: f32,
    #[serde(rename = "box")]
    pixels: PixelBox,
    relative: Relative,
}

#[derive(Serialize)]
struct Relative {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

/// The detections as a JSON object: image size and, per box, class name and index,
/// probability, objectness, the pixel box and the relative centre/size.
pub fn to_json(dets: &[Detection], image_w: usize, image_h: usize) -> Result<String, Error> {
    let report = Report {
        image: Size {
            width: image_w,
            height: image_h,
        },
        detections: dets
            .iter()
            .map(|d| Boxed {
                class: class_name(d.class),
                class_id: d.class,
                prob: d.prob,
                objectness: d.objectness,
                pixels: PixelBox::of(d, image_w, image_h),
                relative: Relative {
                    x: d.x,
                    y: d.y,
                    w: d.w,
                    h: d.h,
                },
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&report).context(|| "writing JSON")?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: u16, x: f32, y: f32, w: f32, h: f32) -> Detection {
        Detection {
            x,
            y,
            w,
            h,
            class,
            prob: 0.5,
            objectness: 0.75,
            index: 0,
        }
    }

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

    #[test]
    fn draws_outlines_only() {
        let mut img = Image::filled(20, 10, 3, 0.5);
        draw(&mut img, &[det(0, 0.5, 0.5, 0.5, 0.5)], 80);
        let at = |x: usize, y: usize, c: usize| img.data[(c * 10 + y) * 20 + x];
        // Box columns 5..=15, rows 2..=7: magenta edges, grey inside and outside.
        assert_eq!((at(5, 5, 0), at(5, 5, 1), at(5, 5, 2)), (1.0, 0.0, 1.0));
        assert_eq!(at(10, 2, 1), 0.0);
        assert_eq!(at(10, 5, 0), 0.5);
        assert_eq!(at(1, 1, 0), 0.5);
    }

    #[test]
    fn json_holds_names_boxes_and_nulls() {
        let mut nan = det(0, 0.5, 0.5, 0.25, 0.5);
        nan.prob = f32::NAN;
        let j = to_json(&[det(16, 0.5, 0.5, 0.25, 0.5), nan], 640, 480).unwrap();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["image"], serde_json::json!({"width": 640, "height": 480}));
        let d = &v["detections"][0];
        assert_eq!(d["class"], "dog");
        assert_eq!(d["class_id"], 16);
        assert_eq!(d["prob"], 0.5);
        assert_eq!(
            d["box"],
            serde_json::json!({"left": 240, "top": 120, "right": 400, "bottom": 360})
        );
        assert_eq!(d["relative"]["w"], 0.25);
        assert!(v["detections"][1]["prob"].is_null());
        // The CLI tests read `"key": value` pairs.
        assert!(j.contains("\"left\": 240"), "{j}");
        let empty: serde_json::Value = serde_json::from_str(&to_json(&[], 1, 1).unwrap()).unwrap();
        assert_eq!(
            empty,
            serde_json::json!({"image": {"width": 1, "height": 1}, "detections": []})
        );
    }
}
