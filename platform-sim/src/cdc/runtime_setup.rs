//! What the runtime experiments share: the FC layer and its inputs, and the rate at which a
//! shard computes in a given time.

use tessera_backends::coded::{Activation, CodedModel, LinearLayer, Numeric};

/// Data shards of experiment a's layer.
pub const RT_K: usize = 8;
/// Experiment a's layer: the CDC paper's 2048-wide FC layer (int8, 2048 × 2048).
pub const RT_FC: usize = 2048;

pub(super) fn fc_layer(rows: usize, in_len: usize, seed: u64, int8: bool) -> LinearLayer {
    let mut rng = crate::rng::stream(seed);
    let a = (1.0 / in_len as f64).sqrt();
    LinearLayer {
        in_len,
        rows,
        weights: (0..rows * in_len)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * a) as f32)
            .collect(),
        bias: (0..rows)
            .map(|_| ((rng.uniform() - 0.5) * 0.1) as f32)
            .collect(),
        activation: Activation::Relu,
        numeric: if int8 {
            Numeric::Int8 {
                in_scale: 1.0 / 127.0,
                w_scale: a as f32 / 127.0,
            }
        } else {
            Numeric::Float
        },
    }
}

pub(super) fn fc_inputs(n: usize, len: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = crate::rng::stream(seed);
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| (rng.uniform() * 2.0 - 1.0) as f32)
                .collect()
        })
        .collect()
}

/// Rate (GFLOP/s) at which shard `shard` of layer `l` computes in `ms`.
pub(super) fn rate_for(model: &CodedModel, l: usize, ms: f64) -> f64 {
    model.shard_flops(l, 0, 1) as f64 / (ms * 1e3) / 1e3
}
