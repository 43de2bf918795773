//! The regions one tile holds, computes, sends and receives at every fused layer.

use super::reuse::{self, Chain};
use super::{FusedStack, Grid, Level, PlanError, Side, MAX_FUSED};
use crate::region::Region;

/// Whether tiles exchange overlap data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Plain FTP: every tile computes its whole dependency cone.
    #[default]
    Plain,
    /// Data reuse (docs/design.md §3): level-0 tiles run plain and hand strips to level-1
    /// neighbours, which compute reduced regions. All or nothing per tile: when a neighbour's strips are missing
    /// the caller runs the level-1 tile in [`Mode::Plain`] instead.
    Reuse,
}

/// One tile's regions at each fused layer `ℓ < L`.
#[derive(Clone, Copy, Debug)]
pub struct TilePlan {
    tile: usize,
    len: usize,
    mode: Mode,
    level: Level,
    neighbours: [Option<usize>; 4],
    chain: Chain,
    send: [[Region; 4]; MAX_FUSED],
}

impl TilePlan {
    /// Plans `tile` of `grid` over `stack` in `mode`.
    pub fn new(
        stack: &FusedStack<'_>,
        grid: &Grid,
        tile: usize,
        mode: Mode,
    ) -> Result<TilePlan, PlanError> {
        let out = stack.output();
        if grid.extent() != (out.w, out.h) {
            return Err(PlanError::GridMismatch);
        }
        let tiles = grid.tile_count();
        if tile >= tiles {
            return Err(PlanError::TileOutOfRange { tile, tiles });
        }
        let level = grid.level(tile);
        let mut neighbours = [None; 4];
        for side in Side::ALL {
            neighbours[side.index()] = grid.neighbour(tile, side);
        }
        let mut send = [[Region::default(); 4]; MAX_FUSED];
        let chain = match (mode, level) {
            (Mode::Plain, _) => reuse::plain(stack, grid.tile_region(tile)),
            (Mode::Reuse, Level::One) => reuse::reduced(stack, grid, tile)?,
            (Mode::Reuse, Level::Zero) => {
                // Send exactly what each level-1 neighbour's reduced plan receives from us.
                for side in Side::ALL {
                    let Some(n) = neighbours[side.index()] else {
                        continue;
                    };
                    let theirs = reuse::reduced(stack, grid, n)?;
                    for (l, row) in send.iter_mut().enumerate().take(stack.len()) {
                        row[side.index()] = theirs.receive[l][side.opposite().index()];
                    }
                }
                reuse::plain(stack, grid.tile_region(tile))
            }
        };
        Ok(TilePlan {
            tile,
            len: stack.len(),
            mode,
            level,
            neighbours,
            chain,
            send,
        })
    }

    /// The task id this plan is for.
    pub const fn tile(&self) -> usize {
        self.tile
    }

    /// Number of fused layers planned.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always false: a plan covers at least one layer.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The mode the plan was made in.
    pub const fn mode(&self) -> Mode {
        self.mode
    }

    /// The tile's checkerboard level.
    pub const fn level(&self) -> Level {
        self.level
    }

    /// True when this plan computes reduced regions and needs strips (level 1, Reuse).
    pub fn is_reduced(&self) -> bool {
        self.mode == Mode::Reuse && self.level == Level::One
    }

    /// The neighbouring task on `side`, if any.
    pub const fn neighbour(&self, side: Side) -> Option<usize> {
        self.neighbours[side.index()]
    }

    /// `Î_ℓ`: the region of layer `layer`'s input the tile holds (empty past the stack).
    pub fn input(&self, layer: usize) -> Region {
        self.get(layer, &self.chain.input)
    }

    /// `Ô_ℓ`: the region of layer `layer`'s output the tile computes (empty past the stack).
    /// At `L − 1` it is the grid tile.
    pub fn output(&self, layer: usize) -> Region {
        self.get(layer, &self.chain.output)
    }

    /// Strip of layer `layer`'s output this level-1 Reuse tile receives from its neighbour on
    /// `side`; empty otherwise.
    pub fn receive(&self, layer: usize, side: Side) -> Region {
        if layer < self.len {
            self.chain.receive[layer][side.index()]
        } else {
            Region::default()
        }
    }

    /// Strip of layer `layer`'s output this level-0 Reuse tile hands to its neighbour on
    /// `side`; empty otherwise. Equals that neighbour's `receive(layer, side.opposite())`.
    pub fn send(&self, layer: usize, side: Side) -> Region {
        if layer < self.len {
            self.send[layer][side.index()]
        } else {
            Region::default()
        }
    }

    fn get(&self, layer: usize, table: &[Region; MAX_FUSED]) -> Region {
        if layer < self.len {
            table[layer]
        } else {
            Region::default()
        }
    }
}
