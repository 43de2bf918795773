//! Inverses of the small `e × e` (`e ≤ MAX_PARITY`) decode systems, in `f64` and in `GF(p)`.

use super::{field, MAX_PARITY};

/// A small square matrix in a fixed array; only the leading `n × n` block is meaningful.
pub(crate) type Small<T> = [[T; MAX_PARITY]; MAX_PARITY];

/// Gauss–Jordan inverse with partial pivoting; `None` if a pivot vanishes (singular).
pub(crate) fn invert_f64(a: &Small<f64>, n: usize) -> Option<Small<f64>> {
    let mut m = *a;
    let mut inv = [[0.0; MAX_PARITY]; MAX_PARITY];
    for (i, row) in inv.iter_mut().enumerate().take(n) {
        row[i] = 1.0;
    }
    for col in 0..n {
        let mut piv = col;
        for row in col + 1..n {
            if m[row][col].abs() > m[piv][col].abs() {
                piv = row;
            }
        }
        if m[piv][col] == 0.0 || !m[piv][col].is_finite() {
            return None;
        }
        m.swap(col, piv);
        inv.swap(col, piv);
        let d = m[col][col];
        for c in 0..n {
            m[col][c] /= d;
            inv[col][c] /= d;
        }
        for row in 0..n {
            if row != col {
                let f = m[row][col];
                if f != 0.0 {
                    for c in 0..n {
                        m[row][c] -= f * m[col][c];
                        inv[row][c] -= f * inv[col][c];
                    }
                }
            }
        }
    }
    Some(inv)
}

/// Gauss–Jordan inverse over `GF(p)`; `None` if singular.
pub(crate) fn invert_p(a: &Small<u32>, n: usize) -> Option<Small<u32>> {
    let mut m = *a;
    let mut inv = [[0u32; MAX_PARITY]; MAX_PARITY];
    for (i, row) in inv.iter_mut().enumerate().take(n) {
        row[i] = 1;
    }
    for col in 0..n {
        let piv = (col..n).find(|&r| m[r][col] != 0)?;
        m.swap(col, piv);
        inv.swap(col, piv);
        let d = field::inv(m[col][col])?;
        for c in 0..n {
            m[col][c] = field::mul(m[col][c], d);
            inv[col][c] = field::mul(inv[col][c], d);
        }
        for row in 0..n {
            if row != col {
                let f = m[row][col];
                if f != 0 {
                    for c in 0..n {
                        m[row][c] = field::sub(m[row][c], field::mul(f, m[col][c]));
                        inv[row][c] = field::sub(inv[row][c], field::mul(f, inv[col][c]));
                    }
                }
            }
        }
    }
    Some(inv)
}

/// Infinity norm (largest absolute row sum) of the leading `n × n` block.
pub(crate) fn norm_inf(a: &Small<f64>, n: usize) -> f64 {
    let mut best = 0.0f64;
    for row in a.iter().take(n) {
        let s: f64 = row.iter().take(n).map(|v| v.abs()).sum();
        best = best.max(s);
    }
    best
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;

    #[test]
    fn inverses_multiply_to_identity() {
        let a: Small<f64> = [
            [2.0, 1.0, 0.5, 0.0],
            [1.0, 3.0, 1.0, 0.0],
            [0.0, 1.0, 4.0, 0.0],
            [0.0; 4],
        ];
        let inv = invert_f64(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|t| a[i][t] * inv[t][j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-12, "({i},{j}) = {v}");
            }
        }
        let ap: Small<u32> = [[2, 1, 5, 0], [1, 3, 1, 0], [7, 1, 4, 0], [0; 4]];
        let ip = invert_p(&ap, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let v = (0..3).fold(0, |s, t| field::add(s, field::mul(ap[i][t], ip[t][j])));
                assert_eq!(v, u32::from(i == j));
            }
        }
        let sing: Small<u32> = [[1, 2, 0, 0], [2, 4, 0, 0], [0; 4], [0; 4]];
        assert!(invert_p(&sing, 2).is_none());
    }
}
