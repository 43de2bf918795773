//! Decoding: the full layer output from any `k` of the `n` shard results.
//!
//! [`Decoder::new`] looks at which results arrived, names the erased data shards `E`, picks
//! `|E|` received parities `J` (in float mode the best-conditioned choice) and inverts the
//! `e × e` system `G_{J,E}` once, `O(e³)`. Each output element then costs
//! `e·(k − e) + e²` multiply-adds ([`Decoder::mul_adds`]): `s_j = y_{P_j} − Σ_{d∉E} g_{jd} y_d`,
//! `y_E = G_{J,E}^{-1} s`.
//!
//! # Float error bound
//!
//! Let `A` bound `Σ_t |W_d[i,t]|·|x_t| + |b_d[i]|` over the data shards' rows at an output
//! position (the layer's absolute magnitude) and `u = 2^−24`. Each `f32` shard result is off by
//! at most `γ_{K+1}·A` (data) or `γ_{K+2}·G_max·A` (parity: one more rounding when its
//! weights were encoded), `G_max = max_j Σ_d |g_{jd}|`; the `f64` decode adds nothing
//! measurable, so a recovered value is off from the exact result by at most
//!
//! `‖G_{J,E}^{-1}‖_∞ · 2·G_max·γ_{K+2}·A + u·|y|` ([`Decoder::error_bound_f32`]).
//!
//! Rows of shards that arrived are copied, with no decode error at all. The `code_props` tests
//! check the bound for every `(k, r)` and erasure pattern and report how tight it is.

use super::linalg::{self, Small};
use super::{
    field, float_coeff, gamma_f32, prime_coeff, Arithmetic, Buffer, Code, CodeError,
    F32_UNIT_ROUNDOFF, MAX_DATA, MAX_PARITY, MAX_SHARDS,
};

/// A decode plan for one erasure pattern: build once, decode many outputs.
#[derive(Clone, Copy, Debug)]
pub struct Decoder {
    code: Code,
    present: u32,
    erased: [u8; MAX_PARITY],
    parities: [u8; MAX_PARITY],
    e: usize,
    inv: Small<f64>,
    inv_p: Small<u32>,
    inv_norm: f64,
    cond: f64,
    /// `g_{jd}` of the chosen parities (row `i` = `parities[i]`), float and `−g_{jd} mod p`.
    coef: [[f64; MAX_DATA]; MAX_PARITY],
    neg_coef_p: [[u32; MAX_DATA]; MAX_PARITY],
}

/// Output elements decoded per block: the right-hand sides of a block live on the stack.
const BLOCK: usize = 64;

impl Decoder {
    /// Plans the decode for the results flagged in `present` (`present.len() == n`).
    pub fn new(code: &Code, present: &[bool]) -> Result<Self, CodeError> {
        if present.len() != code.n() {
            return Err(CodeError::Length {
                buffer: Buffer::Result,
                need: code.n(),
                have: present.len(),
            });
        }
        let mask = present
            .iter()
            .enumerate()
            .fold(0u32, |m, (i, &p)| if p { m | 1 << i } else { m });
        Self::from_mask(code, mask)
    }

