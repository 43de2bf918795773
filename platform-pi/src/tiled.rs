//! Running the fused layers of one frame on this machine, whole or tile by tile.
//!
//! Tiles run in the data source's order (level 0 first, then level 1), each from the input
//! region a data source would ship it, through the core executor, and are stitched into the
//! full output map. With reuse, level-0 tiles leave their overlap strips in a strip map (the
//! driver's, as the gateway's cache holds them in a cluster) for the level-1 tiles.

use std::time::{Duration, Instant};

use tessera_backends::driver::{StripMap, Strips};
use tessera_core::exec::run_tile;
use tessera_core::ftp::{FusedStack, Grid, MemoryPlan, Mode, TilePlan};
use tessera_core::kernel::Kernels;
use tessera_core::model::weights::Weights;
use tessera_core::tensor::{copy_overlap, region_len, FeatureView, FeatureViewMut};
use tessera_core::Region;

use crate::error::{Context, Error};

/// A zeroed buffer of `f32` whose first element is 64-byte aligned (a cache line); `Vec<f32>`
/// only guarantees 4 bytes (large allocations usually sit 16 bytes past a page boundary).
/// Alignment never changes results, only how many cache lines a row of vector stores touches.
pub(crate) struct Aligned {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl Aligned {
    /// Floats per cache line.
    const LINE: usize = 16;

    /// `len` zeros.
    pub(crate) fn new(len: usize) -> Self {
        let buf = vec![0.0f32; len + Self::LINE];
        let off = buf.as_ptr().align_offset(64).min(Self::LINE);
        Aligned { buf, off, len }
    }

    /// A copy of `src`.
    pub(crate) fn from_slice(src: &[f32]) -> Self {
        let mut a = Aligned::new(src.len());
        a.as_mut_slice().copy_from_slice(src);
        a
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// What one frame cost.
#[derive(Clone, Debug)]
pub struct FrameStats {
    /// Wall time of all tiles (input extraction, compute, stitching).
    pub elapsed: Duration,
    /// Tiles run.
    pub tiles: usize,
    /// Multiply-accumulates actually computed over all tiles.
    pub macs: u64,
    /// Bytes of strips exchanged (reuse only).
    pub strip_bytes: usize,
}

/// Runs layers `[0, L)` of `stack` on `input` (CHW, the network input) over `grid`, stitching
/// the tiles' outputs into the full output map.
pub fn run_frame<K: Kernels>(
    kernels: &K,
    stack: &FusedStack<'_>,
    weights: &Weights<'_>,
    grid: &Grid,
    mode: Mode,
    input: &[f32],
) -> Result<(Vec<f32>, FrameStats), Error> {
    let in_shape = stack.input();
    let out_shape = stack.output();
    let memory = MemoryPlan::new(stack, grid, mode).context(|| "planning memory")?;
    // Cache-line-aligned layer buffers: a kernel's output rows then start on lines, so its
    // 16-column tiles store whole lines (a few percent on the wide early layers).
    let mut buf_a = Aligned::new(memory.tile_buffer_elems);
    let mut buf_b = Aligned::new(memory.tile_buffer_elems);
    let mut tile_in = Aligned::new(memory.tile_input_elems);
    let mut tile_out = Aligned::new(memory.tile_output_elems);
    let full_region = Region::full(out_shape.w, out_shape.h);
    let mut output =
        vec![0.0f32; region_len(&full_region, out_shape.c).context(|| "sizing the output")?];
    let image = FeatureView::new(input, Region::full(in_shape.w, in_shape.h), in_shape.c)
        .context(|| "viewing the input")?;
    let mut held = Strips::new();
    let mut strips = StripMap(&mut held);
    let mut macs = 0u64;
    let start = Instant::now();
    for tile in grid.schedule() {
        let plan =
            TilePlan::new(stack, grid, tile, mode).context(|| format!("planning tile {tile}"))?;
        macs += tessera_core::ftp::tile_macs(stack, &plan);
        let r0 = plan.input(0);
        let mut dst =
            FeatureViewMut::new(tile_in.as_mut_slice(), r0, in_shape.c).context(|| "tile input")?;
        copy_overlap(&image, &mut dst);
        let src = FeatureView::new(tile_in.as_slice(), r0, in_shape.c).context(|| "tile input")?;
        let result = run_tile(
            kernels,
            stack,
            weights,
            &plan,
            &src,
            buf_a.as_mut_slice(),
            buf_b.as_mut_slice(),
            &mut strips,
            tile_out.as_mut_slice(),
        )
        .context(|| format!("running tile {tile}"))?;
        let mut full =
            FeatureViewMut::new(&mut output, full_region, out_shape.c).context(|| "output")?;
        copy_overlap(&result, &mut full);
    }
    let stats = FrameStats {
        elapsed: start.elapsed(),
        tiles: grid.tile_count(),
        macs,
        strip_bytes: strips.bytes(),
    };
    Ok((output, stats))
}
