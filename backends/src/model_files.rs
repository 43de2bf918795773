//! Where a node's network and parameters come from: a Darknet cfg file (or the built-in
//! YOLOv2-608), and a Darknet weights file (or parameters generated from a seed).
//!
//! A cfg is refused when the network would need more than [`MEMORY_LIMIT`], before anything is
//! allocated. Weights are read for the layers a node runs only ([`read_prefix`]: the whole file
//! is validated first, its size taken from the file's metadata, and the rest skipped), or one
//! layer at a time in any order ([`LayerParams`]).

extern crate alloc;
extern crate std;

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use tessera_core::model::cfg::{self, CfgError};
use tessera_core::model::weights::{param_count, WeightsError};
use tessera_core::model::{Footprint, FootprintError, Network};

use crate::builtin::DEFAULT_CFG;
use crate::gen_weights::{self, params};
use crate::weights_file::{read_prefix, LayerReader, WeightsFileError};

/// Most memory a network may need on one device (parameters plus its largest activations,
/// see [`Footprint`]): 2 GiB, twice a Raspberry Pi 3's RAM and about 7 times YOLOv2-608's
/// 268 MB. A larger network is refused when its cfg is loaded, before anything is allocated.
pub const MEMORY_LIMIT: u64 = 2 << 30;

/// Why a network or its parameters could not be loaded (each message names the file).
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// A file could not be opened or read.
    #[error("reading {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        error: io::Error,
    },
    /// The built-in cfg did not parse (a build defect).
    #[error("parsing the built-in yolov2-608.cfg: {0}")]
    Builtin(CfgError),
    /// A cfg file did not parse.
    #[error("parsing {}: {error}", path.display())]
    Cfg {
        /// The cfg file.
        path: PathBuf,
        /// Why, and on which line.
        error: CfgError,
    },
    /// A cfg describes a network larger than [`MEMORY_LIMIT`].
    #[error("sizing {}: {error}", path.display())]
    TooLarge {
        /// The cfg file.
        path: PathBuf,
        /// The size refused.
        error: FootprintError,
    },
    /// A weights file does not hold the network's parameters.
    #[error("reading {}: {error}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong with it.
        error: WeightsFileError,
    },
    /// No such layer in the network.
    #[error("generating weights: no layer {0} in the network")]
    NoLayer(usize),
    /// A parameter count overflows.
    #[error("generating weights: {0}")]
    Count(WeightsError),
}

/// The network and parameters of a node: cfg and weights files, or the built-ins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelFiles {
    /// Darknet cfg (`None`: the built-in YOLOv2 608).
    pub cfg: Option<PathBuf>,
    /// Darknet weights (`None`: generated from `seed`).
    pub weights: Option<PathBuf>,
    /// Seed of generated weights.
    pub seed: u64,
}

/// [`ModelFileError::Read`] of `path`.
fn read_error(path: &Path) -> impl FnOnce(io::Error) -> ModelFileError + '_ {
    move |error| ModelFileError::Read {
        path: path.to_path_buf(),
        error,
    }
}

impl ModelFiles {
    /// The cfg's text.
    pub fn cfg_text(&self) -> Result<String, ModelFileError> {
        match &self.cfg {
            None => Ok(DEFAULT_CFG.to_owned()),
            Some(path) => std::fs::read_to_string(path).map_err(read_error(path)),
        }
    }

    /// Parses the cfg and refuses a network whose footprint exceeds [`MEMORY_LIMIT`].
    pub fn network(&self) -> Result<Network, ModelFileError> {
        let Some(path) = &self.cfg else {
            return cfg::parse(DEFAULT_CFG).map_err(ModelFileError::Builtin);
        };
        let text = self.cfg_text()?;
        let net = cfg::parse(&text).map_err(|error| ModelFileError::Cfg {
            path: path.clone(),
            error,
        })?;
        Footprint::check(&net, MEMORY_LIMIT).map_err(|error| ModelFileError::TooLarge {
            path: path.clone(),
            error,
        })?;
        Ok(net)
    }

    /// The parameters of layers `[0, upto)` of `net`, read (validating the whole file) or
    /// generated; nothing past `upto` is kept.
    pub fn params(&self, net: &Network, upto: usize) -> Result<Vec<f32>, ModelFileError> {
        match &self.weights {
            Some(path) => read_weights(path, net, upto),
            None => Ok(params(net, upto, self.seed)),
        }
    }

    /// The network and the parameters of its layers `[0, upto)` (all of them past its end).
    pub fn load(&self, upto: usize) -> Result<(Network, Vec<f32>), ModelFileError> {
        let net = self.network()?;
        let upto = upto.min(net.layers().len());
        let params = self.params(&net, upto)?;
        Ok((net, params))
    }

