//! What one device computes for its shard: `out = W_s · X + b_s`, row-major, into the caller's
//! buffer. Data shards run [`gemm_f32`] / [`gemm_i8`] on their slice of the layer's weights;
//! parity shards run the same shapes on their encoded weights ([`gemm_f32`],
//! [`gemm_wrapping`] for `r = 1`, [`gemm_mod_p`] for `r ≥ 2`).
//!
//! Shapes: `w` is `rows × in_len`, `b` has `rows` entries (it fixes `rows`), `x` is
//! `in_len × cols` (`cols = 1` for a fully connected layer, `H·W` for a convolution as GEMM),
//! `out` is `rows × cols`.

use super::{field, Buffer, CodeError};

/// Most input length a `GF(p)` shard accepts: the signed `i64` accumulation of
/// `|w| < 2^30` times `|x| ≤ 2^7` stays below `2^63` for `2^26` terms.
pub const MAX_IN_LEN_MOD_P: usize = 1 << 26;

fn check(
    w: usize,
    rows: usize,
    x: usize,
    in_len: usize,
    cols: usize,
    out: usize,
) -> Result<(), CodeError> {
    let len = |buffer, need: Option<usize>, have| match need {
        Some(need) if need == have => Ok(()),
        need => Err(CodeError::Length {
            buffer,
            need: need.unwrap_or(usize::MAX),
            have,
        }),
    };
    len(Buffer::Shard, rows.checked_mul(in_len), w)?;
    len(Buffer::Input, in_len.checked_mul(cols), x)?;
    len(Buffer::Output, rows.checked_mul(cols), out)
}

/// `out = W·x + b` row by row, each column's sum accumulated in input order with `acc`, after
/// checking every length.
fn rows_times<W: Copy, X: Copy, O: Copy>(
    w: &[W],
    b: &[O],
    x: &[X],
    in_len: usize,
    cols: usize,
    out: &mut [O],
    acc: impl Fn(O, W, X) -> O,
) -> Result<(), CodeError> {
    check(w.len(), b.len(), x.len(), in_len, cols, out.len())?;
    for (i, (o, &bias)) in out.chunks_exact_mut(cols.max(1)).zip(b).enumerate() {
        let row = w.get(i * in_len..(i + 1) * in_len).unwrap_or(&[]);
        o.fill(bias);
        for (&a, xr) in row.iter().zip(x.chunks_exact(cols.max(1))) {
            for (o, &v) in o.iter_mut().zip(xr) {
                *o = acc(*o, a, v);
            }
        }
    }
    Ok(())
}

/// `f32` shard product (row by row, each column's sum accumulated in input order).
pub fn gemm_f32(
    w: &[f32],
    b: &[f32],
    x: &[f32],
    in_len: usize,
    cols: usize,
    out: &mut [f32],
) -> Result<(), CodeError> {
    rows_times(w, b, x, in_len, cols, out, |o, a, v| o + a * v)
}

/// int8 data shard: `i32` accumulation, wrapping (exact while the true value fits an `i32`).
pub fn gemm_i8(
    w: &[i8],
    b: &[i32],
    x: &[i8],
    in_len: usize,
    cols: usize,
    out: &mut [i32],
) -> Result<(), CodeError> {
    rows_times(w, b, x, in_len, cols, out, |o, a, v| {
        o.wrapping_add(i32::from(a).wrapping_mul(i32::from(v)))
    })
}

/// Single-parity integer shard: `i32` parity weights, everything modulo `2^32`.
pub fn gemm_wrapping(
    w: &[i32],
    b: &[i32],
    x: &[i8],
    in_len: usize,
    cols: usize,
    out: &mut [i32],
) -> Result<(), CodeError> {
    rows_times(w, b, x, in_len, cols, out, |o, a, v| {
        o.wrapping_add(a.wrapping_mul(i32::from(v)))
    })
}

/// `GF(p)` parity shard: weights and bias are field elements (`< p`), the result is the field
/// element `W·x + b mod p` stored in an `i32` (always in `0..p`). Weights are read as signed
/// representatives in `(−p/2, p/2]`, so the sum is accumulated exactly in an `i64` and reduced
/// once per output.
pub fn gemm_mod_p(
    w: &[u32],
    b: &[u32],
    x: &[i8],
    in_len: usize,
    cols: usize,
    out: &mut [i32],
) -> Result<(), CodeError> {
    check(w.len(), b.len(), x.len(), in_len, cols, out.len())?;
    if in_len > MAX_IN_LEN_MOD_P {
        return Err(CodeError::Length {
            buffer: Buffer::Input,
            need: MAX_IN_LEN_MOD_P,
            have: in_len,
        });
    }
    if let Some(&bad) = w.iter().chain(b).find(|&&v| v >= field::P) {
        return Err(CodeError::Range {
            bound: u64::from(bad),
            limit: u64::from(field::P),
        });
    }
    let cols1 = cols.max(1);
    for (i, (o, &bias)) in out.chunks_exact_mut(cols1).zip(b).enumerate() {
        let row = w.get(i * in_len..(i + 1) * in_len).unwrap_or(&[]);
        for (c, o) in o.iter_mut().enumerate() {
            let mut acc = 0i64;
            for (t, &a) in row.iter().enumerate() {
                let v = x.get(t * cols1 + c).copied().unwrap_or(0);
                acc += i64::from(field::to_i32(a)) * i64::from(v);
            }
            *o = field::add(field::from_i64(acc), bias) as i32;
        }
    }
    Ok(())
}
