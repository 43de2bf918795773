//! How a tensor's values travel ([`Precision`]): `f32` as computed (bit-exact, the default),
//! or, opt-in for tile results and strips, `f16` (half the bytes) or `i8` with one scale per
//! channel (about a quarter). Packing and unpacking are stated here once; the receiver reads
//! the values back as `f32`.

use super::WireError;
use crate::round::round_half_away;

/// The encoding of a tensor's values on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Little-endian `f32`: the values as computed.
    #[default]
    F32,
    /// Little-endian IEEE half floats, rounded to nearest even.
    F16,
    /// One little-endian `f32` scale per channel (its largest magnitude over 127), then one
    /// signed byte per value: `value ≈ byte × scale`.
    I8,
}

impl Precision {
    /// Every precision, in tag order.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::I8];

    /// The tag in a tensor descriptor (the top byte of its channel word).
    pub const fn tag(self) -> u8 {
        match self {
            Precision::F32 => 0,
            Precision::F16 => 1,
            Precision::I8 => 2,
        }
    }

    /// The precision of `tag`.
    pub fn from_tag(tag: u8) -> Result<Precision, WireError> {
        Precision::ALL
            .get(tag as usize)
            .copied()
            .ok_or(WireError::BadValue)
    }

    /// The name in configuration files: `f32`, `f16`, `i8`.
    pub const fn label(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::I8 => "i8",
        }
    }

    /// The precision named `s` ([`Precision::label`]).
    pub fn parse(s: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.label() == s)
    }

    /// Bytes of `count` values over `channels` channels, `None` on overflow.
    pub fn data_len(self, count: usize, channels: usize) -> Option<usize> {
        match self {
            Precision::F32 => count.checked_mul(4),
            Precision::F16 => count.checked_mul(2),
            Precision::I8 => channels.checked_mul(4)?.checked_add(count),
        }
    }

    /// Packs `values` (CHW, `channels` planes of equal size) into `out`, which must be
    /// [`Precision::data_len`] long.
    pub fn pack(self, values: &[f32], channels: usize, out: &mut [u8]) -> Result<(), WireError> {
        if Some(out.len()) != self.data_len(values.len(), channels) {
            return Err(WireError::TensorSize);
        }
        match self {
            Precision::F32 => super::tensor::encode_f32(values, out),
            Precision::F16 => {
                for (v, b) in values.iter().zip(out.chunks_exact_mut(2)) {
                    b.copy_from_slice(&f16_from_f32(*v).to_le_bytes());
                }
            }
            Precision::I8 => {
                let plane = plane_len(values.len(), channels)?;
                let (scales, bytes) = out.split_at_mut(channels * 4);
                for c in 0..channels {
                    let vs = &values[c * plane..(c + 1) * plane];
                    let max = vs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let scale = if max.is_finite() { max / 127.0 } else { 0.0 };
                    scales[c * 4..c * 4 + 4].copy_from_slice(&scale.to_le_bytes());
                    for (v, b) in vs.iter().zip(&mut bytes[c * plane..(c + 1) * plane]) {
                        let q = if scale > 0.0 {
                            round_half_away(v / scale).clamp(-127.0, 127.0)
                        } else {
                            0.0
                        };
                        *b = q as i8 as u8;
                    }
                }
            }
        }
        Ok(())
    }

    /// The value at index `i` of `count` values over `channels` channels packed in `data`
    /// (lengths checked by the caller).
    pub(crate) fn value(self, data: &[u8], i: usize, count: usize, channels: usize) -> f32 {
        match self {
            Precision::F32 => {
                let b = &data[i * 4..i * 4 + 4];
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            Precision::F16 => f16_to_f32(u16::from_le_bytes([data[i * 2], data[i * 2 + 1]])),
            Precision::I8 => {
                let plane = (count / channels.max(1)).max(1);
                let c = i / plane;
                let s = &data[c * 4..c * 4 + 4];
                let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                (data[channels * 4 + i] as i8) as f32 * scale
            }
        }
    }
}

/// Values per channel plane (the values must split evenly).
fn plane_len(count: usize, channels: usize) -> Result<usize, WireError> {
    if channels == 0 {
        return if count == 0 {
            Ok(0)
        } else {
            Err(WireError::TensorSize)
        };
    }
    if !count.is_multiple_of(channels) {
        return Err(WireError::TensorSize);
    }
    Ok(count / channels)
}

/// `x` as an IEEE half float (bits), rounded to nearest even; overflow gives infinity.
pub fn f16_from_f32(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        let nan = if man != 0 {
            0x200 | (man >> 13) as u16
        } else {
            0
        };
        return sign | 0x7c00 | nan;
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // A half subnormal (or zero): the value in units of 2^-24.
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let (half, rem) = (1u32 << (shift - 1), m & ((1u32 << shift) - 1));
        let mut r = m >> shift;
        if rem > half || (rem == half && r & 1 == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    // A carry out of the mantissa moves to the next exponent (up to infinity): still right.
    if rem > 0x1000 || (rem == 0x1000 && r & 1 == 1) {
        r += 1;
    }
    sign | r as u16
}

/// The half float with bits `h` as an `f32` (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // Subnormal: shift the mantissa up to an implicit one.
            let (mut e, mut m) = (127 - 15 + 1, man);
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_half_survives_a_round_trip() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f16_from_f32(f) & 0x7c00 == 0x7c00 && f16_from_f32(f) & 0x3ff != 0);
                continue;
            }
            assert_eq!(f16_from_f32(f), h, "{h:#06x} = {f}");
        }
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(f16_to_f32(f16_from_f32(1.0)), 1.0);
        assert_eq!(f16_to_f32(f16_from_f32(0.1)), 0.099975586);
        // 1 + 2^-11 is halfway between 1 and the next half: ties to even (1).
        assert_eq!(f16_from_f32(1.0 + 1.0 / 2048.0), 0x3c00);
        assert_eq!(f16_from_f32(1.0 + 3.0 / 2048.0), 0x3c02);
        assert_eq!(f16_from_f32(70000.0), 0x7c00);
        assert_eq!(f16_from_f32(-1e-10), 0x8000);
        // The smallest subnormal, and half of it (a tie: to even, zero).
        assert_eq!(f16_from_f32(5.960_464_5e-8), 1);
        assert_eq!(f16_from_f32(2.980_232_2e-8), 0);
    }

    #[test]
    fn packs_and_unpacks_within_the_precision() {
        let values: [f32; 8] = [0.5, -1.25, 3.0, 0.0, 100.0, -0.01, 7.5, 2.0];
        for p in Precision::ALL {
            let n = p.data_len(8, 2).unwrap();
            let mut buf = [0u8; 64];
            p.pack(&values, 2, &mut buf[..n]).unwrap();
            for (i, v) in values.iter().enumerate() {
                let back = p.value(&buf[..n], i, 8, 2);
                let tol = match p {
                    Precision::F32 => 0.0,
                    Precision::F16 => v.abs() / 1024.0,
                    // Half a step of the channel's scale: max |x| / 254.
                    Precision::I8 => [3.0f32, 100.0][i / 4] / 254.0 + 1e-6,
                };
                assert!((back - v).abs() <= tol, "{p:?} {v} -> {back}");
            }
            assert_eq!(Precision::from_tag(p.tag()), Ok(p));
            assert_eq!(Precision::parse(p.label()), Some(p));
        }
        assert!(Precision::I8.pack(&values, 3, &mut [0u8; 20]).is_err());
        assert_eq!(Precision::from_tag(3), Err(WireError::BadValue));
    }
}
