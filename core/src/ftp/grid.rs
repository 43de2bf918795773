//! The output grid (docs/design.md §2.2), checkerboard levels and neighbours (§3.1).

use super::{FusedStack, PlanError, MAX_GRID};
use crate::region::{Region, Span};

/// How an axis is split into tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Partition {
    /// DeepThings' rule: `step = ⌈W/M⌉`, the last tile takes the remainder. Byte counts of the
    /// C peers depend on it, hence the default.
    #[default]
    Darknet,
    /// `X_j = [⌊jW/M⌋ .. ⌊(j+1)W/M⌋)`: tile sizes differ by at most one.
    Balanced,
}

/// Checkerboard class of a tile: level 0 runs plain FTP, level 1 may reuse neighbours' data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// `(i + j)` even.
    Zero,
    /// `(i + j)` odd.
    One,
}

/// A side of a tile. The declaration order (below, right, above, left) is the wire order of
/// strips in docs/design.md §3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Row `i + 1`.
    Below,
    /// Column `j + 1`.
    Right,
    /// Row `i − 1`.
    Above,
    /// Column `j − 1`.
    Left,
}

impl Side {
    /// All sides in wire order.
    pub const ALL: [Side; 4] = [Side::Below, Side::Right, Side::Above, Side::Left];

    /// The side facing this one from the neighbour.
    pub const fn opposite(self) -> Side {
        match self {
            Side::Below => Side::Above,
            Side::Right => Side::Left,
            Side::Above => Side::Below,
            Side::Left => Side::Right,
        }
    }

    /// Position in [`Side::ALL`] (0..4), used to index per-side tables.
    pub const fn index(self) -> usize {
        match self {
            Side::Below => 0,
            Side::Right => 1,
            Side::Above => 2,
            Side::Left => 3,
        }
    }
}

/// `N × M` tiles over the last fused layer's output; task id `t = i·M + j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    rows: u32,
    cols: u32,
    width: u32,
    height: u32,
    xs: [Span; MAX_GRID as usize],
    ys: [Span; MAX_GRID as usize],
}

/// Splits `0..extent` into `n` non-empty spans, or reports the degenerate configuration.
fn split(
    extent: u32,
    n: u32,
    partition: Partition,
) -> Result<[Span; MAX_GRID as usize], PlanError> {
    let degenerate = PlanError::DegenerateGrid { extent, tiles: n };
    let mut spans = [Span::default(); MAX_GRID as usize];
    match partition {
        Partition::Darknet => {
            let step = extent.div_ceil(n);
            // The C code never checks this; past it the last tile is empty or inverted.
            if (n - 1) * step >= extent {
                return Err(degenerate);
            }
            for (j, s) in spans.iter_mut().enumerate().take(n as usize) {
                let j = j as u32;
                let end = if j + 1 == n { extent } else { (j + 1) * step };
                *s = Span::new(j * step, end);
            }
        }
        Partition::Balanced => {
            if n > extent {
                return Err(degenerate);
            }
            let at = |j: u32| (j as u64 * extent as u64 / n as u64) as u32;
            for (j, s) in spans.iter_mut().enumerate().take(n as usize) {
                *s = Span::new(at(j as u32), at(j as u32 + 1));
            }
        }
    }
    Ok(spans)
}

impl Grid {
    /// `rows × cols` tiles (`N` along the height, `M` along the width) over `stack`'s output.
    pub fn new(
        rows: u32,
        cols: u32,
        partition: Partition,
        stack: &FusedStack<'_>,
    ) -> Result<Grid, PlanError> {
        if !(1..=MAX_GRID).contains(&rows) || !(1..=MAX_GRID).contains(&cols) {
            return Err(PlanError::GridSize { rows, cols });
        }
        let out = stack.output();
        Ok(Grid {
            rows,
            cols,
            width: out.w,
            height: out.h,
            xs: split(out.w, cols, partition)?,
            ys: split(out.h, rows, partition)?,
        })
    }

    /// Tile rows `N`.
    pub const fn rows(&self) -> u32 {
        self.rows
    }

    /// Tile columns `M`.
    pub const fn cols(&self) -> u32 {
        self.cols
    }

    /// Width and height of the map the grid covers.
    pub const fn extent(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Number of tiles `N·M`.
    pub const fn tile_count(&self) -> usize {
        (self.rows * self.cols) as usize
    }

    /// `(i, j)` of task `tile`, or `None` when out of range.
    pub const fn position(&self, tile: usize) -> Option<(u32, u32)> {
        if tile >= self.tile_count() {
            return None;
        }
        Some((tile as u32 / self.cols, tile as u32 % self.cols))
    }

    /// The tile's region of the last fused layer's output (empty when out of range).
    pub fn tile_region(&self, tile: usize) -> Region {
        match self.position(tile) {
            Some((i, j)) => Region::new(self.xs[j as usize], self.ys[i as usize]),
            None => Region::default(),
        }
    }

    /// Checkerboard level: `(i + j)` even is [`Level::Zero`] (out-of-range tiles too).
    pub const fn level(&self, tile: usize) -> Level {
        match self.position(tile) {
            Some((i, j)) if (i + j) % 2 == 1 => Level::One,
            _ => Level::Zero,
        }
    }

    /// The 4-neighbour of `tile` on `side`, if it exists.
    pub const fn neighbour(&self, tile: usize, side: Side) -> Option<usize> {
        let Some((i, j)) = self.position(tile) else {
            return None;
        };
        let (i, j) = match side {
            Side::Below if i + 1 < self.rows => (i + 1, j),
            Side::Right if j + 1 < self.cols => (i, j + 1),
            Side::Above if i > 0 => (i - 1, j),
            Side::Left if j > 0 => (i, j - 1),
            _ => return None,
        };
        Some((i * self.cols + j) as usize)
    }

    /// Dispatch order: all level-0 tiles row-major, then all level-1 tiles row-major, so every
    /// level-1 tile comes after the neighbours it reuses data from.
    pub fn schedule(&self) -> impl Iterator<Item = usize> {
        let g = *self;
        let n = self.tile_count();
        (0..n)
            .filter(move |&t| g.level(t) == Level::Zero)
            .chain((0..n).filter(move |&t| g.level(t) == Level::One))
    }
}
