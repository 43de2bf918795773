//! The 1-D input and output transforms of both forms on lane vectors of blocks (one block
//! per lane, [`Lanes`]): `Bᵀ d` and `Aᵀ m` written out with their small integer coefficients
//! (Lavin & Gray's interpolation points 0, ±1, ±2, ∞ for F4). Products and sums are separate
//! operations (`a + k·b` rounds twice), the same on every lane vector.

use super::lanes::Lanes;

/// `a + k·b` (a product and a sum, two roundings).
#[inline(always)]
unsafe fn axpy<L: Lanes>(a: L, k: L, b: L) -> L {
    // SAFETY: the caller guarantees `L`'s CPU features.
    unsafe { a.add(k.mul(b)) }
}

/// `Bᵀ d` along one axis for block side `M` (`A = M + 2` vectors in and out).
///
/// # Safety
///
/// The caller guarantees `L`'s CPU features.
#[inline(always)]
pub(super) unsafe fn bt<L: Lanes, const M: usize, const A: usize>(d: &[L; A]) -> [L; A] {
    // SAFETY: `L`'s CPU features, as the caller guarantees.
    unsafe {
        let mut r = [L::zero(); A];
        match M {
            2 => {
                r[0] = d[0].sub(d[2]);
                r[1] = d[1].add(d[2]);
                r[2] = d[2].sub(d[1]);
                r[3] = d[1].sub(d[3]);
            }
            4 => {
                let (k2, k4) = (L::splat(2.0), L::splat(4.0));
                let (m2, m4, m5) = (L::splat(-2.0), L::splat(-4.0), L::splat(-5.0));
                let s12 = d[1].add(d[2]);
                let d12 = d[1].sub(d[2]);
                let s34 = d[3].add(d[4]);
                let d43 = d[4].sub(d[3]);
                let d42 = d[4].sub(d[2]);
                let d31 = d[3].sub(d[1]);
                r[0] = axpy(axpy(d[4], m5, d[2]), k4, d[0]);
                r[1] = axpy(s34, m4, s12);
                r[2] = axpy(d43, k4, d12);
                r[3] = axpy(d42, k2, d31);
                r[4] = axpy(d42, m2, d31);
                r[5] = axpy(axpy(d[5], m5, d[3]), k4, d[1]);
            }
            _ => unreachable!("block side {M}"),
        }
        r
    }
}

/// `Aᵀ m` along one axis for block side `M` (`A` vectors in, `M` out).
///
/// # Safety
///
/// The caller guarantees `L`'s CPU features.
#[inline(always)]
pub(super) unsafe fn at<L: Lanes, const M: usize, const A: usize>(m: &[L; A]) -> [L; M] {
    // SAFETY: `L`'s CPU features, as the caller guarantees.
    unsafe {
        let mut r = [L::zero(); M];
        match M {
            2 => {
                r[0] = m[0].add(m[1]).add(m[2]);
                r[1] = m[1].sub(m[2]).sub(m[3]);
            }
            4 => {
                let (k2, k4, k8) = (L::splat(2.0), L::splat(4.0), L::splat(8.0));
                let s12 = m[1].add(m[2]);
                let d12 = m[1].sub(m[2]);
                let s34 = m[3].add(m[4]);
                let d34 = m[3].sub(m[4]);
                r[0] = m[0].add(s12).add(s34);
                r[1] = axpy(d12, k2, d34);
                r[2] = axpy(s12, k4, s34);
                r[3] = axpy(d12, k8, d34).add(m[5]);
            }
            _ => unreachable!("block side {M}"),
        }
        r
    }
}
