//! The network's tail on the gateway: layers `[L, end)` on full maps after the fused stack.
//!
//! Conv and maxpool run through the core kernels over the whole map; route, reorg and region
//! through `tessera_core::kernel::tail`. Each layer's output is kept until the last layer that
//! reads it (YOLOv2's route at 25 reads layer 16, the first tail layer), then freed.

use std::time::{Duration, Instant};

use tessera_core::kernel::{tail, Kernels};
use tessera_core::model::weights::Weights;
use tessera_core::model::{LayerKind, Network, Shape};
use tessera_core::tensor::{FeatureView, FeatureViewMut};
use tessera_core::Region;

use crate::error::{error, Context, Error};

/// The tail's result.
#[derive(Debug)]
pub struct TailRun {
    /// Output of the last layer (for YOLOv2 the activated region map), CHW.
    pub output: Vec<f32>,
    /// Its shape.
    pub shape: Shape,
    /// Wall time of each tail layer, in order.
    pub layer_times: Vec<(usize, Duration)>,
    /// Wall time of the whole tail.
    pub elapsed: Duration,
}

/// Runs layers `[from, end)` of `net` on full maps. `input` is the output of layer
/// `from − 1` (the stitched fused-stack output); `earlier` gives the outputs of layers before
/// `from − 1` that a tail route reads (none for YOLOv2 from 16). `weights` must cover the
/// tail's conv layers.
pub fn run_tail<K: Kernels>(
    kernels: &K,
    net: &Network,
    weights: &Weights<'_>,
    from: usize,
    input: &[f32],
    earlier: &[(usize, &[f32])],
) -> Result<TailRun, Error> {
    let layers = net.layers();
    if from == 0 || from >= layers.len() {
        return Err(error(
            "running the tail",
            format!(
                "tail must start inside layers 1..{}, not at {from}",
                layers.len()
            ),
        ));
    }
    let in_shape = layers[from - 1].output;
    if Some(input.len()) != in_shape.elements() {
        return Err(error(
            "running the tail",
            format!(
                "input holds {} values, layer {} outputs {}x{}x{}",
                input.len(),
                from - 1,
                in_shape.w,
                in_shape.h,
                in_shape.c
            ),
        ));
    }
    // The last layer reading each output, so it can be dropped after that.
    let mut last_use: Vec<usize> = (0..layers.len()).map(|i| i + 1).collect();
    for (j, l) in layers.iter().enumerate().skip(from) {
        if let LayerKind::Route(r) = &l.kind {
            for &src in r.layers.iter() {
                last_use[src as usize] = last_use[src as usize].max(j);
            }
        }
    }
    let mut outputs: Vec<Option<Vec<f32>>> = vec![None; layers.len()];
    outputs[from - 1] = Some(input.to_vec());
    for &(i, data) in earlier {
        outputs
            .get_mut(i)
            .ok_or_else(|| error("running the tail", format!("no layer {i}")))?
            .replace(data.to_vec());
    }
    let start = Instant::now();
    let mut layer_times = Vec::with_capacity(layers.len() - from);
    for (j, layer) in layers.iter().enumerate().skip(from) {
        let t0 = Instant::now();
        let ctx = || format!("tail layer {j}");
        let out_len = layer
            .output
            .elements()
            .ok_or_else(|| error(ctx(), "output size overflows"))?;
        let mut out = vec![0.0f32; out_len];
        let prev = || {
            outputs[j - 1]
                .as_deref()
                .ok_or_else(|| error(ctx(), format!("output of layer {} is gone", j - 1)))
        };
        match &layer.kind {
            LayerKind::Conv(conv) => {
                let params = weights
                    .conv(j)
                    .ok_or_else(|| error(ctx(), "the weights do not cover this layer"))?;
                let map = layer.input;
                let src =
                    FeatureView::new(prev()?, Region::full(map.w, map.h), map.c).context(ctx)?;
                let o = layer.output;
                let mut dst =
                    FeatureViewMut::new(&mut out, Region::full(o.w, o.h), o.c).context(ctx)?;
                kernels
                    .conv(conv, map, &params, &src, &mut dst)
                    .context(ctx)?;
            }
            LayerKind::MaxPool(pool) => {
                let map = layer.input;
                let src =
                    FeatureView::new(prev()?, Region::full(map.w, map.h), map.c).context(ctx)?;
                let o = layer.output;
                let mut dst =
                    FeatureViewMut::new(&mut out, Region::full(o.w, o.h), o.c).context(ctx)?;
                kernels.maxpool(pool, map, &src, &mut dst).context(ctx)?;
            }
            LayerKind::Route(r) => {
                let mut sources = Vec::with_capacity(r.layers.len());
                for &src in r.layers.iter() {
                    let src = src as usize;
                    let data = outputs[src]
                        .as_deref()
                        .ok_or_else(|| error(ctx(), format!("route source {src} was not given")))?;
                    sources.push((data, layers[src].output));
                }
                tail::route(&sources, &mut out).context(ctx)?;
            }
            LayerKind::Reorg(r) => {
                tail::reorg(prev()?, layer.input, r.stride, &mut out).context(ctx)?;
            }
            LayerKind::Region(p) => {
                tail::region(prev()?, layer.input, p, &mut out).context(ctx)?;
            }
        }
        outputs[j] = Some(out);
        for (i, slot) in outputs.iter_mut().enumerate().take(j) {
            if last_use[i] <= j {
                *slot = None;
            }
        }
        layer_times.push((j, t0.elapsed()));
    }
    let last = layers.len() - 1;
    Ok(TailRun {
        output: outputs[last].take().unwrap_or_default(),
        shape: layers[last].output,
        layer_times,
        elapsed: start.elapsed(),
    })
}
