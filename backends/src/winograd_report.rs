//! What the Winograd kernels cost in accuracy and in tile overlap (std), measured for
//! `tessera bench winograd`:
//!
//! - [`layer_errors`]: per fused conv layer, the worst error of the direct FMA and the Winograd
//!   kernel against the exact output (f64 sums, then batch norm and activation in f64) over
//!   bands of output rows, relative to `|a|·Σ|w·x| + |b|` of each output (`a`, `b` the folded
//!   batch norm); each layer's input is the FMA kernel's output of the layer before;
//! - [`overlap`]: the multiply-accumulates a tiled frame plans with block-aligned regions
//!   against plain ones, and what the kernel computes in whole blocks past its regions.

extern crate alloc;
extern crate std;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use tessera_core::ftp::{tile_macs, FusedStack, Grid, Mode, Partition, TilePlan};
use tessera_core::kernel::{align_region, batch_norm, Kernels};
use tessera_core::model::weights::{ConvParams, Weights};
use tessera_core::model::{Activation, Conv, LayerKind, Network, Shape};
use tessera_core::region::{Region, Span};
use tessera_core::tensor::{FeatureView, FeatureViewMut};

use crate::bench::{layer_name, BenchError};
use crate::kernels::{Fma, Form, Winograd};
use crate::pipeline::AlignedBuf;

/// Worst relative errors of one conv layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerError {
    /// Layer index.
    pub layer: usize,
    /// What the layer is.
    pub name: String,
    /// The Winograd form of the layer, `None` when it runs direct.
    pub form: Option<Form>,
    /// Outputs compared (each kernel).
    pub outputs: u64,
    /// Direct FMA kernel: worst `|out − exact| / (|a|·Σ|w·x| + |b|)`.
    pub direct: f64,
    /// Winograd kernel, the same measure.
    pub winograd: f64,
}

/// The exact output `(o, x, y)` of `conv` and its scale `|a|·Σ|w·x| + |b|`, in f64.
fn exact(
    conv: &Conv,
    map: Shape,
    params: &ConvParams<'_>,
    input: &[f32],
    (o, x, y): (usize, u32, u32),
) -> (f64, f64) {
    let (k, s, p) = (conv.size as i64, conv.stride as i64, conv.pad as i64);
    let (w, h, c) = (map.w as i64, map.h as i64, map.c as usize);
    let (mut sum, mut abs) = (0.0f64, 0.0f64);
    for ci in 0..c {
        for ky in 0..k {
            let iy = y as i64 * s - p + ky;
            if iy < 0 || iy >= h {
                continue;
            }
            for kx in 0..k {
                let ix = x as i64 * s - p + kx;
                if ix < 0 || ix >= w {
                    continue;
                }
                let wv = params.weights
                    [((o * c + ci) * k as usize + ky as usize) * k as usize + kx as usize]
                    as f64;
                let xv = input[(ci * h as usize + iy as usize) * w as usize + ix as usize] as f64;
                sum += wv * xv;
                abs += (wv * xv).abs();
            }
        }
    }
    let f = batch_norm::fold(params, o);
    let mut z = sum * f.scale + f.shift as f64;
    if conv.activation == Activation::Leaky && z <= 0.0 {
        z *= 0.1;
    }
    (z, f.scale.abs() * abs + (f.shift as f64).abs())
}

/// Worst relative error of `k` on `region` of a conv layer.
fn worst<K: Kernels>(
    k: &K,
    conv: &Conv,
    map: Shape,
    params: &ConvParams<'_>,
    input: &[f32],
    region: Region,
) -> Result<f64, BenchError> {
    let iv =
        FeatureView::new(input, Region::full(map.w, map.h), map.c).map_err(BenchError::View)?;
    let n = conv.filters as usize;
    let mut out = vec![0.0f32; region.area() as usize * n];
    let mut ov = FeatureViewMut::new(&mut out, region, conv.filters).map_err(BenchError::View)?;
    k.conv(conv, map, params, &iv, &mut ov)
        .map_err(|error| BenchError::Kernel { layer: 0, error })?;
    let mut worst = 0.0f64;
    let mut i = 0;
    for o in 0..n {
        for y in region.y.start..region.y.end {
            for x in region.x.start..region.x.end {
                let (z, scale) = exact(conv, map, params, input, (o, x, y));
                if scale > 0.0 {
                    worst = worst.max((out[i] as f64 - z).abs() / scale);
                }
                i += 1;
            }
        }
    }
    Ok(worst)
}

