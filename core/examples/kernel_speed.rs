//! Times `Reference` vs `Portable` conv kernels on YOLOv2 layer shapes and prints GFLOP/s
//! (2 · MACs / s). Run: `cargo run --release -p tessera-core --example kernel_speed`.

use std::time::{Duration, Instant};

use tessera_core::kernel::{input_span, Kernels, Portable, Reference};
use tessera_core::model::weights::{BatchNorm, ConvParams};
use tessera_core::model::{Activation, Conv, MaxPool, Shape};
use tessera_core::tensor::{FeatureView, FeatureViewMut};
use tessera_core::{Region, Span};

fn values(n: usize, mut x: u32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// Best time of a few runs lasting at least ~0.3 s in total.
fn time(mut f: impl FnMut()) -> Duration {
    f();
    let mut best = Duration::MAX;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || (start.elapsed() < Duration::from_millis(300) && runs < 50) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}

fn bench_conv(name: &str, map: Shape, filters: u32, k: u32, out: Region) {
    let conv = Conv {
        filters,
        size: k,
        stride: 1,
        pad: k / 2,
        batch_norm: true,
        activation: Activation::Leaky,
    };
    let n = filters as usize;
    let (biases, scales, mean) = (values(n, 1), values(n, 2), values(n, 3));
    let variance: Vec<f32> = values(n, 4).iter().map(|v| v.abs() + 0.1).collect();
    let weights = values(conv.weight_count(map.c).unwrap(), 5);
    let params = ConvParams {
        biases: &biases,
        bn: Some(BatchNorm {
            scales: &scales,
            mean: &mean,
            variance: &variance,
        }),
        weights: &weights,
    };
    let view = Region::new(
        input_span(out.x, k, 1, k / 2, map.w),
        input_span(out.y, k, 1, k / 2, map.h),
    );
    let data = values(view.area() as usize * map.c as usize, 6);
    let input = FeatureView::new(&data, view, map.c).unwrap();
    let len = out.area() as usize * n;
    let (mut a, mut b) = (vec![0.0f32; len], vec![0.0f32; len]);
    let flops = 2.0 * out.area() as f64 * n as f64 * (map.c * k * k) as f64;
    let run = |kern: &dyn Kernels, buf: &mut [f32]| {
        time(|| {
            let mut o = FeatureViewMut::new(buf, out, filters).unwrap();
            kern.conv(&conv, map, &params, &input, &mut o).unwrap();
        })
    };
    let tr = run(&Reference, &mut a);
    let tp = run(&Portable, &mut b);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    let g = |t: Duration| flops / t.as_secs_f64() / 1e9;
    println!(
        "{name:<34} reference {:7.2} GFLOP/s  portable {:7.2} GFLOP/s  ×{:.1}",
        g(tr),
        g(tp),
        tr.as_secs_f64() / tp.as_secs_f64()
    );
}

fn bench_pool(name: &str, map: Shape) {
    let pool = MaxPool {
        size: 2,
        stride: 2,
        pad: 0,
    };
    let out = Region::full(map.w / 2, map.h / 2);
    let data = values(map.elements().unwrap(), 7);
    let input = FeatureView::new(&data, Region::full(map.w, map.h), map.c).unwrap();
    let len = out.area() as usize * map.c as usize;
    let (mut a, mut b) = (vec![0.0f32; len], vec![0.0f32; len]);
    let run = |kern: &dyn Kernels, buf: &mut [f32]| {
        time(|| {
            let mut o = FeatureViewMut::new(buf, out, map.c).unwrap();
            kern.maxpool(&pool, map, &input, &mut o).unwrap();
        })
    };
    let tr = run(&Reference, &mut a);
    let tp = run(&Portable, &mut b);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    println!(
        "{name:<34} reference {:7.2} ms        portable {:7.2} ms        ×{:.1}",
        tr.as_secs_f64() * 1e3,
        tp.as_secs_f64() * 1e3,
        tr.as_secs_f64() / tp.as_secs_f64()
    );
}

fn main() {
    let sq = |a: u32, b: u32| Region::new(Span::new(a, b), Span::new(a, b));
    bench_conv(
        "l0  608²×3→32 3×3, 128² tile",
        Shape::new(608, 608, 3),
        32,
        3,
        sq(200, 328),
    );
    bench_conv(
        "l4  152²×64→128 3×3, full",
        Shape::new(152, 152, 64),
        128,
        3,
        Region::full(152, 152),
    );
    bench_conv(
        "l12 38²×256→512 3×3, 13² tile",
        Shape::new(38, 38, 256),
        512,
        3,
        sq(13, 26),
    );
    bench_conv(
        "l13 38²×512→256 1×1, full",
        Shape::new(38, 38, 512),
        256,
        1,
        Region::full(38, 38),
    );
    bench_pool("l1  maxpool 608²×32 2×2/2, full", Shape::new(608, 608, 32));
}
