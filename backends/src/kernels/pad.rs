//! The zero-padded copy of a conv's input region ([`PadGeo`]): whole-vector rows with the
//! padding columns in place, so the micro-kernels never test borders.

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
        let view = input.region();
        // Map columns of a padded row that the view holds (it covers all that are needed).
        let a = self.xin0.max(view.x.start as i64);
        let b = (self.xin0 + self.wp as i64).min(view.x.end as i64);
        if b <= a || self.nrows == 0 {
            dst.fill(0.0);
            return;
        }
        let (da, sa, n) = (
            (a - self.xin0) as usize,
            (a - view.x.start as i64) as usize,
            (b - a) as usize,
        );
        for (ci, plane) in dst.chunks_exact_mut(self.plane).enumerate() {
            let (rows, gap) = plane.split_at_mut(self.nrows * self.wp);
            gap.fill(0.0);
            for (row, iy) in rows.chunks_exact_mut(self.wp).zip(self.iy0..) {
                let src = input.row((c0 + ci) as u32, iy);
                row[..da].fill(0.0);
                row[da..da + n].copy_from_slice(&src[sa..sa + n]);
                row[da + n..].fill(0.0);
            }
        }
    }
}
