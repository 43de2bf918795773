//! The stages compiled for each instruction set: the generic stages (`stages`) on a lane
//! vector ([`Lanes`](super::lanes::Lanes)) inlined into functions with AVX-512F ([`Zmm`]) or
//! AVX2+FMA ([`Ymm2`]) enabled, on NEON's [`Q4`] (aarch64, where NEON and fused multiply-add
//! are baseline), or on the portable [`Plain`] vector. Results are bit-identical on every path
//! (no instruction changes a rounding: products and sums are the same IEEE operations, FMAs
//! stay fused).
#![deny(unsafe_op_in_unsafe_fn)]

use super::columns;
use super::lanes::Plain;
#[cfg(target_arch = "aarch64")]
use super::neon::Q4;
use super::stages::{self, InputJob, ProductJob};
#[cfg(target_arch = "x86_64")]
use super::x86::{Ymm2, Zmm};
use crate::kernels::Isa;

/// Which compiled variant runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Path {
    /// Baseline code of the target (x86_64: SSE2 and libm's `fmaf`; aarch64: NEON).
    Generic,
    /// AVX2 + FMA ([`Ymm2`]), GEMM tiles of 6 × 16 blocks.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F ([`Zmm`]), GEMM tiles of 6 × 64 blocks.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// NEON ([`Q4`]), GEMM tiles of 6 × 16 blocks.
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Path {
    /// The variant for `isa`, which must be available on this machine (checked again here:
    /// an unavailable one falls back to the generic code).
    pub fn of(isa: Isa) -> Path {
        if !isa.is_available() {
            return Path::Generic;
        }
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Path::Avx512,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => Path::Avx2,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Path::Neon,
            _ => Path::Generic,
        }
    }
}

/// The lanes a chunk's products round its blocks up to on `path` (`columns::step`).
pub(super) fn lane_step(path: Path) -> usize {
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => columns::step::<Zmm>(),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => columns::step::<Ymm2>(),
        #[cfg(target_arch = "aarch64")]
        Path::Neon => columns::step::<Q4>(),
        Path::Generic => columns::step::<Plain>(),
    }
}

/// Runs the input stage on `path`.
pub(super) fn input(path: Path, job: InputJob<'_, '_>) {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Path::of` picks `Avx512` only when the CPU reports AVX-512F (and AVX2, FMA).
        Path::Avx512 => unsafe { input_avx512(job) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Path::of` picks `Avx2` only when the CPU reports AVX2 and FMA.
        Path::Avx2 => unsafe { input_avx2(job) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is baseline on aarch64.
        Path::Neon => unsafe { stages::input::<Q4>(job) },
        // SAFETY: the portable vector needs no CPU feature.
        Path::Generic => unsafe { stages::input::<Plain>(job) },
    }
}

/// Runs the product stage on `path`.
pub(super) fn product(path: Path, job: ProductJob<'_, '_>) {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `input`.
        Path::Avx512 => unsafe { product_avx512(job) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `input`.
        Path::Avx2 => unsafe { product_avx2(job) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is baseline on aarch64.
        Path::Neon => unsafe { stages::product::<Q4>(job) },
        // SAFETY: the portable vector needs no CPU feature.
        Path::Generic => unsafe { stages::product::<Plain>(job) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn input_avx2(job: InputJob<'_, '_>) {
    // SAFETY: this function runs only where AVX2 and FMA are (its target features).
    unsafe { stages::input::<Ymm2>(job) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn input_avx512(job: InputJob<'_, '_>) {
    // SAFETY: this function runs only where AVX-512F is (its target features).
    unsafe { stages::input::<Zmm>(job) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn product_avx2(job: ProductJob<'_, '_>) {
    // SAFETY: as in `input_avx2`.
    unsafe { stages::product::<Ymm2>(job) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn product_avx512(job: ProductJob<'_, '_>) {
    // SAFETY: as in `input_avx512`.
    unsafe { stages::product::<Zmm>(job) }
}
