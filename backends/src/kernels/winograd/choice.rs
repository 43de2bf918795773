//! Per-layer choice of F4, F2 or direct convolution for the plan a run actually uses
//! ([`Winograd::planned`](super::Winograd::planned)), from a cost model over the layer shapes
//! and the tiles' output regions.
//!
//! F4 saves the most multiplications, but its blocks must be computed whole, so a tiled plan
//! rounds every F4 layer's output region out to the 4-grid, which widens the regions of every
//! layer above it. On YOLOv2's 38- and 76-wide maps a 3×3 grid's tiles are 13–26 outputs
//! wide, and that rounding costs more than F4 saves. The model therefore prices whole plans:
//! for each assignment of a method to each class of eligible layers (layers of equal conv and
//! input shape share a method, since
//! [`Kernels::conv_alignment`](tessera_core::kernel::Kernels::conv_alignment) sees only the shape), it plans
//! every tile of the grid with the stack aligned to that assignment and sums the estimated cost
//! of every layer's output region; the cheapest assignment wins (ties: the one with fewer
//! transformed layers). The choice depends only on the stack, grid, mode and the constants
//! below, so every node of a cluster computes the same one.
//!
//! Costs are in direct-convolution multiply-accumulates (MACs) of the FMA kernel:
//! - direct conv: `area · k · c · size²`; max pool: [`POOL`] per window tap;
//! - per call, [`STREAM`] per transformed filter value the call reads ([`STREAM_DIRECT`] per
//!   filter value of a direct call; tiles pay it once each);
//! - Winograd, per `m × m` block its region touches: `α²·c·kp` GEMM MACs at [`GEMM`] each
//!   (last tile padding, products stored and reloaded between channel passes) plus
//!   [`TRANSFORM`] per transformed element (`α²·(c + kp)`: the input and output transforms,
//!   which stream `V` and `M` through the caches).
//!
//! The constants were fitted to per-layer times of the hand-written AVX-512 stages on an
//! x86_64 Zen 5 machine (F4 layers 2, 8 and 12 against direct; the per-call filter streaming
//! from the extra time of 3×3 tiles of layers 12/14, docs/kernels.md); they only rank the
//! options.

extern crate alloc;

use alloc::vec::Vec;

use tessera_core::ftp::{FusedStack, Grid, Mode, PlanError, TilePlan};
use tessera_core::model::{Conv, LayerKind, Shape};
use tessera_core::region::Region;

use super::{Form, Winograd, MR};

/// Cost of one Winograd GEMM multiply-accumulate, in direct MACs.
pub const GEMM: f64 = 1.44;

/// Cost of one transformed element (input or output transform), in direct MACs.
pub const TRANSFORM: f64 = 10.0;

/// Cost of one max-pool window tap, in direct MACs.
pub const POOL: f64 = 0.25;

/// Cost of streaming one transformed filter value into a Winograd call, in direct MACs: every
/// call (every tile of every layer) reads its layer's filters once, and the deep layers'
/// filters (MiBs; F4's are 4× the direct ones, F2's 1.8×) do not stay cached between tiles.
pub const STREAM: f64 = 50.0;

/// The same for one filter value of a direct call (fitted to 3×3 tiles of YOLOv2's layers
/// 12/14, whose direct calls take about 1.4 ms each over their share of the frame).
pub const STREAM_DIRECT: f64 = 125.0;

/// Largest number of assignments tried exhaustively (3 methods per class); past it the
/// classes are chosen one at a time, the others fixed.
const EXHAUSTIVE: usize = 729;

/// How a class of layers runs: `None` direct.
pub type Method = Option<Form>;

/// A conv and its input map: layers with equal keys run the same way.
pub type Key = (Conv, Shape);

/// The methods tried, in the order ties resolve to.
const METHODS: [Method; 3] = [None, Some(Form::F2), Some(Form::F4)];

/// Estimated cost of one call computing output region `r` of `conv` on input map `map` with
/// `method` (nothing for an empty region).
pub fn conv_cost(conv: &Conv, map: Shape, method: Method, r: Region) -> f64 {
    if r.is_empty() {
        return 0.0;
    }
    let (c, k) = (f64::from(map.c), f64::from(conv.filters));
    let taps = f64::from(conv.size * conv.size);
    match method {
        None => r.area() as f64 * k * c * taps + STREAM_DIRECT * k * c * taps,
        Some(form) => {
            let m = form.m() as u32;
            let blocks = |s: tessera_core::region::Span| {
                if s.is_empty() {
                    0
                } else {
                    s.end.div_ceil(m) - s.start / m
                }
            };
            let n = f64::from(blocks(r.x)) * f64::from(blocks(r.y));
            let e = form.elems() as f64;
            let kp = (conv.filters as usize).div_ceil(MR) as f64 * MR as f64;
            n * (GEMM * e * c * kp + TRANSFORM * e * (c + kp)) + STREAM * e * c * kp
        }
    }
}

