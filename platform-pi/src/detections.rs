//! Detections out: an annotated image and a JSON report (class names and pixel boxes from
//! `tessera_backends::pipeline`).

use std::path::Path;

use serde::Serialize;
pub use tessera_backends::pipeline::{class_color, class_name, PixelBox};
use tessera_core::detect::Detection;

use crate::error::{Context, Error};
use crate::image::{write_png, Image};

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
    pixels: Pixels,
    relative: Relative,
}

/// [`PixelBox`] in the report.
#[derive(Serialize)]
struct Pixels {
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
}

impl From<PixelBox> for Pixels {
    fn from(b: PixelBox) -> Self {
        Pixels {
            left: b.left,
            top: b.top,
            right: b.right,
            bottom: b.bottom,
        }
    }
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
                pixels: PixelBox::of(d, image_w, image_h).into(),
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