    /// Plans the decode for the results whose bit is set in `mask` (bit `i` = shard `i`).
    pub fn from_mask(code: &Code, mask: u32) -> Result<Self, CodeError> {
        let (k, n) = (code.k(), code.n());
        let mask = mask & ((1u32 << n) - 1); // n ≤ MAX_SHARDS < 32
        let have = mask.count_ones() as usize;
        if have < k {
            return Err(CodeError::NotDecodable { have, need: k });
        }
        let mut erased = [0u8; MAX_PARITY];
        let mut e = 0;
        for d in (0..k).filter(|d| mask >> d & 1 == 0) {
            erased[e] = d as u8; // e ≤ r ≤ MAX_PARITY because have ≥ k
            e += 1;
        }
        let mut dec = Decoder {
            code: *code,
            present: mask,
            erased,
            parities: [0; MAX_PARITY],
            e,
            inv: [[0.0; MAX_PARITY]; MAX_PARITY],
            inv_p: [[0; MAX_PARITY]; MAX_PARITY],
            inv_norm: 1.0,
            cond: 1.0,
            coef: [[0.0; MAX_DATA]; MAX_PARITY],
            neg_coef_p: [[0; MAX_DATA]; MAX_PARITY],
        };
        if e == 0 {
            return Ok(dec);
        }
        // Every e-subset of the received parities; keep the best-conditioned (float) system.
        let received = (mask >> k) as usize;
        let mut best = f64::INFINITY;
        let mut sub = received;
        loop {
            if sub.count_ones() as usize == e {
                let mut js = [0u8; MAX_PARITY];
                for (slot, j) in js
                    .iter_mut()
                    .zip((0..code.r()).filter(|j| sub >> j & 1 == 1))
                {
                    *slot = j as u8;
                }
                let mut a = [[0.0f64; MAX_PARITY]; MAX_PARITY];
                for (row, &j) in a.iter_mut().zip(&js[..e]) {
                    for (v, &d) in row.iter_mut().zip(&erased[..e]) {
                        *v = float_coeff(k, code.r(), j.into(), d.into());
                    }
                }
                if let Some(inv) = linalg::invert_f64(&a, e) {
                    let norm = linalg::norm_inf(&inv, e);
                    let cond = linalg::norm_inf(&a, e) * norm;
                    if cond < best {
                        best = cond;
                        dec.parities = js;
                        dec.inv = inv;
                        dec.inv_norm = norm;
                        dec.cond = cond;
                    }
                }
            }
            if sub == 0 {
                break;
            }
            sub = (sub - 1) & received;
        }
        if !best.is_finite() {
            return Err(CodeError::Singular);
        }
        let mut ap = [[0u32; MAX_PARITY]; MAX_PARITY];
        for (row, &j) in ap.iter_mut().zip(&dec.parities[..e]) {
            for (v, &d) in row.iter_mut().zip(&erased[..e]) {
                *v = prime_coeff(j.into(), d.into());
            }
        }
        dec.inv_p = linalg::invert_p(&ap, e).ok_or(CodeError::Singular)?;
        for (i, &j) in dec.parities[..e].iter().enumerate() {
            for d in 0..k {
                dec.coef[i][d] = float_coeff(k, code.r(), j.into(), d);
                dec.neg_coef_p[i][d] = field::sub(0, prime_coeff(j.into(), d));
            }
        }
        Ok(dec)
    }

    /// The code decoded.
    pub fn code(&self) -> &Code {
        &self.code
    }
    /// Erased data shards being recovered.
    pub fn erased(&self) -> &[u8] {
        &self.erased[..self.e]
    }
    /// Parity indices (`0..r`, shard `k + j`) used to recover them.
    pub fn parities(&self) -> &[u8] {
        &self.parities[..self.e]
    }
    /// `‖G_{J,E}^{-1}‖_∞` of the float system (1 when nothing is erased).
    pub fn inverse_norm(&self) -> f64 {
        self.inv_norm
    }
    /// `‖G_{J,E}‖_∞ · ‖G_{J,E}^{-1}‖_∞` of the float system.
    pub fn condition(&self) -> f64 {
        self.cond
    }
    /// Whether shard `i`'s result is used by this plan.
    pub fn uses(&self, shard: usize) -> bool {
        if shard < self.code.k() {
            self.present >> shard & 1 == 1
        } else {
            self.parities()
                .iter()
                .any(|&j| usize::from(j) + self.code.k() == shard)
        }
    }

    /// Multiply-adds of one decode with `cols` output columns (copies not counted).
    pub fn mul_adds(&self, cols: usize) -> usize {
        let (k, e) = (self.code.k(), self.e);
        (e * (k - e) + e * e) * self.code.shard_rows() * cols
    }

