//! The link's handshake guards over real loopback sockets: the pre-authentication
//! buffer cap, the handshake deadline, the caps on waiting connections, who may hold a node
//! id, refusals the dialler learns, and a counter for every dropped connection.
//!
//! Each link runs on its own fake clock (`Peer::t`), moved by the test: deadlines and silence
//! are decided by the clocks, never by how fast this machine is; real time only bounds how
//! long a test waits for bytes to cross loopback. Addresses are 127.13.x.y (x: the test),
//! ports are chosen by the OS.
#![cfg(feature = "std")]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration as StdDuration, Instant as StdInstant};
use tessera_testkit::free_port;

use socket2::{Domain, Socket, Type};
use tessera_backends::link::{
    handshake, HandshakeConfig, Link, LinkConfig, LinkError, LinkEvent, Refusal, RefusalReason,
    DEFAULT_BACKLOG, PRE_AUTH_FRAME,
};
use tessera_backends::nal_std::StdStack;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{self, Key, Limits, Message, NodeId, Role, HEADER_LEN};

const KEY: Key = Key::new([13; 32]);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Peer {
    link: Link<StdStack>,
    /// This link's clock.
    t: Instant,
    /// How far the clock moves after each poll in `settle` (a dialler's backoff needs it).
    tick: Duration,
    events: Vec<String>,
}

fn config(me: NodeId, port: u16, peers: &[(NodeId, SocketAddr)], key: Key) -> LinkConfig {
    LinkConfig {
        me,
        port,
        peers: peers.iter().copied().filter(|(id, _)| *id != me).collect(),
        key: Some(key),
        limits: Limits::LARGE,
        first_seq: 1,
        peer_dead: Duration::from_secs(10),
        retry: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        connect: Duration::from_secs(5),
        backlog: DEFAULT_BACKLOG,
        handshake: HandshakeConfig::DEFAULT,
    }
}

fn peer(ip_: &str, cfg: LinkConfig) -> Peer {
    Peer {
        link: Link::new(StdStack::new(ip(ip_)), cfg).unwrap(),
        t: Instant::ZERO,
        tick: Duration::from_micros(0),
        events: Vec::new(),
    }
}

impl Peer {
    fn poll(&mut self) {
        let mut events = Vec::new();
        self.link.poll(self.t, |_, e| {
            events.push(match e {
                LinkEvent::Up(p) => format!("up {p}"),
                LinkEvent::Down(p, e) => format!("down {p}: {e:?}"),
                LinkEvent::Refused(e) => format!("refused: {e:?}"),
                LinkEvent::Message(p, m) => format!("msg {p} {:?}", m.kind()),
            })
        });
        self.events.extend(events);
    }

    fn advance(&mut self, d: Duration) {
        self.t += d;
    }

    fn count(&self, prefix: &str) -> usize {
        self.events.iter().filter(|e| e.starts_with(prefix)).count()
    }
}

/// Polls `peers` until `done` holds; fails after 10 s of real time (bytes crossing loopback
/// take far less; the bound only catches a hang).
fn settle(peers: &mut [&mut Peer], mut done: impl FnMut(&[&mut Peer]) -> bool) {
    let start = StdInstant::now();
    while !done(peers) {
        assert!(
            start.elapsed() < StdDuration::from_secs(10),
            "timed out: {:#?}",
            peers
                .iter()
                .map(|p| (&p.events, p.link.stats()))
                .collect::<Vec<_>>()
        );
        for p in peers.iter_mut() {
            p.poll();
            let tick = p.tick;
            p.advance(tick);
        }
        std::thread::sleep(StdDuration::from_millis(1));
    }
}

/// A raw client connection leaving from `src`.
fn raw(src: &str, to: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(ip(src), 0).into()).unwrap();
    s.connect(&to.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(StdDuration::from_secs(10)))
        .unwrap();
    s
}

