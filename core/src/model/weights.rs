//! Darknet `.weights`: the parameter layout of a network and views of decoded parameters.
//!
//! Layout, per conv layer in cfg order: `biases[n]`, then when `batch_normalize=1`
//! `scales[n]`, `rolling_mean[n]`, `rolling_variance[n]`, then `weights[n·c·k·k]`
//! (`[filters][c_in][k][k]`); all little-endian f32 after the file header.

use core::fmt;

use super::network::{Network, MAX_LAYERS};
use super::LayerKind;

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

/// Why parameters could not be read or viewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightsError {
    /// `upto` is past the last layer.
    LayerOutOfRange,
    /// A parameter count overflows `usize`.
    Overflow,
    /// The buffer holds fewer values than the layers need.
    Truncated {
        /// Values (or bytes, when reading a file) needed.
        needed: usize,
        /// Values (or bytes) available.
        available: usize,
    },
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightsError::LayerOutOfRange => f.write_str("layer index past the last layer"),
            WeightsError::Overflow => f.write_str("parameter count overflows"),
            WeightsError::Truncated { needed, available } => {
                write!(f, "truncated: need {needed}, have {available}")
            }
        }
    }
}

impl core::error::Error for WeightsError {}

/// Number of f32 parameters a layer stores (0 for layers without parameters).
pub fn layer_param_count(net: &Network, layer: usize) -> Result<usize, WeightsError> {
    let l = net
        .layers()
        .get(layer)
        .ok_or(WeightsError::LayerOutOfRange)?;
    match &l.kind {
        LayerKind::Conv(c) => {
            let n = c.filters as usize;
            let per_channel = if c.batch_norm { 4 * n } else { n };
            c.weight_count(l.input.c)
                .and_then(|w| w.checked_add(per_channel))
                .ok_or(WeightsError::Overflow)
        }
        _ => Ok(0),
    }
}

/// Number of f32 parameters of layers `[0, upto)`.
pub fn param_count(net: &Network, upto: usize) -> Result<usize, WeightsError> {
    if upto > net.layers().len() {
        return Err(WeightsError::LayerOutOfRange);
    }
    (0..upto).try_fold(0usize, |acc, i| {
        acc.checked_add(layer_param_count(net, i)?)
            .ok_or(WeightsError::Overflow)
    })
}

/// Decoded parameters of layers `[0, upto)` of a network, viewed per layer.
#[derive(Clone, Debug)]
pub struct Weights<'a> {
    data: &'a [f32],
    offsets: [usize; MAX_LAYERS],
    upto: usize,
    net: &'a Network,
}

impl<'a> Weights<'a> {
    /// Views `data` (at least [`param_count`]`(net, upto)` values) as the parameters of layers
    /// `[0, upto)` in Darknet order.
    pub fn new(net: &'a Network, upto: usize, data: &'a [f32]) -> Result<Self, WeightsError> {
        let mut offsets = [0usize; MAX_LAYERS];
        let mut at = 0usize;
        for (i, slot) in offsets.iter_mut().enumerate().take(upto) {
            *slot = at;
            at = at
                .checked_add(layer_param_count(net, i)?)
                .ok_or(WeightsError::Overflow)?;
        }
        if upto > net.layers().len() {
            return Err(WeightsError::LayerOutOfRange);
        }
        if data.len() < at {
            return Err(WeightsError::Truncated {
                needed: at,
                available: data.len(),
            });
        }
        Ok(Weights {
            data: &data[..at],
            offsets,
            upto,
            net,
        })
    }

    /// The network these parameters belong to.
    pub fn network(&self) -> &'a Network {
        self.net
    }

    /// Number of layers covered.
    pub fn layers(&self) -> usize {
        self.upto
    }

    /// Parameters of conv layer `layer`, or `None` if it is not a conv layer or not covered.
    pub fn conv(&self, layer: usize) -> Option<ConvParams<'a>> {
        if layer >= self.upto {
            return None;
        }
        let l = &self.net.layers()[layer];
        let c = l.conv()?;
        let n = c.filters as usize;
        let mut rest = &self.data[self.offsets[layer]..];
        let mut take = |len: usize| {
            let (head, tail) = rest.split_at(len);
            rest = tail;
            head
        };
        let biases = take(n);
        let bn = if c.batch_norm {
            Some(BatchNorm {
                scales: take(n),
                mean: take(n),
                variance: take(n),
            })
        } else {
            None
        };
        let weights = take(c.weight_count(l.input.c)?);
        Some(ConvParams {
            biases,
            bn,
            weights,
        })
    }
}
