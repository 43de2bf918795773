//! Random fused stacks run tile by tile: a stack from layer specs ([`build`]), seeded
//! parameters ([`net_params`]), a grid's tiles run through the executor and stitched
//! ([`tiled`]), and a bit-for-bit comparison ([`same_bits`]).

use tessera_core::exec::{run_tile, TileInput, TileJob};
use tessera_core::ftp::{FusedStack, Grid, MemoryPlan, Mode, TilePlan};
use tessera_core::kernel::Kernels;
use tessera_core::model::weights::{param_count, Weights};
use tessera_core::model::{Activation, Conv, LayerKind, MaxPool, Network, Shape};
use tessera_core::region::Region;
use tessera_core::rng::SplitMix64;
use tessera_core::tensor::{copy_overlap, FeatureView, FeatureViewMut};

use crate::MapStore;

/// `(k, stride, filters)` of a conv (batch norm, leaky, padding `k/2`), or `None` for a
/// 2×2/2 max pool.
pub type Spec = Option<(u32, u32, u32)>;

/// A `w × h × c` network of `specs`, cut short where a layer no longer fits.
pub fn build(w: u32, h: u32, c: u32, specs: &[Spec]) -> Network {
    let mut net = Network::new(Shape::new(w, h, c)).unwrap();
    for s in specs {
        let kind = match *s {
            Some((k, stride, filters)) => LayerKind::Conv(Conv {
                filters,
                size: k,
                stride,
                pad: k / 2,
                batch_norm: true,
                activation: Activation::Leaky,
            }),
            None => LayerKind::MaxPool(MaxPool {
                size: 2,
                stride: 2,
                pad: 1,
            }),
        };
        if net.push(kind).is_err() {
            break;
        }
    }
    net
}

/// Parameters of layers `[0, upto)` in Darknet order, from `rng` (variances positive).
pub fn net_params(net: &Network, upto: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let mut v = Vec::with_capacity(param_count(net, upto).unwrap());
    for l in &net.layers()[..upto] {
        if let Some(c) = l.conv() {
            let n = c.filters as usize;
            v.extend((0..n).map(|_| rng.uniform_f32(-1.0, 1.0)));
            v.extend((0..n).map(|_| rng.uniform_f32(-1.0, 1.0) + 1.5));
            v.extend((0..n).map(|_| rng.uniform_f32(-1.0, 1.0) * 0.5));
            v.extend((0..n).map(|_| rng.uniform_f32(-1.0, 1.0).abs() + 0.1));
            v.extend((0..c.weight_count(l.input.c).unwrap()).map(|_| rng.uniform_f32(-1.0, 1.0)));
        }
    }
    v
}

/// Runs every tile of `grid` (schedule order) with `k` and stitches the outputs.
pub fn tiled<K: Kernels>(
    k: &K,
    stack: &FusedStack<'_>,
    grid: &Grid,
    mode: Mode,
    w: &Weights<'_>,
    input: &[f32],
) -> Vec<f32> {
    let (ishape, oshape) = (stack.input(), stack.output());
    let full_in = FeatureView::new(input, Region::full(ishape.w, ishape.h), ishape.c).unwrap();
    let mem = MemoryPlan::new(stack, grid, mode).unwrap();
    let mut store = MapStore::default();
    let mut result = vec![f32::NAN; oshape.elements().unwrap()];
    let mut a = vec![f32::NAN; mem.tile_buffer_elems];
    let mut b = vec![f32::NAN; mem.tile_buffer_elems];
    let mut out = vec![f32::NAN; mem.tile_output_elems];
    for t in grid.schedule() {
        let plan = TilePlan::new(stack, grid, t, mode).unwrap();
        let mut own = vec![0.0; mem.tile_input_elems];
        let mut iv = FeatureViewMut::new(&mut own, plan.input(0), ishape.c).unwrap();
        copy_overlap(&full_in, &mut iv);
        let got = run_tile(
            TileJob {
                kernels: k,
                stack,
                weights: w,
                plan: &plan,
                input: TileInput::View(&iv.as_view()),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut store,
            },
            &mut out,
        )
        .unwrap();
        let mut rv =
            FeatureViewMut::new(&mut result, Region::full(oshape.w, oshape.h), oshape.c).unwrap();
        copy_overlap(&got, &mut rv);
    }
    result
}

/// True when `a` and `b` hold the same values bit for bit.
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
