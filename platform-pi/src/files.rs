//! Input tensors from files: raw f32 tensors, and images letterboxed for the network.

use std::path::Path;

use anyhow::{anyhow, Context, Error};

use tessera_core::model::Network;

use crate::image::{Image, ImageFiles};

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

/// Loads an image (the built-in sample when `path` is `None`) and letterboxes it to the network
/// input, as Darknet prepares a frame.
pub fn load_image_input(path: Option<&Path>, net: &Network) -> Result<Vec<f32>, Error> {
    let shape = net.input();
    if shape.c != 3 {
        return Err(anyhow!(
            "preparing the input: network takes {} channels, images have 3",
            shape.c
        ));
    }
    let img = match path {
        Some(path) => Image::load(path).with_context(|| format!("loading {}", path.display()))?,
        None => Image::decode(DEFAULT_IMAGE).context("decoding the built-in sample")?,
    };
    Ok(img.letterbox(shape.w as usize, shape.h as usize).data)
}
