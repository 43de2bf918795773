//! The link's I/O bounds over real loopback sockets: dials never block and back off, and a
//! peer that stops reading gets refused sends instead of an ever-growing backlog.
//!
//! Link time is virtual here (passed to `poll`), so the counts do not depend on how fast the
//! machine runs; only the sockets are real.
#![cfg(feature = "std")]

use std::net::{IpAddr, SocketAddr};
use std::time::Instant as StdInstant;
use tessera_testkit::free_port;

use socket2::{Domain, Socket, Type};
use tessera_backends::link::{Link, LinkConfig, LinkError, LinkEvent, MAX_BACKOFF};
use tessera_backends::nal_std::StdStack;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::Precision;
use tessera_core::wire::{Body, FrameKey, Key, Limits, Message, NodeId, Tensor};
use tessera_core::Region;

fn config(me: NodeId, port: u16, peers: &[(NodeId, SocketAddr)], backlog: usize) -> LinkConfig {
    LinkConfig {
        me,
        port,
        peers: peers.iter().copied().filter(|(id, _)| *id != me).collect(),
        key: Some(Key::new([9; 32])),
        limits: Limits::LARGE,
        first_seq: 1,
        peer_dead: Duration::from_secs(60),
        retry: Duration::from_millis(50),
        max_backoff: MAX_BACKOFF,
        connect: Duration::from_millis(500),
        backlog,
        handshake: Default::default(),
    }
}

fn link(
    me: NodeId,
    ip: &str,
    port: u16,
    peers: &[(NodeId, SocketAddr)],
    backlog: usize,
) -> Link<StdStack> {
    let ipaddr: IpAddr = ip.parse().unwrap();
    Link::new(StdStack::new(ipaddr), config(me, port, peers, backlog)).unwrap()
}

/// Polls `link` at virtual instants 0, 10 ms, … up to `secs`; returns the events seen.
fn poll_for(link: &mut Link<StdStack>, secs: u64) -> Vec<String> {
    let mut events = Vec::new();
    for step in 0..=secs * 100 {
        link.poll(Instant::from_micros(step * 10_000), |_, e| {
            events.push(format!("{e:?}"))
        });
    }
    events
}

/// A listener whose accept queue is full: further SYNs are dropped, as by a powered-off peer
/// on WiFi (no RST comes back).
fn syn_sink() -> (Socket, std::net::TcpStream, SocketAddr) {
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (l, filler, addr)
}

#[test]
fn a_refusing_peer_is_redialled_with_backoff() {
    // Nothing listens there: every dial is refused.
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")));
    let me = free_port("127.0.0.5");
    let mut l = link(1, "127.0.0.5", me, &[(0, dead)], 1 << 20);
    let events = poll_for(&mut l, 20);
    let dials = l.stats().dials;
    // A fixed 50 ms retry would dial 400 times in 20 s. Backoff 50, 100, … 3.2 s, then
    // MAX_BACKOFF: at most 7 + 20 s / MAX_BACKOFF (+1 for the first) attempts.
    let bound = 8 + 20_000 / MAX_BACKOFF.total_millis();
    assert!(
        dials >= 4 && dials <= bound,
        "{dials} dials (bound {bound})"
    );
    assert!(!l.is_up(0));
    assert!(events.is_empty(), "{events:?}");
    // Waiting out the backoff: the next dial is scheduled, not due yet.
    let next = l.poll_at().unwrap();
    assert!(next > Instant::from_micros(20 * 1_000_000));
}

#[test]
fn a_peer_that_drops_syns_costs_one_socket_until_the_connect_timeout() {
    let (_sink, _filler, addr) = syn_sink();
    let me = free_port("127.0.0.6");
    let mut l = link(1, "127.0.0.6", me, &[(0, addr)], 1 << 20);
    let wall = StdInstant::now();
    let events = poll_for(&mut l, 20);
    // 2001 polls; a blocking connect (2 s per attempt in the old stack) would have taken
    // minutes. This is a one-sided bound with a wide margin, not a speed test.
    assert!(wall.elapsed().as_secs() < 60);
    let s = l.stats();
    assert!(s.dials >= 3, "{s:?}");
    // Every dial but possibly the last (still connecting) was abandoned after `connect`.
    assert!(
        s.dial_timeouts + 1 >= s.dials && s.dial_timeouts >= 2,
        "{s:?}"
    );
    assert!(events.is_empty(), "{events:?}");
    assert!(!l.is_up(0));
}

