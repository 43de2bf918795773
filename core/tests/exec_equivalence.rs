//! Stitched tiles equal the unpartitioned frame bit for bit (docs/design.md §2.7), in plain FTP
//! and with data reuse, over random stacks, inputs, grids and weights.

use proptest::prelude::*;
use tessera_core::exec::{run_tile, NoStrips, TileInput, TileJob};
use tessera_core::ftp::{
    FusedStack, Grid, Level, MemoryPlan, Mode, Partition, PlanError, TilePlan,
};
use tessera_core::kernel::{Kernels, Reference};
use tessera_core::model::weights::{param_count, Weights};
use tessera_core::model::{Activation, Conv, LayerKind, MaxPool, Network, Shape};
use tessera_core::region::Region;
use tessera_core::rng::SplitMix64;
use tessera_core::tensor::{copy_overlap, FeatureView, FeatureViewMut};
use tessera_testkit::MapStore;

#[derive(Clone, Debug)]
enum Spec {
    Conv {
        k: u32,
        stride: u32,
        no_pad: bool,
        filters: u32,
        bn: bool,
        leaky: bool,
    },
    Pool {
        size: u32,
        stride: u32,
        pad: u32,
    },
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        3 => (
            prop::sample::select(vec![1u32, 3, 5]),
            1u32..=2,
            prop::bool::weighted(0.2),
            1u32..=4,
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(k, stride, no_pad, filters, bn, leaky)| Spec::Conv {
                k,
                stride,
                no_pad,
                filters,
                bn,
                leaky
            }),
        1 => prop::sample::select(vec![(2u32, 2u32, 1u32), (2, 2, 0), (3, 2, 2), (2, 1, 1)])
            .prop_map(|(size, stride, pad)| Spec::Pool { size, stride, pad }),
    ]
}

/// Pushes the specs that fit (a layer too large for the shrunken map ends the stack).
fn build(w: u32, h: u32, c: u32, specs: &[Spec]) -> Network {
    let mut net = Network::new(Shape::new(w, h, c)).unwrap();
    for s in specs {
        let kind = match *s {
            Spec::Conv {
                k,
                stride,
                no_pad,
                filters,
                bn,
                leaky,
            } => LayerKind::Conv(Conv {
                filters,
                size: k,
                stride,
                pad: if no_pad { 0 } else { k / 2 },
                batch_norm: bn,
                activation: if leaky {
                    Activation::Leaky
                } else {
                    Activation::Linear
                },
            }),
            Spec::Pool { size, stride, pad } => LayerKind::MaxPool(MaxPool { size, stride, pad }),
        };
        if net.push(kind).is_err() {
            break;
        }
    }
    net
}

/// Random parameters in Darknet layout; variances are kept positive.
fn params(net: &Network, upto: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let mut v = Vec::with_capacity(param_count(net, upto).unwrap());
    for l in &net.layers()[..upto] {
        if let Some(c) = l.conv() {
            let n = c.filters as usize;
            v.extend((0..n).map(|_| rng.uniform_f32(-1.0, 1.0)));
            if c.batch_norm {
                v.extend((0..n).map(|_| rng.uniform_f32(-1.0, 1.0) + 1.5));
                v.extend((0..n).map(|_| rng.uniform_f32(-1.0, 1.0) * 0.5));
                v.extend((0..n).map(|_| rng.uniform_f32(-1.0, 1.0).abs() + 0.1));
            }
            v.extend((0..c.weight_count(l.input.c).unwrap()).map(|_| rng.uniform_f32(-1.0, 1.0)));
        }
    }
    v
}

/// The unpartitioned stack, layer by layer over whole maps.
fn full_frame(net: &Network, upto: usize, w: &Weights<'_>, input: &[f32]) -> Vec<f32> {
    let mut cur = input.to_vec();
    for (l, layer) in net.layers()[..upto].iter().enumerate() {
        let (i, o) = (layer.input, layer.output);
        let iv = FeatureView::new(&cur, Region::full(i.w, i.h), i.c).unwrap();
        let mut next = vec![0.0; o.elements().unwrap()];
        let mut ov = FeatureViewMut::new(&mut next, Region::full(o.w, o.h), o.c).unwrap();
        match &layer.kind {
            LayerKind::Conv(c) => Reference
                .conv(c, i, &w.conv(l).unwrap(), &iv, &mut ov)
                .unwrap(),
            LayerKind::MaxPool(p) => Reference.maxpool(p, i, &iv, &mut ov).unwrap(),
            _ => unreachable!(),
        }
        cur = next;
    }
    cur
}

