//! Darknet `.weights` reader (placeholder API; see the foundation issue).

/// Batch-norm parameters of one conv layer, one value per output channel.
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm<'a> {
    /// γ.
    pub scales: &'a [f32],
    /// Rolling mean μ.
    pub mean: &'a [f32],
    /// Rolling variance σ².
    pub variance: &'a [f32],
}

/// Parameters of one conv layer, borrowed from a decoded weights buffer.
#[derive(Clone, Copy, Debug)]
pub struct ConvParams<'a> {
    /// One bias per output channel (β when batch norm is on).
    pub biases: &'a [f32],
    /// Batch norm, when the layer has it.
    pub bn: Option<BatchNorm<'a>>,
    /// Weights laid out `[filters][c_in][k][k]`.
    pub weights: &'a [f32],
}
