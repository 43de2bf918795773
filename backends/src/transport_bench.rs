//! TCP link against datagrams under packet loss, measured in virtual time: two nodes on
//! smoltcp joined by a wire with a one-way delay, a bandwidth and a seeded loss of every IP
//! packet (both directions, ACKs too). Node 1 sends a message of a given size every
//! `interval`; the figures are when each arrives at node 2: over the authenticated TCP
//! [`Link`], or over the [`DgramEndpoint`] (same key, same messages). smoltcp is the stack
//! the simulator and the no-OS targets run; its minimum retransmission timeout is 1 s
//! (RFC 6298), Linux's 200 ms, so the TCP tail is the stack's, not the link's.
//!
//! This is a measurement (deterministic for a seed), not a test: `tessera bench transport`
//! prints it, docs/datagram.md records what it said.

extern crate alloc;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use smoltcp::iface::SocketStorage;
use smoltcp::socket::udp::PacketMetadata;
use tessera_core::region::Region;
use tessera_core::rng::SplitMix64;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Body, FrameKey, Key, Limits, Message, Tensor};

use crate::dgram::{DgramConfig, DgramEndpoint};
use crate::link::{HandshakeConfig, Link, LinkConfig, LinkEvent};
use crate::mem_device::MemDevice as Port;
use crate::nal_smoltcp::{NetConfig, SmolNet, SmolStack, EPHEMERAL_FIRST};

/// The two transports compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The authenticated TCP link.
    Tcp,
    /// Authenticated datagrams, never retransmitted.
    Datagram,
}

impl Transport {
    /// Its name in tables.
    pub const fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Datagram => "datagram",
        }
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct TransportSpec {
    /// Message sizes (payload bytes of a `CodedResult`, tensor included).
    pub sizes: Vec<usize>,
    /// Fractions of IP packets lost.
    pub losses: Vec<f64>,
    /// Messages per (size, loss, transport).
    pub messages: usize,
    /// Time between two messages.
    pub interval: Duration,
    /// One-way propagation delay.
    pub one_way: Duration,
    /// Wire rate, bits per second (each direction).
    pub rate_bps: u64,
    /// A message is useful if it arrives within this (and datagrams live this long).
    pub deadline: Duration,
    /// Seed of the loss.
    pub seed: u64,
}

/// One (transport, size, loss) cell.
#[derive(Clone, Debug, PartialEq)]
pub struct TransportRow {
    /// The transport.
    pub transport: Transport,
    /// Message size asked for, bytes.
    pub size: usize,
    /// Message size sent (the tensor rounded to whole rows), bytes.
    pub bytes: usize,
    /// Packet loss.
    pub loss: f64,
    /// Messages sent.
    pub sent: usize,
    /// Messages that arrived (late or not).
    pub delivered: usize,
    /// Messages that arrived within the deadline.
    pub in_time: usize,
    /// Delivery latencies of the messages that arrived, sorted.
    pub latencies: Vec<Duration>,
}

impl TransportRow {
    /// The `q`-quantile of the delivered messages' latency (nearest rank).
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.latencies.len();
        (n > 0).then(|| self.latencies[(libm::round((n - 1) as f64 * q) as usize).min(n - 1)])
    }
}

/// Runs every cell of `spec`: sizes × losses × both transports.
pub fn measure(spec: &TransportSpec) -> Vec<TransportRow> {
    let mut rows = Vec::new();
    for &size in &spec.sizes {
        for &loss in &spec.losses {
            for t in [Transport::Tcp, Transport::Datagram] {
                rows.push(run_cell(spec, t, size, loss));
            }
        }
    }
    rows
}

/// A direction of the wire: packets in flight and when it is free to send the next.
#[derive(Default)]
struct Lane {
    flight: VecDeque<(Instant, Vec<u8>)>,
    free: Instant,
}

const TCP_SOCKETS: usize = 4;
const TCP_BUF: usize = 256 << 10;
const UDP_META: usize = 512;
const UDP_BUF: usize = 1 << 20;
const PORT: u16 = 7000;
/// Virtual time step.
const TICK: Duration = Duration::from_micros(200);

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8)), PORT)
}

