//! The kernels of a coded tail node ([`TailKernel`]), chosen at run time.

use tessera_backends::kernels::Fma;
use tessera_core::kernel::{KernelError, Kernels, Portable};
use tessera_core::model::weights::ConvParams;
use tessera_core::model::{Conv, MaxPool, Shape};
use tessera_core::tensor::{FeatureView, FeatureViewMut};

use crate::config::NodeKernel;

/// The kernels of a node, chosen at run time.
#[derive(Clone, Copy, Debug)]
pub enum TailKernel {
    /// [`Portable`] (bit-identical to the reference).
    Portable,
    /// The SIMD [`Fma`] kernels.
    Simd(Fma),
}

impl TailKernel {
    /// The kernels of `k`.
    pub fn of(k: NodeKernel) -> TailKernel {
        match k {
            NodeKernel::Portable => TailKernel::Portable,
            NodeKernel::Simd => TailKernel::Simd(Fma::new()),
        }
    }
}

impl Kernels for TailKernel {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        match self {
            TailKernel::Portable => Portable.conv(conv, map, params, input, out),
            TailKernel::Simd(k) => k.conv(conv, map, params, input, out),
        }
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        match self {
            TailKernel::Portable => Portable.maxpool(pool, map, input, out),
            TailKernel::Simd(k) => k.maxpool(pool, map, input, out),
        }
    }
}
