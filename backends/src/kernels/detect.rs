//! Which instruction set the conv kernels run on: [`Isa`], detected at run time with `std`
//! (`is_x86_feature_detected!`, the armv7 HWCAP) and from the compile-time target features
//! without it.

#[cfg(target_arch = "arm")]
use super::armv7;
#[cfg(target_arch = "aarch64")]
use super::neon;
#[cfg(target_arch = "x86_64")]
use super::{avx512, x86};

/// The instruction set a [`Fma`](super::Fma) kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Scalar fused multiply-adds (any target; the oracle of the vector paths).
    Scalar,
    /// x86_64 AVX2 + FMA, 8 lanes.
    Avx2Fma,
    /// aarch64 Advanced SIMD, 4 lanes.
    Neon,
    /// x86_64 AVX-512F, 16 lanes (chosen over AVX2 where the CPU has it).
    Avx512,
    /// The AVX-512 kernel's code on a 16-lane software vector (one scalar FMA per lane): runs
    /// on any target, slowly. It is the oracle that tests the AVX-512 path's tiling, masks and
    /// indexing on machines without AVX-512; [`Isa::detect`] never picks it.
    Soft16,
    /// armv7 Advanced SIMD with VFPv4's fused `VFMA` (a Pi 3 on a 32-bit OS), 4 lanes, in
    /// inline assembly. ARMv7 NEON arithmetic flushes subnormals to zero, so it agrees with
    /// the other paths bit for bit except where an operand or a result is subnormal; tiles and
    /// threads still equal the full frame bit for bit on it.
    Armv7Neon,
}

impl Isa {
    /// Every instruction set, available here or not.
    pub const ALL: [Isa; 6] = [
        Isa::Scalar,
        Isa::Avx2Fma,
        Isa::Neon,
        Isa::Avx512,
        Isa::Soft16,
        Isa::Armv7Neon,
    ];

    /// The name [`Isa::from_name`] reads: `scalar`, `avx2`, `neon`, `avx512`, `soft16`,
    /// `armv7-neon`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2Fma => "avx2",
            Isa::Neon => "neon",
            Isa::Avx512 => "avx512",
            Isa::Soft16 => "soft16",
            Isa::Armv7Neon => "armv7-neon",
        }
    }

    /// The instruction set called `name` (see [`Isa::name`]), available here or not.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// Every instruction set this machine runs, [`Isa::Scalar`] first.
    pub fn available() -> impl Iterator<Item = Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_available())
    }

    /// The fastest instruction set this machine runs (detected at run time with `std` on
    /// x86_64, from the compile-time target features without it).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            return Isa::Avx512;
        }
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            return Isa::Avx2Fma;
        }
        #[cfg(target_arch = "aarch64")]
        if neon::available() {
            return Isa::Neon;
        }
        #[cfg(target_arch = "arm")]
        if armv7::available() {
            return Isa::Armv7Neon;
        }
        Isa::Scalar
    }

    /// True when this machine can run `self`.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar | Isa::Soft16 => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => x86::available(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx512::available(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::available(),
            #[cfg(target_arch = "arm")]
            Isa::Armv7Neon => armv7::available(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Isa;

    /// Every instruction set is found by its name, and no other name finds one.
    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name("AVX2"), None);
        assert_eq!(Isa::from_name("sse"), None);
    }
}
