//! Arguments `tessera layers` and `tessera detect` share: the model files, and how the fused
//! stack is tiled.

use std::path::PathBuf;

use tessera_backends::model_files::ModelFiles;
use tessera_core::ftp::{GridShape, Mode, Partition};

/// The model: a cfg and a weights file, or the built-in cfg with generated weights.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Darknet cfg file [default: the built-in yolov2-608.cfg].
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// Darknet weights file for the whole network [default: generated from --seed].
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the generated weights when no --weights is given.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl ModelArgs {
    /// The files (or seed) the arguments name.
    pub fn files(&self) -> ModelFiles {
        ModelFiles {
            cfg: self.cfg.clone(),
            weights: self.weights.clone(),
            seed: self.seed,
        }
    }
}

/// How the fused stack is tiled.
#[derive(clap::Args, Debug)]
pub struct TileArgs {
    /// Tile grid NxM (N rows, M columns) of the fused stack; without it the frame runs whole.
    #[arg(long)]
    pub grid: Option<GridShape>,
    /// Data-reuse scheduling (checkerboard order, overlap strips).
    #[arg(long, requires = "grid")]
    pub reuse: bool,
    /// Balanced tile split instead of the original system's rule.
    #[arg(long)]
    pub balanced: bool,
}

impl TileArgs {
    /// The grid, `(1, 1)` without one.
    pub fn grid(&self) -> (u32, u32) {
        self.grid.map_or((1, 1), Into::into)
    }

    /// The grid rule.
    pub fn partition(&self) -> Partition {
        if self.balanced {
            Partition::Balanced
        } else {
            Partition::Darknet
        }
    }

    /// The scheduling mode.
    pub fn mode(&self) -> Mode {
        mode(self.reuse)
    }
}

/// `Mode::Reuse` when `reuse`, else `Mode::Plain`.
pub fn mode(reuse: bool) -> Mode {
    if reuse {
        Mode::Reuse
    } else {
        Mode::Plain
    }
}
