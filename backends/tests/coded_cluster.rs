//! The coded stage over real TCP on 127.0.0.x: a gateway and 8 workers run a two-layer int8
//! (exact) or float chain split into data and parity shards; killed workers are covered by
//! parity, a stalled worker is not waited for, too many losses end the frame at its deadline
//! with the quality reported.
#![cfg(feature = "std")]

use crate::common;

use common::{linear_layer as layer, link, loopback, port, values};
use std::sync::Arc;
use std::time::Instant as StdInstant;

use tessera_backends::coded::{
    Activation, CodedFinished, CodedModel, CodedNode, InlineShards, LayerScheme, Numeric,
};
use tessera_backends::nal_std::StdStack;
use tessera_core::runtime::coded::{CodedConfig, Protection};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Key, NodeId};

const WORKERS: u16 = 8;

fn model(numeric: Numeric, scheme: [LayerScheme; 2]) -> CodedModel {
    let workers: Vec<NodeId> = (1..=WORKERS).collect();
    CodedModel::new(
        vec![
            layer(64, 48, 1, Activation::Relu, numeric),
            layer(48, 20, 7, Activation::Linear, numeric),
        ],
        &scheme,
        &workers,
    )
    .unwrap()
}

const INT: Numeric = Numeric::Int8 {
    in_scale: 1.0 / 64.0,
    w_scale: 1.0 / 127.0,
};

fn coded(k: usize, r: usize) -> LayerScheme {
    LayerScheme {
        k,
        r,
        protection: Protection::Coded,
    }
}

