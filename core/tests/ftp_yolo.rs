//! docs/design.md §2–§3 figures for the first 16 layers of YOLOv2 at 608×608.

use tessera_core::ftp::{
    frame_macs, FusedStack, Grid, Level, MemoryPlan, Mode, Partition, PlanError, Side, TilePlan,
};

use tessera_core::model::{Network, Shape};
use tessera_core::region::{Region, Span};
use tessera_testkit::{conv, yolo16};

const MIB: f64 = 1024.0 * 1024.0;

fn sq(a: u32, b: u32) -> Region {
    Region::new(Span::inclusive(a, b), Span::inclusive(a, b))
}

fn xy(x0: u32, x1: u32, y0: u32, y1: u32) -> Region {
    Region::new(Span::inclusive(x0, x1), Span::inclusive(y0, y1))
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / MIB * 100.0).round() / 100.0
}

fn percent(ratio: f64) -> i64 {
    ((ratio - 1.0) * 100.0).round() as i64
}

#[test]
fn stack_shapes_and_grid_rule() {
    let net = yolo16();
    let s = FusedStack::new(&net, 16).unwrap();
    assert_eq!(s.input(), Shape::new(608, 608, 3));
    assert_eq!(s.output(), Shape::new(38, 38, 256));
    assert_eq!(s.macs(), net.macs(16));
    // 13.00 G multiply-accumulates.
    assert_eq!((net.macs(16) as f64 / 1e7).round() / 100.0, 13.0);
    let widths = |m: u32| -> Vec<u32> {
        let g = Grid::new(1, m, Partition::Darknet, &s).unwrap();
        (0..m as usize).map(|t| g.tile_region(t).width()).collect()
    };
    assert_eq!(widths(3), [13, 13, 12]);
    assert_eq!(widths(4), [10, 10, 10, 8]);
    assert_eq!(widths(5), [8, 8, 8, 8, 6]);
    assert_eq!(widths(6), [7, 7, 7, 7, 7, 3]);
    let g = Grid::new(3, 3, Partition::Darknet, &s).unwrap();
    assert_eq!(g.tile_region(5), xy(26, 37, 13, 25));
    let order: Vec<usize> = g.schedule().collect();
    assert_eq!(order, [0, 2, 4, 6, 8, 1, 3, 5, 7]);
    assert_eq!(g.level(4), Level::Zero);
    assert_eq!(g.level(1), Level::One);
    assert_eq!(g.neighbour(1, Side::Left), Some(0));
    assert_eq!(g.neighbour(1, Side::Above), None);
    assert_eq!(g.neighbour(4, Side::Below), Some(7));
}

#[test]
fn plain_regions_of_the_3x3_example() {
    let net = yolo16();
    let s = FusedStack::new(&net, 16).unwrap();
    let g = Grid::new(3, 3, Partition::Darknet, &s).unwrap();
    let p = |t| TilePlan::new(&s, &g, t, Mode::Plain).unwrap();
    assert_eq!(p(0).input(0), sq(0, 266));
    assert_eq!(p(4).input(0), sq(149, 474));
    assert_eq!(p(8).input(0), sq(357, 607));
    // Full §2.4 chain of the centre tile: (ℓ, O, I).
    let centre = [
        (15, (13, 25), (13, 25)),
        (14, (13, 25), (12, 26)),
        (13, (12, 26), (12, 26)),
        (12, (12, 26), (11, 27)),
        (11, (11, 27), (22, 55)),
        (10, (22, 55), (21, 56)),
        (9, (21, 56), (21, 56)),
        (8, (21, 56), (20, 57)),
        (7, (20, 57), (40, 115)),
        (6, (40, 115), (39, 116)),
        (5, (39, 116), (39, 116)),
        (4, (39, 116), (38, 117)),
        (3, (38, 117), (76, 235)),
        (2, (76, 235), (75, 236)),
        (1, (75, 236), (150, 473)),
        (0, (150, 473), (149, 474)),
    ];
    let c = p(4);
    for (l, o, i) in centre {
        assert_eq!(c.output(l), sq(o.0, o.1), "O_{l}");
        assert_eq!(c.input(l), sq(i.0, i.1), "I_{l}");
    }
    assert_eq!(p(0).output(1), sq(0, 132));
}

