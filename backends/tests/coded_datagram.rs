//! The coded stage on the datagram transport over real UDP sockets on 127.0.0.x, every node's
//! stack wrapped in a seeded lossy layer: int8 (exact) shards decode bit-identically to the
//! centralised run while at most `r` shards of a layer are lost, and past `r` the frame ends
//! at its deadline with its loss reported (not a hang, not a wrong answer).
#![cfg(feature = "std")]

use crate::common;

use common::{linear_layer, values};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use tessera_backends::coded::{
    Activation, CodedDgramNode, CodedFinished, CodedModel, InlineShards, LayerScheme, Numeric,
};
use tessera_backends::dgram::{DgramConfig, DgramStats, LossyUdp};
use tessera_backends::nal_std::StdUdpStack;
use tessera_core::runtime::coded::{CodedConfig, Protection};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::datagram::DropReason;
use tessera_core::wire::{Key, NodeId};

const WORKERS: u16 = 8;
const K: usize = 6;
const R: usize = 2;

const INT: Numeric = Numeric::Int8 {
    in_scale: 1.0 / 64.0,
    w_scale: 1.0 / 127.0,
};

/// Two int8 layers, each split into `K` data and `R` parity shards on workers 1..=8.
fn model() -> CodedModel {
    let coded = LayerScheme {
        k: K,
        r: R,
        protection: Protection::Coded,
    };
    let workers: Vec<NodeId> = (1..=WORKERS).collect();
    CodedModel::new(
        vec![
            linear_layer(64, 48, 1, Activation::Relu, INT),
            linear_layer(48, 20, 7, Activation::Linear, INT),
        ],
        &[coded, coded],
        &workers,
    )
    .unwrap()
}

type Node = CodedDgramNode<LossyUdp<StdUdpStack>, InlineShards>;

struct Run {
    done: Vec<CodedFinished>,
    expect: Vec<f32>,
    gateway: DgramStats,
    dropped: u64,
}

