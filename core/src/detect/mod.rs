//! Boxes from a YOLOv2 region output: decoding, letterbox correction and NMS, as Darknet's
//! `detector test` computes them, into caller-provided buffers.
//!
//! [`decode`] is `get_region_detections` (with `correct_region_boxes`, `relative = 1`) on the
//! output of [`kernel::tail::region`](crate::kernel::tail::region); [`nms_sort`] is
//! `do_nms_sort`. Darknet keeps one detection per anchor and cell with a probability per class;
//! here a [`Detection`] is one (anchor and cell, class) pair whose probability passed the
//! threshold, which is what Darknet draws and prints. Only those pairs take part in Darknet's
//! per-class NMS (a zero probability neither suppresses nor is drawn), so the result is the
//! same set of boxes without a `cells × anchors × classes` table.
//!
//! Arithmetic follows the C, including where it goes through double precision (`exp`, the
//! letterbox offsets), so boxes match Darknet's to the last bit given the same region output.

mod nms;

pub use nms::{iou, nms_sort};

use core::fmt;

use crate::kernel::tail::{entry_index, region_geometry, TailError};
use crate::model::{RegionParams, Shape};

/// Darknet's default detection threshold for `detector test` (the cfg's `thresh` is for
/// training).
pub const DEFAULT_THRESH: f32 = 0.24;
/// Darknet's NMS IoU threshold (`nms = .45`).
pub const DEFAULT_NMS: f32 = 0.45;

/// A box by centre and size, in whatever unit its producer says.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BBox {
    /// Centre column.
    pub x: f32,
    /// Centre row.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// One detected object: a box relative to the original image (centre and size in `[0, 1]`
/// units of its width and height) with a class and its probability.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Detection {
    /// Centre column / image width.
    pub x: f32,
    /// Centre row / image height.
    pub y: f32,
    /// Width / image width.
    pub w: f32,
    /// Height / image height.
    pub h: f32,
    /// Class index (a line of `coco.names` for YOLOv2).
    pub class: u16,
    /// Objectness × class probability.
    pub prob: f32,
    /// Objectness of the anchor box.
    pub objectness: f32,
    /// Darknet's detection index, `anchor·w·h + row·w + col`.
    pub index: u32,
}

impl Detection {
    /// The box.
    pub const fn bbox(&self) -> BBox {
        BBox {
            x: self.x,
            y: self.y,
            w: self.w,
            h: self.h,
        }
    }
}

/// How a frame was letterboxed: network input size and original image size, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Letterbox {
    /// Network input width.
    pub net_w: u32,
    /// Network input height.
    pub net_h: u32,
    /// Original image width.
    pub image_w: u32,
    /// Original image height.
    pub image_h: u32,
}

impl Letterbox {
    /// Size `(new_w, new_h)` of the resized image inside the network input, as
    /// `correct_region_boxes` (and `letterbox_image`) compute it.
    pub fn inner(&self) -> Result<(u32, u32), DetectError> {
        let (nw, nh, w, h) = (self.net_w, self.net_h, self.image_w, self.image_h);
        if nw == 0 || nh == 0 || w == 0 || h == 0 {
            return Err(DetectError::ZeroSize);
        }
        // u64 products: Darknet's int arithmetic, without its overflow.
        Ok(if (nw as f32 / w as f32) < (nh as f32 / h as f32) {
            (nw, (h as u64 * nw as u64 / w as u64) as u32)
        } else {
            ((w as u64 * nh as u64 / h as u64) as u32, nh)
        })
    }

    /// Maps a box relative to the network input to one relative to the original image
    /// (`correct_region_boxes` with `relative = 1`).
    pub fn correct(&self, b: BBox) -> Result<BBox, DetectError> {
        let (new_w, new_h) = self.inner()?;
        if new_w == 0 || new_h == 0 {
            return Err(DetectError::ZeroSize);
        }
        Ok(correct(b, (self.net_w, self.net_h), (new_w, new_h)))
    }
}

fn correct(b: BBox, (netw, neth): (u32, u32), (new_w, new_h): (u32, u32)) -> BBox {
    // `(netw - new_w)/2./netw` is double in C, and so is the subtraction and the division by
    // the float ratio; the result is stored back into a float box.
    let off_x = (netw as f64 - new_w as f64) / 2.0 / netw as f64;
    let off_y = (neth as f64 - new_h as f64) / 2.0 / neth as f64;
    BBox {
        x: ((b.x as f64 - off_x) / (new_w as f32 / netw as f32) as f64) as f32,
        y: ((b.y as f64 - off_y) / (new_h as f32 / neth as f32) as f64) as f32,
        w: b.w * (netw as f32 / new_w as f32),
        h: b.h * (neth as f32 / new_h as f32),
    }
}

/// Why boxes could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectError {
    /// The region output does not match the region parameters or its buffer.
    Region(TailError),
    /// A network or image side is zero (or the letterboxed image is empty).
    ZeroSize,
    /// A threshold is not a number in `[0, 1]`.
    BadThreshold,
    /// More classes than a `u16` indexes.
    TooManyClasses,
}