/// Runs every tile (level 0 first) and stitches the grid tiles into a full map. Level-1 tiles
/// listed in `fallback` run in Plain mode even in Reuse mode.
#[allow(clippy::too_many_arguments)]
fn tiled(
    stack: &FusedStack<'_>,
    grid: &Grid,
    mode: Mode,
    w: &Weights<'_>,
    input: &[f32],
    whole_input: bool,
    fallback: &[bool],
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
        let m = if fallback[t] { Mode::Plain } else { mode };
        let plan = TilePlan::new(stack, grid, t, m).unwrap();
        assert_eq!(plan.output(stack.len() - 1), grid.tile_region(t));
        let mut own = vec![0.0; mem.tile_input_elems];
        let mut iv = FeatureViewMut::new(&mut own, plan.input(0), ishape.c).unwrap();
        copy_overlap(&full_in, &mut iv);
        let tile_in = if whole_input { full_in } else { iv.as_view() };
        let got = run_tile(
            TileJob {
                kernels: &Reference,
                stack,
                weights: w,
                plan: &plan,
                input: TileInput::View(&tile_in),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut store,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(got.region(), grid.tile_region(t));
        let mut rv =
            FeatureViewMut::new(&mut result, Region::full(oshape.w, oshape.h), oshape.c).unwrap();
        copy_overlap(&got, &mut rv);
    }
    result
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn tiles_equal_full_frame_bit_for_bit(
        specs in prop::collection::vec(spec(), 2..=7),
        w in 8u32..=48,
        h in 8u32..=48,
        c in 1u32..=4,
        rows in 1u32..=8,
        cols in 1u32..=8,
        balanced in any::<bool>(),
        seed in any::<u64>(),
        whole_input in any::<bool>(),
        fallback_mask in any::<u64>(),
    ) {
        let net = build(w, h, c, &specs);
        prop_assume!(!net.layers().is_empty());
        let upto = net.layers().len();
        let stack = FusedStack::new(&net, upto).unwrap();
        let o = stack.output();
        let partition = if balanced { Partition::Balanced } else { Partition::Darknet };
        // Fold the grid onto the output so most cases are valid; the Darknet rule may still
        // reject some, which must be its typed error.
        let (rows, cols) = (1 + (rows - 1) % o.h.min(8), 1 + (cols - 1) % o.w.min(8));
        let grid = match Grid::new(rows, cols, partition, &stack) {
            Ok(g) => g,
            Err(PlanError::DegenerateGrid { .. }) => {
                prop_assert_eq!(partition, Partition::Darknet);
                return Ok(());
            }
            Err(e) => panic!("{e}"),
        };
        let mut rng = SplitMix64::new(seed);
        let data = params(&net, upto, &mut rng);
        let weights = Weights::new(&net, upto, &data).unwrap();
        let input: Vec<f32> = (0..stack.input().elements().unwrap()).map(|_| rng.uniform_f32(-1.0, 1.0)).collect();
        let expect = full_frame(&net, upto, &weights, &input);
        let none = vec![false; grid.tile_count()];
        let plain = tiled(&stack, &grid, Mode::Plain, &weights, &input, whole_input, &none);
        prop_assert!(same_bits(&plain, &expect), "plain {rows}x{cols}");
        let reuse = tiled(&stack, &grid, Mode::Reuse, &weights, &input, whole_input, &none);
        prop_assert!(same_bits(&reuse, &expect), "reuse {rows}x{cols}");
        // Fallback: some level-1 tiles run plain while the rest reuse.
        let mixed: Vec<bool> = (0..grid.tile_count())
            .map(|t| grid.level(t) == Level::One && fallback_mask >> (t % 64) & 1 == 1)
            .collect();
        let mixed = tiled(&stack, &grid, Mode::Reuse, &weights, &input, whole_input, &mixed);
        prop_assert!(same_bits(&mixed, &expect), "mixed {rows}x{cols}");
        // The full frame through the same path: a 1×1 grid.
        let one = Grid::new(1, 1, partition, &stack).unwrap();
        let whole = tiled(&stack, &one, Mode::Plain, &weights, &input, true, &[false]);
        prop_assert!(same_bits(&whole, &expect));
    }
}

/// A sanity check that the comparison can fail: a perturbed weight changes the output.
#[test]
fn comparison_detects_a_changed_weight() {
    let specs = [
        Spec::Conv {
            k: 3,
            stride: 1,
            no_pad: false,
            filters: 2,
            bn: true,
            leaky: true,
        },
        Spec::Pool {
            size: 2,
            stride: 2,
            pad: 1,
        },
        Spec::Conv {
            k: 3,
            stride: 1,
            no_pad: false,
            filters: 2,
            bn: false,
            leaky: false,
        },
    ];
    let net = build(16, 16, 2, &specs);
    let stack = FusedStack::new(&net, 3).unwrap();
    let grid = Grid::new(2, 2, Partition::Darknet, &stack).unwrap();
    let mut rng = SplitMix64::new(7);
    let mut data = params(&net, 3, &mut rng);
    let input: Vec<f32> = (0..16 * 16 * 2)
        .map(|_| rng.uniform_f32(-1.0, 1.0))
        .collect();
    let expect = {
        let w = Weights::new(&net, 3, &data).unwrap();
        full_frame(&net, 3, &w, &input)
    };
    let last = data.len() - 1;
    data[last] += 0.5;
    let w = Weights::new(&net, 3, &data).unwrap();
    let got = tiled(&stack, &grid, Mode::Reuse, &w, &input, false, &[false; 4]);
    assert!(!same_bits(&got, &expect));
    let _ = NoStrips;
}
