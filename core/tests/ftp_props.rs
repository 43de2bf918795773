//! Tile plans against a brute-force, pixel-by-pixel dependency computation.

use proptest::prelude::*;
use tessera_core::ftp::{FusedStack, Grid, Level, Mode, Partition, PlanError, Side, TilePlan};
use tessera_core::model::{Activation, Conv, LayerKind, MaxPool, Network, Shape};
use tessera_core::region::{Region, Span};

/// `(kind, size, stride, pad)`; kind 0 = conv, 1 = maxpool (pad = Darknet total padding).
fn spec() -> impl Strategy<Value = (u8, u32, u32, u32)> {
    prop_oneof![
        3 => (prop::sample::select(vec![1u32, 3, 5]), 1u32..=2, prop::bool::weighted(0.2))
            .prop_map(|(k, s, no_pad)| (0u8, k, s, if no_pad { 0 } else { k / 2 })),
        1 => prop::sample::select(vec![(2u32, 2u32, 1u32), (2, 2, 0), (3, 2, 2), (2, 1, 1)])
            .prop_map(|(z, s, p)| (1u8, z, s, p)),
    ]
}

fn build(w: u32, h: u32, specs: &[(u8, u32, u32, u32)]) -> Network {
    let mut net = Network::new(Shape::new(w, h, 2)).unwrap();
    for &(kind, size, stride, pad) in specs {
        let k = if kind == 0 {
            LayerKind::Conv(Conv {
                filters: 2,
                size,
                stride,
                pad,
                batch_norm: false,
                activation: Activation::Linear,
            })
        } else {
            LayerKind::MaxPool(MaxPool { size, stride, pad })
        };
        if net.push(k).is_err() {
            break;
        }
    }
    net
}

/// A boolean map of one layer's spatial plane.
#[derive(Clone)]
struct Mask {
    w: u32,
    h: u32,
    on: Vec<bool>,
}

impl Mask {
    fn new(w: u32, h: u32) -> Self {
        Mask {
            w,
            h,
            on: vec![false; (w * h) as usize],
        }
    }

    fn of(w: u32, h: u32, r: Region) -> Self {
        let mut m = Mask::new(w, h);
        for y in r.y.start..r.y.end {
            for x in r.x.start..r.x.end {
                m.set(x, y);
            }
        }
        m
    }

    fn set(&mut self, x: u32, y: u32) {
        self.on[(y * self.w + x) as usize] = true;
    }

    fn get(&self, x: u32, y: u32) -> bool {
        self.on[(y * self.w + x) as usize]
    }

    fn pixels(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..self.h).flat_map(move |y| (0..self.w).map(move |x| (x, y)))
    }

    fn bbox(&self) -> Region {
        let mut b: Option<(u32, u32, u32, u32)> = None;
        for (x, y) in self.pixels().filter(|&(x, y)| self.get(x, y)) {
            b = Some(match b {
                None => (x, x, y, y),
                Some((x0, x1, y0, y1)) => (x0.min(x), x1.max(x), y0.min(y), y1.max(y)),
            });
        }
        b.map_or(Region::default(), |(x0, x1, y0, y1)| {
            Region::new(Span::inclusive(x0, x1), Span::inclusive(y0, y1))
        })
    }
}

/// Marks every input pixel some marked output pixel of layer `l` reads.
fn deps(net: &Network, l: usize, out: &Mask) -> Mask {
    let layer = &net.layers()[l];
    let (size, stride, off) = match &layer.kind {
        LayerKind::Conv(c) => (c.size, c.stride, c.pad),
        LayerKind::MaxPool(p) => (p.size, p.stride, p.pad / 2),
        _ => unreachable!(),
    };
    let (w, h) = (layer.input.w, layer.input.h);
    let mut m = Mask::new(w, h);
    for (x, y) in out.pixels().filter(|&(x, y)| out.get(x, y)) {
        for ky in 0..size {
            let iy = (y * stride + ky) as i64 - off as i64;
            for kx in 0..size {
                let ix = (x * stride + kx) as i64 - off as i64;
                if (0..w as i64).contains(&ix) && (0..h as i64).contains(&iy) {
                    m.set(ix as u32, iy as u32);
                }
            }
        }
    }
    m
}

