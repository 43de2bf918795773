//! Which blocks a call computes and how a chunk of them is laid out in the scratch buffers.
//!
//! Blocks are anchored at multiples of `m` in absolute output coordinates: block `(bx, by)`
//! computes outputs `[bx·m, bx·m + m) × [by·m, by·m + m)` from inputs starting at
//! `(bx·m − pad, by·m − pad)`. A call computes every block its output region touches, whole,
//! a chunk of block rows at a time.
//!
//! Buffers of a chunk of `n` block rows (`P = n · nbx` blocks, block `p = row · nbx + col`):
//! - one zero-padded input row ([`Geo::row_len`]) and one channel's row transforms of its
//!   `prow = n·m + α − m` input rows, by rows or flat ([`Geo::h_flat`], [`Geo::h_len`]);
//! - `V[ξ][c][pp]` (input transforms), `M[k][ξ][pp]` (products), `pp ≥ P + W` so lane
//!   vectors and GEMM tiles never leave the buffers.

extern crate alloc;

use alloc::vec::Vec;

use tessera_core::model::{Conv, Shape};
use tessera_core::region::Region;
use tessera_core::tensor::Strides;

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
    /// Values between the output's rows and between its planes: the region's width and area,
    /// or those of the buffer an output window lies in.
    pub orow: usize,
    pub oplane: usize,
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
            orow: r.width() as usize,
            oplane: r.area() as usize,
        }
    }

    /// This grid writing its output through `s` (a window's strides).
    pub fn writing(self, s: Strides) -> Geo {
        Geo {
            orow: s.row,
            oplane: s.plane,
            ..self
        }
    }

    /// Values from the first output of `rows` region rows of a plane to the last, inclusive.
    pub fn out_span(&self, rows: usize) -> usize {
        match rows {
            0 => 0,
            n => (n - 1) * self.orow + self.region.width() as usize,
        }
    }

    /// The first `k` output planes of `out` (the output from the region's first value on),
    /// each [`out_span`](Self::out_span) of the region's rows long.
    pub fn planes<'o>(&self, out: &'o mut [f32]) -> Vec<&'o mut [f32]> {
        let span = self.out_span(self.region.height() as usize);
        let mut rest = out;
        let mut planes = Vec::with_capacity(self.k);
        for _ in 0..self.k {
            let (plane, tail) = rest.split_at_mut(span);
            planes.push(plane);
            rest = tail.get_mut(self.oplane - span..).unwrap_or_default();
        }
        planes
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

    /// How a chunk of `n` block rows holds its row transforms `h` for the column transforms
    /// that follow: by input rows (`prow` rows of `α` outputs × `ng` vectors; each block
    /// row's column transforms then run over its `ng` vectors), or, when that saves an eighth
    /// of those vectors, flat: `α²` planes of [`Geo::h_plane`], plane `(sr, xc)` holding
    /// output `xc` of the row transform of sub-row `sr` of each block's window, block `p` at
    /// `p`, so the column transforms run over the chunk's `P` blocks in `⌈P / W⌉` vectors.
    /// Flat, a row two block rows' windows share is stored twice. A narrow call's rows waste
    /// most of their last vector (a tile's 13 blocks take 16 lanes, a strip's 2 blocks 16),
    /// and so do YOLOv2's whole 38- and 19-block rows.
    pub fn h_flat(&self, n: usize) -> bool {
        (n * self.nbx).div_ceil(W) * 8 <= n * self.ng * 7
    }

    /// Elements of one plane of flat row transforms ([`Geo::h_flat`]): the `P` blocks of a
    /// chunk of `n` block rows plus one vector (the last group of a row is stored whole).
    pub fn h_plane(&self, n: usize) -> usize {
        n * self.nbx + W
    }

    /// Elements of a chunk's row transforms ([`Geo::h_flat`]).
    pub fn h_len(&self, n: usize) -> usize {
        if self.h_flat(n) {
            self.e * self.h_plane(n)
        } else {
            self.prow(n) * self.a * self.ng * W
        }
    }

    /// Padded block count `pp` of a chunk of `n` block rows: at least `P + W`, an odd number
    /// of 16-float (64-byte) lines, so rows `pp` apart spread over the L1 sets.
    pub fn pp(&self, n: usize) -> usize {
        let lines = (n * self.nbx + W).div_ceil(16);
        (lines | 1) * 16
    }
}

#[cfg(test)]
mod tests {
    use tessera_core::model::{Activation, Conv, Shape};
    use tessera_core::region::{Region, Span};

    use super::super::lanes::W;
    use super::{Form, Geo};

    /// A YOLOv2-like 3×3 conv of `c` → `k` channels on a `w`×`w` map, the call over `r`.
    fn geo(form: Form, w: u32, c: u32, k: u32, r: Region) -> Geo {
        let conv = Conv {
            filters: k,
            size: 3,
            stride: 1,
            pad: 1,
            batch_norm: true,
            activation: Activation::Leaky,
        };
        Geo::new(form, &conv, Shape::new(w, w, c), r)
    }

    /// The column transforms go flat where rows fill little of their last vector: YOLOv2's
    /// 304-wide map (76 F4 blocks in 80 lanes) stays by rows, its 76-wide map (19 blocks in
    /// 32 lanes), a narrow tile and a strip go flat; either way `h` holds what the stage
    /// writes.
    #[test]
    fn narrow_rows_transform_their_columns_flat() {
        let full = |w| Region::full(w, w);
        let wide = geo(Form::F4, 304, 32, 64, full(304));
        assert!(!wide.h_flat(wide.rows));
        let deep = geo(Form::F4, 76, 128, 256, full(76));
        assert!(deep.h_flat(deep.rows));
        // A 3×3 grid's middle tile of the 76-wide map: 7 × 7 blocks, 4 vectors flat, 7 by
        // rows.
        let span = Span::new(24, 52);
        let tile = geo(Form::F4, 76, 128, 256, Region::new(span, span));
        assert_eq!((tile.nbx, tile.nby), (7, 7));
        assert!(tile.h_flat(7));
        let strip = geo(
            Form::F2,
            76,
            128,
            256,
            Region::new(Span::new(40, 44), Span::new(0, 76)),
        );
        assert!(strip.h_flat(strip.rows));
        for g in [wide, deep, tile, strip] {
            for n in 1..=g.rows {
                let flat = g.e * (n * g.nbx + W);
                let by_rows = g.prow(n) * g.a * g.ng * W;
                assert_eq!(g.h_len(n), if g.h_flat(n) { flat } else { by_rows });
            }
        }
    }
}
