//! Layer kernels over regions, writing into caller-owned buffers.
//!
//! Every kernel computes exactly the output region it is given, from an input view that covers
//! the region's dependencies, reading zero only outside the feature map (taps outside the map
//! are skipped, as Darknet's zero padding contributes nothing). Each output element is summed
//! in a fixed order — input channel, then kernel row, then kernel column — whatever the region,
//! so a tiled run is bit-identical to the full frame with the same kernel. [`Reference`] and
//! [`Portable`] share that order and the post-processing, so they agree bit for bit too.

pub mod batch_norm;
mod portable;
mod reference;
pub mod tail;

pub use portable::Portable;
pub use reference::Reference;

use core::fmt;

use crate::model::weights::ConvParams;
use crate::model::{Activation, Conv, MaxPool, Shape};
use crate::region::{Region, Span};
use crate::tensor::{FeatureView, FeatureViewMut};

/// Why a kernel refused to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// The output region is not inside the layer's output map.
    OutputOutsideMap,
    /// The input view does not cover the input region the output depends on.
    InputTooSmall {
        /// What the output needs (clamped to the map).
        needed: Region,
        /// What the view holds.
        have: Region,
    },
    /// Channel counts of the views disagree with the layer.
    ChannelMismatch,
    /// Weight, bias or batch-norm slices have the wrong length.
    ParamsMismatch,
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::OutputOutsideMap => f.write_str("output region outside the map"),
            KernelError::InputTooSmall { needed, have } => {
                write!(f, "input view {have:?} does not cover needed {needed:?}")
            }
            KernelError::ChannelMismatch => f.write_str("channel count mismatch"),
            KernelError::ParamsMismatch => f.write_str("layer parameters have the wrong length"),
        }
    }
}

impl core::error::Error for KernelError {}

/// A set of layer kernels. Implementations must keep the per-output summation order
/// independent of the region (see the module docs), and write `out.region()` only: an output
/// view may be a window of a larger buffer ([`FeatureViewMut::within`]) whose other values
/// belong to the caller.
pub trait Kernels {
    /// Computes `out.region()` of a convolution whose input map has shape `map`.
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError>;

    /// Computes `out.region()` of a max pool whose input map has shape `map`.
    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError>;

    /// The output block grid of `conv` on an input map `map`: `1` (the default) when every
    /// output is computed on its own; `m > 1` when outputs are computed in `m × m` blocks
    /// anchored at multiples of `m` in absolute map coordinates (Winograd transforms), each
    /// block's values depending on the block's whole input window. Such a kernel needs its
    /// input view to cover [`aligned_input_region`] of the output region, and a tiled plan
    /// made with [`FusedStack::aligned`](crate::ftp::FusedStack::aligned) provides it.
    fn conv_alignment(&self, conv: &Conv, map: Shape) -> u32 {
        let _ = (conv, map);
        1
    }
}

/// `out` rounded out to the grid of `m × m` blocks anchored at the map origin, clipped to the
/// `w × h` output map (`m ≤ 1` or an empty region: unchanged).
pub fn align_region(out: Region, m: u32, w: u32, h: u32) -> Region {
    if m <= 1 || out.is_empty() {
        return out;
    }
    let round = |s: Span, extent: u32| {
        let start = s.start / m * m;
        let end = (s.end.div_ceil(m).saturating_mul(m)).min(extent).max(s.end);
        Span::new(start, end)
    };
    Region::new(round(out.x, w), round(out.y, h))
}

/// The input region a block-wise conv (blocks of `m`, see [`Kernels::conv_alignment`]) reads
/// for output region `out`: the dependencies of `out` rounded out to whole blocks, clamped to
/// the input map.
pub fn aligned_input_region(conv: &Conv, map: Shape, m: u32, out: Region) -> Option<Region> {
    let (w, h) = (conv.out_extent(map.w).ok()?, conv.out_extent(map.h).ok()?);
    let o = align_region(out, m, w, h);
    Some(Region::new(
        input_span(o.x, conv.size, conv.stride, conv.pad, map.w),
        input_span(o.y, conv.size, conv.stride, conv.pad, map.h),
    ))
}

/// Input interval needed along one axis for output interval `out` of a window op
/// (`size`, `stride`, left padding `pad`), clamped to `0..extent`.
pub fn input_span(out: Span, size: u32, stride: u32, pad: u32, extent: u32) -> Span {
    if out.is_empty() {
        return Span::default();
    }
    let lo = (out.start as i64 * stride as i64 - pad as i64).max(0);
    let hi = ((out.end as i64 - 1) * stride as i64 - pad as i64 + size as i64).min(extent as i64);
    if hi <= lo {
        Span::default()
    } else {
        Span::new(lo as u32, hi as u32)
    }
}

