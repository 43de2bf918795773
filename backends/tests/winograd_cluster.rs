//! A loopback cluster with `kernel = winograd`: the stitched output must equal the
//! single-process run of the same frame with the same planned Winograd kernel on the same grid,
//! bit for bit, and a stripe policy is refused.
#![cfg(all(feature = "std", feature = "simd"))]

use crate::common;

use common::values;

use std::sync::Arc;
use std::time::Duration;

use tessera_backends::cluster::{tail_kernels, tile_kernels, ClusterSpec, StartError};
use tessera_backends::driver::thread::ForModel;
use tessera_backends::driver::Model;
use tessera_backends::kernels::{Form, Winograd};
use tessera_backends::local::{run_local, Faults, LocalError};
use tessera_backends::pipeline::{run_frame, AnyKernel, KernelChoice};
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition, TilePlan};
use tessera_core::model::weights::param_count;
use tessera_core::model::Shape;
use tessera_core::wire::Policy;
use tessera_testkit::{conv, loopback_port, pool};

const GRID: (u32, u32) = (3, 3);

/// A net whose 3x3 layers have 16 or more input channels (Winograd's minimum), on a map
/// large enough that the planner picks F4 for some of them.
fn model() -> Model {
    let layers = [
        conv(16, 3),
        conv(16, 3),
        conv(32, 3),
        pool(),
        conv(32, 3),
        conv(16, 1),
        conv(32, 3),
    ];
    let net = tessera_testkit::network(Shape::new(102, 78, 3), layers);
    let n = net.layers().len();
    let mut params = values(param_count(&net, n).unwrap(), 7);
    // Batch-norm variances positive (every parameter, as the other cluster tests do).
    params.iter_mut().for_each(|v| *v = v.abs() * 0.5 + 0.05);
    Model::new(net, params, n, GRID, Partition::Darknet).unwrap()
}

fn cluster(policy: Policy, layers: usize, edges: u16) -> ClusterSpec {
    let mut c = ClusterSpec::loopback(
        policy,
        GRID,
        edges,
        1,
        loopback_port(),
        Some([7; 32]),
        layers,
    );
    c.kernel = KernelChoice::Winograd;
    c.timeouts.tile = Duration::from_secs(5);
    c
}

#[test]
fn a_winograd_cluster_equals_the_planned_single_process_run_bit_for_bit() {
    // One edge: it holds every level-0 tile's strips, so its level-1 tiles run in Reuse
    // mode whatever the timing; two edges: tiles and strips cross the links, and every
    // node's convolutions run on 2 threads (its kernels prepared for them).
    for edges in [1, 2] {
        let reused = run_and_compare(edges, edges as usize);
        println!("{edges} edges: {reused} tiles in Reuse mode");
        if edges == 1 {
            assert!(reused > 0, "no tile ran in Reuse mode");
        }
    }
}

/// Runs two frames through a `winograd` cluster of `edges` edges, its convolutions on
/// `threads` threads, and checks them against the planned single-process run on one thread;
/// returns how many tiles ran in Reuse mode.
fn run_and_compare(edges: u16, threads: usize) -> u32 {
    let model = Arc::new(model());
    let stack = FusedStack::new(&model.net, model.layers).unwrap();
    let grid = Grid::new(GRID.0, GRID.1, Partition::Darknet, &stack).unwrap();
    let weights = model.weights().unwrap();
    let planned = Winograd::new()
        .planned(&stack, &grid, Mode::Reuse)
        .unwrap()
        .prepare(&weights);
    let forms = planned.layer_forms(&stack);
    println!("planned forms: {forms:?}");
    assert!(
        forms.contains(&Some(Form::F4)),
        "no layer runs F4, so no tile is widened to whole blocks: {forms:?}"
    );
    // Alignment matters here: some tile's plan reads more input with the block grid.
    let aligned = stack.aligned(&planned);
    let widened = (0..grid.tile_count())
        .flat_map(|t| [Mode::Plain, Mode::Reuse].map(|m| (t, m)))
        .filter(|&(t, m)| {
            let a = TilePlan::new(&aligned, &grid, t, m).unwrap();
            let p = TilePlan::new(&stack, &grid, t, m).unwrap();
            (0..stack.len()).any(|l| a.input(l) != p.input(l))
        })
        .count();
    assert!(widened > 0, "no tile plan is widened by F4's blocks");
    let mut c = cluster(Policy::WstS, model.layers, edges);
    c.threads = threads;
    // As planned, the kernels transform filters per call; a node's compute thread readies
    // them for its model: prepared, the same forms.
    let tiles = tile_kernels(&c, &model).unwrap();
    match (&tiles, tiles.for_model(&model).unwrap()) {
        (AnyKernel::Winograd(raw), AnyKernel::Winograd(w)) => {
            assert_eq!(raw.layer_forms(&stack), forms);
            assert_eq!(w.layer_forms(&stack), forms);
            assert!(!raw.is_prepared() && w.is_prepared());
            assert_eq!(w.threads(), threads);
        }
        other => panic!("winograd cluster runs {other:?}"),
    }
    // The tail (the gateway's, or coded shards) runs direct, on the same threads.
    match tail_kernels(&c) {
        AnyKernel::Simd(k) => assert_eq!(k.threads(), threads),
        other => panic!("a winograd cluster's tail runs {other:?}"),
    }
    let shape = model.net.input();
    let images: Vec<Vec<f32>> = (0..2)
        .map(|s| values((shape.w * shape.h * shape.c) as usize, 20 + s))
        .collect();
    let run = run_local(
        &c,
        model.clone(),
        &images,
        &Faults::default(),
        Duration::from_secs(60),
        None,
    )
    .unwrap();
    assert_eq!(run.gateway.len(), images.len(), "frames finished");
    for (f, image) in run.gateway.values().zip(&images) {
        assert!(f.complete, "frame {:?} failed", f.frame);
        let (expect, _) = run_frame(&planned, &stack, &weights, &grid, Mode::Reuse, image).unwrap();
        let out = f.output.as_ref().expect("the gateway's output");
        assert_eq!(out.len(), expect.len());
        let differ = out
            .iter()
            .zip(&expect)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differ, 0, "frame {:?}: outputs differ", f.frame);
    }
    run.stats.values().map(|s| s.runtime.reuse_runs).sum()
}

#[test]
fn a_stripe_policy_with_winograd_is_refused() {
    let model = Arc::new(model());
    let c = cluster(Policy::Bodp, model.layers, 2);
    let images = vec![vec![0.0f32; 102 * 78 * 3]];
    let r = run_local(
        &c,
        model,
        &images,
        &Faults::default(),
        Duration::from_secs(5),
        None,
    );
    assert!(
        matches!(
            r,
            Err(LocalError::Start {
                error: StartError::WinogradStripes("bodp"),
                ..
            })
        ),
        "{r:?}"
    );
}