/// Estimated cost of one frame on `grid` in `mode` with `kernels` (the stack aligned to it).
pub fn plan_cost(
    stack: &FusedStack<'_>,
    grid: &Grid,
    mode: Mode,
    kernels: &Winograd<'_>,
) -> Result<f64, PlanError> {
    let aligned = stack.aligned(kernels);
    let mut total = 0.0;
    for t in 0..grid.tile_count() {
        let plan = TilePlan::new(&aligned, grid, t, mode)?;
        for (l, layer) in aligned.layers().iter().enumerate() {
            let r = plan.output(l);
            total += match &layer.kind {
                LayerKind::Conv(conv) => {
                    conv_cost(conv, layer.input, kernels.form_for(conv, layer.input), r)
                }
                LayerKind::MaxPool(p) => {
                    r.area() as f64 * f64::from(layer.output.c) * f64::from(p.size * p.size) * POOL
                }
                _ => 0.0,
            };
        }
    }
    Ok(total)
}

/// The cheapest method per class of `base`'s eligible layers in `stack` for `grid` in `mode`.
pub fn choose(
    base: &Winograd<'_>,
    stack: &FusedStack<'_>,
    grid: &Grid,
    mode: Mode,
) -> Result<Vec<(Key, Method)>, PlanError> {
    let mut keys: Vec<Key> = Vec::new();
    for layer in stack.layers() {
        if let LayerKind::Conv(conv) = &layer.kind {
            let key = (*conv, layer.input);
            if base.eligible(conv, layer.input) && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    let with = |methods: &[Method]| {
        let table = keys.iter().copied().zip(methods.iter().copied()).collect();
        base.clone().with_table(table)
    };
    let cost = |methods: &[Method]| plan_cost(stack, grid, mode, &with(methods));
    let n = keys.len();
    let mut best: Vec<Method> = alloc::vec![None; n];
    let mut best_cost = cost(&best)?;
    let combos = 3usize.checked_pow(n as u32).filter(|&c| c <= EXHAUSTIVE);
    if let Some(combos) = combos {
        for i in 1..combos {
            let methods: Vec<Method> = (0..n)
                .map(|j| METHODS[i / 3usize.pow(j as u32) % 3])
                .collect();
            let c = cost(&methods)?;
            if c < best_cost {
                (best, best_cost) = (methods, c);
            }
        }
    } else {
        for j in 0..n {
            for method in &METHODS[1..] {
                let mut methods = best.clone();
                methods[j] = *method;
                let c = cost(&methods)?;
                if c < best_cost {
                    (best, best_cost) = (methods, c);
                }
            }
        }
    }
    Ok(keys.into_iter().zip(best).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::model::Activation;
    use tessera_core::region::Span;

    fn conv(filters: u32) -> Conv {
        Conv {
            filters,
            size: 3,
            stride: 1,
            pad: 1,
            batch_norm: true,
            activation: Activation::Leaky,
        }
    }

    #[test]
    fn whole_blocks_are_priced_and_deep_layers_favour_f4() {
        let map = Shape::new(38, 38, 256);
        let full = Region::full(38, 38);
        let direct = conv_cost(&conv(512), map, None, full);
        let f2 = conv_cost(&conv(512), map, Some(Form::F2), full);
        let f4 = conv_cost(&conv(512), map, Some(Form::F4), full);
        assert!(f4 < f2 && f2 < direct, "{f4} {f2} {direct}");
        // One output row past a block edge costs a whole extra block row.
        let r = |y1| Region::new(Span::new(0, 38), Span::new(0, y1));
        let stream = conv_cost(&conv(512), map, Some(Form::F4), r(0));
        let a = conv_cost(&conv(512), map, Some(Form::F4), r(4));
        let b = conv_cost(&conv(512), map, Some(Form::F4), r(5));
        let c = conv_cost(&conv(512), map, Some(Form::F4), r(8));
        assert_eq!(stream, 0.0);
        assert!(a > 0.0 && b == c && b < 2.0 * a);
    }

    #[test]
    fn few_channels_stay_direct() {
        let map = Shape::new(64, 64, 3);
        let full = Region::full(64, 64);
        let direct = conv_cost(&conv(32), map, None, full);
        assert!(conv_cost(&conv(32), map, Some(Form::F4), full) > direct);
        assert!(conv_cost(&conv(32), map, Some(Form::F2), full) > direct);
    }
}