fn tensor_msg(n: u32) -> (Message<'static>, Vec<f32>) {
    let values: Vec<f32> = (0..n * 1024).map(|i| i as f32).collect();
    let t = Tensor {
        region: Region::full(1024, n),
        channels: 1,
        data: &[],
        precision: Precision::F32,
    };
    let msg = Message::Result {
        frame: FrameKey::new(1, 0),
        tile: 0,
        output: t,
    };
    (msg, values)
}

#[test]
fn sends_to_a_peer_that_does_not_read_are_refused_and_others_still_flow() {
    let ips = ["127.0.0.7", "127.0.0.8", "127.0.0.9"];
    let ports: Vec<u16> = ips.iter().map(free_port).collect();
    let peers: Vec<(NodeId, SocketAddr)> = (0..3)
        .map(|i| {
            let ip: IpAddr = ips[i].parse().unwrap();
            (i as NodeId, SocketAddr::new(ip, ports[i]))
        })
        .collect();
    const CAP: usize = 1 << 20;
    let mut stalled = link(0, ips[0], ports[0], &peers, CAP);
    let mut sender = link(1, ips[1], ports[1], &peers, CAP);
    let mut reader = link(2, ips[2], ports[2], &peers, CAP);
    let mut got: Vec<(NodeId, usize)> = Vec::new();
    let mut t = 0u64;
    let mut step = |links: &mut [&mut Link<StdStack>], got: &mut Vec<(NodeId, usize)>| {
        t += 1_000;
        for l in links.iter_mut() {
            l.poll(Instant::from_micros(t), |_, e| {
                if let LinkEvent::Message(p, r) = e {
                    if let Message::Result { output, .. } = r.message() {
                        got.push((p, output.values().count()));
                    }
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        Instant::from_micros(t)
    };
    let wall = StdInstant::now();
    while !(sender.is_up(0) && sender.is_up(2) && reader.is_up(0) && stalled.is_up(1)) {
        assert!(wall.elapsed().as_secs() < 20, "links never came up");
        step(&mut [&mut stalled, &mut sender, &mut reader], &mut got);
    }
    // From here `stalled` is never polled again: it reads nothing. 256 KiB frames fill its
    // socket buffers, then the sender's backlog, then are refused.
    let (msg, values) = tensor_msg(64);
    let mut refused = None;
    for i in 0..2_000 {
        let now = step(&mut [&mut sender, &mut reader], &mut got);
        match sender.send(now, 0, &msg, Body::Values(&values)) {
            Ok(()) => {}
            Err(e @ LinkError::Backlog { peer: 0, .. }) => {
                refused = Some((i, e));
                break;
            }
            Err(e) => panic!("send {i}: {e}"),
        }
    }
    let (i, e) = refused.expect("the backlog never filled");
    assert!(i > 0, "the first frame finds an empty backlog and is taken");
    assert_eq!(sender.stats().sends_refused, 1);
    assert!(sender.backlog(0) <= CAP + 4 * values.len() + 1024, "{e}");
    // Refused again, nothing queued: the backlog does not grow. A poll may first move some of
    // the backlog into the socket (the stalled peer's kernel still takes bytes while its
    // window lasts), so frames may be taken until the backlog is full again.
    let mut again = None;
    for _ in 0..2_000 {
        let now = step(&mut [&mut sender, &mut reader], &mut got);
        let held = sender.backlog(0);
        match sender.send(now, 0, &msg, Body::Values(&values)) {
            Ok(()) => {}
            Err(LinkError::Backlog { peer: 0, .. }) => {
                again = Some((now, held));
                break;
            }
            Err(e) => panic!("send again: {e}"),
        }
    }
    let (now, held) = again.expect("the backlog never filled again");
    assert_eq!(sender.stats().sends_refused, 2);
    assert!(sender.backlog(0) <= held, "a refused frame was queued");
    assert!(sender.backlog(0) <= CAP + 4 * values.len() + 1024);
    // The other peer is unaffected.
    sender.send(now, 2, &msg, Body::Values(&values)).unwrap();
    while !got.iter().any(|&(p, n)| p == 1 && n == values.len()) {
        assert!(wall.elapsed().as_secs() < 60, "the reader got nothing");
        step(&mut [&mut sender, &mut reader], &mut got);
    }
    assert!(sender.is_up(0) && sender.is_up(2));
    drop(stalled);
}
