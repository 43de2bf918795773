//! "Done" means done: with `confirm_done`, a source hears that a frame is done only once the
//! gateway's driver says its final result is made, and a gateway that makes no results holds
//! every finished frame's slot, so the source, which keeps each frame until done, stops
//! feeding (back-pressure) instead of the gateway's backlog growing. Real sockets on
//! 127.0.95.x (no other test uses that subnet), nodes on their own threads, YOLOv2 at 64×64.
//!
//! The absences asserted ("not done yet") are one-sided: a slow machine cannot make them fail.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tessera_testkit::free_port;

use tessera_backends::builtin::DEFAULT_CFG;
use tessera_backends::cluster::{start_node, ClusterSpec, NodeOptions};
use tessera_backends::driver::node_thread::NodeThread;
use tessera_backends::gen_weights;
use tessera_backends::local::fused_model;
use tessera_core::model::cfg;
use tessera_core::runtime::MAX_FRAMES_PER_SOURCE;
use tessera_core::wire::Policy;
use tessera_pi::image::{Image, ImageFiles};

const LAYERS: usize = 16;
/// Longest wait for an expected event (a loaded machine is slow, not broken).
const WAIT: Duration = Duration::from_secs(120);

fn expect_finished(node: &NodeThread) -> tessera_backends::driver::Finished {
    let start = Instant::now();
    loop {
        if let Some(f) = node.next_finished(Duration::from_millis(100)) {
            return f;
        }
        assert!(
            start.elapsed() < WAIT,
            "node {}: nothing finished",
            node.id()
        );
    }
}

#[test]
fn a_source_hears_done_only_after_the_result_and_stops_feeding_while_results_wait() {
    let text = DEFAULT_CFG
        .replace("width=608", "width=64")
        .replace("height=608", "height=64");
    let net = cfg::parse(&text).unwrap();
    let params = gen_weights::params(&net, LAYERS, 5);
    let model = fused_model(&net, &params, LAYERS, (2, 2)).unwrap();
    let image = Image::decode(include_bytes!("../../data/images/1.jpg"))
        .unwrap()
        .letterbox(64, 64)
        .data;
    let mut c = ClusterSpec::loopback(Policy::WstS, (2, 2), 2, 1, 0, Some([0x3c; 32]), LAYERS);
    for n in &mut c.nodes {
        let ip = IpAddr::from([127, 0, 95, 1 + n.id as u8]);
        n.addr = SocketAddr::new(ip, free_port(ip));
    }
    let start = |id, confirm_done| {
        let options = NodeOptions {
            confirm_done,
            ..NodeOptions::default()
        };
        start_node(&c, id, model.clone(), options).unwrap()
    };
    let gateway = start(0, true);
    let source = start(1, false);
    let _helper = start(2, false);

    // One frame: complete at the gateway, not done at the source until confirmed.
    source.submit(image.clone()).unwrap();
    let f = expect_finished(&gateway);
    assert!(f.complete && f.output.is_some(), "{f:?}");
    assert!(
        source.next_finished(Duration::from_secs(2)).is_none(),
        "the source heard done before the result was made"
    );
    assert_eq!(source.stats().frames_in_flight, 1);
    assert_eq!(gateway.stats().frames_in_flight, 1, "held until confirmed");
    gateway.frame_done(f.frame, true);
    let done = expect_finished(&source);
    assert_eq!((done.frame, done.complete), (f.frame, true));

    // Results never made: the source stops at its limit of frames in flight; the gateway
    // holds no more than that many finished frames.
    let n = MAX_FRAMES_PER_SOURCE;
    for _ in 0..=n {
        source.submit(image.clone()).unwrap();
    }
    let held: Vec<_> = (0..n).map(|_| expect_finished(&gateway)).collect();
    assert!(held.iter().all(|f| f.complete));
    assert!(
        gateway.next_finished(Duration::from_secs(3)).is_none(),
        "frame {} entered the cluster past the source's limit",
        n + 1
    );
    assert_eq!(source.stats().frames_in_flight, n);
    assert_eq!(gateway.stats().frames_in_flight, n);
    // One result made: that frame is done at the source and the waiting frame goes in.
    gateway.frame_done(held[0].frame, true);
    let done = expect_finished(&source);
    assert_eq!((done.frame, done.complete), (held[0].frame, true));
    let last = expect_finished(&gateway);
    assert!(last.complete);
    // A result that could not be made is reported failed at the source.
    gateway.frame_done(held[1].frame, false);
    let failed = expect_finished(&source);
    assert_eq!((failed.frame, failed.complete), (held[1].frame, false));
}
