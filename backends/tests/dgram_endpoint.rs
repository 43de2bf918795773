//! The datagram endpoint on real UDP sockets (127.0.0.1): messages small and large arrive
//! whole; datagrams from the wrong address, forged, replayed or garbage are dropped and
//! counted; refusals at send are typed.
#![cfg(feature = "std")]

use std::net::{SocketAddr, UdpSocket};
use std::time::Instant as StdInstant;

use tessera_backends::dgram::{DgramConfig, DgramEndpoint, DgramSendError};
use tessera_backends::nal_std::StdUdpStack;
use tessera_core::region::Region;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::datagram::{DatagramSender, DropReason};
use tessera_core::wire::{FrameKey, Key, Kind, Message, NodeId, Tensor};

const KEY: Key = Key::new([3; 32]);

type Ep = DgramEndpoint<StdUdpStack>;

fn endpoint(me: NodeId, tune: impl FnOnce(&mut DgramConfig)) -> (Ep, SocketAddr) {
    let stack = StdUdpStack::new("127.0.0.1".parse().unwrap());
    let mut cfg = DgramConfig::new(me, 0, Vec::new(), KEY);
    cfg.first_counter = 1000 * u64::from(me);
    tune(&mut cfg);
    let ep = DgramEndpoint::new(stack, cfg).unwrap();
    let addr = ep.stack().local_addr(ep.socket()).unwrap();
    (ep, addr)
}

/// Polls `ep` until `n` messages came (kind and payload bytes), within a generous liveness
/// bound.
fn receive(ep: &mut Ep, n: usize) -> Vec<(NodeId, Kind, Vec<u8>)> {
    let start = StdInstant::now();
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            start.elapsed().as_secs() < 10,
            "{} of {n} messages",
            got.len()
        );
        ep.poll(Instant::from_millis(1), |from, m| {
            let mut b = vec![0u8; m.buffer_len()];
            m.emit(&mut b).unwrap();
            got.push((from, m.kind(), b));
        });
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    got
}

/// Polls `ep` a few times (datagrams on loopback are there at once).
fn drain(ep: &mut Ep) -> usize {
    let mut n = 0;
    for _ in 0..20 {
        ep.poll(Instant::from_millis(1), |_, _| n += 1);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    n
}

#[test]
fn small_and_large_messages_arrive_whole() {
    let (mut a, aa) = endpoint(1, |_| {});
    let (mut b, ba) = endpoint(2, |_| {});
    a.set_peers(vec![(2, ba)]);
    b.set_peers(vec![(1, aa)]);
    let values: Vec<u8> = (0..100_000u32)
        .flat_map(|i| (i as f32).to_le_bytes())
        .collect();
    let output = Tensor::new(Region::full(250, 100), 4, &values[..]).unwrap();
    let big = Message::CodedResult {
        frame: FrameKey::new(0, 5),
        layer: 1,
        shard: 3,
        output,
    };
    let now = Instant::from_millis(1);
    a.send(now, 2, &Message::Heartbeat, None).unwrap();
    a.send(now, 2, &big, Some(Duration::from_millis(200)))
        .unwrap();
    let got = receive(&mut b, 2);
    assert_eq!(got[0], (1, Kind::Heartbeat, Vec::new()));
    let mut want = vec![0u8; big.buffer_len()];
    big.emit(&mut want).unwrap();
    assert_eq!((got[1].0, got[1].1), (1, Kind::CodedResult));
    assert!(got[1].2 == want, "the 400 KB tensor arrived altered");
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.sent_messages, 2);
    assert_eq!(sa.sent_datagrams, 1 + want.len().div_ceil(1472 - 48) as u64);
    assert_eq!(sb.rx.accepted, sa.sent_datagrams);
    assert_eq!((sb.rx.delivered, sb.rx.dropped_total()), (2, 0));
    // Typed refusals at send.
    assert_eq!(
        a.send(now, 9, &Message::Heartbeat, None),
        Err(DgramSendError::UnknownPeer(9))
    );
    let (mut c, _) = endpoint(3, |c| c.backlog = 100);
    c.set_peers(vec![(2, ba)]);
    assert_eq!(c.send(now, 2, &big, None), Err(DgramSendError::BacklogFull));
    assert_eq!(c.stats().refused, 1);
}

#[test]
fn foreign_forged_replayed_and_garbage_datagrams_are_dropped_and_counted() {
    let (mut b, ba) = endpoint(2, |_| {});
    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ra = raw.local_addr().unwrap();
    // Node 3 is at the raw socket's address; node 1 somewhere else.
    b.set_peers(vec![(3, ra), (1, "127.0.0.1:9".parse().unwrap())]);
    // One message a datagram; each sender numbers its messages (a second sender 3 starting
    // again at message 0 would be refused as late).
    let datagram = |tx: &mut DatagramSender, kind: Kind, msg: &[u8]| {
        let mut out = tx
            .start(kind.into(), Duration::from_millis(100), msg.len())
            .unwrap();
        let mut buf = vec![0u8; 1472];
        let n = tx.next_datagram(&mut out, msg, &mut buf).unwrap().unwrap();
        buf.truncate(n);
        buf
    };
    let sender =
        |node: NodeId, key: Key, first| DatagramSender::new(node, key, first, 1472).unwrap();
    let mut three = sender(3, KEY, 50);
    let good = datagram(&mut three, Kind::Heartbeat, &[]);
    raw.send_to(&good, ba).unwrap();
    raw.send_to(&good, ba).unwrap(); // a replay
                                     // A fresh counter under another key (a stale one would be refused as a replay first).
    let forged = datagram(&mut sender(3, Key::new([4; 32]), 500), Kind::Heartbeat, &[]);
    raw.send_to(&forged, ba).unwrap();
    // Node 1's id from node 3's address.
    raw.send_to(&datagram(&mut sender(1, KEY, 50), Kind::Heartbeat, &[]), ba)
        .unwrap();
    raw.send_to(b"not a datagram", ba).unwrap();
    // Authentic, but not a message: a heartbeat has no payload.
    raw.send_to(&datagram(&mut three, Kind::Heartbeat, &[9]), ba)
        .unwrap();
    // And a kind byte no message has.
    let mut out = three.start(250, Duration::from_millis(100), 2).unwrap();
    let mut buf = vec![0u8; 1472];
    let n = three
        .next_datagram(&mut out, &[1, 2], &mut buf)
        .unwrap()
        .unwrap();
    raw.send_to(&buf[..n], ba).unwrap();
    assert_eq!(drain(&mut b), 1, "only the first heartbeat is a message");
    let s = b.stats();
    assert_eq!(s.rx.dropped(DropReason::Replayed), 1);
    assert_eq!(s.rx.dropped(DropReason::Forged), 1);
    assert_eq!(s.rx.dropped(DropReason::Malformed), 1);
    assert_eq!(s.rx.dropped_total(), 3);
    assert_eq!(s.wrong_source, 1);
    assert_eq!(s.bad_message, 2);
    assert_eq!(s.rx.delivered, 3);
}
