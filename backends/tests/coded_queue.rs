//! The coded part's queue on a gateway ([`CodedPart::queue`], how an FTP gateway hands its
//! frames to the coded tail): frames past the stage's `MAX_CODED_FRAMES` wait and start as
//! earlier ones leave; past [`CODED_QUEUE`] waiting, or with an input that does not fit, a
//! frame leaves at once with nothing decoded. Every frame leaves exactly once. The workers
//! connect, then stall (sockets open, never polled): every layer ends at its budget with its
//! rows lost.
#![cfg(feature = "std")]

use crate::common;

use common::{link, loopback, port, values};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use tessera_backends::coded::{
    Activation, Chain, CodedModel, CodedNode, CodedPart, CodedSubmitError, InlineShards,
    LayerScheme, LinearLayer, Numeric, CODED_QUEUE,
};
use tessera_backends::link::Link;
use tessera_backends::nal_std::StdStack;
use tessera_core::runtime::coded::{CodedConfig, CodedError, Protection, MAX_CODED_FRAMES};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{FrameKey, Key, NodeId, GATEWAY};

#[test]
fn frames_past_the_stage_wait_and_every_frame_leaves_once() {
    let workers: Vec<NodeId> = (1..=3).collect();
    let layer = LinearLayer {
        in_len: 16,
        rows: 12,
        weights: values(16 * 12, 3),
        bias: values(12, 4),
        activation: Activation::Linear,
        numeric: Numeric::Float,
    };
    let scheme = LayerScheme {
        k: 2,
        r: 1,
        protection: Protection::Coded,
    };
    let model = Arc::new(CodedModel::new(vec![layer], &[scheme], &workers).unwrap());
    let p = port();
    let peers = loopback(3, p);
    let key = Key::new([9; 32]);
    let mut gw = Link::new(
        StdStack::new(peers[0].1.ip()),
        link(GATEWAY, &peers, p, &key, Duration::from_secs(5)),
    )
    .unwrap();
    let config = CodedConfig::new(Duration::from_secs(2));
    let mut stalled: Vec<CodedNode<StdStack, InlineShards>> = peers[1..]
        .iter()
        .map(|&(id, addr)| {
            let link = link(id, &peers, p, &key, Duration::from_secs(5));
            let exec = InlineShards::default();
            CodedNode::new(StdStack::new(addr.ip()), link, model.clone(), config, exec).unwrap()
        })
        .collect();
    let exec = InlineShards::new(tessera_core::kernel::Portable);
    let mut part = CodedPart::new(GATEWAY, model, config, exec, Chain).unwrap();
    let start = StdInstant::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
    while gw.peers_up().count() < 3 {
        assert!(start.elapsed().as_secs() < 20, "workers did not connect");
        gw.poll(now(), |_, _| {});
        stalled.iter_mut().for_each(|w| w.poll(now()));
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let input = values(16, 5);
    let capacity = MAX_CODED_FRAMES + CODED_QUEUE;
    for n in 0..capacity as u32 {
        part.queue(now(), &mut gw, FrameKey::new(1, n), &input, 1)
            .unwrap();
    }
    assert_eq!(part.in_flight(), capacity);
    assert!(part.take_finished().is_empty());
    // One more has no room; a short input does not fit: both leave at once, lost.
    let over = FrameKey::new(1, capacity as u32);
    assert_eq!(
        part.queue(now(), &mut gw, over, &input, 1),
        Err(CodedSubmitError::Stage(CodedError::TooManyFrames))
    );
    let short = FrameKey::new(2, 0);
    assert!(matches!(
        part.queue(now(), &mut gw, short, &input[..15], 1),
        Err(CodedSubmitError::Length { need: 16, have: 15 })
    ));
    let lost: Vec<FrameKey> = part.take_finished().iter().map(|f| f.frame).collect();
    assert_eq!(lost, [over, short]);
    assert_eq!(part.stats().failed_jobs, 2);
    let mut left: BTreeMap<FrameKey, usize> = BTreeMap::new();
    while left.len() < capacity {
        assert!(start.elapsed().as_secs() < 20, "{} frames left", left.len());
        gw.poll(now(), |_, _| {});
        part.poll(now(), &mut gw);
        for f in part.take_finished() {
            assert!(!f.quality.is_complete(), "no worker runs: {:?}", f.quality);
            *left.entry(f.frame).or_default() += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(left.values().all(|&n| n == 1), "{left:?}");
    assert_eq!(part.in_flight(), 0);
    drop(stalled);
}
