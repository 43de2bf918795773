//! Tensors and pictures in files: raw f32 tensors, images letterboxed for the network, and a
//! frame's boxes out (the frame with them drawn, as PNG; the boxes as JSON).

use std::path::Path;

use anyhow::{anyhow, Context, Error};

use tessera_core::model::Network;

use tessera_backends::detections_json::to_json;
use tessera_backends::pipeline::class_count;
use tessera_core::detect::Detection;

use crate::image::{write_annotated, Image, ImageFiles};

pub use tessera_backends::builtin::{DEFAULT_CFG, DEFAULT_IMAGE};

/// Reads a CHW little-endian f32 tensor of exactly `elements` values.
pub fn load_raw(path: &Path, elements: usize) -> Result<Vec<f32>, Error> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() != elements * 4 {
        return Err(anyhow!(
            "reading {}: expected {} bytes ({elements} f32), found {}",
            path.display(),
            elements * 4,
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Writes values as little-endian f32.
pub fn write_raw(path: &Path, values: &[f32]) -> Result<(), Error> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Loads an image: `path`, or the built-in sample when `None`.
pub fn load_image(path: Option<&Path>) -> Result<Image, Error> {
    match path {
        Some(path) => Image::load(path).with_context(|| format!("loading {}", path.display())),
        None => Image::decode(DEFAULT_IMAGE).context("decoding the built-in sample"),
    }
}

/// `img` letterboxed to the network input, as Darknet prepares a frame.
pub fn network_input(img: &Image, net: &Network) -> Result<Vec<f32>, Error> {
    let shape = net.input();
    if shape.c != 3 {
        return Err(anyhow!(
            "preparing the input: network takes {} channels, images have 3",
            shape.c
        ));
    }
    Ok(img.letterbox(shape.w as usize, shape.h as usize).data)
}

/// [`load_image`] then [`network_input`].
pub fn load_image_input(path: Option<&Path>, net: &Network) -> Result<Vec<f32>, Error> {
    network_input(&load_image(path)?, net)
}

/// Writes `dets`, found by `net` on `img`, drawn on it as a PNG at `png` and as JSON at
/// `json` (each when given).
pub fn write_boxes(
    img: &Image,
    dets: &[Detection],
    net: &Network,
    png: Option<&Path>,
    json: Option<&Path>,
) -> Result<(), Error> {
    if let Some(png) = png {
        write_annotated(img, dets, class_count(net), png)
            .with_context(|| format!("writing {}", png.display()))?;
    }
    if let Some(json) = json {
        let text = to_json(dets, img.w, img.h).context("writing JSON")?;
        std::fs::write(json, text).with_context(|| format!("writing {}", json.display()))?;
    }
    Ok(())
}
