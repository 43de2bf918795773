//! Links over real loopback TCP: Hello, messages both ways, and peers that must be refused.
#![cfg(feature = "std")]

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Instant as StdInstant;
use tessera_testkit::free_port;

use tessera_backends::link::{Link, LinkConfig, LinkError, LinkEvent};
use tessera_backends::nal_std::StdStack;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Body, FrameKey, Key, Limits, Message, NodeId};

struct Node {
    link: Link<StdStack>,
    events: Vec<String>,
    got: Vec<(NodeId, Vec<f32>)>,
}

fn node(me: NodeId, ip: &str, port: u16, peers: &[(NodeId, SocketAddr)], key: Option<Key>) -> Node {
    let ipaddr: IpAddr = ip.parse().unwrap();
    let cfg = LinkConfig {
        me,
        port,
        peers: peers.iter().copied().filter(|(id, _)| *id != me).collect(),
        key,
        limits: Limits::LARGE,
        first_seq: 1,
        peer_dead: Duration::from_secs(2),
        retry: Duration::from_millis(20),
        max_backoff: tessera_backends::link::MAX_BACKOFF,
        connect: Duration::from_secs(2),
        backlog: tessera_backends::link::DEFAULT_BACKLOG,
        handshake: Default::default(),
    };
    Node {
        link: Link::new(StdStack::new(ipaddr), cfg).unwrap(),
        events: Vec::new(),
        got: Vec::new(),
    }
}

fn now(start: StdInstant) -> Instant {
    Instant::from_micros(start.elapsed().as_micros() as u64)
}

fn poll(n: &mut Node, t: Instant) {
    let mut events = Vec::new();
    let mut got = Vec::new();
    n.link.poll(t, |_, e| match e {
        LinkEvent::Up(p) => events.push(format!("up {p}")),
        LinkEvent::Down(p, e) => events.push(format!("down {p}: {e}")),
        LinkEvent::Refused(e) => events.push(format!("refused: {e}")),
        LinkEvent::Message(p, r) => match r.message() {
            Message::Result { output, .. } => got.push((p, output.values().collect())),
            m => events.push(format!("msg {p} {:?}", m.kind())),
        },
    });
    n.events.extend(events);
    n.got.extend(got);
}

fn run_until(
    nodes: &mut [&mut Node],
    start: StdInstant,
    mut done: impl FnMut(&[&mut Node]) -> bool,
) {
    while !done(nodes) {
        assert!(
            start.elapsed().as_secs() < 30,
            "timed out: {:?}",
            nodes.iter().map(|n| &n.events).collect::<Vec<_>>()
        );
        let t = now(start);
        for n in nodes.iter_mut() {
            poll(n, t);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn two_nodes_exchange_a_large_tensor_authenticated() {
    let key = Key::new([7; 32]);
    let (p0, p1) = (free_port("127.0.0.1"), free_port("127.0.0.2"));
    let peers = [
        (0, SocketAddr::from(([127, 0, 0, 1], p0))),
        (1, SocketAddr::from(([127, 0, 0, 2], p1))),
    ];
    let mut gw = node(0, "127.0.0.1", p0, &peers, Some(key.clone()));
    let mut edge = node(1, "127.0.0.2", p1, &peers, Some(key));
    let start = StdInstant::now();
    run_until(&mut [&mut gw, &mut edge], start, |n| {
        n[0].link.is_up(1) && n[1].link.is_up(0)
    });
    // 2 MiB of values: many chunks, most through the backlog.
    let values: Vec<f32> = (0..512 * 1024).map(|i| i as f32 * 0.5).collect();
    let region = tessera_core::Region::full(1024, 512);
    let tensor = tessera_core::wire::Tensor {
        region,
        channels: 1,
        data: &[],
        precision: tessera_core::wire::Precision::F32,
    };
    let msg = Message::Result {
        frame: FrameKey::new(1, 0),
        tile: 3,
        output: tensor,
    };
    edge.link
        .send(now(start), 0, &msg, Body::Values(&values))
        .unwrap();
    run_until(&mut [&mut gw, &mut edge], start, |n| !n[0].got.is_empty());
    assert_eq!(gw.got[0].0, 1);
    assert!(gw.got[0].1 == values);
    assert_eq!(gw.link.stats().forged, 0);
    assert!(edge.link.stats().bytes_sent > 2 * 1024 * 1024);
}

#[test]
fn wrong_key_garbage_and_unknown_ids_are_refused() {
    let (p0, p1) = (free_port("127.0.0.1"), free_port("127.0.0.3"));
    let peers = [
        (0, SocketAddr::from(([127, 0, 0, 1], p0))),
        (1, SocketAddr::from(([127, 0, 0, 3], p1))),
    ];
    let mut gw = node(0, "127.0.0.1", p0, &peers, Some(Key::new([1; 32])));
    let mut intruder = node(1, "127.0.0.3", p1, &peers, Some(Key::new([2; 32])));
    let start = StdInstant::now();
    run_until(&mut [&mut gw, &mut intruder], start, |n| {
        n[0].link.stats().forged >= 1
    });
    assert!(!gw.link.is_up(1));
    assert!(
        gw.events.iter().any(|e| e.starts_with("refused")),
        "{:?}",
        gw.events
    );

    // Garbage bytes on a raw socket: refused as malformed, the gateway keeps serving.
    let mut raw = TcpStream::connect(("127.0.0.1", p0)).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n-----------")
        .unwrap();
    let before = gw.link.stats().violations;
    run_until(&mut [&mut gw], start, |n| {
        n[0].link.stats().violations > before
    });
    assert!(
        matches!(
            gw.events.last().map(String::as_str),
            Some(e) if e.starts_with("refused: bad frame")
        ),
        "{:?}",
        gw.events
    );
    let _ = LinkError::Silent;
}
