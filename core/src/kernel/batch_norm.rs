//! Batch normalisation at inference, as Darknet computes it: the one place its epsilon and
//! the folding of a channel's normalisation into a scale and a shift live.

use crate::model::weights::ConvParams;

/// Darknet's batch-norm epsilon. `normalize_cpu` divides by `sqrt(variance) + .000001f`: the
/// epsilon is an `f32` added to the square root, not to the variance as in most frameworks.
pub const DARKNET_BN_EPSILON: f32 = 0.000001;

/// The normaliser of a channel with rolling variance `variance`, in double precision:
/// `√σ² + ε` (see [`DARKNET_BN_EPSILON`]).
pub fn denominator(variance: f32) -> f64 {
    libm::sqrt(variance as f64) + DARKNET_BN_EPSILON as f64
}

/// Batch norm and bias of one output channel folded into `out = acc·scale + shift`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Folded {
    /// `a = γ / (√σ² + ε)` in double precision (1 without batch norm).
    pub scale: f64,
    /// `b = β − μ·a`, rounded to f32 (β without batch norm).
    pub shift: f32,
}

/// Folds the batch norm and bias of output channel `o` of `params`.
///
/// Callers keep the scale in double precision where they multiply it into weights (the coded
/// tail) and round it to f32 where a kernel applies it per output (the SIMD kernels).
pub fn fold(params: &ConvParams<'_>, o: usize) -> Folded {
    match &params.bn {
        Some(bn) => {
            let scale = bn.scales[o] as f64 / denominator(bn.variance[o]);
            Folded {
                scale,
                shift: (params.biases[o] as f64 - bn.mean[o] as f64 * scale) as f32,
            }
        }
        None => Folded {
            scale: 1.0,
            shift: params.biases[o],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::BatchNorm;

    #[test]
    fn epsilon_is_added_to_the_root() {
        assert_eq!(denominator(4.0), 2.0 + 0.000001f32 as f64);
        assert_eq!(denominator(0.0), DARKNET_BN_EPSILON as f64);
    }

    #[test]
    fn folds_batch_norm_and_bias() {
        let (scales, mean, variance, biases) = ([2.0f32], [0.5f32], [4.0f32], [1.0f32]);
        let params = ConvParams {
            biases: &biases,
            bn: Some(BatchNorm {
                scales: &scales,
                mean: &mean,
                variance: &variance,
            }),
            weights: &[],
        };
        let f = fold(&params, 0);
        let a = 2.0 / (2.0 + 0.000001f32 as f64);
        assert_eq!(f.scale, a);
        assert_eq!(f.shift, (1.0 - 0.5 * a) as f32);
        let plain = ConvParams { bn: None, ..params };
        assert_eq!(
            fold(&plain, 0),
            Folded {
                scale: 1.0,
                shift: 1.0
            }
        );
    }
}