impl fmt::Display for DetectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DetectError::Region(e) => write!(f, "region output: {e}"),
            DetectError::ZeroSize => f.write_str("zero network or image size"),
            DetectError::BadThreshold => f.write_str("threshold outside [0, 1]"),
            DetectError::TooManyClasses => f.write_str("more than 65536 classes"),
        }
    }
}

impl core::error::Error for DetectError {}

impl From<TailError> for DetectError {
    fn from(e: TailError) -> Self {
        DetectError::Region(e)
    }
}

/// How many detections a step produced and whether the buffer was large enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    /// Detections at the front of the buffer.
    pub kept: usize,
    /// Candidates decoding found (anchors and classes over the threshold).
    pub found: usize,
    /// Candidates that did not fit in the buffer.
    pub dropped: usize,
}

impl Count {
    /// True when candidates were dropped for lack of room: the boxes kept are then not
    /// Darknet's (NMS saw only the first ones in scan order). Retry with `found` slots.
    pub const fn truncated(&self) -> bool {
        self.dropped > 0
    }
}

fn check_thresh(t: f32) -> Result<(), DetectError> {
    if (0.0..=1.0).contains(&t) {
        Ok(())
    } else {
        Err(DetectError::BadThreshold)
    }
}

/// Darknet's `get_region_box` on the activated output: `((col + σx)/w, (row + σy)/h,
/// e^tw·anchor_w/w, e^th·anchor_h/h)`, the exponentials in double as in C.
fn region_box(
    out: &[f32],
    at: impl Fn(usize) -> usize,
    anchor: (f32, f32),
    col: usize,
    row: usize,
    w: usize,
    h: usize,
) -> BBox {
    BBox {
        x: (col as f32 + out[at(0)]) / w as f32,
        y: (row as f32 + out[at(1)]) / h as f32,
        w: (libm::exp(out[at(2)] as f64) * anchor.0 as f64 / w as f64) as f32,
        h: (libm::exp(out[at(3)] as f64) * anchor.1 as f64 / h as f64) as f32,
    }
}

/// Decodes the activated region output `output` (a `shape` map, see
/// [`kernel::tail::region`](crate::kernel::tail::region)) into `out`: every anchor and cell
/// with objectness `> thresh`, and for it every class with `objectness·p(class) > thresh`,
/// box corrected for `letterbox`. Candidates are written in Darknet's scan order (cell, then
/// anchor, then class) until `out` is full; the rest are only counted.
pub fn decode(
    output: &[f32],
    shape: Shape,
    params: &RegionParams,
    letterbox: &Letterbox,
    thresh: f32,
    out: &mut [Detection],
) -> Result<Count, DetectError> {
    check_thresh(thresh)?;
    let (cells, size) = region_geometry(shape, params)?;
    let expected = shape.elements().ok_or(TailError::Overflow)?;
    if output.len() != expected {
        return Err(TailError::Length {
            expected,
            found: output.len(),
        }
        .into());
    }
    if params.classes > u16::MAX as u32 + 1 {
        return Err(DetectError::TooManyClasses);
    }
    let (new_w, new_h) = letterbox.inner()?;
    if new_w == 0 || new_h == 0 {
        return Err(DetectError::ZeroSize);
    }
    let net = (letterbox.net_w, letterbox.net_h);
    let (w, h) = (shape.w as usize, shape.h as usize);
    let coords = params.coords as usize;
    let mut count = Count {
        kept: 0,
        found: 0,
        dropped: 0,
    };
    for loc in 0..cells {
        let (row, col) = (loc / w, loc % w);
        for (n, &anchor) in params.anchors.iter().take(params.num as usize).enumerate() {
            let at = |e: usize| entry_index(size, cells, n, e, loc);
            let scale = output[at(coords)];
            // Written so NaN fails, as Darknet's `scale > thresh ? scale : 0`.
            let object = scale > thresh;
            if !object {
                continue;
            }
            let b = correct(
                region_box(output, at, anchor, col, row, w, h),
                net,
                (new_w, new_h),
            );
            for class in 0..params.classes as usize {
                let prob = scale * output[at(coords + 1 + class)];
                let pass = prob > thresh;
                if !pass {
                    continue;
                }
                count.found += 1;
                if let Some(slot) = out.get_mut(count.kept) {
                    *slot = Detection {
                        x: b.x,
                        y: b.y,
                        w: b.w,
                        h: b.h,
                        class: class as u16,
                        prob,
                        objectness: scale,
                        index: (n * cells + loc) as u32,
                    };
                    count.kept += 1;
                } else {
                    count.dropped += 1;
                }
            }
        }
    }
    Ok(count)
}

/// [`decode`] then [`nms_sort`] with IoU threshold `nms`: the surviving detections are at the
/// front of `out`, highest probability first; `kept` says how many.
pub fn detect(
    output: &[f32],
    shape: Shape,
    params: &RegionParams,
    letterbox: &Letterbox,
    thresh: f32,
    nms: f32,
    out: &mut [Detection],
) -> Result<Count, DetectError> {
    check_thresh(nms)?;
    let decoded = decode(output, shape, params, letterbox, thresh, out)?;
    let kept = nms_sort(&mut out[..decoded.kept], nms);
    Ok(Count { kept, ..decoded })
}
