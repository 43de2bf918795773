//! A loopback cluster (real TCP on 127.0.0.x) of one gateway and K edges running every policy:
//! the stitched output must equal the single-device run bit for bit.
#![cfg(feature = "std")]

use crate::common;

use common::{link, loopback, port, single_device, small_model, values};
use std::sync::Arc;
use std::time::Instant as StdInstant;

#[cfg(feature = "codecs")]
use tessera_backends::builtin::DEFAULT_IMAGE;
use tessera_backends::driver::shipped::chunks;
use tessera_backends::driver::{Finished, Inline, Model, Node, NodeStats, SourceFrame};
use tessera_backends::link::Link;
use tessera_backends::nal_std::StdStack;
use tessera_backends::pipeline::{letterbox_of, Picture, Rgb8};
use tessera_core::ftp::{FusedStack, Grid, Partition};
use tessera_core::kernel::Portable;
use tessera_core::runtime::{Config, MAX_GATEWAY_FRAMES};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Body, FrameKey, Key, Message, Policy, Precision, GATEWAY};

type TestNode = Node<StdStack, Inline<Portable>>;

/// The test cluster's key.
const KEY: [u8; 32] = [9; 32];

/// A gateway and `edges` edges on loopback, created at `now`, and their port.
fn nodes(
    policy: Policy,
    grid: (u32, u32),
    edges: u16,
    local_reuse: bool,
    transfer: Precision,
    now: Instant,
) -> (Arc<Model>, Vec<TestNode>, u16) {
    let model = Arc::new(small_model(grid));
    let stack = FusedStack::new(&model.net, model.layers).unwrap();
    let g = Grid::new(grid.0, grid.1, Partition::Darknet, &stack).unwrap();
    let mut cfg = Config::new(policy, &stack, g);
    cfg.tile_timeout = Duration::from_secs(5);
    cfg.local_reuse = local_reuse;
    // Paced as cluster files run it: a source two results ahead leaves its tiles to thieves,
    // which prefetch.
    cfg.results_ahead = 2;
    cfg.prefetch = true;
    let p = port();
    let peers = loopback(edges, p);
    let key = Key::new(KEY);
    let mut nodes: Vec<TestNode> = peers
        .iter()
        .map(|&(id, addr)| {
            let link = link(id, &peers, p, &key, Duration::from_secs(3));
            Node::new(
                StdStack::new(addr.ip()),
                link,
                cfg,
                model.clone(),
                Inline::new(Portable, model.clone()),
                now,
            )
            .unwrap()
        })
        .collect();
    for n in nodes.iter_mut() {
        n.set_transfer(transfer);
    }
    (model, nodes, p)
}

