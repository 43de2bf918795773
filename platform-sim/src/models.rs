//! The networks the simulator runs: YOLOv2's fused layers 0–15 (cost model) and a small net
//! for real kernels, with deterministic parameters and inputs.

use tessera_backends::driver::Model;
use tessera_core::exec::{run_tile, scratch_elems, NoStrips};
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition, TilePlan};
use tessera_core::kernel::Portable;
use tessera_core::model::weights::param_count;
use tessera_core::model::{cfg, Activation, Conv, LayerKind, MaxPool, Network, Shape};
use tessera_core::tensor::FeatureView;
use tessera_core::Region;

/// The YOLOv2 608×608 cfg the project ships.
pub const YOLO_CFG: &str = include_str!("../../data/yolov2-608.cfg");
/// Fused layers of YOLOv2 (DESIGN-NOTES §1).
pub const YOLO_FUSED: usize = 16;

/// Which network a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// YOLOv2 608×608, layers 0–15 (zero parameters: cost model only).
    Yolo16,
    /// 48×40×3, 7 layers (conv/pool mix as YOLO's), random parameters: real kernels.
    Small,
}

/// Deterministic values in [-1, 1).
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn small_network() -> Network {
    let conv = |filters, size| {
        LayerKind::Conv(Conv {
            filters,
            size,
            stride: 1,
            pad: size / 2,
            batch_norm: true,
            activation: Activation::Leaky,
        })
    };
    let pool = LayerKind::MaxPool(MaxPool {
        size: 2,
        stride: 2,
        pad: 1,
    });
    let mut net = Network::new(Shape::new(48, 40, 3)).expect("small net input");
    for k in [
        conv(8, 3),
        pool.clone(),
        conv(8, 3),
        conv(4, 1),
        conv(8, 3),
        pool,
        conv(6, 3),
    ] {
        net.push(k).expect("small net layer");
    }
    net
}

/// The model of `net` on `grid`.
pub fn model(net: Net, grid: (u32, u32)) -> Model {
    match net {
        Net::Yolo16 => {
            let n = cfg::parse(YOLO_CFG).expect("bundled yolov2 cfg parses");
            let p = param_count(&n, YOLO_FUSED).expect("yolo params");
            Model::new(n, vec![0.0; p], YOLO_FUSED, grid, Partition::Darknet).expect("yolo model")
        }
        Net::Small => {
            let n = small_network();
            let layers = n.layers().len();
            let mut params = values(param_count(&n, layers).expect("small params"), 3);
            // Batch-norm variances must be positive: make every parameter |x|/2 + 0.05.
            params.iter_mut().for_each(|v| *v = v.abs() * 0.5 + 0.05);
            Model::new(n, params, layers, grid, Partition::Darknet).expect("small model")
        }
    }
}

/// The network input of frame `k` (CHW).
pub fn image(model: &Model, k: u32, real: bool) -> Vec<f32> {
    let s = model.net.input();
    let n = (s.w * s.h * s.c) as usize;
    if real {
        values(n, 11 + k)
    } else {
        vec![0.0; n]
    }
}

/// The single-device reference: the whole frame as one tile with `exec::run_tile`.
pub fn reference(model: &Model, image: &[f32]) -> Vec<f32> {
    let stack = FusedStack::new(&model.net, model.layers).expect("stack");
    let grid = Grid::new(1, 1, Partition::Darknet, &stack).expect("1x1 grid");
    let plan = TilePlan::new(&stack, &grid, 0, Mode::Plain).expect("plan");
    let n = scratch_elems(&stack, &plan).expect("scratch");
    let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
    let s = stack.output();
    let mut out = vec![0.0; (s.w * s.h * s.c) as usize];
    let i = stack.input();
    let input = FeatureView::new(image, Region::full(i.w, i.h), i.c).expect("input view");
    let w = model.weights().expect("weights");
    run_tile(
        &Portable,
        &stack,
        &w,
        &plan,
        &input,
        &mut a,
        &mut b,
        &mut NoStrips,
        &mut out,
    )
    .expect("reference run");
    out
}
