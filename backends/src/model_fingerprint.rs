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

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use sha2::{Digest, Sha256};
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::model::Network;
use tessera_core::wire::Policy;

use crate::coded::tail::TailPlace;
use crate::dgram::TailTransport;
use crate::kernels::Winograd;
use crate::model_files::{ModelFileError, ModelFiles};
use crate::pipeline::KernelChoice;

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

/// What a node's fingerprint covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelIdentity<'a> {
    /// The cfg and the weights (or their seed).
    pub files: &'a ModelFiles,
    /// Fused layers run on the edges.
    pub layers: usize,
    /// Tile grid (rows, columns).
    pub grid: (u32, u32),
    /// The conv kernel (resolved: never `auto`).
    pub kernel: KernelChoice,
    /// Scheduling policy.
    pub policy: Policy,
    /// Where the layers after the fused ones run.
    pub tail: TailPlace,
    /// How a coded tail's messages travel (a TCP worker and a datagram gateway would never
    /// hear each other: refused at Hello instead).
    pub tail_transport: TailTransport,
}

impl ModelIdentity<'_> {
    /// The fingerprint as this machine would run the model (reads the cfg and the fused
    /// layers' part of the weights file; a missing or wrong file is an error naming it).
    pub fn fingerprint(&self) -> Result<u64, ModelFileError> {
        let mut network = Sha256::new();
        network.update(b"tessera network 1\0");
        field(&mut network, self.files.cfg_text()?.as_bytes());
        let net = self.files.network()?;
        let layers = self.layers.min(net.layers().len());
        field(&mut network, &(layers as u64).to_le_bytes());
        match &self.files.weights {
            None => {
                field(&mut network, b"seed");
                field(&mut network, &self.files.seed.to_le_bytes());
            }
            Some(_) => {
                field(&mut network, b"file");
                // The fused layers' parameters as this node reads them (the file is validated
                // whole first), hashed a chunk at a time.
                let params = self.files.params(&net, layers)?;
                let mut bytes = Vec::with_capacity(4 * HASH_CHUNK);
                for chunk in params.chunks(HASH_CHUNK) {
                    bytes.clear();
                    bytes.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
                    network.update(&bytes);
                }
            }
        }
        let (rows, cols) = self.grid;
        let grid = [rows.to_le_bytes(), cols.to_le_bytes()].concat();
        let kernel = kernel_part(self.kernel, &net, layers, self.grid);
        // Where the tail runs too: coded tail shards on the edges change the protocol.
        // The transport only when not the default, so TCP clusters keep their fingerprints.
        let policy = match self.tail_transport {
            TailTransport::Tcp => format!("{:?} {}", self.policy, self.tail),
            t => format!("{:?} {} {t}", self.policy, self.tail),
        };
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
}

/// The kernel's part: its name, and for `winograd` the form planned per fused layer (the plan
/// follows from the network, layers and grid, hashed too, and from the planner's cost model:
/// named, so nodes whose builds plan differently are refused).
fn kernel_part(kernel: KernelChoice, net: &Network, layers: usize, grid: (u32, u32)) -> String {
    if kernel != KernelChoice::Winograd {
        return format!("{kernel:?}");
    }
    let forms = FusedStack::new(net, layers).and_then(|stack| {
        let g = Grid::new(grid.0, grid.1, Partition::Darknet, &stack)?;
        let w = Winograd::new().planned(&stack, &g, Mode::Reuse)?;
        Ok(w.layer_forms(&stack))
    });
    format!("{kernel:?} {forms:?}")
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
    extern crate std;

    use super::*;
    use alloc::string::ToString;

    fn base(files: &ModelFiles) -> ModelIdentity<'_> {
        ModelIdentity {
            files,
            layers: 16,
            grid: (3, 3),
            kernel: KernelChoice::Portable,
            policy: Policy::WstS,
            tail: TailPlace::Gateway,
            tail_transport: TailTransport::Tcp,
        }
    }

    #[test]
    fn settings_that_change_tiles_change_the_fingerprint_and_others_do_not() {
        let files = ModelFiles {
            seed: 1,
            ..ModelFiles::default()
        };
        let fp = |c: &ModelIdentity<'_>| c.fingerprint().unwrap();
        let f0 = fp(&base(&files));
        assert_eq!(f0, fp(&base(&files.clone())));
        let reseeded = ModelFiles {
            seed: 2,
            ..files.clone()
        };
        assert_eq!(
            differences(fp(&base(&reseeded)), f0),
            ["network or weights"],
            "seed"
        );
        let c = ModelIdentity {
            grid: (2, 2),
            ..base(&files)
        };
        assert_eq!(differences(fp(&c), f0), ["grid"]);
        let c = ModelIdentity {
            layers: 8,
            ..base(&files)
        };
        assert_eq!(differences(fp(&c), f0), ["network or weights"], "layers");
        let c = ModelIdentity {
            policy: Policy::Wsh,
            grid: (1, 2),
            ..base(&files)
        };
        assert_eq!(differences(fp(&c), f0), ["grid", "policy or tail"]);
        // Every policy has a part of its own (8 bits: checked, not left to chance).
        let mut seen = std::collections::BTreeSet::new();
        for policy in [Policy::Wsh, Policy::Wst, Policy::WstS, Policy::Bodp] {
            let c = ModelIdentity {
                policy,
                ..base(&files)
            };
            assert!(seen.insert(fp(&c) & 0xff), "{policy:?}");
        }
        let c = ModelIdentity {
            kernel: KernelChoice::Simd,
            ..base(&files)
        };
        assert_eq!(differences(fp(&c), f0), ["conv kernel"]);
        let w = ModelIdentity {
            kernel: KernelChoice::Winograd,
            ..base(&files)
        };
        assert_eq!(differences(fp(&w), f0), ["conv kernel"], "winograd");
        assert_eq!(
            differences(fp(&w), fp(&c)),
            ["conv kernel"],
            "winograd vs simd"
        );
        let c = ModelIdentity {
            tail: TailPlace::Coded(crate::coded::tail::TailScheme::Cdc(1)),
            ..base(&files)
        };
        assert_eq!(differences(fp(&c), f0), ["policy or tail"]);
        let d = ModelIdentity {
            tail_transport: TailTransport::Datagram,
            ..c.clone()
        };
        assert_eq!(differences(fp(&d), fp(&c)), ["policy or tail"]);
    }

    #[test]
    fn a_missing_weights_file_is_named() {
        let files = ModelFiles {
            weights: Some("/nonexistent/tessera/yolo.weights".into()),
            ..ModelFiles::default()
        };
        let e = base(&files).fingerprint().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/tessera/yolo.weights"), "{e}");
    }
}
