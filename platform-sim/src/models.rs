//! The networks the simulator runs: YOLOv2's fused layers 0–15 (cost model) and a small net
//! for real kernels, with deterministic parameters and inputs.

use tessera_backends::driver::{Model, ModelError};
use tessera_backends::pipeline::{run_frame, FrameError};
use tessera_core::ftp::{Grid, Mode, Partition, PlanError};
use tessera_core::kernel::Portable;
use tessera_core::model::weights::param_count;
use tessera_core::model::{cfg, Activation, Conv, LayerKind, MaxPool, Network, Shape};
use tessera_core::rng::SplitMix64;

/// The YOLOv2 608×608 cfg the project ships.
pub const YOLO_CFG: &str = include_str!("../../data/yolov2-608.cfg");
/// Fused layers of YOLOv2 (docs/design.md §2.1).
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
    let mut rng = SplitMix64::new(u64::from(seed));
    (0..n).map(|_| rng.uniform_f32(-1.0, 1.0)).collect()
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

/// Why the single-device reference could not run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReferenceError {
    /// The model's stack or weights were refused.
    Model(ModelError),
    /// The 1x1 grid was refused.
    Grid(PlanError),
    /// The frame failed.
    Frame(FrameError),
}

/// The single-device reference: the whole frame as one tile (a 1x1 grid) through
/// `backends::pipeline::run_frame`, as `tessera layers` runs it, with the portable kernels.
pub fn reference(model: &Model, image: &[f32]) -> Result<Vec<f32>, ReferenceError> {
    let stack = model.stack().map_err(ReferenceError::Model)?;
    let grid = Grid::new(1, 1, Partition::Darknet, &stack).map_err(ReferenceError::Grid)?;
    let w = model.weights().map_err(ReferenceError::Model)?;
    run_frame(&Portable, &stack, &w, &grid, Mode::Plain, image)
        .map(|(out, _)| out)
        .map_err(ReferenceError::Frame)
}
