//! A chain of fully connected layers with seeded random parameters ([`generated_chain`]):
//! the coded stage's model when no network is at hand (the `tessera coded` demo, tests).

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use tessera_core::wire::NodeId;

use super::{Activation, CodedModel, CodedModelError, LayerScheme, LinearLayer, Numeric};
use tessera_core::rng::SplitMix64;

/// Layers `dims[0] → dims[1] → …` (ReLU between, linear last), weights uniform in `±√(2/in)`
/// (He-style: activations stay in a stable range through the chain), biases in `±0.1`, from
/// `seed`; exact int8 arithmetic unless `float`; every layer split by `scheme` over
/// `workers`.
pub fn generated_chain(
    dims: &[usize],
    scheme: LayerScheme,
    workers: &[NodeId],
    float: bool,
    seed: u64,
) -> Result<CodedModel, CodedModelError> {
    let mut rng = SplitMix64::new(seed);
    let layers: Vec<LinearLayer> = dims
        .windows(2)
        .enumerate()
        .map(|(i, d)| {
            let (in_len, rows) = (d[0], d[1]);
            let s = libm::sqrtf(2.0 / in_len.max(1) as f32);
            let weights = (0..rows * in_len).map(|_| rng.uniform_f32(-s, s)).collect();
            let bias = (0..rows).map(|_| rng.uniform_f32(-0.1, 0.1)).collect();
            let last = i + 2 == dims.len();
            LinearLayer {
                in_len,
                rows,
                weights,
                bias,
                activation: if last {
                    Activation::Linear
                } else {
                    Activation::Relu
                },
                numeric: if float {
                    Numeric::Float
                } else {
                    Numeric::Int8 {
                        in_scale: 1.0 / 32.0,
                        w_scale: s / 127.0,
                    }
                },
            }
        })
        .collect();
    let schemes = vec![scheme; layers.len()];
    CodedModel::new(layers, &schemes, workers)
}
