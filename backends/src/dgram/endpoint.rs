//! [`DgramEndpoint`]: one node's datagram socket, its sender and its reassembler.

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use embedded_nal::{nb, UdpFullStack};
use tessera_core::time::{earliest, Duration, Instant};
use tessera_core::wire::datagram::{
    Datagram, DatagramRepr, DatagramSender, DatagramStats, Outgoing, Reassembler, SendError,
    DEFAULT_DATAGRAM_LEN,
};
use tessera_core::wire::{Key, Kind, Limits, Message, NodeId, WireError};

use super::{DGRAM_PEERS, DGRAM_SLOTS};

/// How a node's datagram endpoint is set up.
#[derive(Clone, Debug)]
pub struct DgramConfig {
    /// This node.
    pub me: NodeId,
    /// Local UDP port (0: any; see the stack for the port it got).
    pub port: u16,
    /// Every other node and its UDP address.
    pub peers: Vec<(NodeId, SocketAddr)>,
    /// The cluster key.
    pub key: Key,
    /// First datagram counter: above anything this node sent under the key before (e.g.
    /// microseconds since the Unix epoch at start-up).
    pub first_counter: u64,
    /// Largest datagram sent, header and tag included ([`DEFAULT_DATAGRAM_LEN`]: one
    /// Ethernet frame).
    pub max_datagram: usize,
    /// Largest message received (each of the [`DGRAM_SLOTS`] reassembly buffers).
    pub max_message: usize,
    /// Longest a receiver waits for a message's fragments, whatever its sender asks.
    pub max_lifetime: Duration,
    /// Lifetime of a message sent without one.
    pub lifetime: Duration,
    /// Bytes of messages held while the socket is full; past it a send is refused.
    pub backlog: usize,
    /// Bounds on received messages.
    pub limits: Limits,
}

impl DgramConfig {
    /// Node `me` on `port` with `peers` and `key`: Ethernet-sized datagrams, messages up to
    /// 4 MiB, a 1 s wait at most (500 ms by default), a 16 MiB backlog.
    pub fn new(me: NodeId, port: u16, peers: Vec<(NodeId, SocketAddr)>, key: Key) -> Self {
        DgramConfig {
            me,
            port,
            peers,
            key,
            first_counter: 1,
            max_datagram: DEFAULT_DATAGRAM_LEN,
            max_message: 4 << 20,
            max_lifetime: Duration::from_secs(1),
            lifetime: Duration::from_millis(500),
            backlog: 16 << 20,
            limits: Limits::LARGE,
        }
    }
}

/// Why an endpoint could not start.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DgramError {
    /// The datagram size leaves no room for a payload.
    #[error("datagram size {0} leaves no room after header and tag")]
    DatagramSize(usize),
    /// The socket could not be opened or bound.
    #[error("opening the UDP socket on port {port}: {reason}")]
    Socket {
        /// The port.
        port: u16,
        /// The stack's error.
        reason: alloc::string::String,
    },
}

/// Why a message was not sent.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum DgramSendError {
    /// The peer id is not in the peer table.
    #[error("unknown peer id {0}")]
    UnknownPeer(NodeId),
    /// The message could not be encoded.
    #[error("encoding the message: {0}")]
    Wire(WireError),
    /// The message needs too many datagrams.
    #[error("cutting the message into datagrams: {0}")]
    Fragment(SendError),
    /// The backlog is full (the socket has not taken the earlier messages).
    #[error("datagram backlog full")]
    BacklogFull,
    /// The socket refused the datagram.
    #[error("the UDP socket refused a datagram")]
    Socket,
}

/// Counters of an endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DgramStats {
    /// The reassembler's: accepted, delivered, expired, and a drop count per reason.
    pub rx: DatagramStats,
    /// Messages handed to [`DgramEndpoint::send`] and accepted.
    pub sent_messages: u64,
    /// Datagrams given to the socket.
    pub sent_datagrams: u64,
    /// Datagrams never sent: their message passed its lifetime in the backlog.
    pub unsent_late: u64,
    /// Messages refused at send (backlog full, socket error).
    pub refused: u64,
    /// Datagrams from an address that is not their claimed sender's (dropped before
    /// decryption).
    pub wrong_source: u64,
    /// Reassembled messages that did not parse as a [`Message`].
    pub bad_message: u64,
    /// Socket errors (a send that failed loses its message).
    pub socket_errors: u64,
}

