//! Coded distributed computing (CDC, docs/design.md §6): output splitting of a linear layer over
//! `n = k + r` devices so that any `k` results give the full output.
//!
//! A layer `Y = W·X + b` (`W` is `m × K`, `X` is `K × cols`: `cols = 1` for a fully connected
//! layer, `cols = H·W` for a convolution as GEMM with `X = im2col(input)`, filters = rows) is
//! cut by output rows into `k` **data shards** of [`Code::shard_rows`] rows each (the last
//! shards shorter, padded with zero rows in the parity arithmetic), plus `r` **parity shards**
//! `P_j = Σ_d g_{jd} W_d` precomputed offline ([`encode`]); every shard is computed the same way
//! ([`shard`]) and is the same size. [`Decoder`] rebuilds the output from any `k` results.
//!
//! # The construction
//!
//! Row 0 of the generator is all ones, so `r = 1` is exactly the paper's summed-rows parity.
//! Rows `j ≥ 1` make the code MDS (every square submatrix of `G` invertible) by taking a
//! Cauchy matrix `C_{jd} = 1/(x_j − z_d)` and scaling column `d` by `x_0 − z_d`:
//! `g_{jd} = (x_0 − z_d)/(x_j − z_d)`. Scaling rows or columns by non-zero numbers keeps every
//! minor of a Cauchy matrix non-zero, in any field, as long as the `x` are distinct, the `z`
//! are distinct and no `x` equals a `z`.
//!
//! * **Float mode** ([`Code::coeff`]): `z_d = d`, `x_j = max(⌊(j + ½)·k/r⌋, j) − ½`: half-integer
//!   points interleaved among the data points, the family with the smallest worst-case decode
//!   condition number of the ones tried (negative points, Chebyshev nodes, the integer points
//!   below). [`worst_condition`] measures `max ‖G_{J,E}‖_∞‖G_{J,E}^{-1}‖_∞` over every
//!   erasure pattern (`code_props` prints the full table):
//!
//!   | `r` \\ `k` | 2 | 4 | 8 | 12 | 16 |
//!   |---|---|---|---|---|---|
//!   | 1 | 1 | 1 | 1 | 1 | 1 |
//!   | 2 | 4 | 6 | 24 | 32 | 43 |
//!   | 3 | 6 | 50 | 147 | 472 | 1343 |
//!   | 4 | 50 | 53 | 1389 | 4063 | 11198 |
//!
//!   A recovered value then carries an absolute error of up to about
//!   `cond · u · A` (`A` the layer's `Σ|w||x|`; [`decode`] states the rigorous bound). Measured
//!   on a 2048-input layer with `k = 8`: `1e-8·A` for `r = 1`, `9e-6·A` for `r = 2`, `2e-4·A`
//!   for `r = 3`, `6e-4·A` for `r = 4` — usable for `r ≤ 2`, fragile beyond; use integer mode.
//! * **Exact integer mode**: int8 weights and activations with `i32` accumulation. For `r = 1`
//!   the parity weights are the (exact, `i32`) sums of the data weights and every shard result
//!   is taken modulo `2^32` (wrapping), so `y_f = y_p − Σ y_d` is bit-exact whenever the true
//!   `y_f` fits an `i32`, even if the parity overflowed. For `r ≥ 2` every parity shard is
//!   computed in `GF(p)`, `p = 2^31 − 1` ([`field`]), with `z_d = d + 1`, `x_j = −j`, i.e.
//!   `g_{jd} = (d + 1)/(d + 1 + j)` ([`Code::coeff_p`]); decoding is exact when every true
//!   output lies in `(−p/2, p/2)`, which [`encode::parity_mod_p`] checks from `K` and the bias.
//!
//! Replication (2MR, [`replicate`]) is the comparison mode; [`dispatch`] is the gateway-side
//! state machine of one coded layer (send once, decode from the first `k`, time out, re-send
//! only when parity cannot cover). Nothing here allocates or panics on
//! bad input: every size is checked and reported as a [`CodeError`].

pub mod decode;
pub mod dispatch;
pub mod encode;
pub mod field;
mod linalg;
pub mod payload;
pub mod replicate;
pub mod shard;

use core::fmt;
use core::ops::Range;

pub use decode::Decoder;

/// Most data shards a code may have.
pub const MAX_DATA: usize = 16;
/// Most parity shards a code may have (the decode systems are at most this size).
pub const MAX_PARITY: usize = 4;
/// Most shards in all.
pub const MAX_SHARDS: usize = MAX_DATA + MAX_PARITY;

/// How a coded layer's numbers are represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    /// `f32` weights, activations and results; decode in `f64` within a documented bound.
    Float,
    /// int8 weights and activations, `i32` results modulo `2^32` (single parity, `r ≤ 1`).
    Wrapping,
    /// int8 weights and activations, parity results in `GF(2^31 − 1)` (`r ≥ 2`).
    PrimeField,
}

