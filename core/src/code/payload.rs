//! Wire form of a coded shard's task header and result: a checked zero-copy view with a
//! `Repr` (parse/emit), smoltcp-style, for the runtime's coded-layer messages. Values are
//! little-endian whatever the host.
//!
//! ```text
//! 0      1      2      3      4          8          12
//! +------+------+------+------+----------+----------+------------------------+
//! |layer |shard | arith| rsvd | rows u32 | cols u32 | rows·cols × 4-byte values |
//! +------+------+------+------+----------+----------+------------------------+
//! ```

use core::fmt;

use super::Arithmetic;

mod field {
    use core::ops::Range;
    pub const LAYER: usize = 0;
    pub const SHARD: usize = 1;
    pub const ARITH: usize = 2;
    pub const ROWS: Range<usize> = 4..8;
    pub const COLS: Range<usize> = 8..12;
    pub const HEADER_LEN: usize = COLS.end;
}

/// Bytes of the header before the values.
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// Why a shard payload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// Shorter than the header, or than the values the header announces.
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Unknown arithmetic code.
    Arithmetic {
        /// The code.
        code: u8,
    },
    /// More values than the receiver accepts.
    TooLarge {
        /// Values announced.
        values: u64,
        /// The receiver's limit.
        limit: usize,
    },
    /// The output buffer is too small.
    Buffer {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PayloadError::Truncated { need, have } => {
                write!(f, "shard payload truncated: {have} of {need} bytes")
            }
            PayloadError::Arithmetic { code } => write!(f, "unknown arithmetic code {code}"),
            PayloadError::TooLarge { values, limit } => {
                write!(f, "{values} values announced, at most {limit} accepted")
            }
            PayloadError::Buffer { need, have } => {
                write!(f, "buffer holds {have} bytes, {need} needed")
            }
        }
    }
}

impl core::error::Error for PayloadError {}

const fn arith_code(a: Arithmetic) -> u8 {
    match a {
        Arithmetic::Float => 0,
        Arithmetic::Wrapping => 1,
        Arithmetic::PrimeField => 2,
    }
}

/// A view over a shard payload.
#[derive(Clone, Copy, Debug)]
pub struct ShardPayload<B: AsRef<[u8]>> {
    buf: B,
}

impl<B: AsRef<[u8]>> ShardPayload<B> {
    /// Wraps a buffer without checking it (for emitting into a buffer sized by
    /// [`ShardRepr::buffer_len`]).
    pub const fn new_unchecked(buf: B) -> Self {
        ShardPayload { buf }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len) against `max_values`.
    pub fn new_checked(buf: B, max_values: usize) -> Result<Self, PayloadError> {
        let p = Self::new_unchecked(buf);
        p.check_len(max_values)?;
        Ok(p)
    }