/// Everything the server sends until it closes (the refusal, if any).
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The reason code of a clear refusal frame.
fn refusal_code(bytes: &[u8]) -> Option<u16> {
    let mut b = bytes.to_vec();
    let mut stats = wire::AuthStats::default();
    match wire::decode(
        &mut b,
        None,
        &Limits::LARGE,
        &mut wire::ReplayWindow::new(),
        &mut stats,
    ) {
        Ok((_, Message::Reject { code })) => Some(code),
        _ => None,
    }
}

fn header(kind: u8, flags: u8, sender: u16, payload: u32) -> Vec<u8> {
    let mut h = b"TSRW".to_vec();
    h.extend_from_slice(&[1, kind, flags, 0]);
    h.extend_from_slice(&sender.to_le_bytes());
    h.extend_from_slice(&[0; 10]);
    h.extend_from_slice(&1u64.to_le_bytes());
    h.extend_from_slice(&payload.to_le_bytes());
    h
}

fn hello(node: NodeId, key: &Key, seq: u64) -> Vec<u8> {
    let mut buf = [0u8; 128];
    let role = if node == 0 { Role::Gateway } else { Role::Edge };
    let n = wire::encode(
        &Message::Hello {
            node,
            role,
            model: 0,
        },
        node,
        seq,
        Some(key),
        &mut buf,
    )
    .unwrap();
    buf[..n].to_vec()
}

fn gateway(
    x: u8,
    edges: &[(NodeId, &str)],
    h: HandshakeConfig,
) -> (Peer, Vec<(NodeId, SocketAddr)>) {
    let gw_ip = format!("127.13.{x}.1");
    let port = free_port(&gw_ip);
    let mut peers = vec![(0, SocketAddr::new(ip(&gw_ip), port))];
    // Edges listen on OS-chosen ports nobody dials in these tests (only the gateway is dialled).
    peers.extend(edges.iter().map(|&(id, a)| (id, SocketAddr::new(ip(a), 1))));
    let mut cfg = config(0, port, &peers, KEY);
    cfg.handshake = h;
    (peer(&gw_ip, cfg), peers)
}

fn edge(id: NodeId, ip_: &str, peers: &[(NodeId, SocketAddr)], key: Key) -> Peer {
    peer(ip_, config(id, 0, peers, key))
}

#[test]
fn a_header_declaring_more_than_a_hello_is_dropped_at_once() {
    let (mut gw, peers) = gateway(1, &[(1, "127.13.1.2")], HandshakeConfig::DEFAULT);
    // The slow-loris case: a header declaring 64 MiB, then a trickle.
    let mut s = raw("127.13.1.9", peers[0].1);
    s.write_all(&header(7, 1, 1, 64 << 20)).unwrap();
    settle(&mut [&mut gw], |p| p[0].link.stats().dropped.oversize == 1);
    let st = gw.link.stats();
    assert_eq!(st.dropped.total(), 1);
    assert_eq!(gw.link.unauthenticated(), 0);
    // Only the header was read, so nothing was sized by it.
    assert!(st.bytes_received <= HEADER_LEN as u64, "{st:?}");
    assert_eq!(gw.count("refused: Oversize"), 1, "{:?}", gw.events);
    let _ = s.write_all(b"\0");
    assert_eq!(
        refusal_code(&read_to_close(&mut s)),
        Some(RefusalReason::Protocol.code())
    );
    // A sealed Hello is exactly the cap: one byte more is too much.
    let mut s = raw("127.13.1.9", peers[0].1);
    s.write_all(&header(
        1,
        1,
        1,
        (PRE_AUTH_FRAME - HEADER_LEN - 16 + 1) as u32,
    ))
    .unwrap();
    settle(&mut [&mut gw], |p| p[0].link.stats().dropped.oversize == 2);
}

