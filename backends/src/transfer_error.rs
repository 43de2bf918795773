//! What a smaller wire precision costs ([`transfer_error`]): the fused stack's output map as
//! a gateway stitches it from tile results packed in `f16` or `i8` (each tile's exact output
//! rounded once, as `driver::packed` sends it; strips kept local, so nothing else is rounded),
//! against the exact map, and the boxes the tail then finds against the exact boxes.

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use tessera_core::detect::{iou, Detection};
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition, TilePlan};
use tessera_core::kernel::Kernels;
use tessera_core::model::weights::Weights;
use tessera_core::model::Network;
use tessera_core::tensor::{copy_overlap, FeatureView, FeatureViewMut, ViewError};
use tessera_core::wire::{Precision, Tensor, WireError};
use tessera_core::Region;

use crate::driver::packed;
use crate::pipeline::{boxes, run_frame, run_tail, DetectError, DetectSetup};

/// Why the error could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// Running the network failed.
    #[error("{0}")]
    Detect(DetectError),
    /// A tile's values could not be packed.
    #[error("packing a tile: {0}")]
    Pack(WireError),
    /// A map or tile did not fit its region.
    #[error("viewing a map: {0}")]
    View(ViewError),
}

/// The error of one precision on one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferError {
    /// The precision of the tile results.
    pub precision: Precision,
    /// Largest absolute error of a value of the fused stack's output map.
    pub max_abs: f32,
    /// Mean absolute error over the map.
    pub mean_abs: f32,
    /// Largest magnitude in the exact map (the scale `max_abs` compares with).
    pub max_value: f32,
    /// Boxes found from the exact map.
    pub boxes_exact: usize,
    /// Boxes found from the rounded map.
    pub boxes: usize,
    /// Exact boxes with a box of the same class at IoU ≥ 0.5 among the rounded ones.
    pub matched: usize,
    /// Smallest IoU of an exact box with its best same-class rounded box (1 when all match
    /// exactly; 0 when one has none).
    pub min_iou: f32,
    /// Largest probability change of an exact box and its best same-class rounded box.
    pub max_prob_change: f32,
    /// The most probable box's probability, exact and rounded.
    pub top_prob: (f32, f32),
}

/// The map `exact` (the fused stack's output over `grid`) as a gateway stitches it from tile
/// results packed in `precision`.
fn rounded_map(
    stack: &FusedStack<'_>,
    grid: &Grid,
    exact: &[f32],
    precision: Precision,
) -> Result<Vec<f32>, MeasureError> {
    let out = stack.output();
    let full = Region::full(out.w, out.h);
    let last = stack.layers().len() - 1;
    let view_err = MeasureError::View;
    let src = FeatureView::new(exact, full, out.c).map_err(view_err)?;
    let mut map = vec![0.0f32; exact.len()];
    for tile in 0..grid.tile_count() {
        let plan = TilePlan::new(stack, grid, tile, Mode::Plain)
            .map_err(|e| MeasureError::Detect(DetectError::Plan(e)))?;
        let region = plan.output(last);
        let mut values = vec![0.0f32; region.area() as usize * out.c as usize];
        let mut dst = FeatureViewMut::new(&mut values, region, out.c).map_err(view_err)?;
        copy_overlap(&src, &mut dst);
        // The bytes a node sends, read back as the gateway reads them.
        let bytes = packed::values(&values, out.c, precision).map_err(MeasureError::Pack)?;
        let t = Tensor::packed(region, out.c, precision, &bytes).map_err(MeasureError::Pack)?;
        let back: Vec<f32> = t.values().collect();
        let tile_view = FeatureView::new(&back, region, out.c).map_err(view_err)?;
        let mut whole = FeatureViewMut::new(&mut map, full, out.c).map_err(view_err)?;
        copy_overlap(&tile_view, &mut whole);
    }
    Ok(map)
}

/// Compares the boxes of the rounded map with the exact ones.
fn compare_boxes(exact: &[Detection], rounded: &[Detection]) -> (usize, f32, f32) {
    let (mut matched, mut min_iou, mut max_dp) = (0, 1.0f32, 0.0f32);
    for e in exact {
        let best = rounded
            .iter()
            .filter(|r| r.class == e.class)
            .map(|r| (iou(&e.bbox(), &r.bbox()), r.prob))
            .fold(None, |b: Option<(f32, f32)>, x| match b {
                Some(b) if b.0 >= x.0 => Some(b),
                _ => Some(x),
            });
        match best {
            Some((i, p)) => {
                matched += usize::from(i >= 0.5);
                min_iou = min_iou.min(i);
                max_dp = max_dp.max((p - e.prob).abs());
            }
            None => {
                min_iou = 0.0;
                max_dp = max_dp.max(e.prob);
            }
        }
    }
    (matched, min_iou, max_dp)
}

/// The error of each of `precisions` on the frame `input` (the letterboxed network input of an
/// `image_w × image_h` picture): the fused layers `[0, setup.upto)` over `setup.grid` (Plain),
/// then the tail and the boxes.
pub fn transfer_error<K: Kernels>(
    kernels: &K,
    net: &Network,
    params: &[f32],
    input: &[f32],
    (image_w, image_h): (usize, usize),
    setup: &DetectSetup,
    precisions: &[Precision],
) -> Result<Vec<TransferError>, MeasureError> {
    let d = MeasureError::Detect;
    let weights =
        Weights::new(net, net.layers().len(), params).map_err(|e| d(DetectError::Weights(e)))?;
    let stack = FusedStack::new(net, setup.upto).map_err(|e| d(DetectError::Plan(e)))?;
    let grid = Grid::new(setup.grid.0, setup.grid.1, Partition::Darknet, &stack)
        .map_err(|e| d(DetectError::Plan(e)))?;
    let (exact, _) = run_frame(kernels, &stack, &weights, &grid, Mode::Plain, input)
        .map_err(|e| d(DetectError::Frame(e)))?;
    let detect = |map: &[f32]| -> Result<Vec<Detection>, MeasureError> {
        let tail = run_tail(kernels, net, &weights, setup.upto, map, &[])
            .map_err(|e| d(DetectError::Tail(e)))?;
        boxes(net, &tail.output, image_w, image_h, setup.thresh, setup.nms)
            .map_err(|e| d(DetectError::Decode(e)))
    };
    let exact_boxes = detect(&exact)?;
    let max_value = exact.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut out = Vec::new();
    for &precision in precisions {
        let map = rounded_map(&stack, &grid, &exact, precision)?;
        let (mut max_abs, mut sum) = (0.0f32, 0.0f64);
        for (a, b) in map.iter().zip(&exact) {
            let d = (a - b).abs();
            max_abs = max_abs.max(d);
            sum += f64::from(d);
        }
        let found = detect(&map)?;
        let (matched, min_iou, max_prob_change) = compare_boxes(&exact_boxes, &found);
        out.push(TransferError {
            precision,
            max_abs,
            mean_abs: (sum / exact.len().max(1) as f64) as f32,
            max_value,
            boxes_exact: exact_boxes.len(),
            boxes: found.len(),
            matched,
            min_iou,
            max_prob_change,
            top_prob: (
                exact_boxes.first().map_or(0.0, |d| d.prob),
                found.first().map_or(0.0, |d| d.prob),
            ),
        });
    }
    Ok(out)
}
