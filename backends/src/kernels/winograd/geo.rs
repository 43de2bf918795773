//! Which blocks a call computes and how a chunk of them is laid out in the scratch buffers.
//!
//! Blocks are anchored at multiples of `m` in absolute output coordinates: block `(bx, by)`
//! computes outputs `[bx·m, bx·m + m) × [by·m, by·m + m)` from inputs starting at
//! `(bx·m − pad, by·m − pad)`. A call computes every block its output region touches, whole,
//! a chunk of block rows at a time.
//!
//! Buffers of a chunk of `n` block rows (`P = n · nbx` blocks, block `p = row · nbx + col`):
//! - one zero-padded input row ([`Geo::row_len`]) and one channel's row transforms: `prow =
//!   n·m + α − m` input rows of `α` taps × `ng` vectors of `W` blocks ([`Geo::h_row`] each);
//! - `V[ξ][c][pp]` (input transforms), `M[k][ξ][pp]` (products), `pp ≥ P + W` so lane
//!   vectors and GEMM tiles never leave the buffers.

use tessera_core::model::{Conv, Shape};
use tessera_core::region::Region;

use super::form::Form;
use super::lanes::{TAPS_READ, W};
use super::MR;

/// Scratch bytes a chunk may take at least (its `V` and `M`, to the nearest block row); more
/// when the layer's transformed filters are larger, so those stream from memory once per call
/// or few times. The products read `V` and `M` again for every `ξ`: two threads' chunks of
/// 8 MiB (YOLOv2's layers 2–10 as whole maps took 7 block rows) outgrew the share of L3 they
/// get beside each other, and those layers ran 1.5–1.8× as fast on two threads as on one;
/// with 4 block rows, 1.75–2.0×, and no slower on one (docs/kernels.md, "Chunk size").
const CHUNK_BYTES: usize = 4 << 20;

/// The block grid of one call.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geo {
    pub form: Form,
    pub m: usize,
    pub a: usize,
    /// `α²`.
    pub e: usize,
    pub pad: i64,
    /// Input map width and height.
    pub in_w: i64,
    pub in_h: i64,
    /// First block column and row, and how many.
    pub bx0: usize,
    pub nbx: usize,
    pub by0: usize,
    pub nby: usize,
    /// Input channels, output channels, output channels padded to [`Geo::kr`].
    pub c: usize,
    pub k: usize,
    pub kp: usize,
    /// Output channels per channel block: [`MR`] (blocks in the lanes) or [`W`] (channel
    /// major: output channels in the lanes, [`Geo::channel_major`]).
    pub kr: usize,
    /// Lane vectors per block row, `⌈nbx / W⌉`.
    pub ng: usize,
    /// Block rows per chunk.
    pub rows: usize,
    /// The call's output region.
    pub region: Region,
}

/// Block rows `[by, by + n)` of a call.
#[derive(Clone, Copy, Debug)]
pub(super) struct Chunk {
    pub by: usize,
    pub n: usize,
}

impl Geo {
    /// The blocks of output region `r` (not empty) of `conv` on input map `map`.
    pub fn new(form: Form, conv: &Conv, map: Shape, r: Region) -> Geo {
        let m = form.m();
        let a = form.alpha();
        let (bx0, by0) = (r.x.start as usize / m, r.y.start as usize / m);
        let nbx = (r.x.end as usize).div_ceil(m) - bx0;
        let nby = (r.y.end as usize).div_ceil(m) - by0;
        let c = map.c as usize;
        let k = conv.filters as usize;
        let kp = k.div_ceil(MR) * MR;
        let e = a * a;
        let row_bytes = e * (c + kp) * nbx * 4;
        let u_bytes = e * c * kp * 4;
        let rows = ((CHUNK_BYTES.max(u_bytes) + row_bytes / 2) / row_bytes.max(1)).clamp(1, nby);
        Geo {
            form,
            m,
            a,
            e,
            pad: conv.pad as i64,
            in_w: map.w as i64,
            in_h: map.h as i64,
            bx0,
            nbx,
            by0,
            nby,
            c,
            k,
            kp,
            kr: MR,
            ng: nbx.div_ceil(W),
            rows,
            region: r,
        }
    }

    /// This grid with the products channel major: output channels in the lanes, in blocks
    /// of [`W`] (the filters laid out by `filters::transform_cm`).
    pub fn channel_major(self) -> Geo {
        Geo {
            kr: W,
            kp: self.k.div_ceil(W) * W,
            ..self
        }
    }

    /// Channel-major products `M[p][ξ][k]` of `kn` output channels (a multiple of [`W`]):
    /// the strides from one `ξ` to the next and from one block to the next, each an odd number
    /// of 64-byte lines so that a tile's rows and an output transform's loads spread over the
    /// L1 sets (with strides of whole KiBs they would all fall in one set).
    pub fn cm_strides(&self, kn: usize) -> (usize, usize) {
        let odd = |x: usize| ((x / 16) | 1) * 16;
        let xs = odd(kn);
        (xs, odd(self.e * xs))
    }

    /// True when the products run with output channels in the lanes.
    pub fn is_channel_major(&self) -> bool {
        self.kr == W
    }

    /// The chunks of block rows `[b0, b1)` (call-relative), top to bottom.
    pub fn chunks(&self, b0: usize, b1: usize) -> impl Iterator<Item = Chunk> + '_ {
        let n = b1.saturating_sub(b0);
        (0..n.div_ceil(self.rows)).map(move |i| Chunk {
            by: self.by0 + b0 + i * self.rows,
            n: self.rows.min(n - i * self.rows),
        })
    }

    /// Input rows a chunk of `n` block rows reads (`n·m + α − m`).
    pub fn prow(&self, n: usize) -> usize {
        n * self.m + self.a - self.m
    }

    /// Elements of the zero-padded input row: every lane vector's taps
    /// ([`Lanes::taps`](super::lanes::Lanes::taps) reads `TAPS_READ` values from its first
    /// block on).
    pub fn row_len(&self) -> usize {
        (self.ng - 1) * W * self.m + TAPS_READ
    }

    /// Elements of one input row's transforms (`α` taps × `ng` vectors).
    pub fn h_row(&self) -> usize {
        self.a * self.ng * W
    }

    /// Padded block count `pp` of a chunk of `n` block rows: at least `P + W`, an odd number
    /// of 16-float (64-byte) lines, so rows `pp` apart spread over the L1 sets.
    pub fn pp(&self, n: usize) -> usize {
        let lines = (n * self.nbx + W).div_ceil(16);
        (lines | 1) * 16
    }
}