/// Sockets of one interface: storage, TCP buffers, UDP buffers.
struct Memory<'a> {
    storage: Vec<SocketStorage<'a>>,
    tcp: Vec<u8>,
    meta: Vec<PacketMetadata>,
    udp: Vec<u8>,
}

impl Memory<'_> {
    fn new() -> Self {
        Memory {
            storage: (0..TCP_SOCKETS + 1).map(|_| SocketStorage::EMPTY).collect(),
            tcp: vec![0; TCP_SOCKETS * 2 * TCP_BUF],
            meta: vec![PacketMetadata::EMPTY; 2 * UDP_META],
            udp: vec![0; 2 * UDP_BUF],
        }
    }
}

fn interface<'a>(i: usize, m: &'a mut Memory<'a>) -> RefCell<SmolNet<'a, Port>> {
    let Memory {
        storage,
        tcp,
        meta,
        udp,
    } = m;
    let mut chunks = tcp.chunks_mut(TCP_BUF);
    let pairs = core::iter::from_fn(|| Some((chunks.next()?, chunks.next()?)));
    let IpAddr::V4(address) = addr(i).ip() else {
        unreachable!("IPv4 addresses")
    };
    let cfg = NetConfig {
        address,
        prefix_len: 24,
        seed: 17 + i as u64,
        backlog: 2,
        first_port: EPHEMERAL_FIRST + 1000 * i as u16,
    };
    let mut net = SmolNet::new(cfg, Port::default(), storage, pairs, Instant::ZERO);
    let (rx_meta, tx_meta) = meta.split_at_mut(UDP_META);
    let (rx, tx) = udp.split_at_mut(UDP_BUF);
    // Storage was sized for the TCP sockets plus this one.
    let _ = net.add_udp(rx_meta, rx, tx_meta, tx);
    RefCell::new(net)
}

/// The node's side of one run: a link or an endpoint (two per run: their sizes do not
/// matter).
#[allow(clippy::large_enum_variant)]
enum End<'n, 'a> {
    Tcp(Link<SmolStack<'n, 'a, Port>>),
    Dgram(DgramEndpoint<SmolStack<'n, 'a, Port>>),
}

