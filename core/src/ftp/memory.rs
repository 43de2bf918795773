//! Buffer sizes, traffic and work per frame for a grid and mode (docs/design.md §2.5, §2.6, §3.2).

use super::band::{buffer_elems, buffer_elems_in};
use super::{FusedStack, Grid, Mode, Partition, PlanError, Side, TilePlan};
use crate::model::weights::{layer_param_count, param_count};
use crate::model::LayerKind;
use crate::region::Region;

/// Memory, traffic and compute of running one frame through a fused stack on a grid.
///
/// Byte figures assume f32 activations; `in + out` is counted per layer (weights apart, see
/// the `*_with_weights` fields), and the peak is the maximum over tiles and layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Capacity in f32 of EACH of the two ping-pong buffers `exec::run_tile` needs for the
    /// largest tile ([`band::scratch_elems`](super::band::scratch_elems): every intermediate
    /// output `Ô_ℓ` and stitched input `Î_{ℓ+1}`, with layer 0's output replaced by one row
    /// band when the tile is banded). Like the other `tile_*_elems`, it also covers a level-1
    /// tile's Plain fallback in Reuse mode.
    pub tile_buffer_elems: usize,
    /// Capacities in f32 of the first and of the second ping-pong buffer for the largest tile
    /// ([`band::buffer_elems`](super::band::buffer_elems)): the larger is
    /// `tile_buffer_elems`; the stack's largest output sits in one buffer only.
    pub tile_buffers_elems: [usize; 2],
    /// The same when each tile's input is cut into the end of the second buffer
    /// ([`band::buffer_elems_in`](super::band::buffer_elems_in)): the second is larger only
    /// where the input and the first step's scratch exceed what it needs for later layers.
    pub tile_buffers_in_elems: [usize; 2],
    /// Largest layer-0 input of a tile, in f32 (`|Î_0| · C_0`).
    pub tile_input_elems: usize,
    /// Largest last-layer output of a tile, in f32 (grid tile × `C'_{L−1}`).
    pub tile_output_elems: usize,
    /// Max over tiles and layers of `(|Î_ℓ|·C_ℓ + |Ô_ℓ|·C'_ℓ) · 4`.
    pub tile_peak_bytes: u64,
    /// The same for the unpartitioned frame (1×1 grid).
    pub full_peak_bytes: u64,
    /// Max over tiles and layers of input + output + that layer's weights, in bytes (§2.6).
    pub tile_peak_with_weights_bytes: u64,
    /// The same for the unpartitioned frame.
    pub full_peak_with_weights_bytes: u64,
    /// Total strip bytes exchanged per frame (0 in [`Mode::Plain`]).
    pub strip_bytes: u64,
    /// Total layer-0 input bytes shipped to tiles per frame.
    pub input_bytes: u64,
    /// Total result bytes per frame (the last layer's full output).
    pub output_bytes: u64,
    /// Multiply-accumulates of all tiles of a frame.
    pub tiled_macs: u64,
    /// Multiply-accumulates of the unpartitioned stack (`net.macs(L)`).
    pub full_macs: u64,
}

/// Per-layer `(input, output, weights)` byte counts of one planned tile, folded into peaks.
struct Peaks {
    plain: u64,
    with_weights: u64,
}

fn peaks(stack: &FusedStack<'_>, plan: &TilePlan) -> Result<Peaks, PlanError> {
    let mut p = Peaks {
        plain: 0,
        with_weights: 0,
    };
    for (l, layer) in stack.layers().iter().enumerate() {
        let io = bytes(plan.input(l), layer.input.c)? + bytes(plan.output(l), layer.output.c)?;
        let w = layer_param_count(stack.network(), l).map_err(|_| PlanError::Overflow)? as u64;
        p.plain = p.plain.max(io);
        p.with_weights = p.with_weights.max(io + 4 * w);
    }
    Ok(p)
}

fn elems(r: Region, channels: u32) -> Result<u64, PlanError> {
    r.area()
        .checked_mul(channels as u64)
        .ok_or(PlanError::Overflow)
}

fn bytes(r: Region, channels: u32) -> Result<u64, PlanError> {
    elems(r, channels)?
        .checked_mul(4)
        .ok_or(PlanError::Overflow)
}

fn to_usize(v: u64) -> Result<usize, PlanError> {
    usize::try_from(v).map_err(|_| PlanError::Overflow)
}