/// Runs `frames` frames of `image` from edge 1 through a cluster; returns what the gateway
/// finished, the single-device output, and every node's counters.
fn run_cluster(
    policy: Policy,
    grid: (u32, u32),
    edges: u16,
    frames: usize,
    image: SourceFrame,
    local_reuse: bool,
    transfer: Precision,
) -> (Vec<Finished>, Vec<f32>, Vec<NodeStats>) {
    let start = StdInstant::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let (model, mut nodes, _) = nodes(policy, grid, edges, local_reuse, transfer, now());
    let mut submitted = 0;
    let mut done = Vec::new();
    while done.len() < frames {
        assert!(
            start.elapsed().as_secs() < 20,
            "cluster stalled: {} of {frames} frames",
            done.len()
        );
        let t = now();
        for n in nodes.iter_mut() {
            n.poll(t);
        }
        let ready = nodes[0].link().peers_up().count() == edges as usize;
        if submitted < frames && ready && nodes[1].submit(t, image.clone()).is_ok() {
            submitted += 1;
        }
        done.extend(nodes[0].take_finished());
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    // A picture-only frame's input is the picture letterboxed, as every node cuts it.
    let input = match &image.picture {
        Some(p) if image.input.is_empty() => {
            let shape = model.net.input();
            letterbox_of(&p.pixels().unwrap(), shape.w as usize, shape.h as usize).data
        }
        _ => image.input.clone(),
    };
    let expect = single_device(&model, &input);
    (done, expect, nodes.iter().map(|n| n.stats()).collect())
}

fn check(policy: Policy, grid: (u32, u32), edges: u16) {
    let image = values(48 * 40 * 3, 11).into();
    let (done, expect, _) = run_cluster(policy, grid, edges, 2, image, false, Precision::F32);
    check_output(policy, grid, edges, &done, &expect);
}

fn check_output(policy: Policy, grid: (u32, u32), edges: u16, done: &[Finished], expect: &[f32]) {
    for f in done {
        println!(
            "{policy:?} {grid:?} {edges} edges: frame {:?} in {} by {:?}",
            f.frame, f.latency, f.tiles_by
        );
        assert!(
            f.complete,
            "{policy:?} {grid:?} {edges} edges: frame {:?} failed",
            f.frame
        );
        let out = f.output.as_ref().expect("gateway output");
        assert!(
            out.iter()
                .zip(expect)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{policy:?} {grid:?} {edges} edges: output differs from the single-device run"
        );
    }
}

#[test]
fn every_policy_matches_the_single_device_run() {
    for policy in [Policy::Wsh, Policy::Wst, Policy::WstS, Policy::Bodp] {
        for edges in [1, 2] {
            check(policy, (3, 3), edges);
        }
    }
}

/// MoDNN keeps each stripe on its worker and moves only the overlap rows through the gateway:
/// the stitched output is still the single-device run's bit for bit (with 3 edges a middle
/// stripe takes rows from both sides), no node refuses a message or fails a job, every edge
/// computes, and the run moves fewer bytes than the gateway-resident BODP.
#[test]
fn modnn_keeps_stripes_on_the_workers_bit_exact_with_fewer_bytes_than_bodp() {
    let image: SourceFrame = values(48 * 40 * 3, 11).into();
    let sent = |stats: &[NodeStats]| stats.iter().map(|s| s.link.bytes_sent).sum::<u64>();
    let run = |policy| run_cluster(policy, (3, 3), 3, 2, image.clone(), false, Precision::F32);
    let (done, expect, modnn) = run(Policy::Modnn);
    check_output(Policy::Modnn, (3, 3), 3, &done, &expect);
    for (id, s) in modnn.iter().enumerate() {
        assert_eq!(s.failed_jobs, 0, "node {id} failed a job");
        assert_eq!(s.refused, 0, "node {id} refused a message");
        if id > 0 {
            assert!(s.runtime.tiles_computed > 0, "edge {id} computed nothing");
        }
    }
    let (_, _, bodp) = run(Policy::Bodp);
    println!("bytes sent: MoDNN {}, BODP {}", sent(&modnn), sent(&bodp));
    assert!(sent(&modnn) < sent(&bodp));
}

/// BODP and MoDNN with a frame that has a picture: the source submits the picture, the
/// gateway ships it to each worker, which cuts its layer-0 rows from it; bit-exact still.
#[test]
fn layered_policies_with_a_shipped_picture_match_the_single_device_run() {
    let image = shipped_pixels();
    for policy in [Policy::Bodp, Policy::Modnn] {
        let (done, expect, stats) =
            run_cluster(policy, (3, 3), 3, 2, image.clone(), false, Precision::F32);
        check_output(policy, (3, 3), 3, &done, &expect);
        for (id, s) in stats.iter().enumerate() {
            assert_eq!(s.failed_jobs, 0, "{policy:?}: node {id} failed a job");
            assert_eq!(s.refused, 0, "{policy:?}: node {id} refused a message");
        }
    }
}

/// Runs WSH and the stealing policies on `image` (which has a picture), WST-S with strips
/// through the gateway and kept where they were made: the tiles lent go as `TileTask`s after
/// the picture (under WSH the source ships it to the gateway, which relays it to its workers),
/// the receivers cut their inputs from their own decode, and the stitched output is still the
/// single-device run's, bit for bit.
fn check_shipped(image: SourceFrame) -> Vec<Finished> {
    assert!(image.picture.is_some());
    let mut all = Vec::new();
    for (policy, local) in [
        (Policy::Wsh, false),
        (Policy::Wst, false),
        (Policy::WstS, false),
        (Policy::WstS, true),
    ] {
        let (done, expect, stats) =
            run_cluster(policy, (3, 3), 2, 2, image.clone(), local, Precision::F32);
        check_output(policy, (3, 3), 2, &done, &expect);
        // Someone besides the source computed tiles: from the shipped picture.
        let helped: u32 = done
            .iter()
            .flat_map(|f| &f.tiles_by)
            .filter(|(id, _)| *id != 1)
            .map(|(_, n)| n)
            .sum();
        assert!(helped > 0, "{policy:?}: the source computed every tile");
        let picture = image.picture.as_ref().map_or(0, |p| p.bytes.len());
        if policy == Policy::Wsh && picture < image.input.len() * 4 {
            // Submitted as the picture (relayed by the gateway), not as `f32` input: the
            // source sent less than its frames' inputs (raw pixels are a quarter of them).
            let inputs = (2 * image.input.len() * 4) as u64;
            assert!(
                stats[1].link.bytes_sent < inputs,
                "WSH source sent {} bytes, the f32 inputs are {inputs}",
                stats[1].link.bytes_sent
            );
        }
        for (id, s) in stats.iter().enumerate() {
            assert_eq!(s.failed_jobs, 0, "{policy:?}: node {id} failed a job");
            assert_eq!(s.refused, 0, "{policy:?}: node {id} refused a message");
        }
        all.extend(done);
    }
    all
}

#[test]
fn tiles_cut_from_shipped_pixels_match_the_single_device_run() {
    check_shipped(shipped_pixels());
}

#[cfg(feature = "codecs")]
#[test]
fn tiles_cut_from_a_shipped_jpeg_match_the_single_device_run() {
    let image = SourceFrame::captured(DEFAULT_IMAGE.to_vec(), 48, 40).unwrap();
    check_shipped(image);
}

/// A source that keeps only the JPEG (no float input, as `tessera edge` runs WST and WST-S)
/// cuts its own tiles from it as the helpers do: the same output, bit for bit.
#[cfg(feature = "codecs")]
#[test]
fn a_source_holding_only_the_jpeg_cuts_its_own_tiles_too() {
    let image = SourceFrame::picture_only(DEFAULT_IMAGE.to_vec()).unwrap();
    assert!(image.input.is_empty());
    let done = check_shipped(image);
    let own: u32 = done
        .iter()
        .flat_map(|f| &f.tiles_by)
        .filter(|(id, _)| *id == 1)
        .map(|(_, n)| n)
        .sum();
    assert!(own > 0, "the source computed no tile of its own");
}

/// Tile results sent in f16 or i8 (strips kept local, so each result is the exact tile output
/// rounded once): every stitched value is within the precision's rounding of the exact one,
/// and some differ (the precision is really used).
#[test]
fn results_in_a_smaller_precision_are_within_its_rounding() {
    let image: SourceFrame = values(48 * 40 * 3, 11).into();
    for transfer in [Precision::F16, Precision::I8] {
        let (done, expect, _) =
            run_cluster(Policy::WstS, (3, 3), 2, 1, image.clone(), true, transfer);
        let out = done[0].output.as_ref().expect("gateway output");
        let c = 6;
        let plane = expect.len() / c;
        let mut differ = 0;
        for (i, (a, b)) in out.iter().zip(&expect).enumerate() {
            let tol = match transfer {
                Precision::F16 => b.abs() / 2048.0 + 1e-7,
                // Half a step of the channel's scale; a tile's scale is at most the map's.
                _ => {
                    let ch = &expect[i / plane * plane..(i / plane + 1) * plane];
                    ch.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 254.0 + 1e-6
                }
            };
            assert!((a - b).abs() <= tol, "{transfer:?} value {i}: {a} vs {b}");
            differ += usize::from(a.to_bits() != b.to_bits());
        }
        assert!(differ > 0, "{transfer:?}: every value exact");
    }
}

/// Strips through the gateway in f16: the level-1 tiles compute from rounded strips, so their
/// error grows through the layers, but the frame completes and stays close.
#[test]
fn strips_in_f16_through_the_gateway_stay_close() {
    let image: SourceFrame = values(48 * 40 * 3, 11).into();
    let (done, expect, stats) =
        run_cluster(Policy::WstS, (3, 3), 2, 2, image, false, Precision::F16);
    let max = expect.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for f in &done {
        assert!(f.complete);
        let out = f.output.as_ref().expect("gateway output");
        let err = out
            .iter()
            .zip(&expect)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= max * 1e-2, "max error {err} of {max}");
    }
    assert!(stats.iter().all(|s| s.failed_jobs == 0 && s.refused == 0));
}

