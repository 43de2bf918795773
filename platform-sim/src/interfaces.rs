//! Each simulated node's network: a smoltcp interface on a [`SimDevice`] and the link
//! configuration its driver dials its peers with. Both worlds build their nodes this way;
//! they differ only in addresses, peers, port and key.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr};

use smoltcp::iface::SocketStorage;
use smoltcp::socket::udp::PacketMetadata;
use tessera_backends::link::LinkConfig;
use tessera_backends::nal_smoltcp::{NetConfig, SmolNet};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Key, Limits, NodeId};

use crate::device::SimDevice;

/// The socket slots and TCP buffers of every node's interface (and optionally one UDP
/// socket each). The interfaces borrow them for the whole run, so the world owns them next to
/// the interfaces.
pub struct SocketMemory<'a> {
    storage: Vec<SocketStorage<'a>>,
    bytes: Vec<u8>,
    sockets: usize,
    buffer: usize,
    udp: Option<UdpMemory>,
}

/// One UDP socket per node: its packet metadata and buffers, each way.
struct UdpMemory {
    meta: Vec<PacketMetadata>,
    bytes: Vec<u8>,
    packets: usize,
    buffer: usize,
}

impl SocketMemory<'_> {
    /// Room for `nodes` interfaces of `sockets` TCP sockets, `buffer` bytes each way.
    pub fn new(nodes: usize, sockets: usize, buffer: usize) -> Self {
        SocketMemory {
            storage: (0..nodes * sockets).map(|_| SocketStorage::EMPTY).collect(),
            bytes: vec![0u8; nodes * sockets * 2 * buffer],
            sockets,
            buffer,
            udp: None,
        }
    }

    /// As [`SocketMemory::new`], plus one UDP socket per node holding up to `packets`
    /// datagrams and `buffer` bytes each way.
    pub fn with_udp(
        nodes: usize,
        sockets: usize,
        tcp_buffer: usize,
        packets: usize,
        buffer: usize,
    ) -> Self {
        SocketMemory {
            storage: (0..nodes * (sockets + 1))
                .map(|_| SocketStorage::EMPTY)
                .collect(),
            udp: Some(UdpMemory {
                meta: vec![PacketMetadata::EMPTY; nodes * 2 * packets],
                bytes: vec![0u8; nodes * 2 * buffer],
                packets,
                buffer,
            }),
            ..SocketMemory::new(nodes, sockets, tcp_buffer)
        }
    }
}

/// One interface per address (node index order) on a device of `mtu`, its sockets cut from
/// `memory`. Node `i`'s TCP sequence numbers and ephemeral ports derive from `seed` and `i`,
/// so that no two nodes (or runs with different seeds) share them.
pub fn interfaces<'a>(
    memory: &'a mut SocketMemory<'a>,
    addresses: &[Ipv4Addr],
    mtu: usize,
    seed: u64,
) -> Vec<RefCell<SmolNet<'a, SimDevice>>> {
    let SocketMemory {
        storage,
        bytes,
        sockets,
        buffer,
        udp,
    } = memory;
    let sockets = *sockets;
    let per = sockets + usize::from(udp.is_some());
    let mut chunks = bytes.chunks_mut((*buffer).max(1));
    let mut udp_parts = udp.as_mut().map(|u| {
        (
            u.meta.chunks_mut(u.packets.max(1)),
            u.bytes.chunks_mut(u.buffer.max(1)),
        )
    });
    storage
        .chunks_mut(per)
        .zip(addresses)
        .enumerate()
        .map(|(i, (st, &address))| {
            let pairs: Vec<(&mut [u8], &mut [u8])> = (0..sockets)
                .map(|_| {
                    (
                        chunks.next().expect("rx buffer"),
                        chunks.next().expect("tx buffer"),
                    )
                })
                .collect();
            let mut net = SmolNet::new(
                NetConfig {
                    address,
                    prefix_len: 16,
                    seed: seed.wrapping_mul(1_000_003).wrapping_add(i as u64 + 1),
                    backlog: 3,
                    first_port: 49152 + (i as u16 % 64) * 256,
                },
                SimDevice::new(mtu),
                st,
                pairs,
                Instant::ZERO,
            );
            if let Some((meta, bytes)) = udp_parts.as_mut() {
                let (rx_meta, tx_meta) = (meta.next(), meta.next());
                let (rx, tx) = (bytes.next(), bytes.next());
                if let (Some(rm), Some(tm), Some(r), Some(t)) = (rx_meta, tx_meta, rx, tx) {
                    net.add_udp(rm, r, tm, t)
                        .expect("a socket slot is kept for UDP");
                }
            }
            RefCell::new(net)
        })
        .collect()
}

/// Node `me`'s link to `peers` on `port`, authenticated with `key` when `secure`; a peer
/// silent for `peer_dead` is dropped.
pub fn link_config(
    me: NodeId,
    port: u16,
    peers: Vec<(NodeId, SocketAddr)>,
    secure: bool,
    key: [u8; 32],
    peer_dead: Duration,
) -> LinkConfig {
    LinkConfig {
        me,
        port,
        peers,
        key: secure.then(|| Key::new(key)),
        limits: Limits::LARGE,
        first_seq: 1,
        peer_dead,
        retry: Duration::from_millis(100),
        // A fixed period: the simulated schedules stay those of the fixed-retry link.
        max_backoff: Duration::from_millis(100),
        // smoltcp's connect never waits; its socket buffers already bound what a peer holds.
        connect: Duration::from_secs(2),
        backlog: usize::MAX,
        // Lossy simulated links may take seconds to carry a Hello: bounded by liveness, as before.
        handshake: tessera_backends::link::HandshakeConfig {
            deadline: peer_dead,
            ..Default::default()
        },
    }
}
