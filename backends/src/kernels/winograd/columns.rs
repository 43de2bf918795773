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

use super::lanes::{Lanes, HALF, W};

/// One GEMM register tile of a chunk: `nv` full vectors from column `first` (a multiple of
/// [`W`]) on, then a half vector when `half`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cols {
    pub first: usize,
    pub nv: usize,
    pub half: bool,
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
pub(super) fn tiles(used: usize, max_nv: usize, half_nv: usize) -> impl Iterator<Item = Cols> {
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
                    next += t.nv * W + if t.half { HALF } else { 0 };
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
}
