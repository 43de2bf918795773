//! The kernel set of a node, chosen at run time ([`AnyKernel`], [`KernelChoice`]).

extern crate alloc;

use alloc::string::{String, ToString};
use core::str::FromStr;

use tessera_core::kernel::{KernelError, Kernels, Portable};
use tessera_core::model::weights::ConvParams;
use tessera_core::model::{Conv, MaxPool, Shape};
use tessera_core::tensor::{FeatureView, FeatureViewMut};

use crate::kernels::Fma;

/// Which kernels a node runs (`portable`, `simd` or `auto`, as a cluster file's `kernel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// The blocked portable kernel (bit-identical to the reference).
    Portable,
    /// The FMA SIMD kernels (within a stated bound of the reference).
    Simd,
}

impl KernelChoice {
    /// `auto`: SIMD where it has a vector path (x86_64, aarch64), portable elsewhere (armv7's
    /// NEON FMA intrinsics need nightly, and software `fmaf` is slow).
    pub fn auto() -> KernelChoice {
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            KernelChoice::Simd
        } else {
            KernelChoice::Portable
        }
    }

    /// Parses `auto`, `portable` or `simd` (as [`str::parse`]; a function for argument
    /// parsers).
    pub fn parse(s: &str) -> Result<KernelChoice, UnknownKernel> {
        s.parse()
    }
}

/// A kernel name that is not `auto`, `portable` or `simd` (the name given).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown kernel {0:?} (auto, portable, simd)")]
pub struct UnknownKernel(pub String);

impl FromStr for KernelChoice {
    type Err = UnknownKernel;

    fn from_str(s: &str) -> Result<KernelChoice, UnknownKernel> {
        match s {
            "auto" => Ok(KernelChoice::auto()),
            "portable" => Ok(KernelChoice::Portable),
            "simd" => Ok(KernelChoice::Simd),
            other => Err(UnknownKernel(other.to_string())),
        }
    }
}

/// The kernels of a node, chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyKernel {
    /// [`Portable`] (bit-identical to the reference).
    Portable,
    /// The SIMD [`Fma`] kernels.
    Simd(Fma),
}

impl AnyKernel {
    /// The kernels of `k` (SIMD on one thread).
    pub fn of(k: KernelChoice) -> AnyKernel {
        match k {
            KernelChoice::Portable => AnyKernel::Portable,
            KernelChoice::Simd => AnyKernel::Simd(Fma::new()),
        }
    }
}

impl Kernels for AnyKernel {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        match self {
            AnyKernel::Portable => Portable.conv(conv, map, params, input, out),
            AnyKernel::Simd(k) => k.conv(conv, map, params, input, out),
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
            AnyKernel::Portable => Portable.maxpool(pool, map, input, out),
            AnyKernel::Simd(k) => k.maxpool(pool, map, input, out),
        }
    }
}
