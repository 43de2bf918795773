//! Cache-line-aligned `f32` buffers ([`AlignedBuf`]).

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

/// A zeroed buffer of `f32` whose first element is 64-byte aligned (a cache line); `Vec<f32>`
/// only guarantees 4 bytes (large allocations usually sit 16 bytes past a page boundary).
/// Alignment never changes results, only how many cache lines a row of vector stores touches.
pub struct AlignedBuf {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    /// Floats per cache line.
    const LINE: usize = 16;

    /// `len` zeros.
    pub fn new(len: usize) -> Self {
        let buf = vec![0.0f32; len + Self::LINE];
        let off = buf.as_ptr().align_offset(64).min(Self::LINE);
        AlignedBuf { buf, off, len }
    }

    /// A copy of `src`.
    pub fn from_slice(src: &[f32]) -> Self {
        let mut a = AlignedBuf::new(src.len());
        a.as_mut_slice().copy_from_slice(src);
        a
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    /// The values, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_and_holds_len_values() {
        for len in [0, 1, 17, 1000] {
            let mut a = AlignedBuf::new(len);
            assert_eq!(a.as_slice().len(), len);
            assert_eq!(a.as_mut_slice().as_ptr() as usize % 64, 0);
        }
        let b = AlignedBuf::from_slice(&[1.0, 2.0, 3.0]);
        assert_eq!(b.as_slice(), [1.0, 2.0, 3.0]);
    }
}
