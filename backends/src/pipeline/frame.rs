//! Running the fused layers of one frame on one machine, whole or tile by tile.
//!
//! Tiles run in the data source's order (level 0 first, then level 1) through the core
//! executor, each reading its input region of the image in place (a data source ships exactly
//! that region; on one machine the image is already here), and are stitched into the full
//! output map. With reuse, level-0 tiles leave their overlap strips in a strip map (the
//! driver's, as the gateway's cache holds them in a cluster) for the level-1 tiles.

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use tessera_core::exec::{run_tile, ExecError, TileInput, TileJob};
use tessera_core::ftp::{tile_macs, FusedStack, Grid, MemoryPlan, Mode, PlanError, TilePlan};
use tessera_core::kernel::Kernels;
use tessera_core::model::weights::Weights;
use tessera_core::tensor::{copy_overlap, region_len, FeatureView, FeatureViewMut, ViewError};
use tessera_core::Region;

use super::AlignedBuf;
use crate::driver::{StripMap, Strips};

/// Why a frame could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The memory plan of the stack and grid was refused.
    #[error("planning memory: {0}")]
    Memory(PlanError),
    /// Tile `tile` could not be planned.
    #[error("planning tile {tile}: {error}")]
    Plan {
        /// The tile.
        tile: usize,
        /// Why.
        error: PlanError,
    },
    /// `input` is not the network input's size.
    #[error("viewing the input: {0}")]
    Input(ViewError),
    /// The output map's size overflows.
    #[error("sizing the output: {0}")]
    Output(ViewError),
    /// Tile `tile` failed in the executor.
    #[error("running tile {tile}: {error}")]
    Tile {
        /// The tile.
        tile: usize,
        /// Why.
        error: ExecError,
    },
}

/// What one frame cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameStats {
    /// Tiles run.
    pub tiles: usize,
    /// Multiply-accumulates actually computed over all tiles.
    pub macs: u64,
    /// Bytes of strips exchanged (reuse only).
    pub strip_bytes: usize,
}

/// The buffers [`run_frame_in`] works in, sized from the memory plan of one stack, grid and
/// mode: made once, they serve every frame run with them (a node allocates its buffers once;
/// a benchmark then times the layers, not the allocator).
pub struct FrameBuffers {
    buf_a: AlignedBuf,
    buf_b: AlignedBuf,
    tile_out: AlignedBuf,
    output: Vec<f32>,
    /// The reuse strips, kept from frame to frame so their memory is reused
    /// ([`StripMap::recycle`]).
    strips: Strips,
}

impl FrameBuffers {
    /// Buffers for `grid` in `mode` over `stack` [aligned](FusedStack::aligned) to `kernels`.
    pub fn new<K: Kernels>(
        kernels: &K,
        stack: &FusedStack<'_>,
        grid: &Grid,
        mode: Mode,
    ) -> Result<FrameBuffers, FrameError> {
        let stack = stack.aligned(kernels);
        let memory = MemoryPlan::new(&stack, grid, mode).map_err(FrameError::Memory)?;
        let out = stack.output();
        let output_len =
            region_len(&Region::full(out.w, out.h), out.c).map_err(FrameError::Output)?;
        // Cache-line-aligned layer buffers: a kernel's output rows then start on lines, so its
        // 16-column tiles store whole lines (a few percent on the wide early layers).
        Ok(FrameBuffers {
            buf_a: AlignedBuf::new(memory.tile_buffer_elems),
            buf_b: AlignedBuf::new(memory.tile_buffer_elems),
            tile_out: AlignedBuf::new(memory.tile_output_elems),
            output: vec![0.0; output_len],
            strips: Strips::new(),
        })
    }

    /// The output map of the last frame run in these buffers.
    pub fn output(&self) -> &[f32] {
        &self.output
    }
}

/// Runs layers `[0, L)` of `stack` on `input` (CHW, the network input) over `grid`, stitching
/// the tiles' outputs into the full output map. A 1x1 grid is the whole frame on one device.
/// The plans are made from `stack` [aligned](FusedStack::aligned) to `kernels`' block grids.
pub fn run_frame<K: Kernels>(
    kernels: &K,
    stack: &FusedStack<'_>,
    weights: &Weights<'_>,
    grid: &Grid,
    mode: Mode,
    input: &[f32],
) -> Result<(Vec<f32>, FrameStats), FrameError> {
    let mut bufs = FrameBuffers::new(kernels, stack, grid, mode)?;
    let stats = run_frame_in(kernels, stack, weights, grid, mode, input, &mut bufs)?;
    Ok((bufs.output, stats))
}

/// [`run_frame`] in buffers made for the same stack, grid and mode ([`FrameBuffers::new`]);
/// the output map is left in them ([`FrameBuffers::output`]).
pub fn run_frame_in<K: Kernels>(
    kernels: &K,
    stack: &FusedStack<'_>,
    weights: &Weights<'_>,
    grid: &Grid,
    mode: Mode,
    input: &[f32],
    bufs: &mut FrameBuffers,
) -> Result<FrameStats, FrameError> {
    let aligned = stack.aligned(kernels);
    let stack = &aligned;
    let in_shape = stack.input();
    let out_shape = stack.output();
    let FrameBuffers {
        buf_a,
        buf_b,
        tile_out,
        output,
        strips: held,
    } = bufs;
    let full_region = Region::full(out_shape.w, out_shape.h);
    let image = FeatureView::new(input, Region::full(in_shape.w, in_shape.h), in_shape.c)
        .map_err(FrameError::Input)?;
    let mut strips = StripMap(held);
    strips.recycle();
    let mut macs = 0u64;
    for tile in grid.schedule() {
        let plan = TilePlan::new(stack, grid, tile, mode)
            .map_err(|error| FrameError::Plan { tile, error })?;
        macs += tile_macs(stack, &plan);
        let failed = |error: ExecError| FrameError::Tile { tile, error };
        let result = run_tile(
            TileJob {
                kernels,
                stack,
                weights,
                plan: &plan,
                input: TileInput::View(&image),
                buf_a: buf_a.as_mut_slice(),
                buf_b: buf_b.as_mut_slice(),
                strips: &mut strips,
            },
            tile_out.as_mut_slice(),
        )
        .map_err(failed)?;
        let mut full =
            FeatureViewMut::new(output, full_region, out_shape.c).map_err(FrameError::Output)?;
        copy_overlap(&result, &mut full);
    }
    Ok(FrameStats {
        tiles: grid.tile_count(),
        macs,
        strip_bytes: strips.bytes(),
    })
}