/// Per conv layer of `[0, upto)`, the worst errors over its first `rows` output rows and
/// `rows` rows in the middle (borders and interior), direct and Winograd (`wino`).
pub fn layer_errors(
    net: &Network,
    weights: &Weights<'_>,
    wino: &Winograd<'_>,
    upto: usize,
    image: &[f32],
    rows: u32,
) -> Result<Vec<LayerError>, BenchError> {
    let fma = Fma::new();
    let mut cur = AlignedBuf::from_slice(image);
    let mut result = Vec::new();
    for (l, layer) in net.layers().iter().take(upto).enumerate() {
        let (i, o) = (layer.input, layer.output);
        let iv = FeatureView::new(cur.as_slice(), Region::full(i.w, i.h), i.c)
            .map_err(BenchError::View)?;
        let mut next = AlignedBuf::new(o.elements().unwrap_or(0));
        let mut ov = FeatureViewMut::new(next.as_mut_slice(), Region::full(o.w, o.h), o.c)
            .map_err(BenchError::View)?;
        let res = match &layer.kind {
            LayerKind::Conv(c) => {
                let p = weights.conv(l).ok_or(BenchError::Weights { layer: l })?;
                let r = rows.min(o.h);
                let mid = (o.h - r) / 2;
                let bands = [
                    Region::new(Span::new(0, o.w), Span::new(0, r)),
                    Region::new(Span::new(0, o.w), Span::new(mid, mid + r)),
                ];
                let (mut d, mut w) = (0.0f64, 0.0f64);
                for band in bands {
                    d = d.max(worst(&fma, c, i, &p, cur.as_slice(), band)?);
                    w = w.max(worst(wino, c, i, &p, cur.as_slice(), band)?);
                }
                result.push(LayerError {
                    layer: l,
                    name: layer_name(layer),
                    form: wino.form_for(c, i),
                    outputs: 2 * u64::from(r) * u64::from(o.w) * u64::from(o.c),
                    direct: d,
                    winograd: w,
                });
                fma.conv(c, i, &p, &iv, &mut ov)
            }
            LayerKind::MaxPool(p) => fma.maxpool(p, i, &iv, &mut ov),
            _ => return Err(BenchError::NotFusable { layer: l }),
        };
        res.map_err(|error| BenchError::Kernel { layer: l, error })?;
        cur = next;
    }
    Ok(result)
}

/// Multiply-accumulates of one tiled frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Overlap {
    /// Tile rows and columns.
    pub grid: (u32, u32),
    /// With data reuse.
    pub reuse: bool,
    /// The full frame's MACs.
    pub frame: u64,
    /// Planned MACs of the tiles with plain (unaligned) regions: direct kernels.
    pub plain: u64,
    /// Planned MACs with block-aligned regions (Winograd layers' inputs widened).
    pub aligned: u64,
    /// What the kernels compute: `aligned`, with each Winograd layer's regions rounded out to
    /// whole blocks (for F2, whose plans are not aligned, the blocks past the region edges).
    pub blocks: u64,
}

/// [`Overlap`] of `grid` (Darknet partition) over `stack` with kernels `wino`.
pub fn overlap(
    stack: &FusedStack<'_>,
    wino: &Winograd<'_>,
    grid: (u32, u32),
    mode: Mode,
) -> Result<Overlap, BenchError> {
    let aligned = stack.aligned(wino);
    let plan_err = BenchError::Plan;
    let count = |s: &FusedStack<'_>, whole: bool| -> Result<u64, BenchError> {
        let g = Grid::new(grid.0, grid.1, Partition::Darknet, s).map_err(plan_err)?;
        let mut total = 0u64;
        for t in 0..g.tile_count() {
            let plan = TilePlan::new(s, &g, t, mode).map_err(plan_err)?;
            total += if whole {
                block_macs(s, wino, &plan)
            } else {
                tile_macs(s, &plan)
            };
        }
        Ok(total)
    };
    let one = Grid::new(1, 1, Partition::Darknet, stack).map_err(plan_err)?;
    let frame_plan = TilePlan::new(stack, &one, 0, Mode::Plain).map_err(plan_err)?;
    Ok(Overlap {
        grid,
        reuse: mode == Mode::Reuse,
        frame: tile_macs(stack, &frame_plan),
        plain: count(stack, false)?,
        aligned: count(&aligned, false)?,
        blocks: count(&aligned, true)?,
    })
}

/// [`tile_macs`] with each Winograd layer's output region rounded out to its blocks.
fn block_macs(stack: &FusedStack<'_>, wino: &Winograd<'_>, plan: &TilePlan) -> u64 {
    stack
        .layers()
        .iter()
        .enumerate()
        .map(|(l, layer)| match &layer.kind {
            LayerKind::Conv(c) => {
                let o = layer.output;
                let m = wino.form_for(c, layer.input).map_or(1, |f| f.m() as u32);
                align_region(plan.output(l), m, o.w, o.h)
                    .area()
                    .saturating_mul(u64::from(o.c) * u64::from(layer.input.c))
                    .saturating_mul(u64::from(c.size * c.size))
            }
            _ => 0,
        })
        .sum()
}
