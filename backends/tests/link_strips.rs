//! WST-S with `reuse = "link"` on a loopback cluster (real TCP on 127.0.0.x): a gateway, a
//! data source and two thieves, one forced to fetch strips edge to edge, the other forced to
//! recompute the overlap (`Config::strip_fetch`, each node's own choice). The stitched output
//! equals the single-device run bit for bit, with `f32` tile inputs and with the frame shipped
//! as a picture.
#![cfg(feature = "std")]

use crate::common;

use common::{link, loopback, port, single_device, small_model, values};
use std::sync::Arc;
use std::time::Instant as StdInstant;

use tessera_backends::driver::{Finished, Inline, Node, NodeStats, SourceFrame};
use tessera_backends::nal_std::StdStack;
use tessera_backends::pipeline::{letterbox_of, Picture, Rgb8};
use tessera_core::ftp::{FusedStack, Grid, Partition};
use tessera_core::kernel::Portable;
use tessera_core::runtime::{Config, StripFetch};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Key, Policy};

const W: u32 = 48;
const H: u32 = 40;

type TestNode = Node<StdStack, Inline<Portable>>;

/// Runs `frames` frames of `image` from edge 1 through a gateway and edges 1–3 under WST-S
/// with link reuse; edge 2 always fetches strips, edge 3 never does; with `split`, edges 2
/// and 3 have no connection to each other. Returns the finished frames, the single-device
/// output and every node's counters.
fn run(
    image: SourceFrame,
    frames: usize,
    split: bool,
) -> (Vec<Finished>, Vec<f32>, Vec<NodeStats>) {
    let model = Arc::new(small_model((3, 3)));
    let stack = FusedStack::new(&model.net, model.layers).unwrap();
    let grid = Grid::new(3, 3, Partition::Darknet, &stack).unwrap();
    let mut cfg = Config::new(Policy::WstS, &stack, grid);
    cfg.tile_timeout = Duration::from_secs(5);
    cfg.local_reuse = true;
    cfg.link_reuse = true;
    // The source leaves tiles to thieves once one result is unconfirmed, so thieves take
    // level-1 tiles whose neighbours others computed.
    cfg.results_ahead = 1;
    cfg.prefetch = true;
    let rule = |id| match id {
        2 => StripFetch::Always,
        3 => StripFetch::Never,
        _ => StripFetch::Model,
    };
    let start = StdInstant::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let p = port();
    let peers = loopback(3, p);
    let key = Key::new([5; 32]);
    let mut nodes: Vec<TestNode> = peers
        .iter()
        .map(|&(id, addr)| {
            let cfg = Config {
                strip_fetch: rule(id),
                ..cfg
            };
            let apart = |q: u16| split && id + q == 5 && id.abs_diff(q) == 1;
            let known: Vec<_> = peers.iter().copied().filter(|&(q, _)| !apart(q)).collect();
            let link = link(id, &known, p, &key, Duration::from_secs(3));
            let exec = Inline::new(Portable, model.clone());
            Node::new(
                StdStack::new(addr.ip()),
                link,
                cfg,
                model.clone(),
                exec,
                now(),
            )
            .unwrap()
        })
        .collect();
    let (mut submitted, mut done) = (0, Vec::new());
    while done.len() < frames {
        assert!(
            start.elapsed().as_secs() < 30,
            "cluster stalled: {} of {frames} frames",
            done.len()
        );
        let t = now();
        for n in nodes.iter_mut() {
            n.poll(t);
        }
        let thieves = if split { 2 } else { 3 };
        let ready = nodes[0].link().peers_up().count() == 3
            && nodes[2].link().peers_up().count() == thieves
            && nodes[3].link().peers_up().count() == thieves;
        // One frame at a time: each starts with every tile queued at the source.
        if submitted == done.len() && ready && nodes[1].submit(t, image.clone()).is_ok() {
            submitted += 1;
        }
        done.extend(nodes[0].take_finished());
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let input = match &image.picture {
        Some(p) if image.input.is_empty() => {
            letterbox_of(&p.pixels().unwrap(), W as usize, H as usize).data
        }
        _ => image.input.clone(),
    };
    let expect = single_device(&model, &input);
    (done, expect, nodes.iter().map(|n| n.stats()).collect())
}

fn check(what: &str, image: SourceFrame, split: bool) -> Vec<NodeStats> {
    let (done, expect, stats) = run(image, 6, split);
    for f in &done {
        println!("{what}: frame {:?} tiles by {:?}", f.frame, f.tiles_by);
        assert!(f.complete, "{what}: frame {:?} failed", f.frame);
        let out = f.output.as_ref().expect("gateway output");
        assert!(
            out.iter()
                .zip(&expect)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: frame {:?} differs from the single-device run",
            f.frame
        );
    }
    for (id, s) in stats.iter().enumerate() {
        let r = &s.runtime;
        println!(
            "{what}: node {id}: computed {}, reuse runs {}, fetched edge to edge {}, \
             recomputed {}, fallbacks {}, sent {} B",
            r.tiles_computed,
            r.reuse_runs,
            r.link_fetches,
            r.link_recomputes,
            r.plain_fallbacks,
            s.link.bytes_sent
        );
        assert_eq!(s.failed_jobs, 0, "{what}: node {id} failed a job");
        assert_eq!(s.refused, 0, "{what}: node {id} refused a message");
    }
    let (fetcher, recomputer) = (&stats[2].runtime, &stats[3].runtime);
    assert!(
        fetcher.link_fetches >= 1 && fetcher.reuse_runs >= 1,
        "{what}: edge 2 fetched no strips"
    );
    assert_eq!(fetcher.link_recomputes, 0, "{what}: edge 2 recomputed");
    assert!(
        recomputer.link_recomputes >= 1,
        "{what}: edge 3 recomputed no overlap"
    );
    assert_eq!(recomputer.link_fetches, 0, "{what}: edge 3 fetched");
    stats
}

#[test]
fn strips_go_edge_to_edge_or_are_recomputed_and_the_output_is_bit_exact() {
    check("f32 inputs", values((W * H * 3) as usize, 11).into(), false);
    // Shipped as a picture: thieves cut a level-1 tile's whole input, or its reduced one when
    // they fetch, from their own decode.
    let px: Vec<u8> = (0..61 * 37 * 3).map(|i| (i * 7919 % 251) as u8).collect();
    let rgb = Rgb8::new(61, 37, px).unwrap();
    let image = SourceFrame {
        input: letterbox_of(&rgb, W as usize, H as usize).data,
        picture: Some(Arc::new(Picture::from_pixels(&rgb).unwrap())),
    };
    check("picture", image, false);
}

/// Edges 2 and 3 have no connection to each other: strips one holds for the other's tile go
/// through the gateway, and the output is still bit-exact.
#[test]
fn without_a_direct_path_strips_go_through_the_gateway() {
    let stats = check("split", values((W * H * 3) as usize, 11).into(), true);
    let relayed = stats[0].runtime.strips_relayed;
    println!("split: the gateway relayed {relayed} strip answers");
    assert!(relayed >= 1, "nothing relayed");
}