#[test]
fn reduced_chain_of_level1_tile_0_1() {
    let net = yolo16();
    let s = FusedStack::new(&net, 16).unwrap();
    let g = Grid::new(3, 3, Partition::Darknet, &s).unwrap();
    let r = TilePlan::new(&s, &g, 1, Mode::Reuse).unwrap();
    let plain = TilePlan::new(&s, &g, 1, Mode::Plain).unwrap();
    assert!(r.is_reduced());
    // (ℓ, Ô, Î, plain O) of the §3.2 table, as (x0, x1, y0, y1).
    let table = [
        (15, (13, 25, 0, 12), (13, 25, 0, 12), (13, 25, 0, 12)),
        (14, (13, 25, 0, 12), (12, 26, 0, 13), (13, 25, 0, 12)),
        (13, (14, 24, 0, 11), (14, 24, 0, 11), (12, 26, 0, 13)),
        (11, (15, 23, 0, 10), (30, 47, 0, 21), (11, 27, 0, 14)),
        (7, (32, 45, 0, 19), (64, 91, 0, 39), (20, 57, 0, 31)),
        (3, (66, 89, 0, 37), (132, 179, 0, 75), (38, 117, 0, 65)),
        (1, (133, 178, 0, 74), (266, 357, 0, 149), (75, 236, 0, 132)),
        (
            0,
            (266, 357, 0, 149),
            (265, 358, 0, 150),
            (150, 473, 0, 265),
        ),
    ];
    for (l, o, i, po) in table {
        assert_eq!(r.output(l), xy(o.0, o.1, o.2, o.3), "Ô_{l}");
        assert_eq!(r.input(l), xy(i.0, i.1, i.2, i.3), "Î_{l}");
        assert_eq!(plain.output(l), xy(po.0, po.1, po.2, po.3), "O_{l}");
    }
    // Input shrinks from 326×267 to 94×151.
    assert_eq!(
        (plain.input(0).width(), plain.input(0).height()),
        (326, 267)
    );
    assert_eq!((r.input(0).width(), r.input(0).height()), (94, 151));
}

#[test]
fn strips_of_tile_0_0() {
    let net = yolo16();
    let s = FusedStack::new(&net, 16).unwrap();
    let g = Grid::new(3, 3, Partition::Darknet, &s).unwrap();
    let p = TilePlan::new(&s, &g, 0, Mode::Reuse).unwrap();
    assert_eq!(p.send(1, Side::Right), xy(131, 132, 0, 76));
    assert_eq!(p.send(13, Side::Right), xy(12, 13, 0, 13));
    assert!(p.send(0, Side::Right).is_empty());
    assert!(p.send(15, Side::Right).is_empty());
    assert!(p.send(1, Side::Left).is_empty() && p.send(1, Side::Above).is_empty());
    // Non-empty strips only at layers 1, 3, 5, 7, 9, 11, 13, always 2 pixels thick.
    for l in 0..16 {
        let r = p.send(l, Side::Right);
        assert_eq!(!r.is_empty(), l % 2 == 1 && l < 15, "layer {l}");
        if !r.is_empty() {
            assert_eq!(r.width(), 2);
        }
        let b = p.send(l, Side::Below);
        if !b.is_empty() {
            assert_eq!(b.height(), 2);
        }
    }
}

