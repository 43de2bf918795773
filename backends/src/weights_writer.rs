//! Seeded random weights written as a Darknet weights file: the values of
//! [`crate::gen_weights`] (one seeded stream in file order), so a file's layers `[0, L)` are
//! exactly what a node generating only those layers draws.

extern crate alloc;
extern crate std;

use alloc::vec::Vec;
use std::io::{self, Write};
use std::path::Path;

use tessera_core::model::weights::Header;
use tessera_core::model::Network;

use crate::gen_weights::layer_params;
use tessera_core::rng::SplitMix64;

/// The header written: version 0.1.0 (32-bit `seen`, 16 bytes), as the official YOLOv2 file.
pub const HEADER: Header = Header {
    major: 0,
    minor: 1,
    revision: 0,
    seen: 0,
};

/// Writes seeded random weights for every conv layer of `net` to `path`; returns bytes written.
pub fn write_weights(net: &Network, seed: u64, path: &Path) -> io::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut w = io::BufWriter::with_capacity(1 << 20, file);
    let mut header = [0u8; 32];
    let n = HEADER.encode(&mut header).map_err(io::Error::other)?;
    w.write_all(&header[..n])?;
    let mut written = n as u64;
    let mut rng = SplitMix64::new(seed);
    let mut values = Vec::new();
    let mut bytes = Vec::new();
    for layer in net.layers() {
        values.clear();
        layer_params(&mut rng, layer, &mut values);
        bytes.clear();
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        w.write_all(&bytes)?;
        written += bytes.len() as u64;
    }
    w.flush()?;
    Ok(written)
}
