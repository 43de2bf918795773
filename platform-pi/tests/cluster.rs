//! Loopback clusters (real TCP on 127.0.0.x, authenticated) running YOLOv2 at 160×160 with
//! generated weights: the layer-15 output and the detections must be bit-identical to the
//! single-device run, for every policy, 1, 2 and 4 edges, 3x3 and 5x5 grids, and under faults.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tessera_testkit::loopback_port;

use tessera_backends::builtin::DEFAULT_CFG;
use tessera_backends::cluster::ClusterSpec;
use tessera_backends::driver::Model;
use tessera_backends::gen_weights;
use tessera_backends::local::{fused_model, run_local, Faults, LocalRun};
use tessera_backends::pipeline::{boxes, run_frame, run_tail};
use tessera_core::detect::Detection;
use tessera_core::detect::{DEFAULT_NMS, DEFAULT_THRESH};
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::kernel::Portable;
use tessera_core::model::weights::Weights;
use tessera_core::model::{cfg, Network};
use tessera_core::wire::{encode, FrameKey, Key, Message, Policy, Role};
use tessera_pi::image::{Image, ImageFiles};

const KEY: [u8; 32] = [0x42; 32];
const LAYERS: usize = 16;

struct Fixture {
    net: Network,
    params: Vec<f32>,
    images: Vec<Vec<f32>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let text = DEFAULT_CFG
            .replace("width=608", "width=160")
            .replace("height=608", "height=160");
        let net = cfg::parse(&text).unwrap();
        let params = gen_weights::params(&net, net.layers().len(), 5);
        let img = Image::decode(include_bytes!("../../data/images/1.jpg")).unwrap();
        let other = Image::decode(include_bytes!("../../data/images/0.jpg")).unwrap();
        let images = [img, other]
            .iter()
            .map(|i| i.letterbox(160, 160).data)
            .collect();
        Fixture {
            net,
            params,
            images,
        }
    })
}

/// Layer-15 output and detections of one image on one device (full frame).
fn single_device(image: usize) -> &'static (Vec<f32>, Vec<Detection>) {
    static R: OnceLock<Vec<(Vec<f32>, Vec<Detection>)>> = OnceLock::new();
    &R.get_or_init(|| {
        let f = fixture();
        (0..f.images.len())
            .map(|i| {
                let w = Weights::new(&f.net, LAYERS, &f.params).unwrap();
                let stack = FusedStack::new(&f.net, LAYERS).unwrap();
                let grid = Grid::new(1, 1, Partition::Darknet, &stack).unwrap();
                let (out, _) =
                    run_frame(&Portable, &stack, &w, &grid, Mode::Plain, &f.images[i]).unwrap();
                let dets = detections(&out);
                (out, dets)
            })
            .collect()
    })[image]
}

fn detections(fused: &[f32]) -> Vec<Detection> {
    let f = fixture();
    let w = Weights::new(&f.net, f.net.layers().len(), &f.params).unwrap();
    let t = run_tail(&Portable, &f.net, &w, LAYERS, fused, &[]).unwrap();
    boxes(&f.net, &t.output, 640, 425, DEFAULT_THRESH, DEFAULT_NMS).unwrap()
}

fn model(grid: (u32, u32)) -> Arc<Model> {
    let f = fixture();
    fused_model(&f.net, &f.params, LAYERS, grid).unwrap()
}

fn cluster(policy: Policy, grid: (u32, u32), edges: u16, sources: u16) -> ClusterSpec {
    let mut c = ClusterSpec::loopback(
        policy,
        grid,
        edges,
        sources,
        loopback_port(),
        Some(KEY),
        LAYERS,
    );
    c.timeouts.tile = Duration::from_secs(3);
    c
}

fn run(c: &ClusterSpec, frames: &[usize], faults: &Faults) -> LocalRun {
    let f = fixture();
    let images: Vec<Vec<f32>> = frames.iter().map(|&i| f.images[i].clone()).collect();
    run_local(
        c,
        model(c.grid),
        &images,
        faults,
        Duration::from_secs(60),
        None,
    )
    .unwrap()
}

/// Every frame complete at the gateway and its source, with the single-device bits.
fn assert_exact(what: &str, c: &ClusterSpec, r: &LocalRun, frames: &[usize]) {
    let sources: Vec<u16> = c.nodes.iter().filter(|n| n.source).map(|n| n.id).collect();
    assert_eq!(
        r.gateway.len(),
        frames.len(),
        "{what}: gateway finished {:?}",
        r.gateway.keys().collect::<Vec<_>>()
    );
    for (i, &img) in frames.iter().enumerate() {
        let key = FrameKey::new(sources[i % sources.len()], (i / sources.len()) as u32);
        let f = &r.gateway[&key];
        assert!(f.complete, "{what}: frame {key:?} failed");
        assert!(
            r.source_latency.contains_key(&key),
            "{what}: source never heard frame {key:?} was done"
        );
        let out = f.output.as_ref().unwrap();
        let (expect, dets) = single_device(img);
        assert!(
            out.len() == expect.len()
                && out
                    .iter()
                    .zip(expect)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: layer-15 output differs"
        );
        assert_eq!(&detections(out), dets, "{what}: detections differ");
    }
}