/// A message waiting for room in the socket.
#[derive(Debug)]
struct Pending {
    to: SocketAddr,
    bytes: Vec<u8>,
    out: Outgoing,
    /// A sealed datagram the socket refused (it keeps its counter).
    head: Option<Vec<u8>>,
    expires: Instant,
}

/// Most datagrams read per [`DgramEndpoint::poll`] (bounded work per poll).
const READS_PER_POLL: usize = 4096;
/// Receive buffer: the largest UDP payload, so an oversized datagram is seen whole.
const RX_BUF: usize = 65_536;

/// One node's datagram transport over the UDP stack `U`: messages out as authenticated
/// datagrams, whole messages in (reassembled before their deadline), nothing retransmitted.
/// Sans-IO in time: every call takes `now`.
pub struct DgramEndpoint<U: UdpFullStack> {
    stack: U,
    socket: U::UdpSocket,
    me: NodeId,
    peers: Vec<(NodeId, SocketAddr)>,
    lifetime: Duration,
    backlog: usize,
    limits: Limits,
    tx: DatagramSender,
    /// Boxed: sixteen slots' fragment bitmaps are 8 KiB, kept off whatever holds the endpoint.
    rx: Box<Reassembler<Vec<u8>, DGRAM_SLOTS, DGRAM_PEERS>>,
    out_buf: Vec<u8>,
    in_buf: Vec<u8>,
    queue: VecDeque<Pending>,
    queued: usize,
    /// The last poll stopped reading at its cap: datagrams may be waiting (an edge-triggered
    /// readiness will not say so again).
    unread: bool,
    stats: DgramStats,
}

impl<U: UdpFullStack> DgramEndpoint<U> {
    /// Opens and binds the socket on `stack`.
    pub fn new(mut stack: U, cfg: DgramConfig) -> Result<Self, DgramError> {
        let tx = DatagramSender::new(cfg.me, cfg.key.clone(), cfg.first_counter, cfg.max_datagram)
            .map_err(|_| DgramError::DatagramSize(cfg.max_datagram))?;
        let socket_err = |e: U::Error| DgramError::Socket {
            port: cfg.port,
            reason: alloc::format!("{e:?}"),
        };
        let mut socket = stack.socket().map_err(socket_err)?;
        stack.bind(&mut socket, cfg.port).map_err(socket_err)?;
        // Zeroed buffers: pages the reassembly never touches cost no memory.
        let slots = core::array::from_fn(|_| vec![0u8; cfg.max_message]);
        Ok(DgramEndpoint {
            stack,
            socket,
            me: cfg.me,
            peers: cfg.peers,
            lifetime: cfg.lifetime,
            backlog: cfg.backlog,
            limits: cfg.limits,
            tx,
            rx: Box::new(Reassembler::new(cfg.key, cfg.max_lifetime, slots)),
            out_buf: vec![0u8; cfg.max_datagram],
            in_buf: vec![0u8; RX_BUF],
            queue: VecDeque::new(),
            queued: 0,
            unread: false,
            stats: DgramStats::default(),
        })
    }

    /// This node.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The stack (e.g. for the socket's local address).
    pub fn stack(&self) -> &U {
        &self.stack
    }

    /// The socket.
    pub fn socket(&self) -> &U::UdpSocket {
        &self.socket
    }

    /// The peer table: every other node and its address.
    pub fn peers(&self) -> &[(NodeId, SocketAddr)] {
        &self.peers
    }

    /// Replaces the peer table (e.g. once every node bound port 0 and told its address).
    pub fn set_peers(&mut self, peers: Vec<(NodeId, SocketAddr)>) {
        self.peers = peers;
    }

    /// Counters so far.
    pub fn stats(&self) -> DgramStats {
        DgramStats {
            rx: *self.rx.stats(),
            ..self.stats
        }
    }

    /// True while messages wait for room in the socket, or datagrams may wait to be read:
    /// poll again without waiting for readiness.
    pub fn more(&self) -> bool {
        !self.queue.is_empty() || self.unread
    }

    /// When the endpoint next needs a poll without I/O: a message's reassembly deadline or a
    /// waiting message's expiry.
    pub fn poll_at(&self) -> Option<Instant> {
        let waiting = self.queue.iter().map(|p| p.expires).min();
        earliest(self.rx.poll_at(), waiting)
    }

