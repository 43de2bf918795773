//! The YOLOv2 tail's convolutions as coded layers across the edges (`--coded-tail`), on
//! YOLOv2 at 160×160 with generated weights: the coded stage's output against the centralised
//! coded run (`CodedModel::reference_with`, same arithmetic) and against the plain tail
//! (batch norm not folded), on loopback clusters with and without killed edges.
//!
//! The coded stage decodes each layer from the first `k` results to arrive. Float parity
//! decoding is within the bound of `code::decode`, not bit-exact, so the bit-for-bit runs keep
//! the parity edge slow (its shards arrive last) or kill it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tessera_testkit::loopback_port;

use tessera_backends::builtin::DEFAULT_CFG;
use tessera_backends::cluster::{start_node, ClusterSpec, CodedRole, NodeOptions};
use tessera_backends::coded::tail::detections_match;
use tessera_backends::coded::tail::{
    bit_identical, max_abs_diff, CodedTail, CodedTailError, TailScheme,
};
use tessera_backends::gen_weights;
use tessera_backends::local::{fused_model, run_local, Faults, LocalRun, TailSpec};
use tessera_backends::pipeline::{run_frame, run_tail};
use tessera_core::detect::Detection;
use tessera_core::detect::{DEFAULT_NMS, DEFAULT_THRESH};
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::kernel::Portable;
use tessera_core::model::weights::Weights;
use tessera_core::model::{cfg, Network};
use tessera_core::runtime::coded::CodedConfig;
use tessera_core::time::Duration as CoreDuration;
use tessera_core::wire::{FrameKey, NodeId, Policy};
use tessera_pi::image::{Image, ImageFiles};

const KEY: [u8; 32] = [0x24; 32];
const LAYERS: usize = 16;

struct Fixture {
    net: Network,
    params: Vec<f32>,
    images: Vec<Vec<f32>>,
    /// Layer-15 output of each image (one device, portable kernel).
    fused: Vec<Vec<f32>>,
}

fn cfg_160() -> String {
    DEFAULT_CFG
        .replace("width=608", "width=160")
        .replace("height=608", "height=160")
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let net = cfg::parse(&cfg_160()).unwrap();
        let params = gen_weights::params(&net, net.layers().len(), 5);
        let images: Vec<Vec<f32>> = [
            &include_bytes!("../../data/images/0.jpg")[..],
            &include_bytes!("../../data/images/1.jpg")[..],
        ]
        .iter()
        .map(|b| Image::decode(b).unwrap().letterbox(160, 160).data)
        .collect();
        let fused = images
            .iter()
            .map(|img| {
                let w = Weights::new(&net, LAYERS, &params).unwrap();
                let stack = FusedStack::new(&net, LAYERS).unwrap();
                let grid = Grid::new(1, 1, Partition::Darknet, &stack).unwrap();
                run_frame(&Portable, &stack, &w, &grid, Mode::Plain, img)
                    .unwrap()
                    .0
            })
            .collect();
        Fixture {
            net,
            params,
            images,
            fused,
        }
    })
}

fn coded_tail(scheme: TailScheme, edges: u16) -> CodedTail {
    let f = fixture();
    let w = Weights::new(&f.net, f.net.layers().len(), &f.params).unwrap();
    let workers: Vec<NodeId> = (1..=edges).collect();
    CodedTail::new(
        &f.net,
        &w,
        LAYERS,
        scheme.layer_scheme(edges as usize).unwrap(),
        &workers,
    )
    .unwrap()
}

fn plain_tail(fused: &[f32]) -> Vec<f32> {
    let f = fixture();
    let w = Weights::new(&f.net, f.net.layers().len(), &f.params).unwrap();
    run_tail(&Portable, &f.net, &w, LAYERS, fused, &[])
        .unwrap()
        .output
}

fn boxes(region: &[f32]) -> Vec<Detection> {
    tessera_backends::pipeline::boxes(
        &fixture().net,
        region,
        640,
        425,
        DEFAULT_THRESH,
        DEFAULT_NMS,
    )
    .unwrap()
}

/// The centralised coded run of image `i` as `CodedModel::reference_with` computes it.
fn reference(t: &CodedTail, i: usize) -> Vec<f32> {
    let mut glue = t.glue(Portable);
    t.model()
        .reference_with(&Portable, &fixture().fused[i], t.cols(), &mut glue)
        .unwrap()
}