/// Checks the views against a window op and returns the input region the output needs.
pub(crate) fn check_window(
    size: u32,
    stride: u32,
    pad: u32,
    map: Shape,
    out_map: (u32, u32),
    input: &FeatureView<'_>,
    out: &FeatureViewMut<'_>,
) -> Result<Region, KernelError> {
    let o = out.region();
    if !Region::full(out_map.0, out_map.1).covers(&o) {
        return Err(KernelError::OutputOutsideMap);
    }
    let needed = Region::new(
        input_span(o.x, size, stride, pad, map.w),
        input_span(o.y, size, stride, pad, map.h),
    );
    if !input.region().covers(&needed) {
        return Err(KernelError::InputTooSmall {
            needed,
            have: input.region(),
        });
    }
    Ok(needed)
}

/// Checks conv parameter lengths against the layer.
pub(crate) fn check_conv(
    conv: &Conv,
    map: Shape,
    params: &ConvParams<'_>,
    input: &FeatureView<'_>,
    out: &FeatureViewMut<'_>,
) -> Result<(), KernelError> {
    if input.channels() != map.c || out.channels() != conv.filters {
        return Err(KernelError::ChannelMismatch);
    }
    let n = conv.filters as usize;
    let bn_ok = match (&params.bn, conv.batch_norm) {
        (Some(bn), true) => bn.scales.len() == n && bn.mean.len() == n && bn.variance.len() == n,
        (None, false) => true,
        _ => false,
    };
    if !bn_ok || params.biases.len() != n || Some(params.weights.len()) != conv.weight_count(map.c)
    {
        return Err(KernelError::ParamsMismatch);
    }
    Ok(())
}

/// Checks a conv call the way every kernel must before touching a value: channel counts,
/// parameter lengths, the output region inside the output map, and the input view covering
/// what the output depends on. Returns that needed input region. Backends' kernels call this
/// too, so every kernel refuses the same inputs with the same errors.
pub fn check_conv_call(
    conv: &Conv,
    map: Shape,
    params: &ConvParams<'_>,
    input: &FeatureView<'_>,
    out: &FeatureViewMut<'_>,
) -> Result<Region, KernelError> {
    check_conv(conv, map, params, input, out)?;
    let out_map = (
        conv.out_extent(map.w).unwrap_or(0),
        conv.out_extent(map.h).unwrap_or(0),
    );
    check_window(conv.size, conv.stride, conv.pad, map, out_map, input, out)
}

/// Checks a max pool call the way [`check_conv_call`] checks a conv: channel counts, the output
/// region inside the output map, and the input view covering what the output depends on.
pub(crate) fn check_pool_call(
    pool: &MaxPool,
    map: Shape,
    input: &FeatureView<'_>,
    out: &FeatureViewMut<'_>,
) -> Result<Region, KernelError> {
    if input.channels() != map.c || out.channels() != map.c {
        return Err(KernelError::ChannelMismatch);
    }
    let out_map = (
        pool.out_extent(map.w).unwrap_or(0),
        pool.out_extent(map.h).unwrap_or(0),
    );
    check_window(
        pool.size,
        pool.stride,
        pool.offset(),
        map,
        out_map,
        input,
        out,
    )
}

/// Per-output-channel post-processing, computed exactly as Darknet does at inference:
/// `((x − μ) / (√σ² + ε))` in double precision ([`batch_norm::denominator`]), `· γ`, `+ β`,
/// then the activation.
#[derive(Clone, Copy, Debug)]
pub struct Post {
    mean: f32,
    denom: f64,
    scale: f32,
    bias: f32,
    bn: bool,
    leaky: bool,
}

impl Post {
    /// The post-processing of output channel `o`.
    pub fn new(conv: &Conv, params: &ConvParams<'_>, o: usize) -> Self {
        let (mean, denom, scale, bn) = match &params.bn {
            Some(bn) => (
                bn.mean[o],
                batch_norm::denominator(bn.variance[o]),
                bn.scales[o],
                true,
            ),
            None => (0.0, 1.0, 1.0, false),
        };
        Post {
            mean,
            denom,
            scale,
            bias: params.biases[o],
            bn,
            leaky: conv.activation == Activation::Leaky,
        }
    }

    /// Applies normalisation, bias and activation to an accumulated sum.
    #[inline]
    pub fn apply(&self, acc: f32) -> f32 {
        let mut x = acc;
        if self.bn {
            x = ((x - self.mean) as f64 / self.denom) as f32;
            x *= self.scale;
        }
        x += self.bias;
        if self.leaky && x <= 0.0 {
            x *= 0.1;
        }
        x
    }
}