    /// Sends `msg` to `to`; its receiver waits `lifetime` (the configured default when
    /// `None`) for its fragments, and fragments not sent by then are dropped here. What the
    /// socket cannot take now waits in the backlog ([`DgramEndpoint::poll`] sends it).
    pub fn send(
        &mut self,
        now: Instant,
        to: NodeId,
        msg: &Message<'_>,
        lifetime: Option<Duration>,
    ) -> Result<(), DgramSendError> {
        let addr = self
            .peers
            .iter()
            .find(|(id, _)| *id == to)
            .map(|&(_, a)| a)
            .ok_or(DgramSendError::UnknownPeer(to))?;
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.emit(&mut bytes).map_err(DgramSendError::Wire)?;
        if self.queued.saturating_add(bytes.len()) > self.backlog {
            self.stats.refused += 1;
            return Err(DgramSendError::BacklogFull);
        }
        let lifetime = lifetime.unwrap_or(self.lifetime);
        let out = self
            .tx
            .start(msg.kind().into(), lifetime, bytes.len())
            .map_err(DgramSendError::Fragment)?;
        self.stats.sent_messages += 1;
        self.queued += bytes.len();
        self.queue.push_back(Pending {
            to: addr,
            bytes,
            out,
            head: None,
            expires: now.saturating_add(lifetime),
        });
        if self.flush(now) {
            Ok(())
        } else {
            self.stats.refused += 1;
            Err(DgramSendError::Socket)
        }
    }

    /// Sends what waits, oldest first, until the socket is full; drops messages past their
    /// lifetime. False when the socket failed (the message at fault is dropped).
    fn flush(&mut self, now: Instant) -> bool {
        while let Some(p) = self.queue.front_mut() {
            if now > p.expires {
                self.stats.unsent_late +=
                    u64::from(p.out.fragments() - p.out.emitted()) + u64::from(p.head.is_some());
                self.pop();
                continue;
            }
            let datagram = match p.head.take() {
                Some(d) => d,
                None => match self
                    .tx
                    .next_datagram(&mut p.out, &p.bytes, &mut self.out_buf)
                {
                    Ok(Some(n)) => self.out_buf[..n].to_vec(),
                    // Done, or cannot happen (the length was checked at `start`).
                    Ok(None) | Err(_) => {
                        self.pop();
                        continue;
                    }
                },
            };
            match self.stack.send_to(&mut self.socket, p.to, &datagram) {
                Ok(()) => self.stats.sent_datagrams += 1,
                Err(nb::Error::WouldBlock) => {
                    p.head = Some(datagram);
                    return true;
                }
                Err(nb::Error::Other(_)) => {
                    self.stats.socket_errors += 1;
                    self.pop();
                    return false;
                }
            }
        }
        true
    }

    fn pop(&mut self) {
        if let Some(p) = self.queue.pop_front() {
            self.queued -= p.bytes.len();
        }
    }

    /// Sends what waits, reads every datagram the socket holds (at most a few thousand) and
    /// calls `on(sender, message)` for each message completed, then gives up on messages past
    /// their deadline.
    pub fn poll(&mut self, now: Instant, mut on: impl FnMut(NodeId, Message<'_>)) {
        self.flush(now);
        self.unread = true;
        for _ in 0..READS_PER_POLL {
            let (n, from) = match self.stack.receive(&mut self.socket, &mut self.in_buf) {
                Ok(r) => r,
                Err(nb::Error::WouldBlock) => {
                    self.unread = false;
                    break;
                }
                Err(nb::Error::Other(_)) => {
                    self.stats.socket_errors += 1;
                    continue;
                }
            };
            let datagram = &mut self.in_buf[..n];
            // The address check costs no decryption; a datagram too short for it goes on to
            // be counted as malformed.
            let claimed = Datagram::new_checked(&*datagram)
                .and_then(|d| DatagramRepr::parse(&d))
                .map(|r| r.sender);
            if let Ok(sender) = claimed {
                if !self.peers.iter().any(|&(id, a)| id == sender && a == from) {
                    self.stats.wrong_source += 1;
                    continue;
                }
            }
            let Ok(Some(d)) = self.rx.receive(now, datagram) else {
                continue;
            };
            match Kind::from_u8(d.kind).and_then(|k| Message::parse(k, d.data, &self.limits)) {
                Ok(m) => on(d.sender, m),
                Err(_) => self.stats.bad_message += 1,
            }
        }
        self.rx.expire(now);
    }
}