    /// Validates the weights file against `net` (header, and size from its metadata) without
    /// reading parameters: a wrong file is refused at start, not when first needed.
    pub fn check_weights(&self, net: &Network) -> Result<(), ModelFileError> {
        match &self.weights {
            Some(path) => read_weights(path, net, 0).map(drop),
            None => Ok(()),
        }
    }

    /// The parameters of `net` one layer at a time, in any order.
    pub fn layers<'n>(&self, net: &'n Network) -> Result<LayerParams<'n>, ModelFileError> {
        let Some(path) = &self.weights else {
            return Ok(LayerParams::Seeded(net, self.seed));
        };
        let file = File::open(path).map_err(read_error(path))?;
        let len = file.metadata().map_err(read_error(path))?.len();
        let reader =
            LayerReader::open(file, len, net).map_err(|error| ModelFileError::Weights {
                path: path.clone(),
                error,
            })?;
        Ok(LayerParams::File(reader, path.clone()))
    }
}

/// Reads the parameters of layers `[0, upto)` of `net` from the Darknet weights file `path`,
/// keeping only those (the whole file is validated first).
pub fn read_weights(path: &Path, net: &Network, upto: usize) -> Result<Vec<f32>, ModelFileError> {
    let mut file = File::open(path).map_err(read_error(path))?;
    let len = file.metadata().map_err(read_error(path))?.len();
    read_prefix(&mut file, len, net, upto).map_err(|error| ModelFileError::Weights {
        path: path.to_path_buf(),
        error,
    })
}

/// One layer's parameters at a time, in any order: read from a weights file (validated whole
/// when opened) or drawn from a seed (the stream skipped to the layer).
pub enum LayerParams<'n> {
    /// From this weights file.
    File(LayerReader<'n, File>, PathBuf),
    /// Generated for this network from this seed.
    Seeded(&'n Network, u64),
}

impl LayerParams<'_> {
    /// Layer `j`'s parameters.
    pub fn layer(&mut self, j: usize) -> Result<Vec<f32>, ModelFileError> {
        match self {
            LayerParams::File(reader, path) => {
                reader
                    .read(j, j + 1)
                    .map_err(|error| ModelFileError::Weights {
                        path: path.clone(),
                        error,
                    })
            }
            LayerParams::Seeded(net, seed) => {
                net.layers().get(j).ok_or(ModelFileError::NoLayer(j))?;
                param_count(net, j).map_err(ModelFileError::Count)?;
                gen_weights::layer(net, j, *seed).ok_or(ModelFileError::NoLayer(j))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use tessera_core::model::weights::layer_param_count;

    use crate::weights_writer::write_weights;

    #[test]
    fn tail_layers_one_at_a_time_are_the_whole_files() {
        let text = DEFAULT_CFG
            .replace("width=608", "width=96")
            .replace("height=608", "height=96")
            .replace("filters=1024", "filters=32")
            .replace("filters=512", "filters=16");
        let net = cfg::parse(&text).unwrap();
        let n = net.layers().len();
        let whole = params(&net, n, 9);
        let dir = std::env::temp_dir().join(alloc::format!(
            "tessera-layer-params-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.weights");
        write_weights(&net, 9, &path).unwrap();
        let file = ModelFiles {
            weights: Some(path),
            seed: 9,
            ..ModelFiles::default()
        };
        let seeded = ModelFiles {
            seed: 9,
            ..ModelFiles::default()
        };
        let mut from_file = file.layers(&net).unwrap();
        let mut drawn = seeded.layers(&net).unwrap();
        for j in [16, 18, 23, 29, 30] {
            let at = param_count(&net, j).unwrap();
            let want = &whole[at..at + layer_param_count(&net, j).unwrap()];
            assert_eq!(from_file.layer(j).unwrap(), want, "file, layer {j}");
            assert_eq!(drawn.layer(j).unwrap(), want, "seed, layer {j}");
        }
        // Any order, as the tail reads them (largest first).
        let at = param_count(&net, 18).unwrap();
        let want = &whole[at..at + layer_param_count(&net, 18).unwrap()];
        assert_eq!(drawn.layer(18).unwrap(), want);
        assert_eq!(from_file.layer(18).unwrap(), want);
        assert!(drawn.layer(n).is_err());
        assert!(from_file.layer(n).is_err());
        // The prefix a node loads is the file's, and the seed's.
        assert_eq!(
            file.params(&net, 16).unwrap(),
            seeded.params(&net, 16).unwrap()
        );
        assert_eq!(
            file.params(&net, 16).unwrap(),
            &whole[..param_count(&net, 16).unwrap()]
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = file.check_weights(&net).unwrap_err().to_string();
        assert!(missing.contains("w.weights"), "{missing}");
    }
}