/// `frames` frames of `cols` columns; every node loses `loss` of its datagrams (seeded), and
/// nothing the gateway sends reaches the workers in `cut`.
fn run(
    frames: usize,
    cols: usize,
    deadline: Duration,
    loss: f64,
    seed: u64,
    cut: &[NodeId],
) -> Run {
    let model = Arc::new(model());
    let key = Key::new([9; 32]);
    let ip = |id: NodeId| std::net::IpAddr::from([127, 0, 0, 1 + id as u8]);
    let mut nodes: Vec<Node> = (0..=WORKERS)
        .map(|id| {
            let mut stack = LossyUdp::new(StdUdpStack::new(ip(id)), loss, seed ^ u64::from(id));
            if id == 0 {
                for &w in cut {
                    stack = stack.blackhole(ip(w));
                }
            }
            let mut cfg = DgramConfig::new(id, 0, Vec::new(), key.clone());
            cfg.first_counter = 1 + u64::from(id);
            CodedDgramNode::new(
                stack,
                cfg,
                model.clone(),
                CodedConfig::new(deadline),
                InlineShards::default(),
            )
            .unwrap()
        })
        .collect();
    let addrs: Vec<(NodeId, SocketAddr)> = nodes
        .iter()
        .map(|n| {
            let e = n.endpoint();
            (
                n.id(),
                e.stack().inner().local_addr(e.socket().inner()).unwrap(),
            )
        })
        .collect();
    for n in nodes.iter_mut() {
        let me = n.id();
        n.set_peers(addrs.iter().copied().filter(|(q, _)| *q != me).collect());
    }
    let input = values(model.in_len() * cols, 42);
    // Virtual time: every round of polls is one millisecond whatever the host's speed
    // (loopback delivers within a round), so a loaded machine runs the same schedule.
    let start = StdInstant::now();
    let mut done = Vec::new();
    let mut submitted = 0;
    for round in 0u64.. {
        assert!(
            start.elapsed().as_secs() < 120,
            "coded stage on datagrams stalled: {} of {frames} frames",
            done.len()
        );
        let t = Instant::from_micros(round * 1000);
        for n in nodes.iter_mut() {
            n.poll(t);
        }
        done.extend(nodes[0].take_finished());
        if done.len() == frames {
            break;
        }
        if submitted < frames && nodes[0].in_flight() == 0 {
            nodes[0].submit(t, &input, cols).unwrap();
            submitted += 1;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    let dropped = nodes.iter().map(|n| n.endpoint().stack().dropped()).sum();
    Run {
        done,
        expect: model.reference(&input, cols).unwrap(),
        gateway: nodes[0].dgram_stats(),
        dropped,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn assert_exact(f: &CodedFinished, expect: &[f32]) {
    assert!(f.quality.is_complete(), "{:?}", f.quality);
    assert_eq!(f.quality.fraction, 1.0);
    assert!(f.layers.iter().all(|l| l.decoded));
    assert_eq!(bits(&f.output), bits(expect), "frame {:?}", f.frame);
}

/// Checks every frame of `r` (a layer decodes exactly when at least K of its K + R results
/// arrived in time; a complete frame is exact, an incomplete one says so) and returns the
/// exact frames and those that needed parity for a lost data shard.
fn check_frames(r: &Run) -> (usize, usize) {
    let (mut exact, mut recovered) = (0, 0);
    let data = (1u32 << K) - 1;
    for f in &r.done {
        for l in &f.layers {
            assert_eq!(l.decoded, l.present.count_ones() >= K as u32, "{l:?}");
        }
        if f.quality.is_complete() {
            assert_exact(f, &r.expect);
            exact += 1;
            recovered += usize::from(f.layers.iter().any(|l| l.present & data != data));
        } else {
            assert!(f.quality.fraction < 1.0, "{:?}", f.quality);
        }
    }
    (exact, recovered)
}

#[test]
fn without_loss_every_frame_is_exact() {
    let r = run(3, 2, Duration::from_millis(400), 0.0, 1, &[]);
    for f in &r.done {
        assert_exact(f, &r.expect);
    }
    assert_eq!(r.dropped, 0);
    let s = r.gateway;
    assert!(s.sent_datagrams >= 3 * 2 * (K + R) as u64, "{s:?}");
    assert_eq!(s.rx.dropped_total(), 0, "{s:?}");
    assert_eq!((s.wrong_source, s.bad_message, s.refused), (0, 0, 0));
}

#[test]
fn parity_covers_up_to_r_cut_workers_bit_identically() {
    // Workers 2 and 7 never get a task: shard 1 (and a parity shard) are erasures in every
    // layer, R = 2 covers them.
    let r = run(3, 2, Duration::from_millis(400), 0.0, 2, &[2, 7]);
    for f in &r.done {
        assert_exact(f, &r.expect);
        assert!(f.layers.iter().all(|l| l.present >> 1 & 1 == 0));
    }
    assert!(r.dropped > 0);
}

#[test]
fn past_r_losses_end_the_frame_at_its_deadline_with_the_loss_reported() {
    let deadline = Duration::from_millis(300);
    let r = run(2, 2, deadline, 0.0, 3, &[1, 4, 8]);
    assert_eq!(r.done.len(), 2, "every frame comes back");
    for f in &r.done {
        assert!(!f.quality.is_complete());
        assert!(
            f.quality.fraction > 0.0 && f.quality.fraction < 1.0,
            "{:?}",
            f.quality
        );
        assert!(f
            .layers
            .iter()
            .all(|l| !l.decoded && l.present.count_ones() < K as u32));
        // Virtual milliseconds: the stage keeps its deadline (one round of slack).
        assert!(
            f.latency <= deadline + Duration::from_millis(1),
            "{}",
            f.latency
        );
    }
}

#[test]
fn random_loss_is_recovered_exactly_while_at_most_r_shards_are_lost() {
    let r = run(24, 2, Duration::from_millis(300), 0.1, 4, &[]);
    assert_eq!(r.done.len(), 24);
    assert!(r.dropped > 0);
    let (exact, recovered) = check_frames(&r);
    let expired = r.done.len() - exact;
    eprintln!("24 frames at 10 % datagram loss: {recovered} recovered from parity, {expired} past R, {} datagrams dropped; gateway {:?}", r.dropped, r.gateway);
    // Seeded loss on a single-threaded schedule: these are fixed counts, both kinds occur.
    assert!(recovered > 0, "no frame needed parity");
    assert!(expired > 0, "no frame lost more than R shards");
    // Nothing the gateway got was malformed, forged or replayed: loss only.
    let s = r.gateway.rx;
    for reason in [
        DropReason::Malformed,
        DropReason::Forged,
        DropReason::Replayed,
    ] {
        assert_eq!(s.dropped(reason), 0, "{reason:?}");
    }
}

#[test]
fn inputs_of_many_datagrams_are_reassembled_and_a_lost_fragment_loses_only_its_shard() {
    // 24 columns: a task's input is 64 × 24 × 4 = 6 KiB, five datagrams; 2 % loss per
    // datagram loses about one task in ten, each an erasure like any other.
    let r = run(12, 24, Duration::from_millis(300), 0.02, 5, &[]);
    assert!(r.dropped > 0);
    let (exact, _) = check_frames(&r);
    assert!(exact >= 6, "{exact} of 12 frames exact");
    assert!(
        r.gateway.sent_datagrams >= 12 * (K + R) as u64 * 5,
        "{:?}",
        r.gateway
    );
}
