//! The micro-kernels' unit of work, [`Row`]: one output row segment of up to [`R`] output
//! channels over a chunk of input channels, its epilogue [`Post`], and the scalar path that
//! every vector path equals bit for bit.

use super::{LANES, R};

/// `a·b + c` with one rounding.
#[inline]
pub(crate) fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(feature = "std"))]
    {
        libm::fmaf(a, b, c)
    }
}

/// Folded batch norm, bias and activation of up to [`R`] output channels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Post {
    pub a: [f32; R],
    pub b: [f32; R],
    pub leaky: bool,
}

impl Post {
    #[inline]
    pub(crate) fn apply(&self, r: usize, acc: f32) -> f32 {
        let y = fma(acc, self.a[r], self.b[r]);
        if self.leaky && y <= 0.0 {
            y * 0.1
        } else {
            y
        }
    }
}

/// One output row segment of `n ≤ R` output channels over a chunk of input channels, read from
/// the padded input. Chunks after the first continue the sums stored in `out` (a stored f32 is
/// reloaded exactly, so the per-output order is unchanged); the last applies [`Post`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row<'a> {
    /// Padded input, CHW.
    pub input: &'a [f32],
    /// Index of the chunk's first channel, first in-map kernel row, the column of output 0's
    /// tap `kx = 0`.
    pub base: usize,
    /// Elements between channels of the padded input.
    pub plane: usize,
    /// Elements between rows of the padded input.
    pub row: usize,
    /// Input channels of the chunk.
    pub channels: usize,
    /// First kernel row inside the map, and how many are.
    pub ky0: usize,
    pub nky: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride (the vector paths need 1).
    pub stride: usize,
    /// Packed weights of the block from the chunk's first input channel on, `[c][ky][kx][n]`
    /// (the `n` output channels of the block interleaved).
    pub weights: &'a [f32],
    /// Output columns `j0..j1` of the row (`j0` a multiple of 16).
    pub j0: usize,
    pub j1: usize,
    /// First chunk (sums start at 0) and last chunk (apply [`Post`]).
    pub first: bool,
    pub last: bool,
}

impl Row<'_> {
    /// Panics unless `n` channels of this row can be read, and written to `out` at
    /// `r·oplane + orow + j` for `r < n`, `j < j1`, with vector reads of `lanes`.
    pub(crate) fn check(&self, n: usize, lanes: usize, out: usize, oplane: usize, orow: usize) {
        assert!((1..=R).contains(&n));
        if self.j1 <= self.j0 {
            return;
        }
        assert!(self.j0.is_multiple_of(LANES) || self.stride != 1);
        let kk = self.k * self.k;
        assert!(self.ky0 + self.nky <= self.k);
        assert!(self.channels * kk * n <= self.weights.len());
        assert!((n - 1) * oplane + orow + self.j1 <= out);
        if self.nky > 0 && self.channels > 0 {
            let cols = if self.stride == 1 {
                self.j0 + (self.j1 - self.j0).div_ceil(lanes) * lanes
            } else {
                (self.j1 - 1) * self.stride + 1
            };
            let last = self.base
                + (self.channels - 1) * self.plane
                + (self.nky - 1) * self.row
                + cols
                + self.k
                - 2;
            assert!(last < self.input.len());
        }
    }
}

/// The scalar path: any stride, the order of the module docs.
pub(super) fn row_scalar(
    job: &Row<'_>,
    n: usize,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    job.check(n, 1, out.len(), oplane, orow);
    let (k, kk) = (job.k, job.k * job.k);
    for r in 0..n {
        let w = |t: usize| job.weights[t * n + r];
        let dst = &mut out[r * oplane + orow + job.j0..r * oplane + orow + job.j1];
        for (j, d) in (job.j0..job.j1).zip(dst.iter_mut()) {
            let mut acc = if job.first { 0.0f32 } else { *d };
            for c in 0..job.channels {
                for ky in 0..job.nky {
                    let at = job.base + c * job.plane + ky * job.row + j * job.stride;
                    let src = &job.input[at..at + k];
                    let t = c * kk + (job.ky0 + ky) * k;
                    for (kx, &xv) in src.iter().enumerate() {
                        acc = fma(w(t + kx), xv, acc);
                    }
                }
            }
            *d = if job.last { post.apply(r, acc) } else { acc };
        }
    }
}