#[test]
fn a_connection_that_does_not_authenticate_in_time_is_closed() {
    let (mut gw, peers) = gateway(2, &[(1, "127.13.2.2")], HandshakeConfig::DEFAULT);
    let mut s = raw("127.13.2.9", peers[0].1);
    // Half a Hello, then nothing.
    s.write_all(&hello(1, &KEY, 1)[..20]).unwrap();
    settle(&mut [&mut gw], |p| {
        p[0].link.unauthenticated() == 1 && p[0].link.stats().bytes_received == 20
    });
    // Just before the deadline it is still waiting.
    gw.advance(HandshakeConfig::DEFAULT.deadline - Duration::from_millis(1));
    gw.poll();
    assert_eq!(gw.link.unauthenticated(), 1);
    assert_eq!(gw.link.stats().dropped.total(), 0);
    // The link asks to be polled by the deadline.
    assert!(gw.link.poll_at().unwrap() <= gw.t + Duration::from_millis(1));
    gw.advance(Duration::from_millis(1));
    gw.poll();
    assert_eq!(gw.link.unauthenticated(), 0);
    let st = gw.link.stats();
    assert_eq!(st.dropped.handshake_timeout, 1);
    assert_eq!(st.dropped.total(), 1);
    assert_eq!(gw.count("refused: HandshakeTimeout"), 1);
    // The client sees the connection end.
    assert!(read_to_close(&mut s).is_empty());
}

#[test]
fn caps_bound_waiting_connections_and_a_restarted_edge_still_rejoins() {
    let h = HandshakeConfig {
        max_pending: 6,
        max_pending_per_addr: 3,
        ..HandshakeConfig::DEFAULT
    };
    let (mut gw, peers) = gateway(3, &[(1, "127.13.3.2"), (2, "127.13.3.3")], h);
    let mut e2 = edge(2, "127.13.3.3", &peers, KEY);
    settle(&mut [&mut gw, &mut e2], |p| {
        p[0].link.is_up(2) && p[1].count("up 0") > 0
    });
    // An attacker opens 10 connections from one address, then 3 from each of 4 others, and
    // holds them all.
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(raw("127.13.3.100", peers[0].1));
    }
    settle(&mut [&mut gw, &mut e2], |p| {
        p[0].link.stats().dropped.cap_per_addr == 7
    });
    assert_eq!(gw.link.unauthenticated(), 3);
    for a in 101..105 {
        for _ in 0..3 {
            held.push(raw(&format!("127.13.3.{a}"), peers[0].1));
        }
    }
    let attempts = 10 + 12;
    settle(&mut [&mut gw, &mut e2], |p| {
        let d = p[0].link.stats().dropped;
        d.cap_per_addr + d.cap_global == (attempts - h.max_pending) as u64
    });
    assert_eq!(gw.link.unauthenticated(), h.max_pending);
    // Edge 1 (re)starts while the attacker holds every slot: it evicts one and joins.
    let mut e1 = edge(1, "127.13.3.2", &peers, KEY);
    settle(&mut [&mut gw, &mut e1, &mut e2], |p| {
        p[0].link.is_up(1) && p[1].count("up 0") > 0
    });
    // The authenticated edge 2 was never a victim.
    assert!(gw.link.is_up(2) && e2.link.is_up(0));
    assert_eq!(e2.count("down"), 0);
    assert_eq!(gw.count("down 2"), 0, "{:?}", gw.events);
    let st = gw.link.stats();
    assert_eq!(
        st.dropped.total(),
        st.dropped.cap_per_addr + st.dropped.cap_global
    );
    assert!(gw.link.unauthenticated() <= h.max_pending);
    // Evicted attackers were told the listener is busy.
    let mut first = held.remove(0);
    assert_eq!(
        refusal_code(&read_to_close(&mut first)),
        Some(RefusalReason::Busy.code())
    );
}

