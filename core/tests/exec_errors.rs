//! Typed errors (never panics) for bad buffers, missing strips, absurd grids and stacks.

use tessera_core::exec::{
    buffer_elems, buffer_elems_in, input_slot, run_tile, scratch_elems, ArrayStripStore, ExecError,
    NoStrips, StripStore, TileInput, TileJob,
};
use tessera_core::ftp::{
    FusedStack, Grid, MemoryPlan, Mode, Partition, PlanError, Side, TilePlan, MAX_FUSED,
};
use tessera_core::kernel::Reference;
use tessera_core::model::weights::{param_count, Weights};
use tessera_core::model::{Activation, Conv, LayerKind, MaxPool, Network, Route, Shape};
use tessera_core::region::{Region, Span};
use tessera_core::tensor::{region_len, FeatureView, ViewError};

fn conv(filters: u32, size: u32) -> LayerKind {
    LayerKind::Conv(Conv {
        filters,
        size,
        stride: 1,
        pad: size / 2,
        batch_norm: false,
        activation: Activation::Leaky,
    })
}

/// conv3 → maxpool → conv3 on 16×16×2: strips exist at layer 1.
fn small() -> Network {
    let mut n = Network::new(Shape::new(16, 16, 2)).unwrap();
    n.push(conv(3, 3)).unwrap();
    n.push(LayerKind::MaxPool(MaxPool {
        size: 2,
        stride: 2,
        pad: 1,
    }))
    .unwrap();
    n.push(conv(2, 3)).unwrap();
    n
}

/// A store that hands out a fixed strip for every key (to provoke mismatches).
struct Fixed(Vec<f32>, Region, u32);

impl StripStore for Fixed {
    fn put(
        &mut self,
        _: usize,
        _: usize,
        _: Side,
        _: &FeatureView<'_>,
        _: Region,
    ) -> Result<(), ExecError> {
        Err(ExecError::StoreFull)
    }

    fn put_part(
        &mut self,
        _: usize,
        _: usize,
        _: Side,
        _: &FeatureView<'_>,
        _: Region,
        _: Region,
    ) -> Result<(), ExecError> {
        Err(ExecError::StoreFull)
    }

    fn get(&self, _: usize, _: usize, _: Side) -> Option<FeatureView<'_>> {
        FeatureView::new(&self.0, self.1, self.2).ok()
    }
}

struct Setup {
    input: Vec<f32>,
    params: Vec<f32>,
}

fn setup(net: &Network) -> Setup {
    let s = net.input();
    Setup {
        input: (0..s.elements().unwrap())
            .map(|i| (i % 7) as f32 - 3.0)
            .collect(),
        params: (0..param_count(net, net.layers().len()).unwrap())
            .map(|i| (i % 5) as f32 * 0.1 - 0.2)
            .collect(),
    }
}

