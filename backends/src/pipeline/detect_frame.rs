//! One image's boxes on one machine, timed ([`detect_frame`]): layers `[0, upto)` over a
//! grid, the tail, region decoding and NMS — what `tessera detect` runs.

extern crate alloc;
extern crate std;

use alloc::vec::Vec;
use std::time::Instant;

use tessera_core::detect::Detection;
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition, PlanError};
use tessera_core::kernel::Kernels;
use tessera_core::model::weights::{Weights, WeightsError};
use tessera_core::model::Network;

use super::{boxes, run_frame, run_tail, DecodeError, FrameError, TailError};

/// The boxes of one frame and what they cost.
#[derive(Debug)]
pub struct FrameDetections {
    /// Surviving detections, most probable first, relative to the original image.
    pub detections: Vec<Detection>,
    /// Seconds in the fused stack.
    pub stack_secs: f64,
    /// Seconds in the tail.
    pub tail_secs: f64,
    /// Seconds decoding and in NMS.
    pub decode_secs: f64,
}

/// How a frame is split and what boxes are kept.
#[derive(Clone, Copy, Debug)]
pub struct DetectSetup {
    /// Fused layers `[0, upto)`, run tile by tile.
    pub upto: usize,
    /// Tile grid (rows, columns).
    pub grid: (u32, u32),
    /// Grid rule.
    pub partition: Partition,
    /// Plain tiles or data reuse.
    pub mode: Mode,
    /// Box probability threshold.
    pub thresh: f32,
    /// NMS overlap.
    pub nms: f32,
}

/// Why a frame could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The parameters do not cover the network.
    #[error("viewing the weights: {0}")]
    Weights(WeightsError),
    /// The fused stack or the grid is unusable.
    #[error("fusing the layers over the grid: {0}")]
    Plan(PlanError),
    /// The fused stack failed.
    #[error("running the fused stack: {0}")]
    Frame(FrameError),
    /// The tail failed.
    #[error("the tail: {0}")]
    Tail(TailError),
    /// Decoding boxes failed.
    #[error("boxes: {0}")]
    Decode(DecodeError),
}

/// Runs `input` (the network input, letterboxed) through `net` with `kernels` as `setup`
/// says; boxes are relative to the original `image_w × image_h` image.
pub fn detect_frame<K: Kernels>(
    kernels: &K,
    net: &Network,
    params: &[f32],
    input: &[f32],
    (image_w, image_h): (usize, usize),
    setup: &DetectSetup,
) -> Result<FrameDetections, DetectError> {
    let weights = Weights::new(net, net.layers().len(), params).map_err(DetectError::Weights)?;
    let stack = FusedStack::new(net, setup.upto).map_err(DetectError::Plan)?;
    let grid = Grid::new(setup.grid.0, setup.grid.1, setup.partition, &stack)
        .map_err(DetectError::Plan)?;
    let t0 = Instant::now();
    let (fused, _) = run_frame(kernels, &stack, &weights, &grid, setup.mode, input)
        .map_err(DetectError::Frame)?;
    let t1 = Instant::now();
    let tail =
        run_tail(kernels, net, &weights, setup.upto, &fused, &[]).map_err(DetectError::Tail)?;
    let t2 = Instant::now();
    let detections = boxes(net, &tail.output, image_w, image_h, setup.thresh, setup.nms)
        .map_err(DetectError::Decode)?;
    Ok(FrameDetections {
        detections,
        stack_secs: (t1 - t0).as_secs_f64(),
        tail_secs: (t2 - t1).as_secs_f64(),
        decode_secs: t2.elapsed().as_secs_f64(),
    })
}
