//! The boxes of a frame: the region output decoded and NMS-filtered ([`boxes`]).

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use tessera_core::detect::{self, DetectError, Detection, Letterbox};
use tessera_core::model::{LayerKind, Network};

/// Why boxes could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The network has no layers.
    #[error("decoding: empty network")]
    Empty,
    /// The last layer is not a `[region]`.
    #[error("decoding: the last layer is not a [region]")]
    NotRegion,
    /// An image side does not fit a `u32`.
    #[error("decoding: image side past u32")]
    ImageSize,
    /// Decoding or NMS refused the output.
    #[error("decoding the region output: {0}")]
    Detect(DetectError),
}

/// Decodes and NMS-filters the region output of `net`'s last layer for an image of
/// `image_w × image_h` letterboxed to the network input; most probable first, relative to the
/// original image.
pub fn boxes(
    net: &Network,
    region_out: &[f32],
    image_w: usize,
    image_h: usize,
    thresh: f32,
    nms: f32,
) -> Result<Vec<Detection>, DecodeError> {
    let last = net.layers().last().ok_or(DecodeError::Empty)?;
    let LayerKind::Region(params) = &last.kind else {
        return Err(DecodeError::NotRegion);
    };
    let side = |v: usize| u32::try_from(v).map_err(|_| DecodeError::ImageSize);
    let letterbox = Letterbox {
        net_w: net.input().w,
        net_h: net.input().h,
        image_w: side(image_w)?,
        image_h: side(image_h)?,
    };
    let mut dets = vec![Detection::default(); 1024];
    loop {
        let count = detect::detect(
            region_out,
            last.output,
            params,
            &letterbox,
            thresh,
            nms,
            &mut dets,
        )
        .map_err(DecodeError::Detect)?;
        if !count.truncated() {
            dets.truncate(count.kept);
            return Ok(dets);
        }
        // Every candidate must be present for Darknet's NMS: retry with room for all.
        dets = vec![Detection::default(); count.found];
    }
}
