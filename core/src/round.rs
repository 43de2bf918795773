//! Rounding to an integer without `std` (which this `no_std` crate lacks).

/// `f32::round`: to the nearest integer, halves away from zero; NaN and infinities pass
/// through.
pub fn round_half_away(x: f32) -> f32 {
    // From 2^23 on every f32 is an integer.
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x;
    }
    let t = x as i32 as f32;
    let d = x - t;
    if d >= 0.5 {
        t + 1.0
    } else if d <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_go_away_from_zero() {
        for (x, r) in [
            (0.5, 1.0),
            (-0.5, -1.0),
            (1.49, 1.0),
            (-2.5, -3.0),
            (1e9, 1e9),
            (0.0, 0.0),
        ] {
            assert_eq!(round_half_away(x), r, "{x}");
        }
        assert!(round_half_away(f32::NAN).is_nan());
        assert_eq!(round_half_away(f32::INFINITY), f32::INFINITY);
    }
}