#[test]
fn an_id_held_by_a_live_connection_is_refused_from_another_address() {
    let (mut gw, peers) = gateway(4, &[(1, "127.13.4.2")], HandshakeConfig::DEFAULT);
    let mut a = edge(1, "127.13.4.2", &peers, KEY);
    settle(&mut [&mut gw, &mut a], |p| {
        p[0].link.is_up(1) && p[1].count("up 0") > 0
    });
    // A second process with the right key claims id 1 from another address.
    let mut cfg = config(1, 0, &peers, KEY);
    cfg.first_seq = 1_000_000;
    let mut b = peer("127.13.4.3", cfg);
    b.tick = Duration::from_millis(10);
    settle(&mut [&mut gw, &mut a, &mut b], |p| {
        p[2].link.stats().dropped.refused_by_peer >= 2
    });
    assert_eq!(b.count("up 0"), 0);
    assert!(b.count("down 0: Refused(IdInUse)") >= 2, "{:?}", b.events);
    // Refused as long as the holder lives (not yet for giving up: see the silent test).
    assert_eq!(b.link.stats().gave_up, None);
    assert!(gw.link.stats().dropped.duplicate_id >= 2);
    assert!(gw.count("refused: IdInUse(1)") >= 2);
    // The holder never noticed.
    assert!(gw.link.is_up(1) && a.link.is_up(0));
    assert_eq!(a.count("down"), 0);
    assert_eq!(gw.link.stats().dropped.replaced, 0);
}

#[test]
fn a_restart_from_the_same_address_replaces_the_half_dead_connection() {
    let (mut gw, peers) = gateway(5, &[(1, "127.13.5.2")], HandshakeConfig::DEFAULT);
    let mut old = edge(1, "127.13.5.2", &peers, KEY);
    settle(&mut [&mut gw, &mut old], |p| {
        p[0].link.is_up(1) && p[1].count("up 0") > 0
    });
    // The old process hangs (its socket stays open: half dead); a new one starts at once.
    let mut cfg = config(1, 0, &peers, KEY);
    cfg.first_seq = 1_000_000;
    let mut new = peer("127.13.5.2", cfg);
    settle(&mut [&mut gw, &mut new], |p| {
        p[1].count("up 0") > 0 && p[0].link.stats().dropped.replaced == 1
    });
    assert!(gw.link.is_up(1));
    assert_eq!(gw.link.stats().dropped.duplicate_id, 0);
    assert_eq!(gw.count("down 1: Duplicate(1)"), 1, "{:?}", gw.events);
    drop(old);
}

#[test]
fn a_holder_proven_dead_by_silence_lets_the_restart_in_from_another_address() {
    let (mut gw, peers) = gateway(6, &[(1, "127.13.6.2")], HandshakeConfig::DEFAULT);
    let mut old = edge(1, "127.13.6.2", &peers, KEY);
    settle(&mut [&mut gw, &mut old], |p| {
        p[0].link.is_up(1) && p[1].count("up 0") > 0
    });
    // The device comes back with another address while its old connection is half dead.
    let mut cfg = config(1, 0, &peers, KEY);
    cfg.first_seq = 1_000_000;
    let mut new = peer("127.13.6.3", cfg);
    settle(&mut [&mut gw, &mut new], |p| {
        p[1].link.stats().dropped.refused_by_peer >= 1
    });
    assert!(gw.link.is_up(1));
    // `peer_dead` passes on the gateway's clock without a word from the old connection.
    gw.advance(Duration::from_secs(11));
    new.advance(Duration::from_secs(11));
    settle(&mut [&mut gw, &mut new], |p| {
        p[0].link.is_up(1) && p[1].count("up 0") > 0
    });
    let st = gw.link.stats();
    assert_eq!(st.dropped.silent, 1);
    assert!(st.dropped.duplicate_id >= 1);
    assert_eq!(new.link.stats().gave_up, None);
    drop(old);
}

