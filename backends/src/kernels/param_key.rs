//! What finds a layer's prepared weights again: the addresses and lengths of its parameter
//! slices. A prepared kernel borrows those parameters for its lifetime, so the addresses
//! cannot be reused for other values while it lives.

use tessera_core::model::weights::ConvParams;

/// The addresses and lengths of a conv's weights, biases and batch norm slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ParamKey([(usize, usize); 5]);

impl ParamKey {
    /// The key of `params`.
    pub(super) fn of(params: &ConvParams<'_>) -> ParamKey {
        let at = |s: &[f32]| (s.as_ptr() as usize, s.len());
        let bn = params
            .bn
            .map_or([(0, 0); 3], |b| [at(b.scales), at(b.mean), at(b.variance)]);
        ParamKey([at(params.weights), at(params.biases), bn[0], bn[1], bn[2]])
    }
}
