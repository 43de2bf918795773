//! A frame's detections as a JSON report: image size and, per box, class name and index,
//! probabilities, the pixel box and the relative centre and size.

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;
use tessera_core::detect::Detection;

use crate::pipeline::{class_name, PixelBox};

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
pub fn to_json(
    dets: &[Detection],
    image_w: usize,
    image_h: usize,
) -> Result<String, serde_json::Error> {
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
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotate::tests::det;

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