#[test]
fn centralised_coded_tail_is_reference_with_and_close_to_the_plain_tail() {
    let f = fixture();
    let t = coded_tail(TailScheme::Cdc(1), 3);
    assert_eq!(t.conv_layers(), &[16, 18, 19, 20, 21, 22, 23, 24, 29, 30]);
    // Layer 26 (1x1, 33 K parameters on a 739 K-value input) runs on the gateway.
    assert_eq!(CodedTail::gateway_layers(&f.net, LAYERS).unwrap(), [26]);
    for i in 0..f.images.len() {
        let mut glue = t.glue(Portable);
        let with = t
            .model()
            .reference_with(&Portable, &f.fused[i], t.cols(), &mut glue)
            .unwrap();
        // Every route's saved output is dropped when the frame finishes.
        assert_eq!(glue.frames_held(), 0);
        let plain = plain_tail(&f.fused[i]);
        assert_eq!(with.len(), plain.len());
        // Folding batch norm changes float rounding only: the region map stays within a few
        // units in the last place of values of order 1.
        let d = max_abs_diff(&with, &plain);
        assert!(d < 1e-3, "image {i}: max |coded − plain| = {d}");
        let (a, b) = (boxes(&with), boxes(&plain));
        assert!(
            detections_match(&a, &b),
            "image {i}: coded {a:?}\nplain {b:?}"
        );
    }
}

/// Each run is a whole cluster plus a coded stage with per-layer deadlines: the tests of this
/// file take turns rather than starving each other's threads on a small machine (and a test
/// counting this process's sockets sees only its own).
fn turn() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The addresses this process listens on (IPv4 TCP): its sockets' inodes (`/proc/self/fd`)
/// looked up in `/proc/net/tcp`.
fn own_listeners() -> BTreeSet<SocketAddr> {
    let inodes: BTreeSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // State 0A is LISTEN; field 9 is the inode.
            if f.get(3) != Some(&"0A") || !inodes.contains(*f.get(9)?) {
                return None;
            }
            let (ip, port) = f[1].split_once(':')?;
            let ip = u32::from_str_radix(ip, 16).ok()?.to_ne_bytes();
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(SocketAddr::from((ip, port)))
        })
        .collect()
}

#[test]
fn nodes_running_the_coded_tail_listen_on_their_one_address_only() {
    let _turn = turn();
    let f = fixture();
    let t = Arc::new(coded_tail(TailScheme::Cdc(1), 3));
    let c = ClusterSpec::loopback(
        Policy::WstS,
        (3, 3),
        3,
        1,
        loopback_port(),
        Some(KEY),
        LAYERS,
    );
    let model = fused_model(&f.net, &f.params, LAYERS, c.grid).unwrap();
    let nodes: Vec<_> = c
        .nodes
        .iter()
        .map(|n| {
            let coded = match n.id {
                0 => CodedRole::Gateway {
                    tail: t.clone(),
                    config: CodedConfig::new(CoreDuration::from_secs(20)),
                },
                _ => CodedRole::Worker(t.model().clone()),
            };
            let options = NodeOptions {
                coded: Some(coded),
                ..NodeOptions::default()
            };
            start_node(&c, n.id, model.clone(), options).unwrap()
        })
        .collect();
    let want: BTreeSet<SocketAddr> = c.nodes.iter().map(|n| n.addr).collect();
    assert_eq!(want.len(), 4);
    assert_eq!(own_listeners(), want);
    for n in nodes {
        let s = n.stop();
        assert!(s.coded.is_some());
    }
    assert!(own_listeners().is_empty());
}

/// The coded stage's frame deadline in these runs. Its layers' budgets (a tenth of it and
/// more) are far above what a shard takes on a loaded machine: these tests check results and
/// recovery, not deadlines (`core/tests/coded_runtime.rs` does, on virtual time). With budgets
/// of about a second, three runs at once on two cores had a data shard miss its layer's
/// budget in 2 of 12 runs.
const FRAME_DEADLINE: Duration = Duration::from_secs(300);

