//! Loading a network, its weights and input tensors from files, with typed core errors.

use std::fs::File;
use std::path::Path;

use tessera_backends::weights_file::read_prefix;
use tessera_core::model::{cfg, Footprint, Network};

use crate::error::{error, Context, Error};
use crate::image::{Image, ImageFiles};

pub use tessera_backends::builtin::{DEFAULT_CFG, DEFAULT_IMAGE};

/// Most memory a network may need on one device (parameters plus its largest activations,
/// see [`Footprint`]): 2 GiB, twice a Raspberry Pi 3's RAM and about 7 times YOLOv2-608's
/// 268 MB. A larger network is refused when its cfg is loaded, before anything is allocated.
pub const MEMORY_LIMIT: u64 = 2 << 30;

/// Parses a Darknet cfg file, or the built-in YOLOv2 cfg when `path` is `None`, and refuses a
/// network whose footprint exceeds [`MEMORY_LIMIT`].
pub fn load_network(path: Option<&Path>) -> Result<Network, Error> {
    let Some(path) = path else {
        return cfg::parse(DEFAULT_CFG).context(|| "parsing the built-in yolov2-608.cfg");
    };
    let text = std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))?;
    let net = cfg::parse(&text).context(|| format!("parsing {}", path.display()))?;
    Footprint::check(&net, MEMORY_LIMIT).context(|| format!("sizing {}", path.display()))?;
    Ok(net)
}

/// The text of a Darknet cfg file, or of the built-in YOLOv2 cfg when `path` is `None`.
pub fn cfg_text(path: Option<&Path>) -> Result<String, Error> {
    match path {
        None => Ok(DEFAULT_CFG.to_string()),
        Some(path) => {
            std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))
        }
    }
}

/// Reads the parameters of layers `[0, upto)` of `net` from a Darknet weights file, keeping
/// only those (`tessera_backends::weights_file::read_prefix`: the whole file is validated
/// first, its size taken from the file's metadata, and the rest skipped with a seek).
pub fn load_weights(path: &Path, net: &Network, upto: usize) -> Result<Vec<f32>, Error> {
    let at = || format!("reading {}", path.display());
    let mut file = File::open(path).context(at)?;
    let len = file.metadata().context(at)?.len();
    read_prefix(&mut file, len, net, upto).context(at)
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
