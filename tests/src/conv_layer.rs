//! One conv layer with random parameters and input, for the kernel tests: variances positive
//! (as in a trained net), run on any output region from an input view holding exactly the
//! rows and columns it is given.

use tessera_core::kernel::{KernelError, Kernels};
use tessera_core::model::weights::{BatchNorm, ConvParams};
use tessera_core::model::{Activation, Conv, Shape};
use tessera_core::region::Region;
use tessera_core::rng::SplitMix64;
use tessera_core::tensor::{copy_overlap, FeatureView, FeatureViewMut};

/// The shape and options of a [`RandomConv`].
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    /// Input map width, height and channels.
    pub w: u32,
    /// Input map height.
    pub h: u32,
    /// Input channels.
    pub c: u32,
    /// Output channels.
    pub filters: u32,
    /// Kernel side.
    pub size: u32,
    /// Stride.
    pub stride: u32,
    /// Zero padding on each side.
    pub pad: u32,
    /// Batch norm (random scales, means, variances).
    pub bn: bool,
    /// Leaky activation (else linear).
    pub leaky: bool,
    /// Random biases without batch norm too (else zeros there).
    pub bias_without_bn: bool,
}

/// A conv layer with random parameters and a random input map.
pub struct RandomConv {
    /// The layer.
    pub conv: Conv,
    /// Its input map.
    pub map: Shape,
    /// Biases.
    pub biases: Vec<f32>,
    /// Batch-norm scales.
    pub scales: Vec<f32>,
    /// Batch-norm means.
    pub mean: Vec<f32>,
    /// Batch-norm variances (positive).
    pub variance: Vec<f32>,
    /// Weights.
    pub weights: Vec<f32>,
    /// The input map's values (CHW).
    pub input: Vec<f32>,
}

impl std::fmt::Debug for RandomConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} on {:?}", self.conv, self.map)
    }
}

impl RandomConv {
    /// A layer of `spec`, every value uniform in [-1, 1) from `rng` (scales shifted to
    /// [0.5, 2.5), means halved, variances at least 0.1).
    pub fn new(spec: &ConvSpec, rng: &mut SplitMix64) -> Self {
        let n = spec.filters as usize;
        let conv = Conv {
            filters: spec.filters,
            size: spec.size,
            stride: spec.stride,
            pad: spec.pad,
            batch_norm: spec.bn,
            activation: if spec.leaky {
                Activation::Leaky
            } else {
                Activation::Linear
            },
        };
        let random_bias = spec.bn || spec.bias_without_bn;
        RandomConv {
            biases: (0..n)
                .map(|_| {
                    if random_bias {
                        rng.uniform_f32(-1.0, 1.0)
                    } else {
                        0.0
                    }
                })
                .collect(),
            scales: (0..n).map(|_| rng.uniform_f32(-1.0, 1.0) + 1.5).collect(),
            mean: (0..n).map(|_| rng.uniform_f32(-1.0, 1.0) * 0.5).collect(),
            variance: (0..n)
                .map(|_| rng.uniform_f32(-1.0, 1.0).abs() + 0.1)
                .collect(),
            weights: (0..conv.weight_count(spec.c).unwrap())
                .map(|_| rng.uniform_f32(-1.0, 1.0))
                .collect(),
            input: (0..(spec.w * spec.h * spec.c) as usize)
                .map(|_| rng.uniform_f32(-1.0, 1.0))
                .collect(),
            conv,
            map: Shape::new(spec.w, spec.h, spec.c),
        }
    }

    /// The parameters as the kernels take them.
    pub fn params(&self) -> ConvParams<'_> {
        ConvParams {
            biases: &self.biases,
            bn: self.conv.batch_norm.then_some(BatchNorm {
                scales: &self.scales,
                mean: &self.mean,
                variance: &self.variance,
            }),
            weights: &self.weights,
        }
    }

    /// Runs `k` on output `region` from an input view holding exactly `needed`.
    pub fn run_from<K: Kernels>(
        &self,
        k: &K,
        region: Region,
        needed: Region,
    ) -> Result<Vec<f32>, KernelError> {
        self.run_within(k, region, needed, region)
    }

    /// [`run_from`](Self::run_from) writing through a window: the output buffer is laid out
    /// as `layout` (covering `region`) and filled with [`UNTOUCHED`] before the call; returns
    /// the whole buffer (see [`window_holds`]).
    pub fn run_within<K: Kernels>(
        &self,
        k: &K,
        region: Region,
        needed: Region,
        layout: Region,
    ) -> Result<Vec<f32>, KernelError> {
        let full = FeatureView::new(
            &self.input,
            Region::full(self.map.w, self.map.h),
            self.map.c,
        )
        .unwrap();
        let mut buf = vec![0.0; (needed.area() as usize * self.map.c as usize).max(1)];
        let mut iv = FeatureViewMut::new(&mut buf, needed, self.map.c).unwrap();
        copy_overlap(&full, &mut iv);
        let c = &self.conv;
        let mut out = vec![UNTOUCHED; layout.area() as usize * c.filters as usize];
        let mut ov = FeatureViewMut::within(&mut out, layout, region, c.filters).unwrap();
        k.conv(c, self.map, &self.params(), &iv.as_view(), &mut ov)?;
        Ok(out)
    }
}

/// What a windowed output buffer holds before a kernel runs: a NaN with a payload no kernel
/// computes.
pub const UNTOUCHED: f32 = f32::from_bits(0x7fc0_5a5a);

/// Checks a buffer laid out as `layout` (`c` channels) after a kernel wrote `region` of it
/// through a window: the region holds `dense` (the same call's dense output) bit for bit and
/// every other value is still [`UNTOUCHED`]. Returns the first difference.
pub fn window_holds(
    buf: &[f32],
    layout: Region,
    region: Region,
    c: u32,
    dense: &[f32],
) -> Result<(), String> {
    let (lw, lh) = (layout.width(), layout.height());
    for ch in 0..c {
        for y in layout.y.start..layout.y.end {
            for x in layout.x.start..layout.x.end {
                let at = ((ch * lh + y - layout.y.start) * lw + x - layout.x.start) as usize;
                let want = if region.y.contains(y) && region.x.contains(x) {
                    let (rw, rh) = (region.width(), region.height());
                    dense[((ch * rh + y - region.y.start) * rw + x - region.x.start) as usize]
                } else {
                    UNTOUCHED
                };
                if buf[at].to_bits() != want.to_bits() {
                    return Err(format!(
                        "channel {ch} ({x}, {y}) of layout {layout:?}, region {region:?}: {} (want {})",
                        buf[at], want
                    ));
                }
            }
        }
    }
    Ok(())
}