/// Runs `frames` images (indices) through 3 edges with a `scheme` coded tail under `faults`.
fn run_coded(
    scheme: TailScheme,
    frames: &[usize],
    faults: &Faults,
    data_grace: Duration,
) -> (CodedTail, LocalRun) {
    let _turn = turn();
    let f = fixture();
    let edges = 3;
    let t = coded_tail(scheme, edges);
    let p = loopback_port();
    let mut c = ClusterSpec::loopback(Policy::WstS, (3, 3), edges, 1, p, Some(KEY), LAYERS);
    c.timeouts.tile = Duration::from_secs(3);
    let tail = TailSpec {
        tail: Arc::new(t.clone()),
        config: CodedConfig {
            data_grace: CoreDuration::from_micros(data_grace.as_micros() as u64),
            ..CodedConfig::new(CoreDuration::from_micros(FRAME_DEADLINE.as_micros() as u64))
        },
    };
    let images: Vec<Vec<f32>> = frames.iter().map(|&i| f.images[i].clone()).collect();
    let model = fused_model(&f.net, &f.params, LAYERS, c.grid).unwrap();
    let r = run_local(
        &c,
        model,
        &images,
        faults,
        Duration::from_secs(240),
        Some(&tail),
    )
    .unwrap();
    let gateway = r.stats[&0].coded.unwrap();
    assert_eq!(gateway.glue_failures, 0);
    // The coded stage ran (on the nodes' links: a tail has no port of its own).
    assert!(gateway.gateway.unwrap().decoded > 0);
    (t, r)
}

/// Every frame's tail complete, and (`exact`) bit-identical to `reference_with`, else within
/// the float decode error; detections as the plain tail's either way.
fn assert_tails(what: &str, t: &CodedTail, r: &LocalRun, frames: &[usize], exact: bool) {
    assert_eq!(
        r.tails.len(),
        frames.len(),
        "{what}: tails {:?}",
        r.tails.keys()
    );
    for (n, &img) in frames.iter().enumerate() {
        let key = FrameKey::new(1, n as u32);
        let done = &r.tails[&key];
        assert!(
            done.quality.is_complete(),
            "{what}: frame {n} quality {:?}, layers {:?}",
            done.quality,
            done.layers
        );
        // The fused stack is exact (FTP is bit-identical to the single device).
        assert!(bit_identical(
            r.gateway[&key].output.as_deref().unwrap(),
            &fixture().fused[img]
        ));
        let expect = reference(t, img);
        let out = &done.output;
        if exact {
            assert!(
                bit_identical(out, &expect),
                "{what}: frame {n} differs by {} (layers {:?})",
                max_abs_diff(out, &expect),
                done.layers
            );
        } else {
            let d = max_abs_diff(out, &expect);
            assert!(d < 1e-3, "{what}: frame {n} max |d| {d}");
        }
        let (a, b) = (boxes(out), boxes(&plain_tail(&fixture().fused[img])));
        assert!(detections_match(&a, &b), "{what}: frame {n}");
    }
}

/// Edge `id`'s coded worker got some of the `shards` it would have computed, not all: it was
/// stopped while the frames went through the coded tail.
fn assert_killed_mid_run(r: &LocalRun, id: NodeId, shards: usize) {
    let got = r.stats[&id].coded.unwrap().worker.unwrap().received as usize;
    assert!(
        got > 0 && got < shards,
        "edge {id} received {got} of {shards} shards"
    );
}

#[test]
fn cdc1_on_three_edges_is_bit_identical_to_reference_with() {
    // Edge 3 holds every layer's parity shard. With a data grace as long as the frame's
    // deadline, a layer waits for its data shards even when parity is in first, so every
    // layer is the data shards' (exact) concatenation.
    let frames = [0, 1, 0];
    let grace = FRAME_DEADLINE;
    let (t, r) = run_coded(TailScheme::Cdc(1), &frames, &Faults::default(), grace);
    assert_tails("cdc:1", &t, &r, &frames, true);
    for d in r.tails.values() {
        assert!(d.layers.iter().all(|l| l.present & 0b11 == 0b11));
    }
}

#[test]
fn cdc1_with_the_parity_edge_killed_mid_run_stays_bit_identical() {
    let faults = Faults {
        slow: vec![(3, 20.0)],
        kill: Some((3, Duration::ZERO)),
        kill_after_tails: 1,
        ..Faults::default()
    };
    let frames = [0, 1, 0, 1];
    // Slowed, the parity edge is usually last; on a loaded machine it can still beat a data
    // shard before it is killed. A data grace as long as the deadline keeps every layer the
    // data shards' exact concatenation then too (no data edge fails, so nothing waits).
    let grace = FRAME_DEADLINE;
    let (t, r) = run_coded(TailScheme::Cdc(1), &frames, &faults, grace);
    assert_tails("cdc:1, parity edge killed", &t, &r, &frames, true);
    assert_killed_mid_run(&r, 3, frames.len() * t.conv_layers().len());
}