#[test]
fn a_dialler_with_the_wrong_key_learns_why_and_gives_up() {
    let (mut gw, peers) = gateway(7, &[(1, "127.13.7.2")], HandshakeConfig::DEFAULT);
    let mut e = edge(1, "127.13.7.2", &peers, Key::new([99; 32]));
    e.tick = Duration::from_millis(10);
    settle(&mut [&mut gw, &mut e], |p| {
        p[1].link.stats().gave_up.is_some()
    });
    let st = e.link.stats();
    assert_eq!(
        st.gave_up,
        Some(Refusal {
            peer: 0,
            reason: RefusalReason::Auth
        })
    );
    assert_eq!(
        st.dropped.refused_by_peer,
        HandshakeConfig::DEFAULT.max_refusals as u64
    );
    assert_eq!(
        e.count("down 0: Refused(Auth)"),
        HandshakeConfig::DEFAULT.max_refusals as usize
    );
    assert!(gw.link.stats().dropped.forged >= HandshakeConfig::DEFAULT.max_refusals as u64);
    assert!(!gw.link.is_up(1));
    assert_eq!(
        Refusal {
            peer: 0,
            reason: RefusalReason::Auth
        }
        .to_string(),
        "node 0 refused our Hello: Hello did not verify (different cluster keys?)"
    );
}

#[test]
fn a_dialler_with_an_unknown_id_learns_why_and_gives_up() {
    let (mut gw, peers) = gateway(8, &[(1, "127.13.8.2")], HandshakeConfig::DEFAULT);
    // Node 5 knows the gateway; the gateway's cluster file has no node 5.
    let mut e = edge(5, "127.13.8.5", &peers, KEY);
    e.tick = Duration::from_millis(10);
    settle(&mut [&mut gw, &mut e], |p| {
        p[1].link.stats().gave_up.is_some()
    });
    assert_eq!(
        e.link.stats().gave_up.map(|r| r.reason),
        Some(RefusalReason::UnknownId)
    );
    assert!(gw.link.stats().dropped.unknown_id >= HandshakeConfig::DEFAULT.max_refusals as u64);
}

#[test]
fn every_bad_first_frame_is_counted_by_reason() {
    let (mut gw, peers) = gateway(9, &[(1, "127.13.9.2")], HandshakeConfig::DEFAULT);
    let to = peers[0].1;
    let hb = |flags: u8| header(18, flags, 1, 0);
    let mut bad_version = hb(0);
    bad_version[4] = 9;
    let mut bad_kind = hb(0);
    bad_kind[5] = 200;
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "malformed",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n-----".to_vec(),
            false,
        ),
        ("malformed", bad_version, false),
        ("malformed", bad_kind, false),
        ("malformed", hb(0x80), false),
        ("oversize", header(11, 1, 1, 1 << 30), false),
        // A clear Hello to a gateway that requires authentication.
        (
            "forged",
            {
                let mut b = [0u8; 64];
                let n = wire::encode(
                    &Message::Hello {
                        node: 1,
                        role: Role::Edge,
                        model: 0,
                    },
                    1,
                    1,
                    None,
                    &mut b,
                )
                .unwrap();
                b[..n].to_vec()
            },
            false,
        ),
        ("forged", hello(1, &Key::new([1; 32]), 1), false),
        ("unknown_id", hello(7, &KEY, 1), false),
        (
            "no_hello",
            {
                let mut b = [0u8; 64];
                let n = wire::encode(&Message::Heartbeat, 1, 2, Some(&KEY), &mut b).unwrap();
                b[..n].to_vec()
            },
            false,
        ),
        ("closed", b"TSRW".to_vec(), true),
        ("closed", Vec::new(), true),
    ];
    for (k, (_, bytes, close)) in cases.iter().enumerate() {
        let mut s = raw("127.13.9.9", to);
        if !bytes.is_empty() {
            s.write_all(bytes).unwrap();
        }
        if *close {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        settle(&mut [&mut gw], |p| {
            p[0].link.stats().dropped.total() == k as u64 + 1
        });
    }
    // One that never finishes its Hello.
    let _slow = raw("127.13.9.9", to);
    settle(&mut [&mut gw], |p| p[0].link.unauthenticated() == 1);
    gw.advance(Duration::from_secs(3));
    gw.poll();
    let d = gw.link.stats().dropped;
    let n = |name: &str| cases.iter().filter(|c| c.0 == name).count() as u64;
    assert_eq!(d.malformed, n("malformed"), "{d:?}");
    assert_eq!(d.oversize, n("oversize"), "{d:?}");
    assert_eq!(d.forged, n("forged"), "{d:?}");
    assert_eq!(d.unknown_id, n("unknown_id"), "{d:?}");
    assert_eq!(d.no_hello, n("no_hello"), "{d:?}");
    assert_eq!(d.closed, n("closed"), "{d:?}");
    assert_eq!(d.handshake_timeout, 1, "{d:?}");
    assert_eq!(d.total(), cases.len() as u64 + 1);
    // Every one was reported, none reached the runtime.
    assert_eq!(gw.count("refused"), cases.len() + 1);
    assert_eq!(gw.link.peers_up().count(), 0);
    let _ = LinkError::Silent;
}

