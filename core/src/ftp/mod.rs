//! Fused Tile Partitioning (docs/design.md §2–§3).
//!
//! A [`FusedStack`] is the prefix of conv/maxpool layers run on the edges. A [`Grid`] splits the
//! last fused layer's output into tiles; a [`TilePlan`] propagates one tile's region backwards
//! through the stack, in plain FTP or with data reuse (checkerboard levels, reduced regions,
//! strips); [`band`] cuts layers 0 and 1 into row bands; a [`MemoryPlan`] sizes the buffers and counts traffic and work per frame.
//!
//! Regions are half-open (see [`crate::region`]); the inclusive `[a..b]` of docs/design.md is
//! `Span::inclusive(a, b)`.

pub mod band;
mod error;
mod grid;
mod memory;
mod plan;
mod reuse;
mod shape;
mod stack;

pub use error::PlanError;
pub use grid::{Grid, Level, Partition, Side};
pub use memory::{frame_macs, tile_macs, MemoryPlan};
pub use plan::{Mode, TilePlan};
pub use shape::{GridShape, ParseGridError};
pub use stack::FusedStack;

/// Most layers a [`FusedStack`] may fuse (bounds the per-tile region tables).
pub const MAX_FUSED: usize = 32;
/// Most tile rows or columns of a [`Grid`] (grids up to 8×8).
pub const MAX_GRID: u32 = 8;
/// Most tiles of a [`Grid`] (`MAX_GRID²`).
pub const MAX_TILES: usize = (MAX_GRID * MAX_GRID) as usize;