    /// Bound on the absolute error of a recovered float output (module docs): `in_len` is the
    /// layer's input length `K`, `magnitude` the `A` of that output, `value` its size `|y|`.
    pub fn error_bound_f32(&self, in_len: usize, magnitude: f64, value: f64) -> f64 {
        if self.e == 0 {
            return 0.0;
        }
        let (k, r) = (self.code.k(), self.code.r());
        let gmax = (0..r)
            .map(|j| (0..k).map(|d| float_coeff(k, r, j, d).abs()).sum::<f64>())
            .fold(0.0f64, f64::max);
        self.inv_norm * 2.0 * gmax * gamma_f32(in_len + 2) * magnitude
            + F32_UNIT_ROUNDOFF * value.abs()
    }

    fn check_results<T>(
        &self,
        results: &[Option<&[T]>],
        cols: usize,
        out: usize,
    ) -> Result<(), CodeError> {
        let code = &self.code;
        if results.len() != code.n() {
            return Err(CodeError::Length {
                buffer: Buffer::Result,
                need: code.n(),
                have: results.len(),
            });
        }
        let need = code.rows().saturating_mul(cols);
        if out != need {
            return Err(CodeError::Length {
                buffer: Buffer::Output,
                need,
                have: out,
            });
        }
        for (i, res) in results.iter().enumerate() {
            if !self.uses(i) {
                continue;
            }
            let res = res.ok_or(CodeError::MissingShard { shard: i })?;
            let need = code.result_rows(i)? * cols;
            if res.len() != need {
                return Err(CodeError::Length {
                    buffer: Buffer::Result,
                    need,
                    have: res.len(),
                });
            }
        }
        Ok(())
    }

    /// Copies the received data shards into `out` (row-major `m × cols`).
    fn copy_data<T: Copy>(
        &self,
        results: &[Option<&[T]>],
        cols: usize,
        out: &mut [T],
    ) -> Result<(), CodeError> {
        for d in 0..self.code.k() {
            if let (true, Some(Some(res))) = (self.uses(d), results.get(d)) {
                let rows = self.code.data_rows(d)?;
                if let Some(dst) = out.get_mut(rows.start * cols..rows.end * cols) {
                    dst.copy_from_slice(res);
                }
            }
        }
        Ok(())
    }

    /// Decodes float results into `out` (`m × cols`). `results[i]` is shard `i`'s output
    /// (`result_rows(i) × cols`), `None` if it did not arrive; results the plan does not use
    /// are ignored.
    pub fn decode_f32(
        &self,
        results: &[Option<&[f32]>],
        cols: usize,
        out: &mut [f32],
    ) -> Result<(), CodeError> {
        self.check_results(results, cols, out.len())?;
        self.copy_data(results, cols, out)?;
        let (k, e) = (self.code.k(), self.e);
        if e == 0 {
            return Ok(());
        }
        let len = self.code.shard_rows() * cols;
        let mut rhs = [[0.0f64; BLOCK]; MAX_PARITY];
        for start in (0..len).step_by(BLOCK) {
            let end = (start + BLOCK).min(len);
            // s_j = y_{P_j} − Σ_{d∉E} g_{jd} y_d over the block, shard by shard.
            for (i, &j) in self.parities().iter().enumerate() {
                let p = slice(results, k + usize::from(j), start, end);
                for (r, &v) in rhs[i].iter_mut().zip(p) {
                    *r = f64::from(v);
                }
            }
            for d in (0..k).filter(|&d| self.uses(d)) {
                let y = slice(results, d, start, end);
                for (i, r) in rhs.iter_mut().enumerate().take(e) {
                    let g = self.coef[i][d];
                    for (r, &v) in r.iter_mut().zip(y) {
                        *r -= g * f64::from(v);
                    }
                }
            }
            // y_E = G_{J,E}^{-1} s, written to the erased shards' rows.
            for (i, &d) in self.erased().iter().enumerate() {
                let dst = self.dest(out, d, cols, start, end);
                for (at, o) in dst.iter_mut().enumerate() {
                    *o = (0..e).map(|q| self.inv[i][q] * rhs[q][at]).sum::<f64>() as f32;
                }
            }
        }
        Ok(())
    }

