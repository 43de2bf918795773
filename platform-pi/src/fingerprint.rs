//! The model fingerprint a node's `Hello` carries: a digest of everything that makes two nodes
//! compute the same tiles, so a node with a different weights file or cluster settings is
//! refused, and named, before the first frame.
//!
//! It covers the cfg's text, the fused layers' count, the grid, the resolved conv kernel
//! (`auto` is SIMD on x86_64/aarch64, portable on armv7: a mixed cluster must name one), the
//! policy, and the weights: a file's header and the parameters of the fused layers (what every
//! node runs; the file is validated whole first), or the seed of generated weights. Timeouts and
//! addresses are left out: nodes may differ there without computing differently.

use std::io::{Read, Seek, SeekFrom};

use sha2::{Digest, Sha256};
use tessera_core::model::weights;

use crate::config::Cluster;
use crate::error::{Context, Error};
use crate::files;

/// The fingerprint of `cluster`'s model as this machine would run it (reads the cfg and the
/// fused layers' part of the weights file; a missing or wrong file is an error naming it).
pub fn model_fingerprint(cluster: &Cluster) -> Result<u64, Error> {
    let mut h = Sha256::new();
    h.update(b"tessera model fingerprint 1\0");
    let cfg = files::cfg_text(cluster.cfg.as_deref())?;
    field(&mut h, cfg.as_bytes());
    let net = files::load_network(cluster.cfg.as_deref())?;
    let layers = cluster.layers.min(net.layers().len());
    field(&mut h, &(layers as u64).to_le_bytes());
    field(&mut h, &cluster.grid.0.to_le_bytes());
    field(&mut h, &cluster.grid.1.to_le_bytes());
    field(&mut h, format!("{:?}", cluster.kernel).as_bytes());
    field(&mut h, format!("{:?}", cluster.policy).as_bytes());
    match &cluster.weights {
        None => {
            field(&mut h, b"seed");
            field(&mut h, &cluster.seed.to_le_bytes());
        }
        Some(path) => {
            field(&mut h, b"file");
            let at = || format!("reading {}", path.display());
            let (mut file, header_len) = files::open_weights(path, &net)?;
            let count = weights::param_count(&net, layers).context(|| "sizing the weights")?;
            // The header, then the fused layers' parameters, streamed.
            file.seek(SeekFrom::Start(0)).context(at)?;
            let mut left = (header_len + 4 * count) as u64;
            let mut chunk = vec![0u8; files::CHUNK];
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                file.read_exact(&mut chunk[..n]).context(at)?;
                h.update(&chunk[..n]);
                left -= n as u64;
            }
        }
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Ok(u64::from_be_bytes(first))
}

/// Feeds one length-prefixed field, so adjacent fields cannot run into each other.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../cluster.example.toml");

    #[test]
    fn settings_that_change_tiles_change_the_fingerprint_and_others_do_not() {
        let base = Cluster::parse(EXAMPLE).unwrap();
        let fp = |c: &Cluster| model_fingerprint(c).unwrap();
        let f0 = fp(&base);
        assert_eq!(f0, fp(&base.clone()));
        let mut c = base.clone();
        c.seed += 1;
        assert_ne!(fp(&c), f0, "seed");
        let mut c = base.clone();
        c.grid = (2, 2);
        assert_ne!(fp(&c), f0, "grid");
        let mut c = base.clone();
        c.layers = 8;
        assert_ne!(fp(&c), f0, "layers");
        let mut c = base.clone();
        c.kernel = match base.kernel {
            crate::config::NodeKernel::Simd => crate::config::NodeKernel::Portable,
            crate::config::NodeKernel::Portable => crate::config::NodeKernel::Simd,
        };
        assert_ne!(fp(&c), f0, "kernel");
        // Timeouts do not change what a node computes.
        let mut c = base.clone();
        c.timeouts.tile = std::time::Duration::from_millis(1234);
        assert_eq!(fp(&c), f0, "timeouts");
    }

    #[test]
    fn a_missing_weights_file_is_named() {
        let mut c = Cluster::parse(EXAMPLE).unwrap();
        c.weights = Some("/nonexistent/tessera/yolo.weights".into());
        let e = model_fingerprint(&c).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/tessera/yolo.weights"), "{e}");
    }
}
