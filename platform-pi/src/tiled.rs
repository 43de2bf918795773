//! Running the fused layers of one frame on this machine, whole or tile by tile.
//!
//! Tiles run in the data source's order (level 0 first, then level 1), each from the input
//! region a data source would ship it, through the core executor, and are stitched into the
//! full output map. With reuse, level-0 tiles leave their overlap strips in a [`StripCache`]
//! for the level-1 tiles, as the gateway's strip cache does in a cluster.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tessera_core::exec::{run_tile, StripStore};
use tessera_core::ftp::{FusedStack, Grid, MemoryPlan, Mode, Side, TilePlan};
use tessera_core::kernel::Kernels;
use tessera_core::model::weights::Weights;
use tessera_core::tensor::{copy_overlap, region_len, FeatureView, FeatureViewMut};
use tessera_core::{exec::ExecError, Region};

use crate::error::{Context, Error};

/// One stored strip: its region, channel count and CHW values.
#[derive(Debug)]
struct Strip {
    region: Region,
    channels: u32,
    data: Vec<f32>,
}

/// Strips kept in memory, keyed as the executor puts them: (sender tile, layer, side).
#[derive(Default, Debug)]
pub struct StripCache {
    strips: HashMap<(usize, usize, Side), Strip>,
}

impl StripCache {
    /// Total bytes of strips held.
    pub fn bytes(&self) -> usize {
        self.strips.values().map(|s| s.data.len() * 4).sum()
    }
}

impl StripStore for StripCache {
    fn put(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        strip: &FeatureView<'_>,
    ) -> Result<(), ExecError> {
        let strip = Strip {
            region: strip.region(),
            channels: strip.channels(),
            data: strip.data().to_vec(),
        };
        self.strips.insert((tile, layer, side), strip);
        Ok(())
    }

    fn get(&self, tile: usize, layer: usize, side: Side) -> Option<FeatureView<'_>> {
        let s = self.strips.get(&(tile, layer, side))?;
        FeatureView::new(&s.data, s.region, s.channels).ok()
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
    let mut buf_a = vec![0.0f32; memory.tile_buffer_elems];
    let mut buf_b = vec![0.0f32; memory.tile_buffer_elems];
    let mut tile_in = vec![0.0f32; memory.tile_input_elems];
    let mut tile_out = vec![0.0f32; memory.tile_output_elems];
    let full_region = Region::full(out_shape.w, out_shape.h);
    let mut output =
        vec![0.0f32; region_len(&full_region, out_shape.c).context(|| "sizing the output")?];
    let image = FeatureView::new(input, Region::full(in_shape.w, in_shape.h), in_shape.c)
        .context(|| "viewing the input")?;
    let mut strips = StripCache::default();
    let mut macs = 0u64;
    let start = Instant::now();
    for tile in grid.schedule() {
        let plan =
            TilePlan::new(stack, grid, tile, mode).context(|| format!("planning tile {tile}"))?;
        macs += tessera_core::ftp::tile_macs(stack, &plan);
        let r0 = plan.input(0);
        let mut dst = FeatureViewMut::new(&mut tile_in, r0, in_shape.c).context(|| "tile input")?;
        copy_overlap(&image, &mut dst);
        let src = FeatureView::new(&tile_in, r0, in_shape.c).context(|| "tile input")?;
        let result = run_tile(
            kernels,
            stack,
            weights,
            &plan,
            &src,
            &mut buf_a,
            &mut buf_b,
            &mut strips,
            &mut tile_out,
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