    /// Decodes exact integer results into `out` (`m × cols`): wrapping `i32` for `r ≤ 1`,
    /// `GF(p)` for `r ≥ 2` (parity results are field elements in `0..p`). Bit-exact whenever
    /// the parities were encoded by [`encode`](super::encode), which checks the range.
    pub fn decode_i32(
        &self,
        results: &[Option<&[i32]>],
        cols: usize,
        out: &mut [i32],
    ) -> Result<(), CodeError> {
        self.check_results(results, cols, out.len())?;
        self.copy_data(results, cols, out)?;
        let (k, e) = (self.code.k(), self.e);
        if e == 0 {
            return Ok(());
        }
        let len = self.code.shard_rows() * cols;
        if self.code.int_arithmetic() == Arithmetic::Wrapping {
            // r = 1: y_f = y_p − Σ_{d≠f} y_d (mod 2^32), accumulated in the output rows.
            let f = self.erased[0];
            let p = slice(results, k, 0, len);
            let dst = self.dest(out, f, cols, 0, len);
            for (o, &v) in dst.iter_mut().zip(p) {
                *o = v;
            }
            for d in (0..k).filter(|&d| self.uses(d)) {
                for (o, &v) in dst.iter_mut().zip(slice(results, d, 0, len)) {
                    *o = o.wrapping_sub(v);
                }
            }
            return Ok(());
        }
        let mut rhs = [[0u32; BLOCK]; MAX_PARITY];
        for start in (0..len).step_by(BLOCK) {
            let end = (start + BLOCK).min(len);
            for (i, &j) in self.parities().iter().enumerate() {
                let p = slice(results, k + usize::from(j), start, end);
                for (r, &v) in rhs[i].iter_mut().zip(p) {
                    *r = field::reduce(u64::from(v as u32));
                }
            }
            for d in (0..k).filter(|&d| self.uses(d)) {
                let y = slice(results, d, start, end);
                for (i, r) in rhs.iter_mut().enumerate().take(e) {
                    let g = u64::from(self.neg_coef_p[i][d]);
                    for (r, &v) in r.iter_mut().zip(y) {
                        let v = u64::from(field::from_i64(v.into()));
                        *r = field::reduce(u64::from(*r) + g * v);
                    }
                }
            }
            for (i, &d) in self.erased().iter().enumerate() {
                let dst = self.dest(out, d, cols, start, end);
                for (at, o) in dst.iter_mut().enumerate() {
                    let y = (0..e).fold(0, |acc, q| {
                        field::add(acc, field::mul(self.inv_p[i][q], rhs[q][at]))
                    });
                    *o = field::to_i32(y);
                }
            }
        }
        Ok(())
    }

    /// The part of erased data shard `d`'s rows in `out` holding shard elements
    /// `start..end` (shorter, or empty, past the shard's real rows).
    fn dest<'o, T>(
        &self,
        out: &'o mut [T],
        d: u8,
        cols: usize,
        start: usize,
        end: usize,
    ) -> &'o mut [T] {
        let Ok(rows) = self.code.data_rows(d.into()) else {
            return &mut [];
        };
        let have = rows.len() * cols;
        let base = rows.start * cols;
        let (s, e) = (start.min(have), end.min(have));
        out.get_mut(base + s..base + e).unwrap_or(&mut [])
    }
}

/// Elements `start..end` of shard `i`'s result, cut short where a data shard's padding rows
/// begin (they are zero, and contribute nothing).
fn slice<'r, T>(results: &[Option<&'r [T]>], i: usize, start: usize, end: usize) -> &'r [T] {
    match results.get(i).copied().flatten() {
        Some(r) => r.get(start.min(r.len())..end.min(r.len())).unwrap_or(&[]),
        None => &[],
    }
}

const _: () = assert!(MAX_SHARDS < 32, "shard masks are u32");