/// Why a coding operation was refused. Every entry point returns this instead of panicking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeError {
    /// `k` is 0 or above [`MAX_DATA`], `r` above [`MAX_PARITY`], or the layer has no rows.
    Shape {
        /// Output rows of the layer.
        rows: usize,
        /// Data shards asked for.
        k: usize,
        /// Parity shards asked for.
        r: usize,
    },
    /// A shard or parity index is out of range.
    Index {
        /// The index.
        index: usize,
        /// The number of shards (or parities) there are.
        count: usize,
    },
    /// A buffer has the wrong length.
    Length {
        /// Which buffer (see [`Buffer`]).
        buffer: Buffer,
        /// Elements needed.
        need: usize,
        /// Elements given.
        have: usize,
    },
    /// Fewer than `k` results arrived: the layer cannot be decoded.
    NotDecodable {
        /// Results present.
        have: usize,
        /// Results needed (`k`).
        need: usize,
    },
    /// A result the decoder planned with is missing from the call.
    MissingShard {
        /// The shard.
        shard: usize,
    },
    /// The operation needs another arithmetic (e.g. a `GF(p)` decode of a single-parity code).
    Mode {
        /// The arithmetic the code uses for this call.
        expected: Arithmetic,
    },
    /// An exact integer decode cannot be guaranteed: outputs may reach `bound` in magnitude,
    /// `limit` or more.
    Range {
        /// Largest possible output magnitude.
        bound: u64,
        /// Exclusive limit of the arithmetic.
        limit: u64,
    },
    /// A decode system was numerically singular (cannot happen for a valid code; reported
    /// rather than asserted).
    Singular,
}

/// Names a buffer in [`CodeError::Length`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Buffer {
    /// Layer weights `W` (`m × K`).
    Weights,
    /// Layer bias `b` (`m`).
    Bias,
    /// Layer input `X` (`K × cols`).
    Input,
    /// A shard's weights or bias, or the output of a shard computation.
    Shard,
    /// A shard result handed to the decoder.
    Result,
    /// The decoded output (`m × cols`).
    Output,
}

impl fmt::Display for CodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CodeError::Shape { rows, k, r } => write!(
                f,
                "cannot code {rows} rows as k = {k} data + r = {r} parity shards \
                 (1..={MAX_DATA} data, 0..={MAX_PARITY} parity, at least one row)"
            ),
            CodeError::Index { index, count } => {
                write!(f, "index {index} out of range ({count} available)")
            }
            CodeError::Length { buffer, need, have } => {
                write!(f, "{buffer:?} buffer holds {have} elements, {need} needed")
            }
            CodeError::NotDecodable { have, need } => {
                write!(f, "{have} results arrived, {need} needed to decode")
            }
            CodeError::MissingShard { shard } => write!(f, "result of shard {shard} is missing"),
            CodeError::Mode { expected } => write!(f, "operation needs {expected:?} arithmetic"),
            CodeError::Range { bound, limit } => write!(
                f,
                "outputs may reach {bound} in magnitude; exact decoding needs less than {limit}"
            ),
            CodeError::Singular => f.write_str("decode system is singular"),
        }
    }
}

impl core::error::Error for CodeError {}

/// An output-split layer code: `rows` output rows, `k` data shards, `r` parity shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    rows: usize,
    k: usize,
    r: usize,
}

impl Code {
    /// A code for a layer with `rows` output rows (filters) over `k` data and `r` parity shards.
    pub fn new(rows: usize, k: usize, r: usize) -> Result<Self, CodeError> {
        if rows == 0 || k == 0 || k > MAX_DATA || r > MAX_PARITY {
            return Err(CodeError::Shape { rows, k, r });
        }
        Ok(Code { rows, k, r })
    }

    /// Output rows of the layer (`m`).
    pub const fn rows(&self) -> usize {
        self.rows
    }
    /// Data shards.
    pub const fn k(&self) -> usize {
        self.k
    }
    /// Parity shards.
    pub const fn r(&self) -> usize {
        self.r
    }
    /// All shards, `k + r`. Shards `0..k` are data, `k..n` parity.
    pub const fn n(&self) -> usize {
        self.k + self.r
    }
    /// Rows every parity shard has, and the most any data shard has: `⌈m / k⌉`.
    pub const fn shard_rows(&self) -> usize {
        self.rows.div_ceil(self.k)
    }

    /// The integer arithmetic this code uses: wrapping for `r ≤ 1`, `GF(p)` for `r ≥ 2`.
    pub const fn int_arithmetic(&self) -> Arithmetic {
        if self.r <= 1 {
            Arithmetic::Wrapping
        } else {
            Arithmetic::PrimeField
        }
    }

