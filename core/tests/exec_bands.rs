//! Banded pairs (`ftp::band`): a YOLO-shaped stack large enough for many bands, run through
//! `run_tile` on several grids in Plain and Reuse mode, equals the stack run layer by layer on
//! whole maps bit for bit; the bands, stitched bands, chained pairs and strips it relies on
//! really occur, and the buffers are smaller than the layer-0 and layer-1 outputs they replace.

use tessera_core::exec::{
    buffer_elems, buffer_elems_in, input_slot, run_tile, scratch_elems, TileInput, TileJob,
};
use tessera_core::ftp::band::{
    band_rows, bands, chained, output_layout, BAND_ROWS, BLOCK_BAND_ROWS, PAIRS,
};
use tessera_core::ftp::{FusedStack, Grid, MemoryPlan, Mode, Partition, TilePlan};
use tessera_core::kernel::{KernelError, Kernels, Reference};
use tessera_core::model::weights::ConvParams;
use tessera_core::model::weights::{param_count, Weights};
use tessera_core::model::{Conv, LayerKind, MaxPool, Network, Shape};
use tessera_core::region::Region;
use tessera_core::tensor::{copy_overlap, region_len, FeatureView, FeatureViewMut};

use tessera_testkit::{conv, pool, MapStore};

/// Deterministic values in [-1, 1) (an LCG is enough to make every output depend on them).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// YOLO's first layers on a 96×112 map: conv 3×3 → pool → conv 3×3 → pool → conv 3×3 →
/// conv 1×1 → conv 3×3 → pool → conv 1×1 (aligned pools and 1×1 convs need no strips of the
/// banded layers 0, 2, 4 and 6).
fn net() -> Network {
    let mut n = Network::new(Shape::new(96, 112, 3)).unwrap();
    for k in [
        conv(8, 3),
        pool(),
        conv(12, 3),
        pool(),
        conv(8, 3),
        conv(6, 1),
        conv(8, 3),
        pool(),
        conv(4, 1),
    ] {
        n.push(k).unwrap();
    }
    n
}

/// conv 3×3 → conv 3×3 → pool → conv 3×3 → pool → conv 3×3 ×3 → conv 1×1 on a 64×72 map:
/// the halos of layers 1, 3, 5 and 7 make Reuse tiles send and receive strips of the banded
/// layers.
fn halo_net() -> Network {
    let mut n = Network::new(Shape::new(64, 72, 3)).unwrap();
    for k in [
        conv(6, 3),
        conv(8, 3),
        pool(),
        conv(6, 3),
        pool(),
        conv(4, 3),
        conv(4, 3),
        conv(4, 3),
        conv(4, 1),
    ] {
        n.push(k).unwrap();
    }
    n
}

/// Variances must stay positive: shift every batch-norm block up (Darknet order: biases,
/// scales, means, variances, weights; a positive shift of all is harmless).
fn params(net: &Network, upto: usize) -> Vec<f32> {
    values(param_count(net, upto).unwrap(), 7)
        .into_iter()
        .map(|v| v.abs() + 0.05)
        .collect()
}

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