fn run_cell(spec: &TransportSpec, transport: Transport, size: usize, loss: f64) -> TransportRow {
    let key = Key::new([0x77; 32]);
    let mut mem = [Memory::new(), Memory::new()];
    let [m0, m1] = &mut mem;
    let nets = [interface(0, m0), interface(1, m1)];
    let mut ends: Vec<End<'_, '_>> = (0..2)
        .map(|i| {
            let me = 1 + i as u16;
            let peer = (2 - i as u16, addr(1 - i));
            let stack = SmolStack::new(&nets[i]);
            match transport {
                Transport::Tcp => {
                    let cfg = LinkConfig {
                        me,
                        port: PORT,
                        peers: vec![peer],
                        key: Some(key.clone()),
                        limits: Limits::LARGE,
                        first_seq: 1,
                        // Loss must cost delay only: the link never gives up on the peer.
                        peer_dead: Duration::from_secs(3600),
                        retry: Duration::from_millis(100),
                        max_backoff: Duration::from_millis(100),
                        connect: Duration::from_secs(10),
                        backlog: usize::MAX,
                        handshake: HandshakeConfig {
                            deadline: Duration::from_secs(3600),
                            ..HandshakeConfig::DEFAULT
                        },
                    };
                    End::Tcp(Link::new(stack, cfg).unwrap_or_else(|_| unreachable!()))
                }
                Transport::Datagram => {
                    let mut cfg = DgramConfig::new(me, PORT, vec![peer], key.clone());
                    cfg.lifetime = spec.deadline;
                    cfg.max_lifetime = spec.deadline;
                    cfg.max_message = size + 64;
                    End::Dgram(DgramEndpoint::new(stack, cfg).unwrap_or_else(|_| unreachable!()))
                }
            }
        })
        .collect();
    let mut rng = SplitMix64::new(spec.seed ^ (size as u64) << 20 ^ (loss * 1e6) as u64);
    let mut lanes = [Lane::default(), Lane::default()];
    // The tensor of a `CodedResult` of about `size` bytes in all: `w × h` values in rows of at
    // most 1024 (a region side must stay within the receiver's limits); `w·h` rounds `n` up
    // by less than `h`.
    let header = Message::CodedResult {
        frame: FrameKey::new(0, 0),
        layer: 0,
        shard: 0,
        output: Tensor::new(Region::full(0, 1), 0, &[]).unwrap_or_else(|_| unreachable!()),
    }
    .buffer_len();
    let n = (size.saturating_sub(header) / 4).max(1);
    let h = n.div_ceil(1024);
    let w = n.div_ceil(h);
    let values = vec![0u8; 4 * w * h];
    let mut sent_at: BTreeMap<u32, Instant> = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut now = Instant::ZERO;
    let mut next_send: Option<Instant> = None;
    let mut sent = 0usize;
    // TCP gets a long tail (retransmission back-off); a datagram lives `deadline`.
    let drain = Duration::from_secs(30);
    loop {
        now += TICK;
        // Packets whose time came arrive.
        for (lane, net) in lanes.iter_mut().zip(nets.iter().rev()) {
            while lane.flight.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, p)) = lane.flight.pop_front() {
                    net.borrow_mut().device_mut().rx.push_back(p);
                }
            }
        }
        for n in &nets {
            n.borrow_mut().poll(now);
        }
        // Node 2 receives; node 1 sends on schedule once it can.
        let mut arrived: Vec<u32> = Vec::new();
        for (i, end) in ends.iter_mut().enumerate() {
            match end {
                End::Tcp(link) => link.poll(now, |_, ev| {
                    if let (1, LinkEvent::Message(_, r)) = (i, ev) {
                        if let Some(f) = r.message().frame() {
                            arrived.push(f.number);
                        }
                    }
                }),
                End::Dgram(ep) => ep.poll(now, |_, m| {
                    if let (1, Some(f)) = (i, m.frame()) {
                        arrived.push(f.number);
                    }
                }),
            }
        }
        for n in arrived {
            if let Some(t) = sent_at.remove(&n) {
                latencies.push(now.saturating_duration_since(t));
            }
        }
        let ready = match &ends[0] {
            End::Tcp(link) => link.peers_up().count() == 1,
            End::Dgram(_) => true,
        };
        if ready && sent < spec.messages && next_send.is_none_or(|t| t <= now) {
            let output = Tensor::new(Region::full(w as u32, h as u32), 1, &values)
                .unwrap_or_else(|_| unreachable!());
            let msg = Message::CodedResult {
                frame: FrameKey::new(1, sent as u32),
                layer: 0,
                shard: 0,
                output,
            };
            let ok = match &mut ends[0] {
                End::Tcp(link) => link.send(now, 2, &msg, Body::Message).is_ok(),
                End::Dgram(ep) => ep.send(now, 2, &msg, None).is_ok(),
            };
            if ok {
                sent_at.insert(sent as u32, now);
            }
            sent += 1;
            next_send = Some(next_send.unwrap_or(now) + spec.interval);
        }
        for n in &nets {
            n.borrow_mut().poll(now);
        }
        // What the interfaces sent goes on the wire: serialised at the rate, delayed, lost.
        for (lane, net) in lanes.iter_mut().zip(nets.iter()) {
            let out: Vec<Vec<u8>> = net.borrow_mut().device_mut().tx.drain(..).collect();
            for p in out {
                let bits = p.len() as u64 * 8;
                let wire = Duration::from_micros(bits * 1_000_000 / spec.rate_bps.max(1));
                lane.free = lane.free.max(now) + wire;
                if !rng.bernoulli(loss) {
                    lane.flight.push_back((lane.free + spec.one_way, p));
                }
            }
        }
        let last = next_send.unwrap_or(now);
        let done = sent == spec.messages && (sent_at.is_empty() || now > last + drain);
        let schedule = Duration::from_micros(spec.interval.total_micros() * spec.messages as u64);
        if done || now > Instant::ZERO + drain + drain + schedule {
            break;
        }
    }
    latencies.sort();
    let in_time = latencies.iter().filter(|l| **l <= spec.deadline).count();
    TransportRow {
        transport,
        size,
        bytes: header + values.len(),
        loss,
        sent,
        delivered: latencies.len(),
        in_time,
        latencies,
    }
}