fn grid_for(
    stack: &FusedStack<'_>,
    rows: u32,
    cols: u32,
    balanced: bool,
) -> Result<Option<Grid>, TestCaseError> {
    let o = stack.output();
    let partition = if balanced {
        Partition::Balanced
    } else {
        Partition::Darknet
    };
    let (rows, cols) = (1 + (rows - 1) % o.h.min(8), 1 + (cols - 1) % o.w.min(8));
    match Grid::new(rows, cols, partition, stack) {
        Ok(g) => Ok(Some(g)),
        Err(PlanError::DegenerateGrid { .. }) => {
            prop_assert_eq!(partition, Partition::Darknet);
            Ok(None)
        }
        Err(e) => Err(TestCaseError::fail(format!("{e}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Plain regions are exactly the bounding boxes of the true dependency sets, and the grid
    /// tiles partition the output.
    #[test]
    fn plain_regions_match_brute_force(
        specs in prop::collection::vec(spec(), 2..=7),
        w in 8u32..=48, h in 8u32..=48,
        rows in 1u32..=8, cols in 1u32..=8, balanced in any::<bool>(),
    ) {
        let net = build(w, h, &specs);
        prop_assume!(!net.layers().is_empty());
        let stack = FusedStack::new(&net, net.layers().len()).unwrap();
        let Some(grid) = grid_for(&stack, rows, cols, balanced)? else { return Ok(()) };
        let o = stack.output();
        let mut owner = vec![usize::MAX; (o.w * o.h) as usize];
        for t in 0..grid.tile_count() {
            let plan = TilePlan::new(&stack, &grid, t, Mode::Plain).unwrap();
            let tile = grid.tile_region(t);
            prop_assert!(!tile.is_empty());
            for y in tile.y.start..tile.y.end {
                for x in tile.x.start..tile.x.end {
                    let cell = &mut owner[(y * o.w + x) as usize];
                    prop_assert_eq!(*cell, usize::MAX, "tiles overlap");
                    *cell = t;
                }
            }
            let mut out = Mask::of(o.w, o.h, tile);
            for l in (0..stack.len()).rev() {
                prop_assert_eq!(plan.output(l), out.bbox(), "O_{} of tile {}", l, t);
                let input = deps(&net, l, &out);
                prop_assert_eq!(plan.input(l), input.bbox(), "I_{} of tile {}", l, t);
                for s in Side::ALL {
                    prop_assert!(plan.receive(l, s).is_empty() && plan.send(l, s).is_empty());
                }
                out = Mask::of(input.w, input.h, input.bbox());
            }
        }
        prop_assert!(owner.iter().all(|&t| t != usize::MAX), "tiles leave a gap");
    }

    /// Reuse plans: level-0 tiles keep plain regions; a level-1 tile's regions shrink, its
    /// inputs hold every true dependency of what it computes, its computed output plus the
    /// strips cover the next input pixel by pixel, each strip lies in the neighbour's plain
    /// output, and what a level-0 tile sends is exactly what its neighbour receives.
    #[test]
    fn reuse_regions_are_sound(
        specs in prop::collection::vec(spec(), 2..=7),
        w in 8u32..=48, h in 8u32..=48,
        rows in 1u32..=8, cols in 1u32..=8, balanced in any::<bool>(),
    ) {
        let net = build(w, h, &specs);
        prop_assume!(!net.layers().is_empty());
        let stack = FusedStack::new(&net, net.layers().len()).unwrap();
        let Some(grid) = grid_for(&stack, rows, cols, balanced)? else { return Ok(()) };
        let n = grid.tile_count();
        let plain: Vec<TilePlan> =
            (0..n).map(|t| TilePlan::new(&stack, &grid, t, Mode::Plain).unwrap()).collect();
        let reuse: Vec<TilePlan> =
            (0..n).map(|t| TilePlan::new(&stack, &grid, t, Mode::Reuse).unwrap()).collect();
        let last = stack.len() - 1;
        for t in 0..n {
            let (p, r) = (&plain[t], &reuse[t]);
            prop_assert_eq!(r.output(last), grid.tile_region(t));
            for l in 0..stack.len() {
                for s in Side::ALL {
                    let nb = grid.neighbour(t, s);
                    let sent = r.send(l, s);
                    let got = r.receive(l, s);
                    match grid.level(t) {
                        Level::Zero => {
                            prop_assert!(got.is_empty());
                            let expect = nb.map_or(Region::default(), |nb| {
                                reuse[nb].receive(l, s.opposite())
                            });
                            prop_assert_eq!(sent, expect);
                            prop_assert!(p.output(l).covers(&sent));
                        }
                        Level::One => {
                            prop_assert!(sent.is_empty());
                            if let Some(nb) = nb {
                                prop_assert!(plain[nb].output(l).covers(&got));
                                prop_assert_eq!(reuse[nb].send(l, s.opposite()), got);
                            } else {
                                prop_assert!(got.is_empty());
                            }
                        }
                    }
                }
                if grid.level(t) == Level::Zero {
                    prop_assert_eq!(r.input(l), p.input(l));
                    prop_assert_eq!(r.output(l), p.output(l));
                    continue;
                }
                prop_assert!(p.input(l).covers(&r.input(l)));
                prop_assert!(p.output(l).covers(&r.output(l)));
                let layer = &net.layers()[l];
                let computed = Mask::of(layer.output.w, layer.output.h, r.output(l));
                let need = deps(&net, l, &computed);
                let held = Mask::of(layer.input.w, layer.input.h, r.input(l));
                prop_assert!(need.pixels().all(|(x, y)| !need.get(x, y) || held.get(x, y)));
                if l < last {
                    let next = r.input(l + 1);
                    let mut have = computed.clone();
                    for s in Side::ALL {
                        let g = r.receive(l, s);
                        for y in g.y.start..g.y.end {
                            for x in g.x.start..g.x.end {
                                have.set(x, y);
                            }
                        }
                    }
                    for y in next.y.start..next.y.end {
                        for x in next.x.start..next.x.end {
                            prop_assert!(have.get(x, y), "tile {} layer {} misses ({}, {})", t, l, x, y);
                        }
                    }
                }
            }
        }
    }
}