/// Runs `frames` frames (`cols` columns each) with the workers in `dead` never started and
/// `stalled` started but never polled after connecting; returns the finished frames.
fn run(
    model: CodedModel,
    deadline: Duration,
    frames: usize,
    cols: usize,
    dead: &[NodeId],
    stalled: &[NodeId],
) -> (Vec<CodedFinished>, Vec<f32>, Vec<f32>) {
    let model = Arc::new(model);
    let p = port();
    let peers = loopback(WORKERS, p);
    let start = StdInstant::now();
    // Virtual time: every round of polls is one millisecond, whatever the host's speed, so
    // budgets and latencies are counted in rounds (loopback delivers within a round) and a
    // loaded machine (or qemu-user) runs the same schedule, only slower.
    let mut rounds = 0u64;
    let key = Key::new([5; 32]);
    let mut nodes: Vec<CodedNode<StdStack, InlineShards>> = peers
        .iter()
        .filter(|(id, _)| !dead.contains(id))
        .map(|&(id, addr)| {
            let link = link(id, &peers, p, &key, Duration::from_secs(5));
            CodedNode::new(
                StdStack::new(addr.ip()),
                link,
                model.clone(),
                CodedConfig::new(deadline),
                InlineShards::default(),
            )
            .unwrap()
        })
        .collect();
    let input = values(model.in_len() * cols, 42);
    let alive = (WORKERS as usize) - dead.len();
    let mut submitted = 0;
    let mut done = Vec::new();
    while done.len() < frames {
        assert!(
            start.elapsed().as_secs() < 120,
            "coded cluster stalled: {} of {frames} frames",
            done.len()
        );
        let t = Instant::from_micros(rounds * 1000);
        rounds += 1;
        let ready = nodes[0].link().peers_up().count() == alive;
        for n in nodes.iter_mut() {
            // A stalled worker stops working once the cluster is up (its socket stays open).
            if ready && stalled.contains(&n.id()) {
                continue;
            }
            n.poll(t);
        }
        if ready && submitted < frames && nodes[0].in_flight() == 0 {
            nodes[0].submit(t, &input, cols).unwrap();
            submitted += 1;
        }
        done.extend(nodes[0].take_finished());
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let expect = model.reference(&input, cols).unwrap();
    (done, expect, input)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn int8_parity_covers_killed_workers_exactly() {
    // k = 6 + r = 2 on 8 workers; workers 2 and 7 hold a data and a parity shard.
    let m = model(INT, [coded(6, 2), coded(6, 2)]);
    let (done, expect, _) = run(m, Duration::from_secs(5), 3, 2, &[2, 7], &[]);
    for f in &done {
        assert!(f.quality.is_complete(), "{:?}", f.quality);
        assert_eq!(f.quality.fraction, 1.0);
        assert_eq!(bits(&f.output), bits(&expect), "frame {:?}", f.frame);
        assert!(f.layers.iter().all(|l| l.decoded));
        // Shard 1 (worker 2) never arrived: decoded from parity.
        assert!(f.layers.iter().all(|l| l.present >> 1 & 1 == 0));
    }
}

#[test]
fn a_stalled_worker_is_not_waited_for() {
    // r = 1: the stalled worker's shard is recovered from parity long before the deadline.
    let m = model(INT, [coded(7, 1), coded(7, 1)]);
    let (done, expect, _) = run(m, Duration::from_secs(8), 2, 1, &[], &[4]);
    for f in &done {
        assert!(f.quality.is_complete());
        assert_eq!(bits(&f.output), bits(&expect));
        assert!(
            f.latency < Duration::from_secs(4),
            "waited for the straggler: {}",
            f.latency
        );
    }
}

#[test]
fn float_replication_and_loss_beyond_parity() {
    // 2MR on 8 workers (k = 4): losing worker 3 leaves its replica (worker 7).
    let rep = LayerScheme {
        k: 4,
        r: 0,
        protection: Protection::Replicated,
    };
    let m = model(Numeric::Float, [rep, rep]);
    let (done, expect, _) = run(m, Duration::from_secs(5), 2, 3, &[3], &[]);
    for f in &done {
        assert!(f.quality.is_complete());
        assert_eq!(bits(&f.output), bits(&expect), "replicas compute the same");
    }
    // Uncoded k = 8: a dead worker's rows are lost. Its link is down, so the layer does not
    // wait for it: it ends as soon as the others are in, with the quality reported and the
    // lost rows zero.
    let m = model(INT, [coded(8, 0), coded(8, 0)]);
    let deadline = Duration::from_secs(5);
    let (done, _, _) = run(m, deadline, 1, 1, &[5], &[]);
    let f = &done[0];
    assert!(!f.quality.is_complete());
    assert!(f.quality.fraction < 1.0 && f.quality.fraction > 0.0);
    assert!(f.layers.iter().all(|l| !l.decoded));
    assert!(
        f.latency < deadline,
        "waited for a dead worker: {}",
        f.latency
    );
}

#[test]
fn a_silent_worker_costs_its_rows_at_the_layer_budget() {
    // Uncoded k = 8 with worker 6 connected but stalled: nothing says it is gone, so layer 0
    // waits its whole budget (half the frame deadline under the uniform allocator), then
    // ends with 7/8 of its rows; the frame still completes within its deadline.
    let m = model(INT, [coded(8, 0), coded(8, 0)]);
    let deadline = Duration::from_millis(800);
    let (done, _, _) = run(m, deadline, 1, 1, &[], &[6]);
    let f = &done[0];
    assert!(!f.quality.is_complete());
    let l0 = f.layers[0];
    assert!(!l0.decoded && l0.present.count_ones() == 7, "{l0:?}");
    assert!(l0.latency >= Duration::from_millis(400), "{}", l0.latency);
    assert!(f.latency <= deadline, "{}", f.latency);
}

/// Two 3x3 convolutions on a 7x5 map as coded layers: with every data shard in, the output is
/// the centralised one bit for bit (data shards run exactly the centralised filters); with a
/// data worker lost, its filters are decoded from the parity filters within the float bound.
#[test]
fn conv_layers_decode_from_parity_filters() {
    use tessera_backends::coded::ConvGeom;
    let geom = ConvGeom {
        size: 3,
        width: 7,
        height: 5,
    };
    let conv = |c_in: usize, filters: usize, seed: u32, act| {
        let mut l = layer(c_in, filters, seed, act, Numeric::Float);
        l.weights = values(filters * c_in * 9, seed);
        (l, Some(geom))
    };
    let scheme = [coded(7, 1), coded(7, 1)];
    let workers: Vec<NodeId> = (1..=WORKERS).collect();
    let build = || {
        CodedModel::with_geometry(
            vec![
                conv(4, 14, 3, Activation::Leaky),
                conv(14, 9, 5, Activation::Linear),
            ],
            &scheme,
            &workers,
        )
        .unwrap()
    };
    let (done, expect, _) = run(build(), Duration::from_secs(5), 2, geom.cols(), &[], &[]);
    for f in &done {
        assert!(f.quality.is_complete());
        assert_eq!(bits(&f.output), bits(&expect));
    }
    // Worker 2 holds data shard 1 of both layers: decoded from the parity filters.
    let (done, expect, _) = run(build(), Duration::from_secs(5), 2, geom.cols(), &[2], &[]);
    for f in &done {
        assert!(f.quality.is_complete());
        let scale = expect.iter().map(|v| v.abs()).fold(1.0f32, f32::max);
        let err = f
            .output
            .iter()
            .zip(&expect)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 1e-4 * scale, "max |err| {err} (scale {scale})");
    }
}
