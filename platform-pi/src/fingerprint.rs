//! The model fingerprint a node's `Hello` carries: a digest of everything that makes two nodes
//! compute the same tiles, so a node with a different weights file or cluster settings is
//! refused, and named, before the first frame.
//!
//! It covers the cfg's text, the fused layers' count, the grid, the resolved conv kernel
//! (`auto` is SIMD on x86_64/aarch64, portable on armv7: a mixed cluster must name one), the
//! policy and where the tail runs, and the weights: the parameters of the fused layers (what
//! every node runs; the file is validated whole first), or the seed of generated weights.
//! Timeouts and addresses are left out: nodes may differ there without computing differently.
//! The tail's parameters are left out too (with the tail on the gateway, only it reads them; a
//! coded tail's workers that disagree there are not caught here).

use sha2::{Digest, Sha256};

use crate::config::Cluster;
use crate::error::Error;
use crate::files;

/// The parts of a fingerprint, from its high bits to its low ones: what each covers and how
/// many bits of its digest it keeps. A part that differs between two fingerprints names what
/// differs between two nodes (a digest of 32 bits misses a difference once in 4 billion).
pub const PARTS: [(&str, u32); 4] = [
    ("network or weights", 32),
    ("grid", 16),
    ("conv kernel", 8),
    ("policy or tail", 8),
];

/// Parameters hashed at a time.
const HASH_CHUNK: usize = 1 << 14;
const _: () = assert!(PARTS[0].1 + PARTS[1].1 + PARTS[2].1 + PARTS[3].1 == 64);

/// The fingerprint of `cluster`'s model as this machine would run it (reads the cfg and the
/// fused layers' part of the weights file; a missing or wrong file is an error naming it).
pub fn model_fingerprint(cluster: &Cluster) -> Result<u64, Error> {
    let mut network = Sha256::new();
    network.update(b"tessera network 1\0");
    let cfg = files::cfg_text(cluster.cfg.as_deref())?;
    field(&mut network, cfg.as_bytes());
    let net = files::load_network(cluster.cfg.as_deref())?;
    let layers = cluster.layers.min(net.layers().len());
    field(&mut network, &(layers as u64).to_le_bytes());
    match &cluster.weights {
        None => {
            field(&mut network, b"seed");
            field(&mut network, &cluster.seed.to_le_bytes());
        }
        Some(path) => {
            field(&mut network, b"file");
            // The fused layers' parameters as this node reads them (the file is validated
            // whole first), hashed a chunk at a time.
            let params = files::load_weights(path, &net, layers)?;
            let mut bytes = Vec::with_capacity(4 * HASH_CHUNK);
            for chunk in params.chunks(HASH_CHUNK) {
                bytes.clear();
                bytes.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
                network.update(&bytes);
            }
        }
    }
    let (rows, cols) = cluster.grid;
    let grid = [rows.to_le_bytes(), cols.to_le_bytes()].concat();
    let kernel = format!("{:?}", cluster.kernel);
    // Where the tail runs too: coded tail shards on the edges change the protocol.
    let policy = format!("{:?} {}", cluster.policy, cluster.tail);
    let digests = [
        network.finalize(),
        Sha256::digest(&grid),
        Sha256::digest(kernel.as_bytes()),
        Sha256::digest(policy.as_bytes()),
    ];
    let mut fp = 0u64;
    for ((_, bits), d) in PARTS.iter().zip(digests) {
        let top = u64::from_be_bytes(d[..8].try_into().unwrap_or_default());
        fp = fp << bits | top >> (64 - bits);
    }
    Ok(fp)
}

/// What differs between nodes with fingerprints `a` and `b` (empty when they are equal).
pub fn differences(a: u64, b: u64) -> Vec<&'static str> {
    let mut shift = 64;
    PARTS
        .iter()
        .filter(|&&(_, bits)| {
            shift -= bits;
            let mask = (1u64 << bits) - 1;
            (a >> shift) & mask != (b >> shift) & mask
        })
        .map(|&(what, _)| what)
        .collect()
}

/// Feeds one length-prefixed field, so adjacent fields cannot run into each other.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::wire::Policy;

    const EXAMPLE: &str = include_str!("../../cluster.example.toml");

    #[test]
    fn settings_that_change_tiles_change_the_fingerprint_and_others_do_not() {
        let base = Cluster::parse(EXAMPLE).unwrap();
        let fp = |c: &Cluster| model_fingerprint(c).unwrap();
        let f0 = fp(&base);
        assert_eq!(f0, fp(&base.clone()));
        let mut c = base.clone();
        c.seed += 1;
        assert_eq!(differences(fp(&c), f0), ["network or weights"], "seed");
        let mut c = base.clone();
        c.grid = (2, 2);
        assert_eq!(differences(fp(&c), f0), ["grid"]);
        let mut c = base.clone();
        c.layers = 8;
        assert_eq!(differences(fp(&c), f0), ["network or weights"], "layers");
        let mut c = base.clone();
        c.policy = Policy::Wsh;
        c.grid = (1, 2);
        assert_eq!(differences(fp(&c), f0), ["grid", "policy or tail"]);
        // Every policy has a part of its own (8 bits: checked, not left to chance).
        let mut seen = std::collections::BTreeSet::new();
        for p in [Policy::Wsh, Policy::Wst, Policy::WstS, Policy::Bodp] {
            let mut c = base.clone();
            c.policy = p;
            assert!(seen.insert(fp(&c) & 0xff), "{p:?}");
        }
        let mut c = base.clone();
        c.kernel = match base.kernel {
            crate::config::NodeKernel::Simd => crate::config::NodeKernel::Portable,
            crate::config::NodeKernel::Portable => crate::config::NodeKernel::Simd,
        };
        assert_eq!(differences(fp(&c), f0), ["conv kernel"]);
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
