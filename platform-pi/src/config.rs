//! The TOML cluster file, loaded from a path (its layout and validation:
//! [`tessera_backends::cluster_file`]; see `cluster.example.toml` at the repository root).

use std::path::Path;

use anyhow::{Context, Error};

pub use tessera_backends::cluster_file::Cluster;

/// The conv kernel of a cluster's nodes (`auto`, `portable`, `simd` or `winograd`).
pub use tessera_backends::pipeline::KernelChoice as NodeKernel;

/// Loads and validates a cluster file.
pub fn load(path: &Path) -> Result<Cluster, Error> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Cluster::parse(&text).with_context(|| format!("cluster file {}", path.display()))
}
