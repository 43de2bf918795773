//! `tessera gen-weights`: deterministic random weights in Darknet's format.
//!
//! No real YOLOv2 weights can be fetched here, so tests and demos use these. Statistics keep
//! activations of the right order through deep stacks: He-uniform weights (variance
//! 2/fan-in, suited to leaky ReLU), small biases, batch-norm scales near 1, means near 0 and
//! variances in [0.5, 1.5]. One seeded stream runs over the layers in file order, so the
//! parameters of layers `[0, L)` are a prefix of the whole file's, in memory or on disk.

use std::io::Write;
use std::path::Path;

use tessera_core::model::weights::Header;
use tessera_core::model::{Layer, LayerKind, Network};

use crate::error::{Context, Error};
use crate::rng::SplitMix64;

/// The header written: version 0.1.0 (32-bit `seen`, 16 bytes), as the official YOLOv2 file.
pub const HEADER: Header = Header {
    major: 0,
    minor: 1,
    revision: 0,
    seen: 0,
};

/// Appends the parameters of one layer, in Darknet order, drawn from `rng`.
fn layer_params(rng: &mut SplitMix64, layer: &Layer, out: &mut Vec<f32>) {
    let LayerKind::Conv(c) = &layer.kind else {
        return;
    };
    let n = c.filters as usize;
    let mut put =
        |count: usize, lo: f32, hi: f32| out.extend((0..count).map(|_| rng.uniform(lo, hi)));
    put(n, -0.1, 0.1);
    if c.batch_norm {
        put(n, 0.8, 1.2);
        put(n, -0.1, 0.1);
        put(n, 0.5, 1.5);
    }
    let a = (6.0 / (layer.input.c * c.size * c.size) as f32).sqrt();
    put(c.weight_count(layer.input.c).unwrap_or(0), -a, a);
}

/// The parameters of layers `[0, upto)` that `generate` writes for the same seed.
pub fn params(net: &Network, upto: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    for layer in net.layers().iter().take(upto) {
        layer_params(&mut rng, layer, &mut out);
    }
    out
}

/// Writes seeded random weights for every conv layer of `net` to `path`; returns bytes written.
pub fn generate(net: &Network, seed: u64, path: &Path) -> Result<u64, Error> {
    let io = || format!("writing {}", path.display());
    let file = std::fs::File::create(path).context(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut header = [0u8; 32];
    let n = HEADER
        .encode(&mut header)
        .context(|| "encoding the weights header")?;
    w.write_all(&header[..n]).context(io)?;
    let mut written = n as u64;
    let mut rng = SplitMix64::new(seed);
    let mut values = Vec::new();
    let mut bytes = Vec::new();
    for layer in net.layers() {
        values.clear();
        layer_params(&mut rng, layer, &mut values);
        bytes.clear();
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        w.write_all(&bytes).context(io)?;
        written += bytes.len() as u64;
    }
    w.flush().context(io)?;
    Ok(written)
}
