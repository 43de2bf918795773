//! What `tessera bench kernels` and `tessera bench winograd` measure on ([`YoloBench`]):
//! the built-in YOLOv2 608's fused layers with generated weights, and the built-in sample
//! image letterboxed to its input.

extern crate alloc;

use alloc::vec::Vec;

use tessera_core::ftp::{FusedStack, PlanError};
use tessera_core::model::weights::{Weights, WeightsError};
use tessera_core::model::Network;

use crate::builtin::DEFAULT_IMAGE;
use crate::gen_weights;
use crate::model_files::{ModelFileError, ModelFiles};
use crate::pipeline::{decode_pixels, letterbox_of, PictureError};

/// Why the benchmark's model or input could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The built-in cfg did not load.
    #[error(transparent)]
    Model(#[from] ModelFileError),
    /// The layers do not fuse.
    #[error("fusing layers [0, {upto}): {error}")]
    Fuse {
        /// Layers asked for.
        upto: usize,
        /// Why.
        error: PlanError,
    },
    /// The generated parameters do not cover the layers.
    #[error("viewing the weights: {0}")]
    Weights(#[from] WeightsError),
    /// The sample image did not decode.
    #[error("decoding the built-in sample: {0}")]
    Picture(#[from] PictureError),
}

/// YOLOv2 608's layers `[0, upto)`, their generated parameters and the sample input.
pub struct YoloBench {
    /// The network.
    pub net: Network,
    /// Layers measured.
    pub upto: usize,
    /// Parameters of layers `[0, upto)` from the seed.
    pub params: Vec<f32>,
    /// The sample image letterboxed to the network input (CHW).
    pub image: Vec<f32>,
}

impl YoloBench {
    /// Loads the built-in cfg, checks that `[0, upto)` fuse, draws the parameters from `seed`
    /// and letterboxes the sample image.
    pub fn load(upto: usize, seed: u64) -> Result<YoloBench, SetupError> {
        let net = ModelFiles::default().network()?;
        FusedStack::new(&net, upto).map_err(|error| SetupError::Fuse { upto, error })?;
        let params = gen_weights::params(&net, upto, seed);
        let shape = net.input();
        let px = decode_pixels(DEFAULT_IMAGE)?;
        let image = letterbox_of(&px, shape.w as usize, shape.h as usize).data;
        Ok(YoloBench {
            net,
            upto,
            params,
            image,
        })
    }

    /// The fused stack (known to fuse: [`YoloBench::load`] checked it).
    pub fn stack(&self) -> Result<FusedStack<'_>, SetupError> {
        FusedStack::new(&self.net, self.upto).map_err(|error| SetupError::Fuse {
            upto: self.upto,
            error,
        })
    }

    /// The parameters viewed per layer.
    pub fn weights(&self) -> Result<Weights<'_>, SetupError> {
        Ok(Weights::new(&self.net, self.upto, &self.params)?)
    }
}
