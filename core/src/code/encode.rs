//! Offline encoding of a layer's weights into parity shards, and the data shards' slices.
//!
//! Layer weights are `m × in_len` row-major, bias `m`. Parity shard `j` has
//! [`Code::shard_rows`] rows: row `t` is `Σ_d g_{jd} · (row t of data shard d)`, a data shard's
//! missing rows (when `k ∤ m`) counting as zero.

use super::{field, prime_coeff, Arithmetic, Buffer, Code, CodeError};

fn check_layer(code: &Code, w: usize, b: usize, in_len: usize) -> Result<(), CodeError> {
    let need = code.rows().saturating_mul(in_len);
    if w != need {
        return Err(CodeError::Length {
            buffer: Buffer::Weights,
            need,
            have: w,
        });
    }
    if b != code.rows() {
        return Err(CodeError::Length {
            buffer: Buffer::Bias,
            need: code.rows(),
            have: b,
        });
    }
    Ok(())
}

fn check_out(code: &Code, w: usize, b: usize, in_len: usize) -> Result<(), CodeError> {
    let s = code.shard_rows();
    let need = s.saturating_mul(in_len);
    if w != need {
        return Err(CodeError::Length {
            buffer: Buffer::Shard,
            need,
            have: w,
        });
    }
    if b != s {
        return Err(CodeError::Length {
            buffer: Buffer::Shard,
            need: s,
            have: b,
        });
    }
    Ok(())
}

fn check_parity(code: &Code, j: usize) -> Result<(), CodeError> {
    if j >= code.r() {
        return Err(CodeError::Index {
            index: j,
            count: code.r(),
        });
    }
    Ok(())
}

/// Data shard `d`'s weights (`rows_d × in_len`) and bias (`rows_d`): slices of the layer's.
pub fn data_shard<'a, W, B>(
    code: &Code,
    d: usize,
    w: &'a [W],
    b: &'a [B],
    in_len: usize,
) -> Result<(&'a [W], &'a [B]), CodeError> {
    check_layer(code, w.len(), b.len(), in_len)?;
    let rows = code.data_rows(d)?;
    let ws = w.get(rows.start * in_len..rows.end * in_len);
    match (ws, b.get(rows.clone())) {
        (Some(ws), Some(bs)) => Ok((ws, bs)),
        _ => Err(CodeError::Length {
            buffer: Buffer::Weights,
            need: rows.end * in_len,
            have: w.len(),
        }),
    }
}

/// Float parity shard `j`: the combination is summed in `f64` and rounded once to `f32`.
pub fn parity_f32(
    code: &Code,
    j: usize,
    w: &[f32],
    b: &[f32],
    in_len: usize,
    out_w: &mut [f32],
    out_b: &mut [f32],
) -> Result<(), CodeError> {
    check_parity(code, j)?;
    check_layer(code, w.len(), b.len(), in_len)?;
    check_out(code, out_w.len(), out_b.len(), in_len)?;
    let s = code.shard_rows();
    for t in 0..s {
        let mut bias = 0.0f64;
        for c in 0..in_len {
            let mut acc = 0.0f64;
            for d in 0..code.k() {
                let row = d * s + t;
                if row < code.rows() {
                    acc += code.coeff(j, d)? * f64::from(w[row * in_len + c]);
                }
            }
            out_w[t * in_len + c] = acc as f32;
        }
        for d in 0..code.k() {
            let row = d * s + t;
            if row < code.rows() {
                bias += code.coeff(j, d)? * f64::from(b[row]);
            }
        }
        out_b[t] = bias as f32;
    }
    Ok(())
}

/// Largest magnitude an int8 layer's output can reach: `in_len · 128² + max |b|`.
pub fn int_output_bound(in_len: usize, b: &[i32]) -> u64 {
    let maxb = b
        .iter()
        .map(|v| u64::from(v.unsigned_abs()))
        .max()
        .unwrap_or(0);
    (in_len as u64)
        .saturating_mul(128 * 128)
        .saturating_add(maxb)
}

/// Single-parity integer shard (`r = 1`, wrapping arithmetic): parity weights are the exact
/// `i32` sums of the data weights, the bias the wrapping sum of the data biases. Refused if an
/// output could leave the `i32` range, where wrapping decode would no longer be exact.
pub fn parity_wrapping(
    code: &Code,
    w: &[i8],
    b: &[i32],
    in_len: usize,
    out_w: &mut [i32],
    out_b: &mut [i32],
) -> Result<(), CodeError> {
    if code.int_arithmetic() != Arithmetic::Wrapping {
        return Err(CodeError::Mode {
            expected: code.int_arithmetic(),
        });
    }
    check_parity(code, 0)?;
    check_layer(code, w.len(), b.len(), in_len)?;
    check_out(code, out_w.len(), out_b.len(), in_len)?;
    let bound = int_output_bound(in_len, b);
    let limit = 1u64 << 31;
    if bound >= limit {
        return Err(CodeError::Range { bound, limit });
    }
    let s = code.shard_rows();
    out_w.fill(0);
    out_b.fill(0);
    for d in 0..code.k() {
        for t in 0..s {
            let row = d * s + t;
            if row >= code.rows() {
                break;
            }
            out_b[t] = out_b[t].wrapping_add(b[row]);
            let src = &w[row * in_len..(row + 1) * in_len];
            for (o, &v) in out_w[t * in_len..(t + 1) * in_len].iter_mut().zip(src) {
                *o += i32::from(v); // at most MAX_DATA · 128: no overflow
            }
        }
    }
    Ok(())
}

/// `GF(p)` parity shard `j` (`r ≥ 2`): weights and bias as field elements. Refused if an
/// output could reach `p/2` in magnitude, where the signed read-back would be ambiguous.
pub fn parity_mod_p(
    code: &Code,
    j: usize,
    w: &[i8],
    b: &[i32],
    in_len: usize,
    out_w: &mut [u32],
    out_b: &mut [u32],
) -> Result<(), CodeError> {
    if code.int_arithmetic() != Arithmetic::PrimeField {
        return Err(CodeError::Mode {
            expected: code.int_arithmetic(),
        });
    }
    check_parity(code, j)?;
    check_layer(code, w.len(), b.len(), in_len)?;
    check_out(code, out_w.len(), out_b.len(), in_len)?;
    let bound = int_output_bound(in_len, b);
    let limit = u64::from(field::P / 2);
    if bound >= limit {
        return Err(CodeError::Range { bound, limit });
    }
    let s = code.shard_rows();
    out_w.fill(0);
    out_b.fill(0);
    for d in 0..code.k() {
        let g = prime_coeff(j, d);
        for t in 0..s {
            let row = d * s + t;
            if row >= code.rows() {
                break;
            }
            out_b[t] = field::add(out_b[t], field::mul(g, field::from_i64(i64::from(b[row]))));
            let src = &w[row * in_len..(row + 1) * in_len];
            for (o, &v) in out_w[t * in_len..(t + 1) * in_len].iter_mut().zip(src) {
                *o = field::add(*o, field::mul(g, field::from_i64(i64::from(v))));
            }
        }
    }
    Ok(())
}
