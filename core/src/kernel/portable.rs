//! The fast portable kernel (blocked, safe Rust). Placeholder: delegates to the reference.

use super::{KernelError, Kernels, Reference};
use crate::model::weights::ConvParams;
use crate::model::{Conv, MaxPool, Shape};
use crate::tensor::{FeatureView, FeatureViewMut};

/// Blocked over output channels and columns; same per-output order as [`Reference`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

impl Kernels for Portable {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        Reference.conv(conv, map, params, input, out)
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        Reference.maxpool(pool, map, input, out)
    }
}