impl MemoryPlan {
    /// Plans every tile of `grid` in `mode` and gathers the figures.
    pub fn new(stack: &FusedStack<'_>, grid: &Grid, mode: Mode) -> Result<MemoryPlan, PlanError> {
        let layers = stack.layers();
        let last = stack.len() - 1;
        let mut m = MemoryPlan {
            tile_buffer_elems: 0,
            tile_buffers_elems: [0; 2],
            tile_buffers_in_elems: [0; 2],
            tile_input_elems: 0,
            tile_output_elems: 0,
            tile_peak_bytes: 0,
            full_peak_bytes: 0,
            tile_peak_with_weights_bytes: 0,
            full_peak_with_weights_bytes: 0,
            strip_bytes: 0,
            input_bytes: 0,
            output_bytes: bytes(
                Region::full(stack.output().w, stack.output().h),
                stack.output().c,
            )?,
            tiled_macs: 0,
            full_macs: stack.macs(),
        };
        let (mut buffers, mut buffers_in) = ([0u64; 2], [0u64; 2]);
        let (mut input, mut output) = (0u64, 0u64);
        for t in 0..grid.tile_count() {
            let plan = TilePlan::new(stack, grid, t, mode)?;
            // Capacities also cover the Plain fallback of a level-1 Reuse tile (never smaller).
            let plain = TilePlan::new(stack, grid, t, Mode::Plain)?;
            for sized in [&plan, &plain] {
                let [a, b] = buffer_elems(stack, sized)?;
                buffers = [buffers[0].max(a), buffers[1].max(b)];
                let [a, b] = buffer_elems_in(stack, sized)?;
                buffers_in = [buffers_in[0].max(a), buffers_in[1].max(b)];
                input = input.max(elems(sized.input(0), stack.input().c)?);
                output = output.max(elems(sized.output(last), stack.output().c)?);
            }
            for (l, layer) in layers.iter().enumerate().take(last) {
                let c = layer.output.c;
                for side in Side::ALL {
                    let s = bytes(plan.receive(l, side), c)?;
                    m.strip_bytes = m.strip_bytes.checked_add(s).ok_or(PlanError::Overflow)?;
                }
            }
            let i = elems(plan.input(0), stack.input().c)?;
            m.input_bytes = m
                .input_bytes
                .checked_add(i * 4)
                .ok_or(PlanError::Overflow)?;
            let p = peaks(stack, &plan)?;
            m.tile_peak_bytes = m.tile_peak_bytes.max(p.plain);
            m.tile_peak_with_weights_bytes = m.tile_peak_with_weights_bytes.max(p.with_weights);
            m.tiled_macs = m
                .tiled_macs
                .checked_add(tile_macs(stack, &plan))
                .ok_or(PlanError::Overflow)?;
        }
        m.tile_buffers_elems = [to_usize(buffers[0])?, to_usize(buffers[1])?];
        m.tile_buffer_elems = to_usize(buffers[0].max(buffers[1]))?;
        m.tile_buffers_in_elems = [to_usize(buffers_in[0])?, to_usize(buffers_in[1])?];
        m.tile_input_elems = to_usize(input)?;
        m.tile_output_elems = to_usize(output)?;
        let whole = Grid::new(1, 1, Partition::Darknet, stack)?;
        let p = peaks(stack, &TilePlan::new(stack, &whole, 0, Mode::Plain)?)?;
        m.full_peak_bytes = p.plain;
        m.full_peak_with_weights_bytes = p.with_weights;
        Ok(m)
    }

    /// Bytes of the fused layers' parameters (`4 ×` their f32 count); FTP never splits them.
    pub fn weight_bytes(stack: &FusedStack<'_>) -> Result<u64, PlanError> {
        let n = param_count(stack.network(), stack.len()).map_err(|_| PlanError::Overflow)?;
        (n as u64).checked_mul(4).ok_or(PlanError::Overflow)
    }

    /// Tiled work over unpartitioned work (1.0 = no redundant compute); 0 for an empty stack.
    pub fn macs_ratio(&self) -> f64 {
        if self.full_macs == 0 {
            return 0.0;
        }
        self.tiled_macs as f64 / self.full_macs as f64
    }
}

/// Multiply-accumulates one tile performs (region-exact: only `Ô_ℓ` is computed).
pub fn tile_macs(stack: &FusedStack<'_>, plan: &TilePlan) -> u64 {
    stack
        .layers()
        .iter()
        .enumerate()
        .map(|(l, layer)| match &layer.kind {
            LayerKind::Conv(c) => plan
                .output(l)
                .area()
                .saturating_mul(layer.output.c as u64 * layer.input.c as u64)
                .saturating_mul(c.size as u64 * c.size as u64),
            _ => 0,
        })
        .fold(0u64, u64::saturating_add)
}

/// Multiply-accumulates of all tiles of one frame on `grid` in `mode`.
pub fn frame_macs(stack: &FusedStack<'_>, grid: &Grid, mode: Mode) -> Result<u64, PlanError> {
    (0..grid.tile_count()).try_fold(0u64, |acc, t| {
        let plan = TilePlan::new(stack, grid, t, mode)?;
        acc.checked_add(tile_macs(stack, &plan))
            .ok_or(PlanError::Overflow)
    })
}
