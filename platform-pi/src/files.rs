//! Loading a network, its weights and input tensors from files, with typed core errors.

use std::path::Path;

use tessera_core::model::{cfg, weights, Network};

use crate::error::{error, Context, Error};
use crate::image::Image;

/// The YOLOv2 608 cfg the original system runs, built in as the default network.
pub const DEFAULT_CFG: &str = include_str!("../../data/yolov2-608.cfg");
/// A sample frame (640×480 JPEG) built in as the default input.
pub const DEFAULT_IMAGE: &[u8] = include_bytes!("../../data/images/0.jpg");

/// Parses a Darknet cfg file, or the built-in YOLOv2 cfg when `path` is `None`.
pub fn load_network(path: Option<&Path>) -> Result<Network, Error> {
    let Some(path) = path else {
        return cfg::parse(DEFAULT_CFG).context(|| "parsing the built-in yolov2-608.cfg");
    };
    let text = std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))?;
    cfg::parse(&text).context(|| format!("parsing {}", path.display()))
}

/// Reads a Darknet weights file for `net` (its length must match the whole network) and
/// decodes the parameters of layers `[0, upto)`.
pub fn load_weights(path: &Path, net: &Network, upto: usize) -> Result<Vec<f32>, Error> {
    let bytes = std::fs::read(path).context(|| format!("reading {}", path.display()))?;
    let count = weights::param_count(net, upto).context(|| "sizing the weights")?;
    let mut params = vec![0.0f32; count];
    weights::decode(&bytes, net, upto, &mut params)
        .context(|| format!("decoding {}", path.display()))?;
    Ok(params)
}

/// Reads a CHW little-endian f32 tensor of exactly `elements` values.
pub fn load_raw(path: &Path, elements: usize) -> Result<Vec<f32>, Error> {
    let bytes = std::fs::read(path).context(|| format!("reading {}", path.display()))?;
    if bytes.len() != elements * 4 {
        return Err(error(
            format!("reading {}", path.display()),
            format!(
                "expected {} bytes ({elements} f32), found {}",
                elements * 4,
                bytes.len()
            ),
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
    std::fs::write(path, bytes).context(|| format!("writing {}", path.display()))
}

/// Loads an image (the built-in sample when `path` is `None`) and letterboxes it to the network
/// input, as Darknet prepares a frame.
pub fn load_image_input(path: Option<&Path>, net: &Network) -> Result<Vec<f32>, Error> {
    let shape = net.input();
    if shape.c != 3 {
        return Err(error(
            "preparing the input",
            format!("network takes {} channels, images have 3", shape.c),
        ));
    }
    let img = match path {
        Some(path) => Image::load(path).context(|| format!("loading {}", path.display()))?,
        None => Image::decode(DEFAULT_IMAGE).context(|| "decoding the built-in sample")?,
    };
    Ok(img.letterbox(shape.w as usize, shape.h as usize).data)
}