#[test]
fn buffers_input_output_and_plan_errors() {
    let net = small();
    let d = setup(&net);
    let stack = FusedStack::new(&net, 3).unwrap();
    let w = Weights::new(&net, 3, &d.params).unwrap();
    let grid = Grid::new(2, 2, Partition::Darknet, &stack).unwrap();
    let mem = MemoryPlan::new(&stack, &grid, Mode::Plain).unwrap();
    let plan = TilePlan::new(&stack, &grid, 0, Mode::Plain).unwrap();
    let input = FeatureView::new(&d.input, Region::full(16, 16), 2).unwrap();
    let need = scratch_elems(&stack, &plan).unwrap();
    assert!(need > 0 && need <= mem.tile_buffer_elems);
    let mut a = vec![0.0; mem.tile_buffer_elems];
    // The second buffer may be smaller than the first: each is checked against its own need.
    let [need_a, need_b] = buffer_elems(&stack, &plan).unwrap();
    assert_eq!(need, need_a.max(need_b));
    assert!(need_b > 0);
    let mut short = vec![0.0; need_b - 1];
    let mut out = vec![0.0; mem.tile_output_elems];
    let err = run_tile(
        TileJob {
            kernels: &Reference,
            stack: &stack,
            weights: &w,
            plan: &plan,
            input: TileInput::View(&input),
            buf_a: &mut a,
            buf_b: &mut short,
            strips: &mut NoStrips,
        },
        &mut out,
    )
    .unwrap_err();
    assert_eq!(
        err,
        ExecError::BufferTooSmall {
            needed: need_b,
            available: need_b - 1
        }
    );
    // An input cut into the second buffer: it needs room for the input besides the first
    // step's scratch, and says so when short.
    let [_, need_in] = buffer_elems_in(&stack, &plan).unwrap();
    let mut short = vec![0.0; need_in - 1];
    assert_eq!(
        input_slot(&stack, &plan, &mut short).unwrap().len(),
        region_len(&plan.input(0), 2).unwrap()
    );
    let err = run_tile(
        TileJob {
            kernels: &Reference,
            stack: &stack,
            weights: &w,
            plan: &plan,
            input: TileInput::InB,
            buf_a: &mut a,
            buf_b: &mut short,
            strips: &mut NoStrips,
        },
        &mut out,
    )
    .unwrap_err();
    assert_eq!(
        err,
        ExecError::BufferTooSmall {
            needed: need_in,
            available: need_in - 1
        }
    );
    assert!(matches!(
        input_slot(&stack, &plan, &mut [0.0; 3]),
        Err(ExecError::BufferTooSmall { .. })
    ));
    let mut b = vec![0.0; mem.tile_buffer_elems];
    let mut tiny = vec![0.0; mem.tile_output_elems - 1];
    assert!(matches!(
        run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w,
                plan: &plan,
                input: TileInput::View(&input),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut NoStrips
            },
            &mut tiny
        ),
        Err(ExecError::OutputTooSmall { .. })
    ));
    // An input view missing part of I_0.
    let part = Region::full(3, 3);
    let small_in = FeatureView::new(&d.input, part, 2).unwrap();
    assert!(matches!(
        run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w,
                plan: &plan,
                input: TileInput::View(&small_in),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut NoStrips
            },
            &mut out
        ),
        Err(ExecError::InputMismatch { .. })
    ));
    // Weights covering only layer 0.
    let w1 = Weights::new(&net, 1, &d.params).unwrap();
    assert_eq!(
        run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w1,
                plan: &plan,
                input: TileInput::View(&input),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut NoStrips
            },
            &mut out
        )
        .unwrap_err(),
        ExecError::MissingWeights { layer: 2 }
    );
    // A plan made for a shorter stack.
    let s1 = FusedStack::new(&net, 1).unwrap();
    let g1 = Grid::new(1, 1, Partition::Darknet, &s1).unwrap();
    let p1 = TilePlan::new(&s1, &g1, 0, Mode::Plain).unwrap();
    assert_eq!(
        run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w,
                plan: &p1,
                input: TileInput::View(&input),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut NoStrips
            },
            &mut out
        )
        .unwrap_err(),
        ExecError::PlanMismatch
    );
    // And it all works with the right sizes.
    let got = run_tile(
        TileJob {
            kernels: &Reference,
            stack: &stack,
            weights: &w,
            plan: &plan,
            input: TileInput::View(&input),
            buf_a: &mut a,
            buf_b: &mut b,
            strips: &mut NoStrips,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(got.region(), grid.tile_region(0));
    assert!(!ExecError::PlanMismatch.to_string().is_empty());
}

#[test]
fn missing_and_mismatched_strips() {
    let net = small();
    let d = setup(&net);
    let stack = FusedStack::new(&net, 3).unwrap();
    let w = Weights::new(&net, 3, &d.params).unwrap();
    let grid = Grid::new(2, 2, Partition::Darknet, &stack).unwrap();
    let mem = MemoryPlan::new(&stack, &grid, Mode::Reuse).unwrap();
    let input = FeatureView::new(&d.input, Region::full(16, 16), 2).unwrap();
    let mut a = vec![0.0; mem.tile_buffer_elems];
    let mut b = vec![0.0; mem.tile_buffer_elems];
    let mut out = vec![0.0; mem.tile_output_elems];
    // Tile 1 = (0,1) is level 1; its left neighbour 0 sends the layer-1 strip.
    let plan = TilePlan::new(&stack, &grid, 1, Mode::Reuse).unwrap();
    assert!(plan.is_reduced());
    let strip = plan.receive(1, Side::Left);
    assert!(!strip.is_empty());
    assert_eq!(
        run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w,
                plan: &plan,
                input: TileInput::View(&input),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut NoStrips
            },
            &mut out
        )
        .unwrap_err(),
        // Sides are fetched in wire order: below (tile 3) comes first.
        ExecError::MissingStrip {
            tile: 3,
            layer: 1,
            side: Side::Above
        }
    );
    // A strip with the wrong channel count, then one too small.
    let mut wrong = Fixed(vec![0.0; 64 * 8], strip, 2);
    assert!(matches!(
        run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w,
                plan: &plan,
                input: TileInput::View(&input),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut wrong
            },
            &mut out
        ),
        Err(ExecError::StripMismatch { layer: 1, .. })
    ));
    let mut thin = Region::new(strip.x, strip.y);
    thin.y.end -= 1;
    wrong = Fixed(vec![0.0; 64 * 8], thin, 3);
    assert!(matches!(
        run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w,
                plan: &plan,
                input: TileInput::View(&input),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut wrong
            },
            &mut out
        ),
        Err(ExecError::StripMismatch { .. })
    ));
    // A level-0 tile whose store refuses strips reports the store's error.
    let p0 = TilePlan::new(&stack, &grid, 0, Mode::Reuse).unwrap();
    assert_eq!(
        run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w,
                plan: &p0,
                input: TileInput::View(&input),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut wrong
            },
            &mut out
        )
        .unwrap_err(),
        ExecError::StoreFull
    );
    // Plain fallback of the same tile needs no strip.
    let fallback = TilePlan::new(&stack, &grid, 1, Mode::Plain).unwrap();
    assert!(run_tile(
        TileJob {
            kernels: &Reference,
            stack: &stack,
            weights: &w,
            plan: &fallback,
            input: TileInput::View(&input),
            buf_a: &mut a,
            buf_b: &mut b,
            strips: &mut NoStrips
        },
        &mut out
    )
    .is_ok());
}

