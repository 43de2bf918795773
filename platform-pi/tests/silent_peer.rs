//! A cluster node whose address never answers a SYN (a powered-off device on WiFi: no RST
//! comes back) costs the live nodes nothing beyond their own connect timeouts: with
//! `peer_dead` far shorter than `connect_ms`, the live peers never see each other go down,
//! heartbeats flow and frames complete. Real sockets on 127.0.0.x, nodes on their own threads.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_testkit::free_port;

use socket2::{Domain, Socket, Type};
use tessera_backends::builtin::DEFAULT_CFG;
use tessera_backends::cluster::{start_node, ClusterSpec, NodeOptions};
use tessera_backends::driver::Model;
use tessera_backends::gen_weights;
use tessera_backends::local::fused_model;
use tessera_core::model::cfg;
use tessera_core::wire::Policy;
use tessera_pi::image::{Image, ImageFiles};

const LAYERS: usize = 16;

/// A listener whose accept queue is full, so Linux drops every further SYN to it.
fn syn_sink(ip: IpAddr) -> (Socket, std::net::TcpStream, SocketAddr) {
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&SocketAddr::new(ip, 0).into()).unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (l, filler, addr)
}

#[test]
fn a_peer_that_drops_syns_does_not_disturb_the_others() {
    let text = DEFAULT_CFG
        .replace("width=608", "width=160")
        .replace("height=608", "height=160");
    let net = cfg::parse(&text).unwrap();
    let params = gen_weights::params(&net, LAYERS, 5);
    let model: Arc<Model> = fused_model(&net, &params, LAYERS, (3, 3)).unwrap();
    let image = Image::decode(include_bytes!("../../data/images/1.jpg"))
        .unwrap()
        .letterbox(160, 160)
        .data;

    // Gateway 0, a dead node 1 (lower id than the edges, so both edges keep dialling it), a
    // source edge 2 and a helper edge 3. Each live node on its own address and free port.
    let ips: Vec<IpAddr> = [21u8, 22, 23, 24]
        .iter()
        .map(|&x| IpAddr::from([127, 0, 0, x]))
        .collect();
    let (_sink, _filler, dead) = syn_sink(ips[1]);
    let mut c = ClusterSpec::loopback(Policy::WstS, (3, 3), 3, 0, 0, Some([0x5a; 32]), LAYERS);
    for n in &mut c.nodes {
        let ip = ips[n.id as usize];
        n.addr = SocketAddr::new(ip, free_port(ip));
        n.source = n.id == 2;
    }
    c.nodes[1].addr = dead;
    // A connect that blocked would hold a node's loop for up to `connect_ms`, far past
    // `peer_dead`: its peers would drop it. (`peer_dead` stays well above the scheduling
    // stalls of a loaded machine.)
    c.timeouts.peer_dead = Duration::from_secs(3);
    c.timeouts.connect = Duration::from_secs(20);
    c.timeouts.tile = Duration::from_secs(5);

    let start = |id| start_node(&c, id, model.clone(), NodeOptions::default()).unwrap();
    let gateway = start(0);
    let source = start(2);
    let helper = start(3);

    const FRAMES: usize = 3;
    for _ in 0..FRAMES {
        source.submit(image.clone()).unwrap();
    }
    let wall = Instant::now();
    let mut done = Vec::new();
    while done.len() < FRAMES {
        assert!(
            wall.elapsed() < Duration::from_secs(120),
            "frames: {done:?}"
        );
        if let Some(f) = gateway.next_finished(Duration::from_millis(200)) {
            done.push(f);
        }
    }
    let during: Vec<_> = [&gateway, &source, &helper].map(|n| n.stats()).into();
    // An idle stretch of several heartbeat intervals (`peer_dead / 3`) while both edges hold
    // a connect to node 1 in progress.
    std::thread::sleep(Duration::from_secs(4));
    // Counters before any node stops (a stopping node closes its links).
    let after: Vec<_> = [&gateway, &source, &helper].map(|n| n.stats()).into();
    drop((gateway, source, helper));

    assert!(done.iter().all(|f| f.complete), "{done:?}");
    for ((s, before), id) in after.iter().zip(&during).zip([0, 2, 3]) {
        assert_eq!(s.link.peers_lost, 0, "node {id} lost a live peer: {s:?}");
        // Heartbeats (or other traffic) kept arriving from both live peers.
        assert!(
            s.link.frames_received >= before.link.frames_received + 4,
            "node {id}: {before:?} then {s:?}"
        );
    }
    for (s, id) in after[1..].iter().zip([2, 3]) {
        assert!(s.link.dials >= 1, "node {id} never dialled node 1: {s:?}");
    }
}