/// Every tile in schedule order through `kernels`, with buffers of exactly `tile_buffers_elems`
/// (the second smaller than the first, NaN-filled), or with `cut` of `tile_buffers_in_elems`
/// and each tile's input cut into the end of the second; the stitched output and the strip
/// store.
fn tiled(
    kernels: &impl Kernels,
    stack: &FusedStack<'_>,
    grid: &Grid,
    mode: Mode,
    w: &Weights<'_>,
    input: &[f32],
    cut: bool,
) -> (Vec<f32>, MapStore) {
    let (ishape, oshape) = (stack.input(), stack.output());
    let full_in = FeatureView::new(input, Region::full(ishape.w, ishape.h), ishape.c).unwrap();
    let mem = MemoryPlan::new(stack, grid, mode).unwrap();
    let mut store = MapStore::default();
    let mut result = vec![f32::NAN; oshape.elements().unwrap()];
    let [na, nb] = if cut {
        mem.tile_buffers_in_elems
    } else {
        mem.tile_buffers_elems
    };
    assert_eq!(
        mem.tile_buffers_elems[0].max(mem.tile_buffers_elems[1]),
        mem.tile_buffer_elems
    );
    // The input in the second buffer costs it no more than the input itself.
    assert_eq!(mem.tile_buffers_in_elems[0], mem.tile_buffers_elems[0]);
    assert!(mem.tile_buffers_in_elems[1] >= mem.tile_buffers_elems[1]);
    assert!(mem.tile_buffers_in_elems[1] <= mem.tile_buffers_elems[1] + mem.tile_input_elems);
    let mut a = vec![f32::NAN; na];
    let mut b = vec![f32::NAN; nb];
    let mut out = vec![f32::NAN; mem.tile_output_elems];
    for t in grid.schedule() {
        let plan = TilePlan::new(stack, grid, t, mode).unwrap();
        assert!(scratch_elems(stack, &plan).unwrap() <= mem.tile_buffer_elems);
        let [pa, pb] = if cut {
            buffer_elems_in(stack, &plan).unwrap()
        } else {
            buffer_elems(stack, &plan).unwrap()
        };
        assert!(pa <= na && pb <= nb);
        let mut own = vec![0.0; mem.tile_input_elems];
        let mut iv = FeatureViewMut::new(&mut own, plan.input(0), ishape.c).unwrap();
        copy_overlap(&full_in, &mut iv);
        let iv = iv.as_view();
        let tile_input = if cut {
            input_slot(stack, &plan, &mut b)
                .unwrap()
                .copy_from_slice(&own[..region_len(&plan.input(0), ishape.c).unwrap()]);
            TileInput::InB
        } else {
            TileInput::View(&iv)
        };
        let got = run_tile(
            TileJob {
                kernels,
                stack,
                weights: w,
                plan: &plan,
                input: tile_input,
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
    (result, store)
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Runs `net` on 1×1, 2×2 and 3×3 grids in both modes against the layer-by-layer frame;
/// returns (bands stitching received strips, unbanded layers written in place into a larger
/// next input, strips put whole and strips sent in parts per layer in Reuse mode).
fn check(net: &Network) -> (usize, usize, [usize; 8], [usize; 8]) {
    let upto = net.layers().len();
    let stack = FusedStack::new(net, upto).unwrap();
    let data = params(net, upto);
    let w = Weights::new(net, upto, &data).unwrap();
    let input = values(stack.input().elements().unwrap(), 11);
    let expect = full_frame(net, upto, &w, &input);
    let (mut stitched_bands, mut puts, mut parted, mut chains) = (0, [0; 8], [0; 8], 0);
    let mut in_place = 0;
    for (rows, cols) in [(1, 1), (2, 2), (3, 3)] {
        let grid = Grid::new(rows, cols, Partition::Darknet, &stack).unwrap();
        for mode in [Mode::Plain, Mode::Reuse] {
            for t in 0..grid.tile_count() {
                let plan = TilePlan::new(&stack, &grid, t, mode).unwrap();
                for l in PAIRS {
                    let Some(b) = bands(&stack, &plan, l) else {
                        // Only a tile with at most one band to compute at l + 1 is not
                        // banded (one band would cost more than the two layers whole).
                        assert!(
                            plan.output(l + 1).y.len() <= BAND_ROWS,
                            "{rows}x{cols} {mode:?} tile {t} layer {l}: {:?}",
                            plan.output(l + 1)
                        );
                        continue;
                    };
                    let b: Vec<_> = b.collect();
                    // Bands tile Ô_{l+1} exactly, top to bottom, BAND_ROWS rows at most.
                    assert_eq!(b.first().unwrap().out.y.start, plan.output(l + 1).y.start);
                    assert_eq!(b.last().unwrap().out.y.end, plan.output(l + 1).y.end);
                    assert!(b.windows(2).all(|p| p[0].out.y.end == p[1].out.y.start));
                    assert!(b.iter().all(|x| x.out.height() <= BAND_ROWS));
                    stitched_bands += b.iter().filter(|x| x.computed != x.input).count();
                }
                assert!([1, 3, 5, 7]
                    .iter()
                    .all(|&l| bands(&stack, &plan, l).is_none()));
                // Layers run whole (not the second of a banded pair) whose output is laid out
                // as the larger next input: written in place, strips around.
                in_place += (0..stack.len() - 1)
                    .filter(|&l| bands(&stack, &plan, l).is_none())
                    .filter(|&l| l == 0 || bands(&stack, &plan, l - 1).is_none())
                    .filter(|&l| output_layout(&plan, l) != plan.output(l))
                    .count();
                let both = bands(&stack, &plan, 0).is_some() && bands(&stack, &plan, 2).is_some();
                assert_eq!(chained(&stack, &plan), both);
                chains += usize::from(both);
            }
            let (got, store) = tiled(&Reference, &stack, &grid, mode, &w, &input, false);
            assert!(same_bits(&got, &expect), "{rows}x{cols} {mode:?}");
            let (cut, _) = tiled(&Reference, &stack, &grid, mode, &w, &input, true);
            assert!(
                same_bits(&cut, &expect),
                "{rows}x{cols} {mode:?}, input in the buffer"
            );
            if mode == Mode::Reuse {
                puts.iter_mut().zip(store.puts()).for_each(|(a, b)| *a += b);
                parted
                    .iter_mut()
                    .zip(store.parted())
                    .for_each(|(a, b)| *a += b);
            }
        }
    }
    assert!(chains > 0, "no tile chains pairs (0, 1) and (2, 3)");
    (stitched_bands, in_place, puts, parted)
}

#[test]
fn banded_tiles_equal_the_layer_by_layer_frame() {
    let (stitched, _, puts, parted) = check(&net());
    // Aligned pools and 1×1 convs: no strips of the banded layers, so no band stitches any.
    let sent = |l: usize| puts[l] + parted[l];
    assert_eq!(
        (stitched, sent(0), sent(2), sent(4), sent(6)),
        (0, 0, 0, 0, 0)
    );
    // Layer 1's strips (of the chained pairs, whose `Ô_1` is never whole) go in parts.
    assert!(
        parted[1] > 0 && puts[3] > 0 && puts[5] > 0,
        "{puts:?} {parted:?}"
    );
    let (stitched, in_place, puts, parted) = check(&halo_net());
    // Banded layers send their strips band by band and level-1 tiles stitch them; layers run
    // whole write into their next input in place.
    assert!(stitched > 0 && in_place > 0, "{stitched} {in_place}");
    assert!(PAIRS.iter().all(|&l| parted[l] > 0), "{puts:?} {parted:?}");

    let net = net();
    let stack = FusedStack::new(&net, 9).unwrap();
    // Whole frame: 56 pooled rows in 14 bands; buffers hold no full layer-0, layer-1 or
    // layer-2 map: pairs (0, 1) and (2, 3) are chained, so the largest map held is Ô_3.
    let one = Grid::new(1, 1, Partition::Darknet, &stack).unwrap();
    let plan = TilePlan::new(&stack, &one, 0, Mode::Plain).unwrap();
    assert_eq!(
        bands(&stack, &plan, 0).unwrap().count(),
        56 / BAND_ROWS as usize
    );
    assert!(chained(&stack, &plan));
    let mem = MemoryPlan::new(&stack, &one, Mode::Plain).unwrap();
    assert!(mem.tile_buffer_elems < 96 * 112 * 8);
    assert!(mem.tile_buffer_elems < 48 * 56 * 12);
    assert!(
        mem.tile_buffer_elems < 48 * 56 * 8,
        "{}",
        mem.tile_buffer_elems
    );
    assert_eq!(
        mem.tile_buffers_elems[0],
        24 * 28 * 12,
        "Ô_3 whole, in the first buffer"
    );
}

#[test]
fn a_short_stack_is_not_banded() {
    // Layer 1 writes the caller's output directly: nothing to band.
    let net = net();
    let stack = FusedStack::new(&net, 2).unwrap();
    let one = Grid::new(1, 1, Partition::Darknet, &stack).unwrap();
    let plan = TilePlan::new(&stack, &one, 0, Mode::Plain).unwrap();
    assert!(bands(&stack, &plan, 0).is_none());
    assert_eq!(scratch_elems(&stack, &plan).unwrap(), 96 * 112 * 8);
}

/// The reference kernels, asking 3×3 convs for regions aligned to blocks of 4 as Winograd
/// F(4×4, 3×3) does.
struct Blockwise;

impl Kernels for Blockwise {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        Reference.conv(conv, map, params, input, out)
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        Reference.maxpool(pool, map, input, out)
    }

    fn conv_alignment(&self, conv: &Conv, _map: Shape) -> u32 {
        if conv.size == 3 {
            4
        } else {
            1
        }
    }
}

#[test]
fn block_aligned_stacks_band_taller_on_their_grid() {
    let net = net();
    let upto = net.layers().len();
    assert_eq!(band_rows(&FusedStack::new(&net, upto).unwrap()), BAND_ROWS);
    let stack = FusedStack::new(&net, upto).unwrap().aligned(&Blockwise);
    assert_eq!(band_rows(&stack), BLOCK_BAND_ROWS);
    let data = params(&net, upto);
    let w = Weights::new(&net, upto, &data).unwrap();
    let input = values(stack.input().elements().unwrap(), 5);
    let expect = full_frame(&net, upto, &w, &input);
    let mut banded = 0;
    for (rows, cols) in [(1, 1), (3, 3)] {
        let grid = Grid::new(rows, cols, Partition::Darknet, &stack).unwrap();
        for mode in [Mode::Plain, Mode::Reuse] {
            for t in 0..grid.tile_count() {
                let plan = TilePlan::new(&stack, &grid, t, mode).unwrap();
                for l in PAIRS {
                    let Some(b) = bands(&stack, &plan, l) else {
                        assert!(plan.output(l + 1).y.len() <= BLOCK_BAND_ROWS);
                        continue;
                    };
                    let end = plan.output(l + 1).y.end;
                    for band in b {
                        banded += 1;
                        assert!(band.out.height() <= BLOCK_BAND_ROWS, "{band:?}");
                        // Below a block-wise layer, bands end on multiples of their height.
                        let y1 = band.out.y.end;
                        assert!(stack.alignment(l) == 1 || y1 == end || y1 % BLOCK_BAND_ROWS == 0);
                    }
                }
            }
            for cut in [false, true] {
                let (got, _) = tiled(&Reference, &stack, &grid, mode, &w, &input, cut);
                assert!(same_bits(&got, &expect), "{rows}x{cols} {mode:?} cut {cut}");
            }
        }
    }
    // Whole frame: 56 pooled rows in 7 bands.
    let one = Grid::new(1, 1, Partition::Darknet, &stack).unwrap();
    let plan = TilePlan::new(&stack, &one, 0, Mode::Plain).unwrap();
    assert_eq!(bands(&stack, &plan, 0).unwrap().count(), 7);
    assert!(banded > 7);
}

/// The reference kernels, counting the outputs each layer's calls compute (a layer told by its
/// input map's shape: the first layer of that shape).
struct Counting {
    maps: Vec<Shape>,
    outputs: std::cell::RefCell<Vec<u64>>,
}

impl Counting {
    fn count(&self, map: Shape, out: &FeatureViewMut<'_>) {
        let l = self.maps.iter().position(|&m| m == map).unwrap();
        self.outputs.borrow_mut()[l] += out.region().area();
    }
}

impl Kernels for Counting {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        self.count(map, out);
        Reference.conv(conv, map, params, input, out)
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        self.count(map, out);
        Reference.maxpool(pool, map, input, out)
    }
}

#[test]
fn chained_bands_compute_each_layer_1_row_once() {
    // Each band of pair (2, 3) reads two layer-1 rows past its own, which the next band reads
    // too: they are carried over, so the whole frame computes layers 0 and 1 once per value.
    let net = net();
    let upto = net.layers().len();
    let stack = FusedStack::new(&net, upto).unwrap();
    let data = params(&net, upto);
    let w = Weights::new(&net, upto, &data).unwrap();
    let input = values(stack.input().elements().unwrap(), 3);
    let k = Counting {
        maps: net.layers()[..upto].iter().map(|l| l.input).collect(),
        outputs: std::cell::RefCell::new(vec![0; upto]),
    };
    let one = Grid::new(1, 1, Partition::Darknet, &stack).unwrap();
    let plan = TilePlan::new(&stack, &one, 0, Mode::Plain).unwrap();
    assert!(chained(&stack, &plan));
    let (got, _) = tiled(&k, &stack, &one, Mode::Plain, &w, &input, false);
    assert!(same_bits(&got, &full_frame(&net, upto, &w, &input)));
    // The chained layers 0–3 (whose input shapes no later layer shares).
    let outputs = k.outputs.borrow();
    for (l, layer) in net.layers()[..4].iter().enumerate() {
        let o = layer.output;
        assert_eq!(outputs[l], u64::from(o.w * o.h), "layer {l}: {outputs:?}");
    }
}
