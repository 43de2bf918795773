//! The stages compiled for each instruction set: the same code (`stages`) inlined into
//! functions with AVX2+FMA or AVX-512F enabled, where the compiler turns the lane loops into
//! 8- or 16-wide vector instructions and the GEMM tiles into register-blocked FMAs. aarch64
//! needs no variant: NEON and fused multiply-add are part of its baseline, so the generic
//! build is the NEON path there. Results are bit-identical on every path (no instruction
//! changes a rounding: products and sums are the same IEEE operations, FMAs stay fused).
#![deny(unsafe_op_in_unsafe_fn)]

use super::stages::{self, InputJob, ProductJob};
use crate::kernels::Isa;

/// Which compiled variant runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Path {
    /// Baseline code of the target (x86_64: SSE2 and libm's `fmaf`; aarch64: NEON).
    Generic,
    /// AVX2 + FMA, GEMM tiles of 6 × 16 blocks.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F, GEMM tiles of 6 × 32 blocks.
    #[cfg(target_arch = "x86_64")]
    Avx512,
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
            _ => Path::Generic,
        }
    }
}

/// Runs the input stage on `path`.
pub(super) fn input(path: Path, job: InputJob<'_>) {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Path::of` picks `Avx512` only when the CPU reports AVX-512F (and AVX2, FMA).
        Path::Avx512 => unsafe { input_avx512(job) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Path::of` picks `Avx2` only when the CPU reports AVX2 and FMA.
        Path::Avx2 => unsafe { input_avx2(job) },
        Path::Generic => stages::input(job),
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
        Path::Generic => stages::product::<16>(job),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn input_avx2(job: InputJob<'_>) {
    stages::input(job)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn input_avx512(job: InputJob<'_>) {
    stages::input(job)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn product_avx2(job: ProductJob<'_, '_>) {
    stages::product::<16>(job)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn product_avx512(job: ProductJob<'_, '_>) {
    stages::product::<32>(job)
}