    /// Checks the header and that exactly the announced values follow; after it, no accessor
    /// panics.
    pub fn check_len(&self, max_values: usize) -> Result<(), PayloadError> {
        let b = self.buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(PayloadError::Truncated {
                need: HEADER_LEN,
                have: b.len(),
            });
        }
        let values = u64::from(self.rows()) * u64::from(self.cols());
        if values > max_values as u64 {
            return Err(PayloadError::TooLarge {
                values,
                limit: max_values,
            });
        }
        // Saturating: a header announcing more than memory can hold is simply truncated.
        let need = usize::try_from(values)
            .unwrap_or(usize::MAX)
            .saturating_mul(4)
            .saturating_add(HEADER_LEN);
        if b.len() != need {
            return Err(PayloadError::Truncated {
                need,
                have: b.len(),
            });
        }
        Ok(())
    }

    fn u32_at(&self, r: core::ops::Range<usize>) -> u32 {
        let mut a = [0u8; 4];
        if let Some(s) = self.buf.as_ref().get(r) {
            a.copy_from_slice(s);
        }
        u32::from_le_bytes(a)
    }

    /// Layer index.
    pub fn layer(&self) -> u8 {
        self.buf.as_ref().get(field::LAYER).copied().unwrap_or(0)
    }
    /// Shard index.
    pub fn shard(&self) -> u8 {
        self.buf.as_ref().get(field::SHARD).copied().unwrap_or(0)
    }
    /// Arithmetic code (0 float, 1 wrapping, 2 `GF(p)`).
    pub fn arith_code(&self) -> u8 {
        self.buf.as_ref().get(field::ARITH).copied().unwrap_or(0)
    }
    /// Rows of values.
    pub fn rows(&self) -> u32 {
        self.u32_at(field::ROWS)
    }
    /// Columns of values.
    pub fn cols(&self) -> u32 {
        self.u32_at(field::COLS)
    }
    /// The raw little-endian values.
    pub fn values(&self) -> &[u8] {
        self.buf.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// Copies the values into `out` as `i32` (integer modes); returns how many.
    pub fn read_i32(&self, out: &mut [i32]) -> Result<usize, PayloadError> {
        let v = self.values();
        let n = v.len() / 4;
        let have = out.len();
        let dst = out
            .get_mut(..n)
            .ok_or(PayloadError::Buffer { need: n, have })?;
        for (d, c) in dst.iter_mut().zip(v.chunks_exact(4)) {
            *d = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(n)
    }

    /// Copies the values into `out` as `f32` (float mode); returns how many.
    pub fn read_f32(&self, out: &mut [f32]) -> Result<usize, PayloadError> {
        let v = self.values();
        let n = v.len() / 4;
        let have = out.len();
        let dst = out
            .get_mut(..n)
            .ok_or(PayloadError::Buffer { need: n, have })?;
        for (d, c) in dst.iter_mut().zip(v.chunks_exact(4)) {
            *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(n)
    }
}

/// The meaning of a shard payload's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardRepr {
    /// Layer index.
    pub layer: u8,
    /// Shard index (`0..n`; `k..n` are parities).
    pub shard: u8,
    /// Arithmetic of the values.
    pub arithmetic: Arithmetic,
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
}

impl ShardRepr {
    /// Parses a checked view.
    pub fn parse<B: AsRef<[u8]>>(p: &ShardPayload<B>) -> Result<ShardRepr, PayloadError> {
        let arithmetic = match p.arith_code() {
            0 => Arithmetic::Float,
            1 => Arithmetic::Wrapping,
            2 => Arithmetic::PrimeField,
            code => return Err(PayloadError::Arithmetic { code }),
        };
        Ok(ShardRepr {
            layer: p.layer(),
            shard: p.shard(),
            arithmetic,
            rows: p.rows(),
            cols: p.cols(),
        })
    }

    /// Bytes of the payload carrying this header and its values.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + (self.rows as usize)
                .saturating_mul(self.cols as usize)
                .saturating_mul(4)
    }

    fn emit_header(&self, buf: &mut [u8]) -> Result<(), PayloadError> {
        let need = self.buffer_len();
        if buf.len() != need {
            return Err(PayloadError::Buffer {
                need,
                have: buf.len(),
            });
        }
        buf[field::LAYER] = self.layer;
        buf[field::SHARD] = self.shard;
        buf[field::ARITH] = arith_code(self.arithmetic);
        buf[3] = 0;
        buf[field::ROWS].copy_from_slice(&self.rows.to_le_bytes());
        buf[field::COLS].copy_from_slice(&self.cols.to_le_bytes());
        Ok(())
    }

    /// Writes header and `i32` values into `buf` (exactly [`buffer_len`](Self::buffer_len)).
    pub fn emit_i32(&self, values: &[i32], buf: &mut [u8]) -> Result<(), PayloadError> {
        let n = (self.rows as usize).saturating_mul(self.cols as usize);
        if values.len() != n {
            return Err(PayloadError::Buffer {
                need: n,
                have: values.len(),
            });
        }
        self.emit_header(buf)?;
        for (c, v) in buf[HEADER_LEN..].chunks_exact_mut(4).zip(values) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        Ok(())
    }

    /// Writes header and `f32` values into `buf` (exactly [`buffer_len`](Self::buffer_len)).
    pub fn emit_f32(&self, values: &[f32], buf: &mut [u8]) -> Result<(), PayloadError> {
        let n = (self.rows as usize).saturating_mul(self.cols as usize);
        if values.len() != n {
            return Err(PayloadError::Buffer {
                need: n,
                have: values.len(),
            });
        }
        self.emit_header(buf)?;
        for (c, v) in buf[HEADER_LEN..].chunks_exact_mut(4).zip(values) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        Ok(())
    }
}
