//! Deterministic random parameters in Darknet's order, for tests, demos and the simulator.
//!
//! No real YOLOv2 weights can be fetched here, so tests and demos use these. Statistics keep
//! activations of the right order through deep stacks: He-uniform weights (variance
//! 2/fan-in, suited to leaky ReLU), small biases, batch-norm scales near 1, means near 0 and
//! variances in [0.5, 1.5]. One seeded stream runs over the layers in file order, so the
//! parameters of layers `[0, L)` are a prefix of the whole network's: a node generates only the
//! layers it runs and gets the same values a whole file holds.

extern crate alloc;

use alloc::vec::Vec;

use tessera_core::model::{Layer, LayerKind, Network};

use tessera_core::rng::SplitMix64;

/// Appends the parameters of one layer, in Darknet order, drawn from `rng`.
pub fn layer_params(rng: &mut SplitMix64, layer: &Layer, out: &mut Vec<f32>) {
    let LayerKind::Conv(c) = &layer.kind else {
        return;
    };
    let n = c.filters as usize;
    let mut put =
        |count: usize, lo: f32, hi: f32| out.extend((0..count).map(|_| rng.uniform_f32(lo, hi)));
    put(n, -0.1, 0.1);
    if c.batch_norm {
        put(n, 0.8, 1.2);
        put(n, -0.1, 0.1);
        put(n, 0.5, 1.5);
    }
    // libm's sqrtf is correctly rounded, as std's: the same bits on every host.
    let a = libm::sqrtf(6.0 / (layer.input.c * c.size * c.size) as f32);
    put(c.weight_count(layer.input.c).unwrap_or(0), -a, a);
}

/// The parameters of layers `[0, upto)` for `seed` (layers past the network's end are
/// ignored), in one buffer of exactly their count: nothing of the later layers is drawn.
pub fn params(net: &Network, upto: usize, seed: u64) -> Vec<f32> {
    let layers = &net.layers()[..upto.min(net.layers().len())];
    let count = tessera_core::model::weights::param_count(net, layers.len()).unwrap_or(0);
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(count);
    for layer in layers {
        layer_params(&mut rng, layer, &mut out);
    }
    out
}

/// The parameters of layer `j` alone for `seed`, the same values [`params`] gives it (the
/// stream skipped past the layers before it); `None` past the network's end or when the
/// count overflows.
pub fn layer(net: &Network, j: usize, seed: u64) -> Option<Vec<f32>> {
    let layer = net.layers().get(j)?;
    let before = tessera_core::model::weights::param_count(net, j).ok()?;
    let mut rng = SplitMix64::new(seed);
    rng.skip(before as u64);
    let mut out = Vec::new();
    layer_params(&mut rng, layer, &mut out);
    Some(out)
}