    /// Layer rows produced by data shard `d` (empty past the end when `k ∤ m`).
    pub fn data_rows(&self, d: usize) -> Result<Range<usize>, CodeError> {
        if d >= self.k {
            return Err(CodeError::Index {
                index: d,
                count: self.k,
            });
        }
        let s = self.shard_rows();
        let start = (d * s).min(self.rows);
        Ok(start..((d + 1) * s).min(self.rows))
    }

    /// Rows in the result of shard `shard` (data or parity).
    pub fn result_rows(&self, shard: usize) -> Result<usize, CodeError> {
        if shard < self.k {
            Ok(self.data_rows(shard)?.len())
        } else if shard < self.n() {
            Ok(self.shard_rows())
        } else {
            Err(CodeError::Index {
                index: shard,
                count: self.n(),
            })
        }
    }

    fn check_coeff(&self, j: usize, d: usize) -> Result<(), CodeError> {
        if j >= self.r {
            return Err(CodeError::Index {
                index: j,
                count: self.r,
            });
        }
        if d >= self.k {
            return Err(CodeError::Index {
                index: d,
                count: self.k,
            });
        }
        Ok(())
    }

    /// Float generator coefficient `g_{jd}` of parity `j` on data shard `d`.
    pub fn coeff(&self, j: usize, d: usize) -> Result<f64, CodeError> {
        self.check_coeff(j, d)?;
        Ok(float_coeff(self.k, self.r, j, d))
    }

    /// `GF(p)` generator coefficient `g_{jd} = (d + 1)/(d + 1 + j)` (row 0 all ones).
    pub fn coeff_p(&self, j: usize, d: usize) -> Result<u32, CodeError> {
        self.check_coeff(j, d)?;
        Ok(prime_coeff(j, d))
    }
}

/// `x_j` of the float construction: half-integers interleaved among `z_d = d`.
fn float_x(k: usize, r: usize, j: usize) -> f64 {
    let spread = ((2 * j + 1) * k) / (2 * r); // ⌊(j + ½)·k/r⌋, exact in integers
    spread.max(j) as f64 - 0.5
}

pub(crate) fn float_coeff(k: usize, r: usize, j: usize, d: usize) -> f64 {
    let z = d as f64;
    (float_x(k, r, 0) - z) / (float_x(k, r, j) - z)
}

pub(crate) fn prime_coeff(j: usize, d: usize) -> u32 {
    // j < MAX_PARITY, d < MAX_DATA: both tiny, far below p; d + 1 + j is never 0 mod p.
    let num = (d + 1) as u32;
    let den = (d + 1 + j) as u32;
    field::mul(num, field::inv(den).unwrap_or(0))
}

/// Worst decode condition number `‖G_{J,E}‖_∞ · ‖G_{J,E}^{-1}‖_∞` of the float construction
/// over every erased data set `E` and every parity set `J` with `|J| = |E| ≤ min(k, r)`
/// (1 for `r = 0`; `∞` if some system is singular).
pub fn worst_condition(k: usize, r: usize) -> Result<f64, CodeError> {
    let code = Code::new(k, k, r)?;
    let mut worst = 1.0f64;
    for em in 0u32..(1 << k) {
        let e = em.count_ones() as usize;
        if e == 0 || e > r {
            continue;
        }
        for jm in 0u32..(1 << r) {
            if jm.count_ones() as usize != e {
                continue;
            }
            let mut a = [[0.0f64; MAX_PARITY]; MAX_PARITY];
            for (i, j) in (0..r).filter(|j| jm >> j & 1 == 1).enumerate() {
                for (c, d) in (0..k).filter(|d| em >> d & 1 == 1).enumerate() {
                    a[i][c] = code.coeff(j, d)?;
                }
            }
            let cond = match linalg::invert_f64(&a, e) {
                Some(inv) => linalg::norm_inf(&a, e) * linalg::norm_inf(&inv, e),
                None => f64::INFINITY,
            };
            worst = worst.max(cond);
        }
    }
    Ok(worst)
}

/// Unit roundoff of `f32`, `2^−24`.
pub const F32_UNIT_ROUNDOFF: f64 = 5.960_464_477_539_063e-8;

/// `γ_n = n·u / (1 − n·u)`, the classical bound on the relative error of an `n`-term `f32`
/// dot product (Higham, *Accuracy and Stability*, §3.1).
pub fn gamma_f32(n: usize) -> f64 {
    let nu = n as f64 * F32_UNIT_ROUNDOFF;
    if nu >= 1.0 {
        f64::INFINITY
    } else {
        nu / (1.0 - nu)
    }
}