/// A frame of raw pixels with its picture, for the shipping tests.
fn shipped_pixels() -> SourceFrame {
    let px: Vec<u8> = (0..61 * 37 * 3).map(|i| (i * 7919 % 251) as u8).collect();
    let rgb = Rgb8::new(61, 37, px).unwrap();
    SourceFrame {
        input: letterbox_of(&rgb, 48, 40).data,
        picture: Some(Arc::new(Picture::from_pixels(&rgb).unwrap())),
    }
}

/// A source ships a new frame's picture to the nodes that took tiles of its last frame as it
/// submits the frame, before any of them asks for a tile of it.
#[test]
fn a_new_frames_picture_goes_at_once_to_the_last_frames_thieves() {
    let image = shipped_pixels();
    let picture_bytes = image.picture.as_ref().unwrap().bytes.len() as u64;
    let start = StdInstant::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let (_, mut nodes, _) = nodes(Policy::Wst, (3, 3), 2, true, Precision::F32, now());
    let poll = |nodes: &mut Vec<TestNode>| {
        let t = now();
        for n in nodes.iter_mut() {
            n.poll(t);
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    };
    while nodes[0].link().peers_up().count() < 2 {
        assert!(start.elapsed().as_secs() < 20, "cluster did not connect");
        poll(&mut nodes);
    }
    // Frames one at a time until edge 2 computed a tile of one.
    let mut frames = 0;
    loop {
        assert!(frames < 20, "edge 2 took no tile of {frames} frames");
        nodes[1].submit(now(), image.clone()).unwrap();
        frames += 1;
        let mut by = Vec::new();
        while nodes[1].take_finished().is_empty() {
            assert!(start.elapsed().as_secs() < 20, "cluster stalled");
            poll(&mut nodes);
            by.extend(
                nodes[0]
                    .take_finished()
                    .into_iter()
                    .flat_map(|f| f.tiles_by),
            );
        }
        if by.iter().any(|&(id, n)| id == 2 && n > 0) {
            break;
        }
    }
    // The next frame's picture leaves with its submission.
    let before = nodes[1].link().stats().bytes_sent + nodes[1].link().backlog(2) as u64;
    nodes[1].submit(now(), image.clone()).unwrap();
    let after = nodes[1].link().stats().bytes_sent + nodes[1].link().backlog(2) as u64;
    assert!(
        after - before >= picture_bytes,
        "{} bytes sent at submission, picture {picture_bytes}",
        after - before
    );
}

/// Edge `id` of a cluster of `edges` edges on `port` (as [`nodes`] makes them) as a bare link:
/// what a test sends on it, and nothing else.
fn bare_link(id: u16, edges: u16, port: u16) -> Link<StdStack> {
    let peers = loopback(edges, port);
    let key = Key::new(KEY);
    let cfg = link(id, &peers, port, &key, Duration::from_secs(3));
    Link::new(StdStack::new(peers[id as usize].1.ip()), cfg).unwrap()
}

/// One turn at `t` of `node` and the bare link beside it.
fn poll_beside(node: &mut TestNode, bare: &mut Link<StdStack>, t: Instant) {
    node.poll(t);
    bare.poll(t, |_, _| {});
    std::thread::sleep(std::time::Duration::from_micros(200));
}

/// A WSH gateway takes a source's pictures before their `FrameSubmit`s; pictures whose
/// submission never comes are bounded (past as many frames as it may track, refused), not
/// kept for good.
#[test]
fn a_wsh_gateway_keeps_a_bounded_number_of_pictures_never_submitted() {
    let start = StdInstant::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let (_, mut nodes, port) = nodes(Policy::Wsh, (3, 3), 1, false, Precision::F32, now());
    // Edge 1 is a bare link: it sends chunks and nothing else.
    let mut gateway = nodes.remove(0);
    drop(nodes);
    let mut edge = bare_link(1, 1, port);
    while !edge.is_up(GATEWAY) || gateway.link().peers_up().count() < 1 {
        assert!(start.elapsed().as_secs() < 20, "no connection");
        poll_beside(&mut gateway, &mut edge, now());
    }
    let image = shipped_pixels();
    let picture = image.picture.as_ref().unwrap();
    let bound = 2 * MAX_GATEWAY_FRAMES;
    for n in 0..(bound + 8) as u32 {
        for m in chunks(FrameKey::new(1, n), picture) {
            edge.send(now(), GATEWAY, &m, Body::Message).unwrap();
        }
        poll_beside(&mut gateway, &mut edge, now());
    }
    let sent = edge.stats().bytes_sent;
    while gateway.link().stats().bytes_received < sent {
        assert!(start.elapsed().as_secs() < 20, "chunks not received");
        poll_beside(&mut gateway, &mut edge, now());
    }
    assert_eq!(
        gateway.frames_held(),
        bound,
        "the gateway took pictures up to its bound"
    );
    assert!(
        gateway.stats().refused >= 8,
        "the pictures past it were refused"
    );
}

/// A helper drops a frame's picture and strips when the frame is over: the frame's source
/// (WST, WST-S) or the gateway that relayed its picture (WSH, BODP) passes `FrameDone` on to the
/// nodes it shipped the picture to. Without it a helper kept them until the source's frame
/// numbers moved `MAX_FRAMES_PER_SOURCE` (8) on.
#[test]
fn a_helper_drops_a_frames_picture_once_the_frame_is_done() {
    for policy in [Policy::WstS, Policy::Wst, Policy::Wsh, Policy::Bodp] {
        helper_drops_done_frames(policy);
    }
}

fn helper_drops_done_frames(policy: Policy) {
    let image = shipped_pixels();
    let start = StdInstant::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let (_, mut nodes, _) = nodes(policy, (3, 3), 2, true, Precision::F32, now());
    // Polls every node; the most frames edge 2 has held.
    let held = std::cell::Cell::new(0);
    let poll = |nodes: &mut Vec<TestNode>| {
        let t = now();
        for n in nodes.iter_mut() {
            n.poll(t);
        }
        held.set(held.get().max(nodes[2].frames_held()));
        std::thread::sleep(std::time::Duration::from_micros(200));
    };
    while nodes[0].link().peers_up().count() < 2 {
        assert!(
            start.elapsed().as_secs() < 20,
            "{policy:?}: cluster did not connect"
        );
        poll(&mut nodes);
    }
    // Frames one at a time until edge 2 held one, then one more (under WST its picture goes
    // to edge 2 as it is submitted): fewer frames than the window that forgets.
    let mut frames = 0;
    let mut more = true;
    while more {
        assert!(frames < 7, "{policy:?}: edge 2 held no frame of {frames}");
        more = held.get() == 0;
        nodes[1].submit(now(), image.clone()).unwrap();
        frames += 1;
        while nodes[1].take_finished().is_empty() {
            assert!(
                start.elapsed().as_secs() < 20,
                "{policy:?}: cluster stalled"
            );
            poll(&mut nodes);
        }
    }
    while nodes[2].frames_held() > 0 {
        assert!(
            start.elapsed().as_secs() < 20,
            "{policy:?}: edge 2 still holds {} frames after all {frames} are done",
            nodes[2].frames_held()
        );
        poll(&mut nodes);
    }
    for (id, n) in nodes.iter().enumerate() {
        assert_eq!(
            n.stats().refused,
            0,
            "{policy:?}: node {id} refused a message"
        );
    }
}

/// A `FrameDone` of a frame from an edge that is not its source changes nothing at the edge
/// it reaches: refused and counted, the frame's picture kept.
#[test]
fn a_frame_done_from_another_edge_is_refused() {
    let start = StdInstant::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let (_, mut nodes, port) = nodes(Policy::WstS, (3, 3), 2, false, Precision::F32, now());
    // Edge 2 is a bare link; edge 1 holds a picture of edge 2's frame 5.
    let mut edge1 = nodes.remove(1);
    drop(nodes);
    let mut bare = bare_link(2, 2, port);
    while !bare.is_up(1) {
        assert!(start.elapsed().as_secs() < 20, "no connection");
        poll_beside(&mut edge1, &mut bare, now());
    }
    let picture = shipped_pixels().picture.unwrap();
    for m in chunks(FrameKey::new(2, 5), &picture) {
        bare.send(now(), 1, &m, Body::Message).unwrap();
    }
    // Frame 3.5 is edge 3's: edge 2 is not its source.
    let done = Message::FrameDone {
        frame: FrameKey::new(3, 5),
        complete: true,
    };
    bare.send_control(now(), 1, &done).unwrap();
    while edge1.stats().refused == 0 {
        assert!(
            start.elapsed().as_secs() < 20,
            "the FrameDone was not refused"
        );
        poll_beside(&mut edge1, &mut bare, now());
    }
    assert_eq!(edge1.frames_held(), 1, "the shipped picture is kept");
    // From its source, the picture goes.
    let done = Message::FrameDone {
        frame: FrameKey::new(2, 5),
        complete: true,
    };
    bare.send_control(now(), 1, &done).unwrap();
    while edge1.frames_held() > 0 {
        assert!(start.elapsed().as_secs() < 20, "the picture was kept");
        poll_beside(&mut edge1, &mut bare, now());
    }
    assert_eq!(edge1.stats().refused, 1);
}