#[test]
fn every_policy_edge_count_and_grid_is_bit_identical() {
    assert!(
        !single_device(0).1.is_empty(),
        "the reference run should find boxes"
    );
    for policy in [Policy::Wsh, Policy::Wst, Policy::WstS, Policy::Bodp] {
        for grid in [(3, 3), (5, 5)] {
            for edges in [1, 2, 4] {
                let c = cluster(policy, grid, edges, 1);
                let r = run(&c, &[0], &Faults::default());
                assert_exact(&format!("{policy:?} {grid:?} {edges} edges"), &c, &r, &[0]);
            }
        }
    }
}

#[test]
fn two_sources_overlap_and_both_finish() {
    for policy in [Policy::Wsh, Policy::WstS] {
        let c = cluster(policy, (3, 3), 3, 2);
        let frames = [0, 1, 1, 0];
        let r = run(&c, &frames, &Faults::default());
        assert_exact(&format!("{policy:?} two sources"), &c, &r, &frames);
    }
}

#[test]
fn an_edge_killed_mid_frame_does_not_stop_the_frame() {
    for policy in [Policy::Wsh, Policy::WstS, Policy::Bodp] {
        let c = cluster(policy, (5, 5), 3, 1);
        // Slow edges keep the frame in flight long enough to kill edge 3 in its middle.
        let faults = Faults {
            slow: vec![(1, 3.0), (2, 3.0), (3, 3.0)],
            kill: Some((3, Duration::from_millis(400))),
            ..Faults::default()
        };
        let r = run(&c, &[0, 1], &faults);
        assert_exact(&format!("{policy:?} edge killed"), &c, &r, &[0, 1]);
    }
}

#[test]
fn a_straggler_is_worked_around() {
    for policy in [Policy::Wsh, Policy::Wst] {
        let c = cluster(policy, (3, 3), 3, 1);
        let faults = Faults {
            slow: vec![(2, 30.0)],
            ..Faults::default()
        };
        let r = run(&c, &[1], &faults);
        assert_exact(&format!("{policy:?} straggler"), &c, &r, &[1]);
        let gw = &r.gateway[&FrameKey::new(1, 0)];
        let by_straggler = gw
            .tiles_by
            .iter()
            .find(|(n, _)| *n == 2)
            .map_or(0, |&(_, c)| c);
        let total: u32 = gw.tiles_by.iter().map(|&(_, c)| c).sum();
        assert!(
            by_straggler * 3 < total,
            "{policy:?}: the straggler delivered {by_straggler} of {total} tiles"
        );
    }
}

#[test]
fn a_peer_with_the_wrong_key_is_refused_and_reported() {
    let c = cluster(Policy::WstS, (3, 3), 3, 1);
    let faults = Faults {
        wrong_key: vec![3],
        ..Faults::default()
    };
    let r = run(&c, &[0], &faults);
    assert_exact("wrong key", &c, &r, &[0]);
    assert!(
        r.stats[&0].link.forged > 0,
        "gateway saw no forged frame: {:?}",
        r.stats[&0].link
    );
    assert_eq!(
        r.gateway[&FrameKey::new(1, 0)]
            .tiles_by
            .iter()
            .find(|(n, _)| *n == 3),
        None
    );
}

#[test]
fn a_malformed_frame_from_a_connected_peer_drops_only_that_peer() {
    let c = cluster(Policy::Wsh, (3, 3), 3, 1);
    let gw = c.node(0).unwrap().addr;
    // Node 3 is in the cluster file but not started: an impostor with the key says Hello as 3,
    // then sends garbage.
    let faults = Faults {
        absent: vec![3],
        ..Faults::default()
    };
    let impostor = std::thread::spawn(move || {
        for _ in 0..200 {
            if let Ok(mut s) = TcpStream::connect(gw) {
                let mut buf = [0u8; 128];
                let n = encode(
                    &Message::Hello {
                        node: 3,
                        role: Role::Edge,
                        model: 0,
                    },
                    3,
                    u64::MAX / 2,
                    Some(&Key::new(KEY)),
                    &mut buf,
                )
                .unwrap();
                s.write_all(&buf[..n]).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                let _ = s.write_all(b"TSRW\x01\x63garbage that is not a frame at all............");
                std::thread::sleep(Duration::from_millis(300));
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let r = run(&c, &[0], &faults);
    impostor.join().unwrap();
    assert_exact("malformed frame", &c, &r, &[0]);
    assert!(
        r.stats[&0].link.violations > 0,
        "gateway reported no violation: {:?}",
        r.stats[&0].link
    );
}
