//! The zero-padded copy of a conv's input region ([`PadGeo`]): whole-vector rows with the
//! padding columns in place, so the micro-kernels never test borders.

use core::ops::Range;

use tessera_core::kernel::input_span;
use tessera_core::model::{Conv, Shape};
use tessera_core::region::Region;
use tessera_core::tensor::FeatureView;

use super::LANES;

/// Geometry of the zero-padded copy of the input a region needs: row length, rows per channel
/// and their first map row, the first map column, and the element count.
#[derive(Clone, Copy, Debug)]
pub(super) struct PadGeo {
    pub(super) wp: usize,
    pub(super) nrows: usize,
    /// Elements between channel planes: `nrows·wp` rounded up to an odd number of 64-byte
    /// lines, so the same column of successive channels falls in successive L1 sets (a plane
    /// of a whole number of 4 KiB pages put every channel of a column block in the same few
    /// sets: 1×1 convs read 128–512 channels per block).
    pub(super) plane: usize,
    pub(super) iy0: u32,
    pub(super) xin0: i64,
    pub(super) len: usize,
}

impl PadGeo {
    pub(super) fn new(conv: &Conv, map: Shape, region: Region) -> Self {
        let (k, s, p) = (conv.size as usize, conv.stride as usize, conv.pad as i64);
        let ncols = region.width() as usize;
        let wp = (ncols.div_ceil(LANES) * LANES + k - 1).max((ncols - 1) * s + k);
        let rows = input_span(region.y, conv.size, conv.stride, conv.pad, map.h);
        let nrows = rows.len() as usize;
        let lines = (nrows * wp).div_ceil(16);
        let plane = (lines | 1) * 16;
        PadGeo {
            wp,
            nrows,
            iy0: rows.start,
            xin0: region.x.start as i64 * s as i64 - p,
            plane,
            len: map.c as usize * plane,
        }
    }

    /// Fills channels `c0..` of the padded buffer (`dst` holds whole channel planes): the
    /// columns the view holds are copied, all others (padding, rounding) are zero.
    pub(super) fn fill(&self, input: &FeatureView<'_>, c0: usize, dst: &mut [f32]) {
        let planes = dst.len() / self.plane;
        self.fill_rows(input, c0 * self.nrows..(c0 + planes) * self.nrows, dst);
        // Planes without rows (nothing of the map is read) are all gap.
        if self.nrows == 0 {
            dst.fill(0.0);
        }
    }

    /// Fills padded rows `rows`, counted over the channel planes in order (row `r` of channel
    /// `c` is `c·nrows + r`); `dst` starts at the first of them and holds through the last,
    /// with the zero gap after each channel's last row: a split of `0..c·nrows` into ranges
    /// cuts the buffer into consecutive slices.
    pub(super) fn fill_rows(&self, input: &FeatureView<'_>, rows: Range<usize>, dst: &mut [f32]) {
        let view = input.region();
        // Map columns of a padded row that the view holds (it covers all that are needed).
        let a = self.xin0.max(view.x.start as i64);
        let b = (self.xin0 + self.wp as i64).min(view.x.end as i64);
        let (da, sa, n) = if b > a {
            (
                (a - self.xin0) as usize,
                (a - view.x.start as i64) as usize,
                (b - a) as usize,
            )
        } else {
            (0, 0, 0)
        };
        let gap = self.plane - self.nrows * self.wp;
        let mut rest = dst;
        for u in rows {
            let (ci, r) = (u / self.nrows, u % self.nrows);
            let (row, tail) = rest.split_at_mut(self.wp);
            row[..da].fill(0.0);
            if n > 0 {
                let src = input.row(ci as u32, self.iy0 + r as u32);
                row[da..da + n].copy_from_slice(&src[sa..sa + n]);
            }
            row[da + n..].fill(0.0);
            rest = tail;
            if r + 1 == self.nrows {
                let (g, tail) = rest.split_at_mut(gap);
                g.fill(0.0);
                rest = tail;
            }
        }
    }

    /// Where padded row `u` (as in [`fill_rows`](Self::fill_rows)) starts in the buffer.
    pub(super) fn row_start(&self, u: usize) -> usize {
        match self.nrows {
            0 => 0,
            nrows => u / nrows * self.plane + u % nrows * self.wp,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use alloc::vec;

    use tessera_core::model::{Activation, Conv, Shape};
    use tessera_core::region::{Region, Span};
    use tessera_core::tensor::FeatureView;

    use super::PadGeo;

    /// Filling the padded rows in consecutive ranges (as threads do, cut anywhere: mid-channel,
    /// at a channel's last row) gives the same buffer as filling the channel planes whole, for
    /// 3×3 and 1×1 convs, whole maps and views cut at the map's edges or inside it.
    #[test]
    fn row_ranges_fill_the_same_buffer_as_planes() {
        let map = Shape::new(21, 9, 3);
        let full = Region::full(21, 9);
        let data: vec::Vec<f32> = (0..21 * 9 * 3).map(|i| i as f32 + 1.0).collect();
        for size in [1, 3] {
            let conv = Conv {
                filters: 4,
                size,
                stride: 1,
                pad: size / 2,
                batch_norm: false,
                activation: Activation::Linear,
            };
            let out = Region::new(Span::new(2, 19), Span::new(1, 8));
            for (region, view) in [
                (full, full),
                (out, Region::new(Span::new(1, 20), Span::new(0, 9))),
            ] {
                let n = view.area() as usize * 3;
                let input = FeatureView::new(&data[..n], view, 3).unwrap();
                let geo = PadGeo::new(&conv, map, region);
                let mut whole = vec![f32::NAN; geo.len];
                geo.fill(&input, 0, &mut whole);
                assert!(whole.iter().all(|v| !v.is_nan()));
                let rows = 3 * geo.nrows;
                for cuts in [
                    vec![0, rows],
                    vec![0, 4, rows],
                    vec![0, geo.nrows, 2 * geo.nrows + 1, rows],
                ] {
                    let mut split = vec![f32::NAN; geo.len];
                    for w in cuts.windows(2) {
                        let (a, b) = (
                            geo.row_start(w[0]),
                            if w[1] == rows {
                                geo.len
                            } else {
                                geo.row_start(w[1])
                            },
                        );
                        geo.fill_rows(&input, w[0]..w[1], &mut split[a..b]);
                    }
                    assert_eq!(split, whole, "{size}x{size} {region:?} cuts {cuts:?}");
                }
            }
        }
    }
}
