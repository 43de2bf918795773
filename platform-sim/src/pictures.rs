//! What a camera hands its node when the run ships pictures (`SimConfig::picture`): one of
//! the two bundled 640×480 JPEG frames, decoded and letterboxed to the network input once per
//! run, as a `SourceFrame` whose picture the node ships once per peer (the real node's way:
//! `PictureChunk`s, then `TileTask`s the receiver cuts from it).

use tessera_backends::builtin::{DEFAULT_IMAGE, SECOND_IMAGE};
use tessera_backends::driver::{Model, SourceFrame};
use tessera_backends::pipeline::PictureError;

/// The bundled frames, made once; frame `k` gets picture `k mod 2`.
pub struct Pictures {
    frames: [SourceFrame; 2],
}

impl Pictures {
    /// Both bundled JPEGs letterboxed to `model`'s input (it must have 3 channels).
    pub fn new(model: &Model) -> Result<Pictures, PictureError> {
        let s = model.net.input();
        // A clone shares the picture (an `Arc`): every frame ships the same bytes.
        let make = |bytes: &[u8]| SourceFrame::captured(bytes.to_vec(), s.w as usize, s.h as usize);
        Ok(Pictures {
            frames: [make(DEFAULT_IMAGE)?, make(SECOND_IMAGE)?],
        })
    }

    /// Frame `k`: the network input and its picture.
    pub fn frame(&self, k: u32) -> SourceFrame {
        self.frames[(k % 2) as usize].clone()
    }
}