#[test]
fn traffic_memory_and_compute() {
    let net = yolo16();
    let s = FusedStack::new(&net, 16).unwrap();
    let g3 = Grid::new(3, 3, Partition::Darknet, &s).unwrap();
    let g5 = Grid::new(5, 5, Partition::Darknet, &s).unwrap();
    let g2 = Grid::new(2, 2, Partition::Darknet, &s).unwrap();
    let p3 = MemoryPlan::new(&s, &g3, Mode::Plain).unwrap();
    let r3 = MemoryPlan::new(&s, &g3, Mode::Reuse).unwrap();
    let p5 = MemoryPlan::new(&s, &g5, Mode::Plain).unwrap();
    let r5 = MemoryPlan::new(&s, &g5, Mode::Reuse).unwrap();
    assert_eq!(mib(p3.input_bytes), 8.15);
    assert_eq!(mib(r3.input_bytes), 4.90);
    assert_eq!(mib(p5.input_bytes), 13.35);
    assert_eq!(mib(r5.input_bytes), 6.81);
    assert_eq!(p3.strip_bytes, 0);
    assert_eq!(mib(r3.strip_bytes), 1.71);
    assert_eq!(mib(r5.strip_bytes), 2.70);
    assert_eq!(mib(p3.output_bytes), 1.41);
    assert_eq!(percent(p3.macs_ratio()), 53);
    assert_eq!(percent(p5.macs_ratio()), 120);
    assert_eq!(percent(r3.macs_ratio()), 7);
    assert_eq!(percent(r5.macs_ratio()), 28);
    let p2 = MemoryPlan::new(&s, &g2, Mode::Plain).unwrap();
    assert_eq!(percent(p2.macs_ratio()), 25);
    assert_eq!(frame_macs(&s, &g3, Mode::Plain).unwrap(), p3.tiled_macs);
    assert_eq!(p3.full_macs, net.macs(16));
    // Full frame peak: layer 1, 608²·32 in + 304²·32 out.
    assert_eq!(p3.full_peak_bytes, (608 * 608 * 32 + 304 * 304 * 32) * 4);
    assert_eq!(
        (p3.full_peak_bytes as f64 / MIB * 10.0).round() / 10.0,
        56.4
    );
    // Largest weights: layers 12/14, 4.5 MiB each; total of the fused part.
    let w = MemoryPlan::weight_bytes(&s).unwrap();
    assert!(w > 2 * 512 * 256 * 9 * 4);
    // §2.6 peak reductions of the in+out+weights model: 72 % (3×3), 84 % (5×5).
    let red = |m: &MemoryPlan| {
        (100.0
            * (1.0 - m.tile_peak_with_weights_bytes as f64 / m.full_peak_with_weights_bytes as f64))
            .round() as i64
    };
    assert_eq!(red(&p3), 72);
    assert_eq!(red(&p5), 84);
    // Buffers are sized for the largest tile. Pairs (0, 1) and (2, 3) run chained in row bands,
    // so the largest tile's layer-0 (324²·32), layer-1 (162²·32 at 3x3, 122²·32 at 5x5) and
    // layer-2 (160²·64) outputs never exist whole: the first buffer holds its layer-3 output
    // (80²·64, 60²·64), the second layer 5's (78²·64, 58²·64) plus a band of pair (4, 5).
    for (m, side) in [(&p3, 80), (&p5, 60), (&r3, 80), (&r5, 60)] {
        let [a, b] = m.tile_buffers_elems;
        assert_eq!(a, side * side * 64);
        let o5 = (side - 2) * (side - 2) * 64;
        assert!(b > o5 && b * 100 < o5 * 125, "{a} {b}");
        assert_eq!(m.tile_buffer_elems, a.max(b));
    }
    // Reuse capacities cover the Plain fallback and the strips of the chained layers.
    assert_eq!(r3.tile_buffers_elems, p3.tile_buffers_elems);
    assert_eq!(r5.tile_buffers_elems, p5.tile_buffers_elems);
    // Both buffers of a 5x5 tile together are smaller than the layer-1 output plus the
    // layer-3 output they held before the chain.
    let [a, b] = p5.tile_buffers_elems;
    assert!(a + b < 122 * 122 * 32 + 60 * 60 * 64);
    assert_eq!(p3.tile_input_elems, 326 * 326 * 3);
    assert_eq!(p3.tile_output_elems, 13 * 13 * 256);
}

#[test]
fn degenerate_and_absurd_grids_are_rejected() {
    let mut net = Network::new(Shape::new(19, 19, 3)).unwrap();
    net.push(conv(4, 3)).unwrap();
    let s = FusedStack::new(&net, 1).unwrap();
    assert_eq!(
        Grid::new(1, 6, Partition::Darknet, &s),
        Err(PlanError::DegenerateGrid {
            extent: 19,
            tiles: 6
        })
    );
    assert!(Grid::new(1, 6, Partition::Balanced, &s).is_ok());
    let net = yolo16();
    let s = FusedStack::new(&net, 16).unwrap();
    assert!(Grid::new(8, 8, Partition::Darknet, &s).is_ok());
    assert_eq!(
        Grid::new(0, 3, Partition::Darknet, &s),
        Err(PlanError::GridSize { rows: 0, cols: 3 })
    );
    assert_eq!(
        Grid::new(9, 9, Partition::Darknet, &s),
        Err(PlanError::GridSize { rows: 9, cols: 9 })
    );
    let g = Grid::new(3, 3, Partition::Darknet, &s).unwrap();
    assert_eq!(
        TilePlan::new(&s, &g, 9, Mode::Plain).unwrap_err(),
        PlanError::TileOutOfRange { tile: 9, tiles: 9 }
    );
    assert!(g.tile_region(9).is_empty());
    assert_eq!(g.neighbour(9, Side::Left), None);
    // A grid laid over another stack's output.
    let s8 = FusedStack::new(&net, 8).unwrap();
    assert_eq!(
        TilePlan::new(&s8, &g, 0, Mode::Plain).unwrap_err(),
        PlanError::GridMismatch
    );
}