#[test]
fn cdc1_with_a_data_edge_killed_mid_run_completes_every_frame_from_parity() {
    let faults = Faults {
        kill: Some((2, Duration::ZERO)),
        kill_after_tails: 1,
        ..Faults::default()
    };
    let frames = [0, 1, 0, 1];
    let (t, r) = run_coded(TailScheme::Cdc(1), &frames, &faults, Duration::ZERO);
    assert_tails("cdc:1, data edge killed", &t, &r, &frames, false);
    let shards = frames.len() * t.conv_layers().len();
    assert_killed_mid_run(&r, 2, shards);
    // Every layer edge 2 never received was decoded from edge 1's shard and the parity shard
    // (when the harness kills it depends on the machine's load, so count rather than pick a
    // frame: frames overlap in the coded stage).
    let received = r.stats[&2].coded.unwrap().worker.unwrap().received as usize;
    let layers: Vec<_> = r.tails.values().flat_map(|d| d.layers.iter()).collect();
    let from_parity = layers.iter().filter(|l| l.present == 0b101).count();
    assert!(
        from_parity >= shards - received,
        "{from_parity} layers decoded from parity, edge 2 missed {}",
        shards - received
    );
    // And every layer had two shards of three (any two decode).
    let present: Vec<u32> = layers.iter().map(|l| l.present).collect();
    assert!(
        present.iter().all(|p| p.count_ones() >= 2),
        "shards present per layer: {present:?}"
    );
}

#[test]
fn uncoded_split_is_bit_identical_without_faults() {
    let frames = [1];
    let (t, r) = run_coded(
        TailScheme::Uncoded,
        &frames,
        &Faults::default(),
        Duration::ZERO,
    );
    assert_tails("uncoded", &t, &r, &frames, true);
}

#[test]
fn tails_that_cannot_be_coded_are_refused() {
    let f = fixture();
    let w = Weights::new(&f.net, f.net.layers().len(), &f.params).unwrap();
    let s = TailScheme::Cdc(1).layer_scheme(3).unwrap();
    // Layer 17 is a max pool.
    assert_eq!(
        CodedTail::new(&f.net, &w, 17, s, &[1, 2, 3]).unwrap_err(),
        CodedTailError::FirstNotConv { layer: 17 }
    );
    assert!(matches!(
        CodedTail::new(&f.net, &w, 40, s, &[1, 2, 3]),
        Err(CodedTailError::Range { .. })
    ));
    // From 18, route 25 reads layer 16, before the tail.
    assert_eq!(
        CodedTail::new(&f.net, &w, 18, s, &[1, 2, 3]).unwrap_err(),
        CodedTailError::RouteOutside {
            layer: 25,
            source: 16
        }
    );
    // Layer 29 (the 3x3 conv after route 28) with stride 2.
    let text = cfg_160();
    let route = text.find("layers=-1,-4").unwrap();
    let at = route + text[route..].find("stride=1").unwrap();
    let strided = format!("{}stride=2{}", &text[..at], &text[at + "stride=1".len()..]);
    let net = cfg::parse(&strided).unwrap();
    let params = gen_weights::params(&net, net.layers().len(), 5);
    let w = Weights::new(&net, net.layers().len(), &params).unwrap();
    let e = CodedTail::new(&net, &w, LAYERS, s, &[1, 2, 3]).unwrap_err();
    assert!(
        matches!(
            e,
            CodedTailError::NotSame {
                layer: 29,
                stride: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("stride 1"), "{e}");
}

#[test]
fn bad_coded_tail_values_are_clear_errors() {
    for (args, says) in [
        (
            &["--coded-tail", "raid"][..],
            "unknown coded tail scheme 'raid'",
        ),
        (
            &["--coded-tail", "cdc:0"][..],
            "unknown coded tail scheme 'cdc:0'",
        ),
        (&["--coded-tail", "cdc:x"][..], "unknown coded tail scheme"),
        (&["--coded-tail", "cdc:3"][..], "needs more than 3 edges"),
        (
            &["--coded-tail", "2mr", "--edges", "1"][..],
            "2mr needs 2 or more edges",
        ),
        (
            &["--coded-tail", "cdc:1", "--no-tail"][..],
            "exclude each other",
        ),
        (
            &["--coded-tail", "cdc:1", "--kill", "1@0.5"][..],
            "data source",
        ),
        (&["--coded-tail", "cdc:1", "--kill", "9@0.5"][..], "--kill"),
        (&["--slow", "2:0.5"][..], "--slow"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("demo")
            .args(args)
            .args(["--port", "29990"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
    }
}
