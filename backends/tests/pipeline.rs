//! One frame on one machine (`backends::pipeline`) on a tiny YOLO-like network: tiled runs
//! equal the whole frame bit for bit, the tail steps layer by layer through route, reorg and
//! region, boxes decode, and bad input gets typed errors.
#![cfg(all(feature = "alloc", feature = "simd"))]

use crate::common;

use tessera_backends::kernels::Fma;
use tessera_backends::pipeline::{
    boxes, run_frame, run_tail, AnyKernel, DecodeError, FrameError, KernelChoice, Tail, TailError,
};
use tessera_core::detect::{DetectError, DEFAULT_NMS};
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::kernel::{Kernels, Portable};
use tessera_core::model::weights::{param_count, Weights};
use tessera_core::model::{cfg, Network, Shape};

/// 32×32×3 input; layers 0–3 conv/pool (the fused stack), then conv 4, route 5 (reads 2),
/// reorg 6, route 7 (6 and 4), a 1×1 conv 8 to 2 × (10 + 5) channels and region 9.
const TINY: &str = "
[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[route]
layers=-3

[reorg]
stride=2

[route]
layers=-1,-3

[convolutional]
size=1
stride=1
pad=1
filters=30
activation=linear

[region]
anchors=1,1,2,2
classes=10
coords=4
num=2
";

const STACK: usize = 4;

fn tiny() -> (Network, Vec<f32>) {
    let net = cfg::parse(TINY).unwrap();
    let n = param_count(&net, net.layers().len()).unwrap();
    // Batch-norm variances must be positive: every parameter |x|/2 + 0.05.
    let params = common::values(n, 7)
        .into_iter()
        .map(|v| v.abs() * 0.5 + 0.05)
        .collect();
    (net, params)
}

fn input(net: &Network) -> Vec<f32> {
    let s = net.input();
    common::values((s.w * s.h * s.c) as usize, 11)
}

fn frame<K: Kernels>(
    k: &K,
    net: &Network,
    params: &[f32],
    grid: (u32, u32),
    mode: Mode,
) -> Vec<f32> {
    let stack = FusedStack::new(net, STACK).unwrap();
    let w = Weights::new(net, STACK, params).unwrap();
    let g = Grid::new(grid.0, grid.1, Partition::Darknet, &stack).unwrap();
    let (out, stats) = run_frame(k, &stack, &w, &g, mode, &input(net)).unwrap();
    assert_eq!(stats.tiles, (grid.0 * grid.1) as usize);
    assert!(
        stats.macs >= net.macs(STACK),
        "{} < {}",
        stats.macs,
        net.macs(STACK)
    );
    assert_eq!(stats.strip_bytes > 0, mode == Mode::Reuse && grid != (1, 1));
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn tiled_frames_equal_the_whole_frame_bit_for_bit() {
    let (net, params) = tiny();
    let simd = AnyKernel::of(KernelChoice::Simd);
    for (name, whole, tiled) in [
        (
            "portable",
            frame(&Portable, &net, &params, (1, 1), Mode::Plain),
            [
                frame(&Portable, &net, &params, (3, 3), Mode::Reuse),
                frame(&Portable, &net, &params, (2, 3), Mode::Plain),
            ],
        ),
        (
            "simd",
            frame(&simd, &net, &params, (1, 1), Mode::Plain),
            [
                frame(&Fma::new(), &net, &params, (3, 3), Mode::Reuse),
                frame(&simd, &net, &params, (2, 3), Mode::Plain),
            ],
        ),
    ] {
        assert_eq!(whole.len(), 8 * 8 * 16);
        assert!(whole.iter().any(|&v| v != 0.0), "{name}");
        for t in tiled {
            assert_eq!(bits(&whole), bits(&t), "{name}");
        }
    }
}

#[test]
fn frames_refuse_a_wrong_input() {
    let (net, params) = tiny();
    let stack = FusedStack::new(&net, STACK).unwrap();
    let w = Weights::new(&net, STACK, &params).unwrap();
    let g = Grid::new(2, 2, Partition::Darknet, &stack).unwrap();
    let short = &input(&net)[1..];
    assert!(matches!(
        run_frame(&Portable, &stack, &w, &g, Mode::Plain, short),
        Err(FrameError::Input(_))
    ));
}

#[test]
fn the_tail_steps_through_route_reorg_and_region() {
    let (net, params) = tiny();
    let all = net.layers().len();
    let w = Weights::new(&net, all, &params).unwrap();
    let fused = frame(&Portable, &net, &params, (1, 1), Mode::Plain);
    // From 4 the route at 5 reads layer 2, which the tail does not compute: given or refused.
    let out2 = common::values(16 * 16 * 16, 5);
    assert_eq!(
        run_tail(&Portable, &net, &w, STACK, &fused, &[]).unwrap_err(),
        TailError::Missing {
            layer: 5,
            source: 2
        }
    );
    let mut tail = Tail::new(&net, STACK, &fused, &[(2, &out2)]).unwrap();
    let mut ran = Vec::new();
    while let Some(l) = tail.step(&Portable, &w).unwrap() {
        ran.push(l);
    }
    assert_eq!(ran, (STACK..all).collect::<Vec<_>>());
    assert_eq!(tail.next_layer(), None);
    let run = tail.finish();
    assert_eq!((run.shape, run.layers), (Shape::new(8, 8, 30), all - STACK));
    let again = run_tail(&Portable, &net, &w, STACK, &fused, &[(2, &out2)]).unwrap();
    assert_eq!(bits(&run.output), bits(&again.output));
    // The route really reads layer 2.
    let other: Vec<f32> = out2.iter().map(|v| v + 0.5).collect();
    let moved = run_tail(&Portable, &net, &w, STACK, &fused, &[(2, &other)]).unwrap();
    assert_ne!(bits(&run.output), bits(&moved.output));

    // Boxes: a low threshold decodes some; the same output gives the same boxes.
    let d = boxes(&net, &run.output, 64, 48, 0.001, DEFAULT_NMS).unwrap();
    assert!(!d.is_empty());
    assert_eq!(
        d,
        boxes(&net, &again.output, 64, 48, 0.001, DEFAULT_NMS).unwrap()
    );
    assert!(d.windows(2).all(|p| p[0].prob >= p[1].prob));
    assert_eq!(
        boxes(&net, &run.output, 64, 48, 2.0, DEFAULT_NMS),
        Err(DecodeError::Detect(DetectError::BadThreshold))
    );

    // Bad calls.
    for from in [0, all] {
        assert!(matches!(
            Tail::new(&net, from, &fused, &[]),
            Err(TailError::Range { .. })
        ));
    }
    assert!(matches!(
        Tail::new(&net, STACK, &fused[1..], &[]),
        Err(TailError::InputSize { layer: 3, .. })
    ));
    assert!(matches!(
        Tail::new(&net, STACK, &fused, &[(99, &out2)]),
        Err(TailError::NoLayer { layer: 99 })
    ));
    let few = Weights::new(&net, STACK, &params).unwrap();
    assert_eq!(
        run_tail(&Portable, &net, &few, STACK, &fused, &[(2, &out2)]).unwrap_err(),
        TailError::Weights { layer: STACK }
    );
}

#[test]
fn boxes_need_a_region_layer() {
    let (net, _) = tiny();
    let cut = cfg::parse(&TINY[..TINY.find("[region]").unwrap()]).unwrap();
    assert_eq!(cut.layers().len() + 1, net.layers().len());
    let out = vec![0.0; 8 * 8 * 30];
    assert_eq!(
        boxes(&cut, &out, 64, 48, 0.5, DEFAULT_NMS),
        Err(DecodeError::NotRegion)
    );
}

#[test]
fn kernel_names_parse() {
    assert_eq!("portable".parse(), Ok(KernelChoice::Portable));
    assert_eq!("simd".parse(), Ok(KernelChoice::Simd));
    assert_eq!("auto".parse(), Ok(KernelChoice::auto()));
    let e = "gpu".parse::<KernelChoice>().unwrap_err();
    assert!(e.to_string().contains("\"gpu\""), "{e}");
}