#[test]
fn absurd_grids_and_stacks() {
    let net = small();
    let stack = FusedStack::new(&net, 3).unwrap();
    for (r, c) in [(0, 1), (1, 0), (0, 0), (9, 9), (1, 9), (9, 1)] {
        assert_eq!(
            Grid::new(r, c, Partition::Darknet, &stack).unwrap_err(),
            PlanError::GridSize { rows: r, cols: c }
        );
    }
    // 8×8 output: 8 tiles fit, but the Darknet rule breaks at 7 (step 2, 6·2 ≥ 8).
    assert_eq!(stack.output(), Shape::new(8, 8, 2));
    assert!(Grid::new(8, 8, Partition::Darknet, &stack).is_ok());
    assert_eq!(
        Grid::new(7, 1, Partition::Darknet, &stack).unwrap_err(),
        PlanError::DegenerateGrid {
            extent: 8,
            tiles: 7
        }
    );
    assert!(Grid::new(7, 7, Partition::Balanced, &stack).is_ok());
    // W = 19, M = 6: [16..19] then [20..18] in the C code.
    let mut n19 = Network::new(Shape::new(19, 19, 1)).unwrap();
    n19.push(conv(1, 1)).unwrap();
    let s19 = FusedStack::new(&n19, 1).unwrap();
    assert_eq!(
        Grid::new(6, 1, Partition::Darknet, &s19).unwrap_err(),
        PlanError::DegenerateGrid {
            extent: 19,
            tiles: 6
        }
    );
    // Stack lengths and a route layer.
    assert_eq!(
        FusedStack::new(&net, 0).unwrap_err(),
        PlanError::StackLength { layers: 0, max: 3 }
    );
    assert!(FusedStack::new(&net, 4).is_err());
    let mut routed = small();
    let route = Route {
        layers: heapless::Vec::from_slice(&[0]).unwrap(),
    };
    routed.push(LayerKind::Route(route)).unwrap();
    routed.push(conv(2, 1)).unwrap();
    assert!(FusedStack::new(&routed, 3).is_ok());
    assert_eq!(
        FusedStack::new(&routed, 5).unwrap_err(),
        PlanError::NotFusable { layer: 3 }
    );
    assert_eq!(MAX_FUSED, 32);
    let stack_grid = Grid::new(2, 2, Partition::Darknet, &stack).unwrap();
    let s1 = FusedStack::new(&net, 1).unwrap();
    assert_eq!(
        MemoryPlan::new(&s1, &stack_grid, Mode::Plain).unwrap_err(),
        PlanError::GridMismatch
    );
    for e in [
        PlanError::GridMismatch,
        PlanError::NotFusable { layer: 3 },
        PlanError::Uncovered { tile: 1, layer: 2 },
    ] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn array_store_runs_reuse_and_reports_full() {
    let net = small();
    let d = setup(&net);
    let stack = FusedStack::new(&net, 3).unwrap();
    let w = Weights::new(&net, 3, &d.params).unwrap();
    let grid = Grid::new(3, 3, Partition::Darknet, &stack).unwrap();
    let mem = MemoryPlan::new(&stack, &grid, Mode::Reuse).unwrap();
    let input = FeatureView::new(&d.input, Region::full(16, 16), 2).unwrap();
    let mut a = vec![0.0; mem.tile_buffer_elems];
    let mut b = vec![0.0; mem.tile_buffer_elems];
    let mut out = vec![0.0; mem.tile_output_elems];
    let mut store: Box<ArrayStripStore<32, 1024>> = Box::default();
    assert!(mem.strip_bytes / 4 <= 1024);
    for t in grid.schedule() {
        let reuse = TilePlan::new(&stack, &grid, t, Mode::Reuse).unwrap();
        let plain = TilePlan::new(&stack, &grid, t, Mode::Plain).unwrap();
        let mut expect = vec![0.0; mem.tile_output_elems];
        let e = run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w,
                plan: &plain,
                input: TileInput::View(&input),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut NoStrips,
            },
            &mut expect,
        )
        .unwrap()
        .data()
        .to_vec();
        let got = run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w,
                plan: &reuse,
                input: TileInput::View(&input),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut *store,
            },
            &mut out,
        )
        .unwrap();
        assert!(e
            .iter()
            .zip(got.data())
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    assert!(!store.is_empty());
    // Strips bytes of the memory plan = what level-0 tiles stored.
    let stored: usize = (0..grid.tile_count())
        .flat_map(|t| (0..3).flat_map(move |l| Side::ALL.map(|s| (t, l, s))))
        .filter_map(|(t, l, s)| store.get(t, l, s).map(|v| v.data().len()))
        .sum();
    assert_eq!(stored as u64 * 4, mem.strip_bytes);
    // Too small an arena: typed error from the level-0 tile that overflows it.
    let mut tiny: ArrayStripStore<32, 8> = ArrayStripStore::new();
    let p0 = TilePlan::new(&stack, &grid, 0, Mode::Reuse).unwrap();
    assert_eq!(
        run_tile(
            TileJob {
                kernels: &Reference,
                stack: &stack,
                weights: &w,
                plan: &p0,
                input: TileInput::View(&input),
                buf_a: &mut a,
                buf_b: &mut b,
                strips: &mut tiny
            },
            &mut out
        )
        .unwrap_err(),
        ExecError::StoreFull
    );
}

