//! Arithmetic in the prime field `GF(p)`, `p = 2^31 − 1` (a Mersenne prime).
//!
//! Operands are kept reduced (`< p`), products fit a `u64`, and reduction uses the Mersenne
//! identity `2^31 ≡ 1 (mod p)`, so no division is needed on the hot path.

/// The field modulus, `2^31 − 1`.
pub const P: u32 = 0x7fff_ffff;

/// `x mod p` for any `u64`.
#[inline]
pub const fn reduce(x: u64) -> u32 {
    // Two folds bring any u64 below 2^32 + 2^31; a final conditional subtraction finishes.
    let x = (x & P as u64) + (x >> 31);
    let x = (x & P as u64) + (x >> 31);
    let x = x as u32;
    if x >= P {
        x - P
    } else {
        x
    }
}

/// `a + b mod p` for reduced operands.
#[inline]
pub const fn add(a: u32, b: u32) -> u32 {
    let s = a + b; // < 2^32: both < 2^31
    if s >= P {
        s - P
    } else {
        s
    }
}

/// `a − b mod p` for reduced operands.
#[inline]
pub const fn sub(a: u32, b: u32) -> u32 {
    if a >= b {
        a - b
    } else {
        a + (P - b)
    }
}

/// `a · b mod p` for reduced operands.
#[inline]
pub const fn mul(a: u32, b: u32) -> u32 {
    reduce(a as u64 * b as u64)
}

/// `a^e mod p`.
pub const fn pow(mut a: u32, mut e: u32) -> u32 {
    let mut acc = 1u32;
    while e > 0 {
        if e & 1 == 1 {
            acc = mul(acc, a);
        }
        a = mul(a, a);
        e >>= 1;
    }
    acc
}

/// Multiplicative inverse (Fermat: `a^(p−2)`); `None` for zero.
pub const fn inv(a: u32) -> Option<u32> {
    if a == 0 {
        None
    } else {
        Some(pow(a, P - 2))
    }
}

/// A signed integer mapped into the field.
#[inline]
pub const fn from_i64(x: i64) -> u32 {
    let m = x.rem_euclid(P as i64);
    m as u32
}

/// The field element read back as the signed integer of least absolute value
/// (`(−p/2, p/2]`): correct whenever the true value lies in that range.
#[inline]
pub const fn to_i32(x: u32) -> i32 {
    if x > P / 2 {
        x as i32 - P as i32
    } else {
        x as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_matches_rem() {
        for x in [
            0u64,
            1,
            P as u64,
            P as u64 + 1,
            u64::MAX,
            (P as u64) * (P as u64),
            1 << 62,
        ] {
            assert_eq!(reduce(x) as u64, x % P as u64, "x = {x}");
        }
    }

    #[test]
    fn inverse_and_signed_map() {
        for a in [1u32, 2, 3, 12345, P - 1] {
            assert_eq!(mul(a, inv(a).unwrap()), 1, "a = {a}");
        }
        assert_eq!(inv(0), None);
        for v in [-5i64, 0, 7, -(1 << 30) + 1, (1 << 30) - 1] {
            assert_eq!(to_i32(from_i64(v)) as i64, v);
        }
        assert_eq!(sub(3, 5), P - 2);
    }
}