#[test]
fn a_dialler_with_another_model_learns_why_and_gives_up() {
    let h = HandshakeConfig {
        model: 0xaaaa,
        ..HandshakeConfig::DEFAULT
    };
    let (mut gw, peers) = gateway(20, &[(1, "127.13.20.2")], h);
    let mut cfg = config(1, 0, &peers, KEY);
    cfg.handshake.model = 0xbbbb;
    let mut e = peer("127.13.20.2", cfg);
    e.tick = Duration::from_millis(10);
    settle(&mut [&mut gw, &mut e], |p| {
        p[1].link.stats().gave_up.is_some()
    });
    let refusal = Refusal {
        peer: 0,
        reason: RefusalReason::Model,
    };
    assert_eq!(e.link.stats().gave_up, Some(refusal));
    assert!(
        refusal.to_string().contains("runs another model"),
        "{refusal}"
    );
    let max = HandshakeConfig::DEFAULT.max_refusals as u64;
    assert!(gw.link.stats().dropped.model_mismatch >= max);
    assert!(gw.count("refused: ModelMismatch { peer: 1, theirs: 48059, ours: 43690 }") >= 1);
    assert!(!gw.link.is_up(1));
}

#[test]
fn a_probe_gets_the_node_hello_and_is_closed_without_joining() {
    let h = HandshakeConfig {
        model: 0x1234_5678,
        ..HandshakeConfig::DEFAULT
    };
    let (mut gw, peers) = gateway(21, &[(1, "127.13.21.2")], h);
    let probe_answer = |gw: &mut Peer, key: &Key| {
        let mut s = raw("127.13.21.9", peers[0].1);
        let (frame, n) = handshake::probe_hello(Some(key), 7);
        s.write_all(&frame[..n]).unwrap();
        let before = gw.link.stats().dropped.total();
        settle(&mut [gw], |p| p[0].link.stats().dropped.total() > before);
        let mut answer = read_to_close(&mut s);
        handshake::parse_probe_answer(&mut answer, Some(key))
    };
    assert_eq!(
        probe_answer(&mut gw, &KEY),
        Ok(handshake::ProbeAnswer::Hello {
            node: 0,
            role: Role::Gateway,
            model: 0x1234_5678
        })
    );
    assert_eq!(gw.link.stats().dropped.probed, 1);
    assert_eq!(
        probe_answer(&mut gw, &Key::new([1; 32])),
        Ok(handshake::ProbeAnswer::Refused(RefusalReason::Auth))
    );
    // The probe id with an ordinary Hello (of the right model) does not join either.
    let mut s = raw("127.13.21.9", peers[0].1);
    let mut buf = [0u8; 128];
    let hello = Message::Hello {
        node: wire::PROBE,
        role: Role::Edge,
        model: 0x1234_5678,
    };
    let n = wire::encode(&hello, wire::PROBE, 9, Some(&KEY), &mut buf).unwrap();
    s.write_all(&buf[..n]).unwrap();
    settle(&mut [&mut gw], |p| p[0].link.stats().dropped.no_hello == 1);
    let st = gw.link.stats();
    assert_eq!((st.dropped.probed, st.dropped.forged), (1, 1));
    assert_eq!(gw.count("up "), 0, "{:?}", gw.events);
    assert!(gw.link.peers_up().next().is_none());
}