#[test]
fn array_store_copies_the_strip_out_of_a_larger_view() {
    // Two channels over x 0..4, y 0..3: value = 100·c + 10·y + x.
    let whole = Region::new(Span::new(0, 4), Span::new(0, 3));
    let data: Vec<f32> = (0..2)
        .flat_map(|c| (0..3).flat_map(move |y| (0..4).map(move |x| (100 * c + 10 * y + x) as f32)))
        .collect();
    let view = FeatureView::new(&data, whole, 2).unwrap();
    let strip = Region::new(Span::new(3, 4), Span::new(1, 3));
    let mut store: ArrayStripStore<2, 8> = ArrayStripStore::new();
    store.put(4, 1, Side::Right, &view, strip).unwrap();
    let got = store.get(4, 1, Side::Right).unwrap();
    assert_eq!((got.region(), got.channels()), (strip, 2));
    assert_eq!(got.data(), &[13.0, 23.0, 113.0, 123.0]);
    // A strip the view does not cover is a typed error and stores nothing.
    let outside = Region::new(Span::new(3, 5), Span::new(1, 3));
    assert!(matches!(
        store.put(4, 2, Side::Right, &view, outside),
        Err(ExecError::View(ViewError::Outside { .. }))
    ));
    assert_eq!(store.len(), 1);
    assert!(store.get(4, 2, Side::Right).is_none());
}

