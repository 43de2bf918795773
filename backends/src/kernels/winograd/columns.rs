//! How the product stage cuts a chunk's block columns into GEMM register tiles.
//!
//! A chunk of `P` blocks has products for `P` rounded up to a whole lane vector, or to half a
//! vector ([`HALF`] lanes) where a half vector costs half a whole one ([`Lanes::HALVES`]: AVX2,
//! NEON and the portable vector): the last column group of a chunk is often mostly empty (a
//! band of 17 F4 blocks is one vector and one block). The full vectors go in tiles of up to
//! `max_nv`, never leaving a single one alone where a wider tile fits (one vector's six
//! accumulator chains are too few to keep two FMA pipes busy); the half vector joins the last
//! tile when that holds at most `half_nv` full vectors (what fits in registers beside it),
//! else it gets a tile of its own. Each lane's products are the same chain of fused
//! multiply-adds in any tile, so the cut never changes a bit.

use core::ops::Range;

use super::lanes::{Lanes, HALF, W};

/// One GEMM register tile of a chunk: `nv` full vectors from column `first` (a multiple of
/// [`W`]) on, then a half vector when `half`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cols {
    pub first: usize,
    pub nv: usize,
    pub half: bool,
}

impl Cols {
    /// Columns the tile spans.
    pub fn width(&self) -> usize {
        self.nv * W + usize::from(self.half) * HALF
    }
}

/// Columns with products for a chunk of `blocks` blocks on lane vector `L`: rounded up to
/// [`HALF`] lanes where `L` has cheap half vectors, else to [`W`].
pub(super) fn used<L: Lanes>(blocks: usize) -> usize {
    used_by(blocks, step::<L>())
}

/// The rounding of [`used`] on `L`: [`HALF`] or [`W`] lanes.
pub(super) const fn step<L: Lanes>() -> usize {
    if L::HALVES {
        HALF
    } else {
        W
    }
}

/// `blocks` rounded up to a multiple of `step`.
pub(super) fn used_by(blocks: usize, step: usize) -> usize {
    blocks.div_ceil(step) * step
}

/// The tiles over `used` columns (a multiple of [`HALF`]), left to right: full tiles of up
/// to `max_nv` vectors, and a half vector with at most `half_nv` full ones beside it.
pub(super) fn tiles(
    used: usize,
    max_nv: usize,
    half_nv: usize,
) -> impl Iterator<Item = Cols> + Clone {
    let (full, mut half) = (used / W, !used.is_multiple_of(W));
    let mut first = 0;
    core::iter::from_fn(move || {
        let left = full - first / W;
        if half && left <= half_nv {
            half = false;
            let t = Cols {
                first,
                nv: left,
                half: true,
            };
            first += left * W;
            return Some(t);
        }
        if left == 0 {
            return None;
        }
        let mut nv = left.min(max_nv);
        // One vector more than a tile takes: two narrower tiles rather than one alone.
        if left == max_nv + 1 && max_nv >= 3 {
            nv = max_nv - 1;
        }
        // Leave the half vector a full companion (more independent accumulator chains than
        // six half-vector ones alone).
        if half && half_nv > 0 && nv == left {
            nv -= 1;
        }
        let t = Cols {
            first,
            nv,
            half: false,
        };
        first += nv * W;
        Some(t)
    })
}

/// `tiles` in runs (by index) of at most `cols` columns each, a tile wider than that on its
/// own: the product stage runs every output channel block over one run's tiles before the
/// next run, so each block's filters are read once per run, while the run's `V` rows stay in
/// L1.
pub(super) fn panels(
    tiles: impl Iterator<Item = Cols>,
    cols: usize,
) -> impl Iterator<Item = Range<usize>> {
    let mut widths = tiles.map(|t| t.width());
    let mut next = widths.next();
    let mut start = 0;
    core::iter::from_fn(move || {
        let mut width = next?;
        let mut end = start + 1;
        next = widths.next();
        while let Some(w) = next.filter(|w| width + w <= cols) {
            width += w;
            end += 1;
            next = widths.next();
        }
        let run = start..end;
        start = end;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use alloc::vec::Vec;

    use super::*;

    /// The tiles cover every used column once, left to right, within the register limits,
    /// with a half vector only last and no single vector alone behind a wider tile.
    #[test]
    fn tiles_cover_the_used_columns_once() {
        for (max_nv, half_nv) in [(4, 3), (1, 0), (2, 1)] {
            for blocks in 1..200 {
                let used = used_by(blocks, HALF);
                assert!(used >= blocks && used - blocks < HALF);
                let whole = tiles(used_by(blocks, W), max_nv, half_nv).last().unwrap();
                assert!(!whole.half);
                let ts: Vec<Cols> = tiles(used, max_nv, half_nv).collect();
                let mut next = 0;
                for (i, t) in ts.iter().enumerate() {
                    assert_eq!(t.first, next, "{blocks} {ts:?}");
                    assert!(t.nv <= if t.half { half_nv } else { max_nv });
                    assert!(t.nv > 0 || t.half);
                    assert!(!t.half || i == ts.len() - 1);
                    next += t.width();
                    assert!(
                        max_nv < 3 || t.nv != 1 || t.half || i == 0,
                        "{blocks} {ts:?}"
                    );
                }
                assert_eq!(next, used, "{blocks} {ts:?}");
            }
        }
        let cut = |blocks, step| -> Vec<(usize, bool)> {
            tiles(used_by(blocks, step), 4, 3)
                .map(|t| (t.nv, t.half))
                .collect()
        };
        assert_eq!(cut(49, HALF), [(3, true)]);
        assert_eq!(cut(17, HALF), [(1, true)]);
        assert_eq!(cut(64, HALF), [(4, false)]);
        assert_eq!(cut(72, HALF), [(3, false), (1, true)]);
        assert_eq!(cut(152, HALF), [(4, false), (3, false), (2, true)]);
        // Whole vectors: 38 blocks as one tile of 3, 76 as 3 + 2 rather than 4 + 1.
        assert_eq!(cut(38, W), [(3, false)]);
        assert_eq!(cut(76, W), [(3, false), (2, false)]);
        assert_eq!(cut(152, W), [(4, false), (4, false), (2, false)]);
        let one = tiles(used_by(3, HALF), 1, 0).map(|t| t.nv);
        assert_eq!(one.collect::<Vec<_>>(), [0]);
    }

    /// The runs take every tile once, in order, none empty, each within its columns unless
    /// it is one tile.
    #[test]
    fn panels_run_over_every_tile_once() {
        for (max_nv, half_nv) in [(4, 3), (1, 0), (2, 1)] {
            for blocks in 1..200 {
                let used = used_by(blocks, HALF);
                let ts: Vec<Cols> = tiles(used, max_nv, half_nv).collect();
                for cols in [HALF, W, 2 * W, 3 * W, 8 * W] {
                    let mut next = 0;
                    for run in panels(ts.iter().copied(), cols) {
                        assert_eq!(run.start, next);
                        assert!(run.end > run.start);
                        let width: usize = ts[run.clone()].iter().map(Cols::width).sum();
                        assert!(width <= cols || run.len() == 1, "{blocks} {cols} {run:?}");
                        next = run.end;
                    }
                    assert_eq!(next, ts.len());
                }
            }
        }
        // AVX2 (one vector a tile, halves): a 3×3 tile's 49 blocks in two runs of 32 columns.
        let runs: Vec<_> = panels(tiles(used_by(49, HALF), 1, 0), 2 * W).collect();
        assert_eq!(runs, [0..2, 2..4]);
    }
}
