//! The datagram endpoint over smoltcp UDP (in-memory devices, virtual time): a message larger
//! than the socket's transmit queue waits in the endpoint's backlog and goes out as the queue
//! drains, whole; one still waiting at its deadline is dropped at the sender and counted.
#![cfg(all(feature = "std", feature = "smoltcp"))]

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use smoltcp::iface::SocketStorage;
use smoltcp::socket::udp::PacketMetadata;
use tessera_backends::dgram::{DgramConfig, DgramEndpoint};
use tessera_backends::mem_device::MemDevice;
use tessera_backends::nal_smoltcp::{NetConfig, SmolNet, SmolStack, EPHEMERAL_FIRST};
use tessera_core::region::Region;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{FrameKey, Key, Message, Tensor};

/// Datagrams the transmit queue holds.
const TX_PACKETS: usize = 4;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)), 9000)
}

#[test]
fn a_message_larger_than_the_socket_queue_waits_in_the_backlog_until_its_deadline() {
    let mut storage = [[SocketStorage::EMPTY; 1], [SocketStorage::EMPTY; 1]];
    let mut meta = vec![PacketMetadata::EMPTY; 2 * (64 + TX_PACKETS)];
    let mut bytes = vec![0u8; 2 * (128 << 10)];
    let [s0, s1] = &mut storage;
    let (m0, m1) = meta.split_at_mut(64 + TX_PACKETS);
    let (b0, b1) = bytes.split_at_mut(128 << 10);
    let nets: Vec<RefCell<SmolNet<'_, MemDevice>>> = [(1u8, s0, m0, b0), (2, s1, m1, b1)]
        .into_iter()
        .map(|(i, st, m, b)| {
            let cfg = NetConfig {
                address: Ipv4Addr::new(10, 1, 0, i),
                prefix_len: 24,
                seed: u64::from(i),
                backlog: 1,
                first_port: EPHEMERAL_FIRST,
            };
            let none = std::iter::empty::<(&mut [u8], &mut [u8])>();
            let mut net = SmolNet::new(cfg, MemDevice::default(), st, none, Instant::ZERO);
            let (rx_meta, tx_meta) = m.split_at_mut(64);
            let (rx, tx) = b.split_at_mut(96 << 10);
            net.add_udp(rx_meta, rx, tx_meta, tx).unwrap();
            RefCell::new(net)
        })
        .collect();
    let key = Key::new([8; 32]);
    let mut ends: Vec<DgramEndpoint<SmolStack<'_, '_, MemDevice>>> = (0..2u8)
        .map(|i| {
            let mut cfg = DgramConfig::new(
                u16::from(i) + 1,
                9000,
                vec![(2 - u16::from(i), addr(2 - i))],
                key.clone(),
            );
            cfg.first_counter = 1 + 1000 * u64::from(i);
            DgramEndpoint::new(SmolStack::new(&nets[usize::from(i)]), cfg).unwrap()
        })
        .collect();
    // 10 datagrams' worth: the queue takes 4, the backlog the rest.
    let values = vec![7u8; 4 * 3500];
    let msg = |n| Message::CodedResult {
        frame: FrameKey::new(1, n),
        layer: 0,
        shard: 0,
        output: Tensor::new(Region::full(3500, 1), 1, &values).unwrap(),
    };
    let mut now = Instant::from_millis(1);
    ends[0]
        .send(now, 2, &msg(0), Some(Duration::from_millis(50)))
        .unwrap();
    assert!(ends[0].more(), "the rest waits in the backlog");
    assert_eq!(ends[0].stats().sent_datagrams, TX_PACKETS as u64);
    let mut got = Vec::new();
    // One datagram-queue's worth per millisecond: the message is out after three.
    for _ in 0..10 {
        now += Duration::from_millis(1);
        nets[0].borrow_mut().poll(now);
        let out: Vec<Vec<u8>> = nets[0].borrow_mut().device_mut().tx.drain(..).collect();
        nets[1].borrow_mut().device_mut().rx.extend(out);
        nets[1].borrow_mut().poll(now);
        ends[0].poll(now, |_, _| {});
        ends[1].poll(now, |from, m| got.push((from, m.frame())));
    }
    assert_eq!(got, vec![(1, Some(FrameKey::new(1, 0)))]);
    assert!(!ends[0].more());
    let s = ends[0].stats();
    assert_eq!((s.sent_datagrams, s.unsent_late), (10, 0));
    // A second message whose deadline passes while the socket is full: what did not leave by
    // then is dropped at the sender, and the receiver gives up on the part that came.
    ends[0]
        .send(now, 2, &msg(1), Some(Duration::from_millis(3)))
        .unwrap();
    now += Duration::from_millis(10);
    ends[0].poll(now, |_, _| {});
    nets[0].borrow_mut().poll(now);
    let out: Vec<Vec<u8>> = nets[0].borrow_mut().device_mut().tx.drain(..).collect();
    nets[1].borrow_mut().device_mut().rx.extend(out);
    nets[1].borrow_mut().poll(now);
    ends[1].poll(now, |from, m| got.push((from, m.frame())));
    now += Duration::from_millis(10);
    ends[1].poll(now, |from, m| got.push((from, m.frame())));
    assert_eq!(got.len(), 1, "the late message never arrives");
    let s = ends[0].stats();
    assert_eq!(
        (s.sent_datagrams, s.unsent_late, s.sent_messages),
        (14, 6, 2)
    );
    let r = ends[1].stats().rx;
    assert_eq!((r.delivered, r.expired, r.accepted), (1, 1, 14));
}
