//! The kernel set of a node, chosen at run time ([`AnyKernel`], [`KernelChoice`]).

extern crate alloc;

use alloc::string::{String, ToString};
use core::str::FromStr;

use tessera_core::kernel::{KernelError, Kernels, Portable};
use tessera_core::model::weights::ConvParams;
use tessera_core::model::{Conv, MaxPool, Shape};
use tessera_core::tensor::{FeatureView, FeatureViewMut};
use tessera_core::wire::Policy;

use tessera_core::ftp::{FusedStack, Grid, Mode, PlanError};

use crate::kernels::{Fma, Winograd};

/// Which kernels a node runs (`portable`, `simd`, `winograd` or `auto`, as a cluster file's
/// `kernel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// The blocked portable kernel (bit-identical to the reference).
    Portable,
    /// The FMA SIMD kernels (within a stated bound of the reference).
    Simd,
    /// Winograd for 3x3 stride-1 convs, F4, F2 or direct per layer as planned for the
    /// cluster's stack and grid ([`Winograd::planned`]); the rest, and the tail, on [`Fma`].
    /// Never chosen by `auto`: an edge holds the transformed filters.
    Winograd,
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

    /// Whether nodes of this kernel run `policy`: `winograd` computes FTP tiles, whose regions
    /// its block grid aligns, not the layer-by-layer stripes of BODP and MoDNN.
    pub fn runs(self, policy: Policy) -> bool {
        !(self == KernelChoice::Winograd && policy.layered())
    }

    /// The direct kernels of this choice: itself, or SIMD for `winograd` (the tail and BODP
    /// stripes run direct).
    pub fn direct(self) -> KernelChoice {
        match self {
            KernelChoice::Winograd => KernelChoice::Simd,
            k => k,
        }
    }

    /// The name a cluster file's `kernel` and `--kernel` take.
    pub fn name(self) -> &'static str {
        match self {
            KernelChoice::Portable => "portable",
            KernelChoice::Simd => "simd",
            KernelChoice::Winograd => "winograd",
        }
    }

    /// Parses `auto`, `portable`, `simd` or `winograd` (as [`str::parse`]; a function for argument
    /// parsers).
    pub fn parse(s: &str) -> Result<KernelChoice, UnknownKernel> {
        s.parse()
    }
}

/// A kernel name that is not `auto`, `portable`, `simd` or `winograd` (the name given).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown kernel {0:?} (auto, portable, simd, winograd)")]
pub struct UnknownKernel(pub String);

impl FromStr for KernelChoice {
    type Err = UnknownKernel;

    fn from_str(s: &str) -> Result<KernelChoice, UnknownKernel> {
        match s {
            "auto" => Ok(KernelChoice::auto()),
            "portable" => Ok(KernelChoice::Portable),
            "simd" => Ok(KernelChoice::Simd),
            "winograd" => Ok(KernelChoice::Winograd),
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
    /// [`Winograd`] kernels planned for a stack and grid. As planned, they transform filters
    /// in every call; a node's compute thread prepares them for its model once
    /// ([`ForModel`](crate::driver::thread::ForModel)).
    Winograd(Winograd<'static>),
}

impl AnyKernel {
    /// The direct kernels of `k` (SIMD on one thread; SIMD for `winograd`, whose plan needs
    /// the stack and grid: [`AnyKernel::planned`]).
    pub fn of(k: KernelChoice) -> AnyKernel {
        match k.direct() {
            KernelChoice::Portable => AnyKernel::Portable,
            _ => AnyKernel::Simd(Fma::new()),
        }
    }

    /// These kernels on `threads` threads per conv (the portable kernel runs on one).
    pub fn with_threads(self, threads: usize) -> AnyKernel {
        match self {
            AnyKernel::Portable => AnyKernel::Portable,
            AnyKernel::Simd(k) => AnyKernel::Simd(k.with_threads(threads)),
            AnyKernel::Winograd(k) => AnyKernel::Winograd(k.with_threads(threads)),
        }
    }

    /// The direct kernels of these on the same threads (clones share their workers): what a
    /// node that computes its tiles and its coded shards on one thread runs the shards on.
    pub fn direct(&self) -> AnyKernel {
        match self {
            AnyKernel::Portable => AnyKernel::Portable,
            AnyKernel::Simd(k) => AnyKernel::Simd(k.clone()),
            AnyKernel::Winograd(k) => AnyKernel::Simd(k.direct().clone()),
        }
    }

    /// The kernels of `k` for tiles of `stack` on `grid` (Reuse mode, as a cluster's edges run
    /// them): for `winograd`, the forms [`Winograd::planned`] chooses, the same on every node
    /// that plans the same stack and grid.
    pub fn planned(
        k: KernelChoice,
        stack: &FusedStack<'_>,
        grid: &Grid,
    ) -> Result<AnyKernel, PlanError> {
        match k {
            KernelChoice::Winograd => Ok(AnyKernel::Winograd(Winograd::new().planned(
                stack,
                grid,
                Mode::Reuse,
            )?)),
            k => Ok(AnyKernel::of(k)),
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
            AnyKernel::Winograd(k) => k.conv(conv, map, params, input, out),
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
            AnyKernel::Winograd(k) => k.maxpool(pool, map, input, out),
        }
    }

    fn conv_alignment(&self, conv: &Conv, map: Shape) -> u32 {
        match self {
            AnyKernel::Winograd(k) => k.conv_alignment(conv, map),
            _ => 1,
        }
    }
}