#[test]
fn array_store_fills_a_strip_sent_in_parts() {
    // One channel over x 0..4, y 0..4: value = 10·y + x.
    let whole = Region::new(Span::new(0, 4), Span::new(0, 4));
    let data: Vec<f32> = (0..4)
        .flat_map(|y| (0..4).map(move |x| (10 * y + x) as f32))
        .collect();
    let view = FeatureView::new(&data, whole, 1).unwrap();
    let strip = Region::new(Span::new(2, 4), Span::new(0, 4));
    let rows = |a, b| Region::new(Span::new(2, 4), Span::new(a, b));
    let mut store: ArrayStripStore<4, 16> = ArrayStripStore::new();
    // Two overlapping parts, bottom first: one strip, filled.
    store
        .put_part(1, 0, Side::Right, &view, strip, rows(1, 4))
        .unwrap();
    store
        .put_part(1, 0, Side::Right, &view, strip, rows(0, 2))
        .unwrap();
    assert_eq!(store.len(), 1);
    let got = store.get(1, 0, Side::Right).unwrap();
    assert_eq!(got.region(), strip);
    assert_eq!(got.data(), &[2.0, 3.0, 12.0, 13.0, 22.0, 23.0, 32.0, 33.0]);
    // A part the view misses is refused and changes nothing.
    let small =
        FeatureView::new(&data[..8], Region::new(Span::new(0, 4), Span::new(0, 2)), 1).unwrap();
    assert!(matches!(
        store.put_part(1, 0, Side::Right, &small, strip, rows(2, 3)),
        Err(ExecError::View(ViewError::Outside { .. }))
    ));
    assert_eq!(store.get(1, 0, Side::Right).unwrap().data()[4], 22.0);
    // A part of another region under the key starts a new strip (zero until filled).
    let short = Region::new(Span::new(2, 4), Span::new(0, 2));
    store
        .put_part(1, 0, Side::Right, &view, short, rows(1, 2))
        .unwrap();
    assert_eq!(
        store.get(1, 0, Side::Right).unwrap().data(),
        &[0.0, 0.0, 12.0, 13.0]
    );
    // Past the arena: a typed error.
    assert_eq!(
        store.put_part(2, 0, Side::Left, &view, strip, rows(0, 1)),
        Err(ExecError::StoreFull)
    );
}
