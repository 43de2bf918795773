//! Authenticated, framed, long-lived connections between cluster nodes over any embedded-nal
//! TCP stack: the transport under the runtime driver.
//!
//! One connection per peer pair, kept for the whole run (the original system opened one per
//! request). The node with the larger id connects to every peer with a smaller id it knows,
//! so edges dial the gateway (id 0) and lower edges; the first frame each way is a sealed
//! `Hello` naming the sender. Anything else first — a wrong key, a forged or replayed frame,
//! an id not in the peer table, a malformed frame — drops that connection and is counted; it
//! never disturbs other peers. Peers silent for longer than `peer_dead` are dropped; idle
//! connections carry `Heartbeat`s so silence means death, not idleness.
//!
//! Dialling never blocks: a connect in progress stays in a "connecting" state across polls and
//! is abandoned after `LinkConfig::connect`; a peer that is down is re-dialled with exponential
//! backoff, from `retry` doubling up to `max_backoff`, reset when the peer comes up.
//!
//! Sending streams the frame out of the caller's tensor with [`FrameEncoder`](tessera_core::wire::FrameEncoder) straight into the
//! socket; only what the socket does not take at once is copied into the peer's backlog.
//! Receiving buffers one frame per connection (the tag must be checked before any byte is
//! used), bounded by the receiver's [`Limits`].

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

use embedded_nal::{nb, TcpError, TcpErrorKind, TcpFullStack};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{
    self, Body, Frame, HeaderRepr, Key, Limits, Message, NodeId, ReplayWindow, Role, Sender,
    WireError, GATEWAY, HEADER_LEN,
};

/// Bytes written to a socket per `send` call (also the streaming chunk).
const CHUNK: usize = 64 * 1024;
/// Largest receive buffer (and drained send backlog) a connection keeps between frames.
const RX_KEEP: usize = 64 * 1024;

/// A per-peer send backlog that holds a few YOLOv2-608 input frames (4.4 MiB each) while a
/// slow link drains, and bounds what a peer that stopped reading can cost.
pub const DEFAULT_BACKLOG: usize = 16 << 20;

/// A default for `LinkConfig::max_backoff`: a peer that is down costs one dial every 4 s.
pub const MAX_BACKOFF: Duration = Duration::from_millis(4000);

/// Why the link refused an operation or dropped a connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinkError {
    /// The peer is not connected.
    NotConnected(NodeId),
    /// The peer id is not in the peer table.
    UnknownPeer(NodeId),
    /// A frame from the peer was malformed, forged or replayed.
    Wire(WireError),
    /// The first frame on a connection was not a `Hello`.
    NoHello,
    /// A new connection from the same peer replaced this one.
    Duplicate(NodeId),
    /// The socket failed or the peer closed it.
    Socket(TcpErrorKind),
    /// The peer was silent for longer than `peer_dead`.
    Silent,
    /// Binding or listening failed.
    Listen,
    /// The peer's send backlog is too full to take this frame (the peer does not read fast
    /// enough); nothing of the frame was sent.
    Backlog {
        /// The peer.
        peer: NodeId,
        /// Bytes already waiting for it.
        queued: usize,
        /// Length of the refused frame.
        frame: usize,
    },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NotConnected(p) => write!(f, "peer {p} is not connected"),
            LinkError::UnknownPeer(p) => write!(f, "unknown peer id {p}"),
            LinkError::Wire(e) => write!(f, "bad frame: {e}"),
            LinkError::NoHello => f.write_str("first frame was not Hello"),
            LinkError::Duplicate(p) => write!(f, "peer {p} reconnected"),
            LinkError::Socket(TcpErrorKind::PipeClosed) => f.write_str("connection closed"),
            LinkError::Socket(_) => f.write_str("socket error"),
            LinkError::Silent => f.write_str("peer silent for too long"),
            LinkError::Listen => f.write_str("cannot listen"),
            LinkError::Backlog {
                peer,
                queued,
                frame,
            } => write!(
                f,
                "backlog to peer {peer} full: {queued} bytes queued, frame of {frame} refused"
            ),
        }
    }
}

impl core::error::Error for LinkError {}

impl From<WireError> for LinkError {
    fn from(e: WireError) -> Self {
        LinkError::Wire(e)
    }
}

/// Configuration of one node's link.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// This node.
    pub me: NodeId,
    /// Local port to listen on.
    pub port: u16,
    /// Every other node of the cluster and its listening address.
    pub peers: Vec<(NodeId, SocketAddr)>,
    /// Cluster key; `None` runs unauthenticated (measurements only).
    pub key: Option<Key>,
    /// Bounds on received frames.
    pub limits: Limits,
    /// Sequence number of this node's first frame; must exceed any it used before with the
    /// same key (e.g. microseconds since the Unix epoch at start-up).
    pub first_seq: u64,
    /// A peer silent this long is dropped.
    pub peer_dead: Duration,
    /// Wait before the first re-dial of a peer that is down; it doubles on every failed
    /// attempt up to `max_backoff` and is reset when the peer comes up.
    pub retry: Duration,
    /// Longest wait between two dials of a peer that is down (e.g. [`MAX_BACKOFF`]; equal to
    /// `retry` for a fixed period).
    pub max_backoff: Duration,
    /// A connect still in progress after this long is abandoned (a peer that drops SYNs).
    pub connect: Duration,
    /// Most bytes queued for one peer beyond what its socket took. A send that would grow the
    /// backlog past it is refused with [`LinkError::Backlog`]; a frame finding the backlog
    /// empty is always accepted, so one peer's backlog never exceeds `backlog` plus one frame
    /// (bounded by the peer's receive [`Limits`]).
    pub backlog: usize,
}

/// What happened on the link during a poll.
#[derive(Debug)]
pub enum LinkEvent<'a> {
    /// A peer completed its Hello.
    Up(NodeId),
    /// A peer's connection was dropped (it may come back).
    Down(NodeId, LinkError),
    /// A message from a peer.
    Message(NodeId, Message<'a>),
    /// A connection from an unidentified peer was refused.
    Refused(LinkError),
}

/// Counters of the link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bytes handed to sockets.
    pub bytes_sent: u64,
    /// Bytes read from sockets.
    pub bytes_received: u64,
    /// Frames accepted.
    pub frames_received: u64,
    /// Frames whose tag did not verify.
    pub forged: u64,
    /// Frames replayed or stale.
    pub replayed: u64,
    /// Connections dropped for a protocol violation (malformed frame, no Hello, bad id).
    pub violations: u64,
    /// Connection attempts started (dials).
    pub dials: u64,
    /// Dials abandoned after `LinkConfig::connect` without an answer.
    pub dial_timeouts: u64,
    /// Sends refused because the peer's backlog was full.
    pub sends_refused: u64,
    /// Connections of identified peers that went down (any reason).
    pub peers_lost: u64,
}

struct Conn<T> {
    socket: Option<T>,
    peer: Option<NodeId>,
    rx: Vec<u8>,
    rx_len: usize,
    tx: VecDeque<u8>,
    last_heard: Instant,
    last_sent: Instant,
}

/// Dialling state of one lower-id peer.
struct Dial<T> {
    id: NodeId,
    /// Earliest next attempt.
    at: Instant,
    /// Wait after the next failure.
    backoff: Duration,
    /// A connect in progress and when it started.
    pending: Option<(T, Instant)>,
}

/// A node's connections to its peers.
pub struct Link<S: TcpFullStack> {
    stack: S,
    cfg: LinkConfig,
    listener: S::TcpSocket,
    conns: Vec<Conn<S::TcpSocket>>,
    sender: Sender,
    receiver: wire::Receiver,
    windows: Vec<(NodeId, ReplayWindow)>,
    dials: Vec<Dial<S::TcpSocket>>,
    stats: LinkStats,
    role: Role,
    /// The last poll stopped with work left (a frame behind the one delivered, connections
    /// behind the accept bound): poll again without waiting for readiness.
    more: bool,
}

/// Idle connections carry a heartbeat three times per `peer_dead`.
fn heartbeat(peer_dead: Duration) -> Duration {
    Duration::from_micros(peer_dead.total_micros() / 3)
}

fn socket_error<E: TcpError>(e: E) -> LinkError {
    LinkError::Socket(e.kind())
}

impl<S: TcpFullStack> Link<S> {
    /// Binds and listens on `cfg.port`.
    pub fn new(mut stack: S, cfg: LinkConfig) -> Result<Self, LinkError> {
        let mut listener = stack.socket().map_err(|_| LinkError::Listen)?;
        stack
            .bind(&mut listener, cfg.port)
            .map_err(|_| LinkError::Listen)?;
        stack.listen(&mut listener).map_err(|_| LinkError::Listen)?;
        let role = if cfg.me == GATEWAY {
            Role::Gateway
        } else {
            Role::Edge
        };
        Ok(Link {
            sender: Sender::new(cfg.me, cfg.first_seq, cfg.key.clone()),
            receiver: wire::Receiver::new(cfg.key.clone(), cfg.limits),
            windows: cfg
                .peers
                .iter()
                .map(|&(id, _)| (id, ReplayWindow::new()))
                .collect(),
            dials: cfg
                .peers
                .iter()
                .filter(|&&(id, _)| id < cfg.me)
                .map(|&(id, _)| Dial {
                    id,
                    at: Instant::ZERO,
                    backoff: cfg.retry,
                    pending: None,
                })
                .collect(),
            more: false,
            stack,
            listener,
            conns: Vec::new(),
            stats: LinkStats::default(),
            role,
            cfg,
        })
    }

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.cfg.me
    }

    /// The underlying stack (e.g. to query socket addresses).
    pub fn stack(&self) -> &S {
        &self.stack
    }

    /// The listening socket.
    pub fn listener(&self) -> &S::TcpSocket {
        &self.listener
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// True when `peer` has completed its Hello and is connected.
    pub fn is_up(&self, peer: NodeId) -> bool {
        self.conns
            .iter()
            .any(|c| c.peer == Some(peer) && c.socket.is_some())
    }

    /// The connected peers.
    pub fn peers_up(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.conns
            .iter()
            .filter(|c| c.socket.is_some())
            .filter_map(|c| c.peer)
    }

    /// Bytes waiting in `peer`'s backlog (not yet taken by its socket).
    pub fn backlog(&self, peer: NodeId) -> usize {
        self.conns
            .iter()
            .filter(|c| c.peer == Some(peer))
            .map(|c| c.tx.len())
            .sum()
    }

    /// Sends `msg` (whose trailing tensor or strips come from `body`) to `to`.
    pub fn send(
        &mut self,
        now: Instant,
        to: NodeId,
        msg: &Message<'_>,
        body: Body<'_>,
    ) -> Result<(), LinkError> {
        let idx = self
            .conns
            .iter()
            .position(|c| c.peer == Some(to) && c.socket.is_some())
            .ok_or(LinkError::NotConnected(to))?;
        let mut encoder = self.sender.stream(msg, body)?;
        let queued = self.conns[idx].tx.len();
        if queued > 0 && queued.saturating_add(encoder.frame_len()) > self.cfg.backlog {
            self.stats.sends_refused += 1;
            return Err(LinkError::Backlog {
                peer: to,
                queued,
                frame: encoder.frame_len(),
            });
        }
        let mut chunk = vec![0u8; CHUNK.min(encoder.frame_len())];
        let conn = &mut self.conns[idx];
        conn.last_sent = now;
        loop {
            let n = encoder.fill(&mut chunk);
            if n == 0 {
                break;
            }
            let mut at = 0;
            if conn.tx.is_empty() {
                let socket = conn.socket.as_mut().ok_or(LinkError::NotConnected(to))?;
                while at < n {
                    match self.stack.send(socket, &chunk[at..n]) {
                        Ok(w) => {
                            at += w;
                            self.stats.bytes_sent += w as u64;
                        }
                        Err(nb::Error::WouldBlock) => break,
                        Err(nb::Error::Other(e)) => {
                            let err = socket_error(e);
                            self.drop_conn(idx);
                            return Err(err);
                        }
                    }
                }
            }
            conn.tx.extend(&chunk[at..n]);
        }
        Ok(())
    }

    /// Sends a message without trailing data.
    pub fn send_control(
        &mut self,
        now: Instant,
        to: NodeId,
        msg: &Message<'_>,
    ) -> Result<(), LinkError> {
        self.send(now, to, msg, Body::Message)
    }

    /// Closes the connection to `peer` (e.g. a peer the runtime found faulty).
    pub fn disconnect(&mut self, peer: NodeId) {
        if let Some(i) = self.conns.iter().position(|c| c.peer == Some(peer)) {
            self.drop_conn(i);
        }
    }

    fn drop_conn(&mut self, i: usize) {
        if let Some(s) = self.conns[i].socket.take() {
            let _ = self.stack.close(s);
        }
    }

    fn hello(&self) -> Message<'static> {
        Message::Hello {
            node: self.cfg.me,
            role: self.role,
        }
    }

    /// True when the last poll left work behind (a frame behind the one it delivered,
    /// connections behind the accept bound): a loop that sleeps on edge-triggered readiness
    /// must poll again before sleeping, as no new readiness event will report it.
    pub fn more(&self) -> bool {
        self.more
    }

    /// When the link next needs a poll without I/O (dial retries and timeouts, heartbeats,
    /// silence checks). See also [`Link::more`].
    pub fn poll_at(&self) -> Option<Instant> {
        let dial = self
            .dials
            .iter()
            .filter(|d| !self.conns.iter().any(|c| c.peer == Some(d.id)))
            .map(|d| match &d.pending {
                Some((_, started)) => *started + self.cfg.connect,
                None => d.at,
            })
            .min();
        let live = self
            .conns
            .iter()
            .filter(|c| c.socket.is_some())
            .map(|c| {
                (c.last_heard + self.cfg.peer_dead).min(c.last_sent + heartbeat(self.cfg.peer_dead))
            })
            .min();
        match (dial, live) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Accepts, dials, reads, flushes and checks liveness; reports what happened through
    /// `on_event`. Bounded work: at most one frame per connection per call.
    pub fn poll(&mut self, now: Instant, mut on_event: impl FnMut(&mut Self, LinkEvent<'_>)) {
        self.more = false;
        self.accept(now);
        self.dial(now, &mut on_event);
        let mut i = 0;
        while i < self.conns.len() {
            self.flush(i);
            match self.read(now, i) {
                Ok(Some(len)) => {
                    // More bytes may wait behind this frame; edge-triggered readiness will not
                    // report them again (see `more`).
                    self.more = true;
                    self.deliver(now, i, len, &mut on_event)
                }
                Ok(None) => {}
                Err(e) => self.fail(i, e, &mut on_event),
            }
            if let Some(c) = self.conns.get(i) {
                if c.socket.is_some() && now >= c.last_heard + self.cfg.peer_dead {
                    self.fail(i, LinkError::Silent, &mut on_event);
                } else if c.socket.is_some()
                    && c.peer.is_some()
                    && now >= c.last_sent + heartbeat(self.cfg.peer_dead)
                {
                    if let Some(p) = c.peer {
                        let _ = self.send_control(now, p, &Message::Heartbeat);
                    }
                }
            }
            i += 1;
        }
        self.conns.retain(|c| c.socket.is_some());
    }

    fn fail(
        &mut self,
        i: usize,
        e: LinkError,
        on_event: &mut impl FnMut(&mut Self, LinkEvent<'_>),
    ) {
        if matches!(
            e,
            LinkError::Wire(_) | LinkError::NoHello | LinkError::UnknownPeer(_)
        ) {
            self.stats.violations += 1;
        }
        let peer = self.conns[i].peer;
        if peer.is_some() && self.conns[i].socket.is_some() {
            self.stats.peers_lost += 1;
        }
        self.drop_conn(i);
        let st = self.receiver.stats();
        self.stats.forged = st.forged;
        self.stats.replayed = st.replayed;
        match peer {
            Some(p) => on_event(self, LinkEvent::Down(p, e)),
            None => on_event(self, LinkEvent::Refused(e)),
        }
    }

    fn accept(&mut self, now: Instant) {
        // Bounded: a flood of connects is served a few per poll (the rest on the next one).
        self.more = true;
        for _ in 0..4 {
            match self.stack.accept(&mut self.listener) {
                Ok((socket, _addr)) => self.conns.push(Conn {
                    socket: Some(socket),
                    peer: None,
                    rx: Vec::new(),
                    rx_len: 0,
                    tx: VecDeque::new(),
                    last_heard: now,
                    last_sent: now,
                }),
                Err(_) => {
                    self.more = false;
                    break;
                }
            }
        }
    }

    fn dial(&mut self, now: Instant, on_event: &mut impl FnMut(&mut Self, LinkEvent<'_>)) {
        for k in 0..self.dials.len() {
            let id = self.dials[k].id;
            if self.conns.iter().any(|c| c.peer == Some(id)) {
                continue;
            }
            let Some(&(_, addr)) = self.cfg.peers.iter().find(|(p, _)| *p == id) else {
                continue;
            };
            let (mut socket, started) = match self.dials[k].pending.take() {
                Some(p) => p,
                None if now >= self.dials[k].at => match self.stack.socket() {
                    Ok(s) => {
                        self.stats.dials += 1;
                        (s, now)
                    }
                    Err(_) => {
                        self.backoff(k, now);
                        continue;
                    }
                },
                None => continue,
            };
            match self.stack.connect(&mut socket, addr) {
                Ok(()) => {}
                Err(nb::Error::WouldBlock) if now < started + self.cfg.connect => {
                    self.dials[k].pending = Some((socket, started));
                    continue;
                }
                Err(e) => {
                    if matches!(e, nb::Error::WouldBlock) {
                        self.stats.dial_timeouts += 1;
                    }
                    let _ = self.stack.close(socket);
                    self.backoff(k, now);
                    continue;
                }
            }
            // Until the peer's Hello comes back, a lost connection counts as a failed dial.
            self.backoff(k, now);
            self.conns.push(Conn {
                socket: Some(socket),
                peer: Some(id),
                rx: Vec::new(),
                rx_len: 0,
                tx: VecDeque::new(),
                last_heard: now,
                last_sent: now,
            });
            let hello = self.hello();
            if let Err(e) = self.send_control(now, id, &hello) {
                if let Some(i) = self.conns.iter().position(|c| c.peer == Some(id)) {
                    self.fail(i, e, on_event);
                }
            }
        }
    }

    /// Schedules the next dial of `dials[k]` and doubles its wait.
    fn backoff(&mut self, k: usize, now: Instant) {
        let d = &mut self.dials[k];
        d.at = now + d.backoff;
        let doubled = Duration::from_micros(d.backoff.total_micros().saturating_mul(2));
        d.backoff = doubled.min(self.cfg.max_backoff.max(self.cfg.retry));
    }

    /// `peer` completed its Hello: dial it again promptly if it goes down.
    fn came_up(&mut self, now: Instant, peer: NodeId) {
        if let Some(d) = self.dials.iter_mut().find(|d| d.id == peer) {
            d.at = now;
            d.backoff = self.cfg.retry;
        }
    }

    fn flush(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let Some(socket) = conn.socket.as_mut() else {
            return;
        };
        while !conn.tx.is_empty() {
            let (a, _) = conn.tx.as_slices();
            match self.stack.send(socket, &a[..a.len().min(CHUNK)]) {
                Ok(w) => {
                    conn.tx.drain(..w);
                    self.stats.bytes_sent += w as u64;
                    if conn.tx.is_empty() && conn.tx.capacity() > RX_KEEP {
                        // Drained: a backlog grown for a burst is not kept for good.
                        conn.tx = VecDeque::new();
                    }
                }
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(_)) => {
                    // Reported by the next read as a closed pipe.
                    break;
                }
            }
        }
    }

    /// Reads what is available; returns the length of a complete frame at the start of `rx`.
    fn read(&mut self, now: Instant, i: usize) -> Result<Option<usize>, LinkError> {
        let limits = self.cfg.limits;
        let conn = &mut self.conns[i];
        let Some(socket) = conn.socket.as_mut() else {
            return Ok(None);
        };
        loop {
            // How much the frame needs: the header first, then what it declares.
            let want = if conn.rx_len < HEADER_LEN {
                HEADER_LEN
            } else {
                let h = HeaderRepr::parse(&Frame::new_unchecked(&conn.rx[..conn.rx_len]), &limits)?;
                h.frame_len()
            };
            if conn.rx_len >= want {
                return Ok(Some(want));
            }
            if conn.rx.len() < want {
                conn.rx.resize(want, 0);
            }
            match self.stack.receive(socket, &mut conn.rx[conn.rx_len..want]) {
                Ok(n) => {
                    conn.rx_len += n;
                    conn.last_heard = now;
                    self.stats.bytes_received += n as u64;
                }
                Err(nb::Error::WouldBlock) => return Ok(None),
                Err(nb::Error::Other(e)) => return Err(socket_error(e)),
            }
        }
    }

    fn deliver(
        &mut self,
        now: Instant,
        i: usize,
        len: usize,
        on_event: &mut impl FnMut(&mut Self, LinkEvent<'_>),
    ) {
        // Take the buffer out so the callback may use the link (e.g. to reply).
        let mut rx = core::mem::take(&mut self.conns[i].rx);
        self.conns[i].rx_len = 0;
        let claimed = HeaderRepr::parse(&Frame::new_unchecked(&rx[..len]), &self.cfg.limits)
            .map(|h| h.sender);
        let result = match claimed {
            Err(e) => Err(LinkError::Wire(e)),
            Ok(sender) => match self.windows.iter().position(|(id, _)| *id == sender) {
                None => Err(LinkError::UnknownPeer(sender)),
                Some(w) => {
                    let window = &mut self.windows[w].1;
                    self.receiver
                        .decode(&mut rx[..len], window)
                        .map_err(LinkError::Wire)
                        .map(|(_, m)| (sender, m))
                }
            },
        };
        let st = self.receiver.stats();
        self.stats.forged = st.forged;
        self.stats.replayed = st.replayed;
        match result {
            Err(e) => {
                self.conns[i].rx = rx;
                self.fail(i, e, on_event);
            }
            Ok((sender, msg)) => {
                self.stats.frames_received += 1;
                let known = self.conns[i].peer;
                match (known, msg) {
                    (None, Message::Hello { node, .. }) if node == sender => {
                        // A peer that restarted dials again before we noticed it died: the
                        // new, authenticated Hello replaces the stale connection.
                        if let Some(old) = self
                            .conns
                            .iter()
                            .position(|c| c.peer == Some(node) && c.socket.is_some())
                        {
                            self.fail(old, LinkError::Duplicate(node), on_event);
                        }
                        self.conns[i].peer = Some(node);
                        let hello = self.hello();
                        self.conns[i].rx = rx;
                        match self.send_control(now, node, &hello) {
                            Ok(()) => {
                                self.came_up(now, node);
                                on_event(self, LinkEvent::Up(node))
                            }
                            Err(e) => self.fail(i, e, on_event),
                        }
                    }
                    (None, _) => {
                        self.conns[i].rx = rx;
                        self.fail(i, LinkError::NoHello, on_event);
                    }
                    (Some(p), Message::Hello { node, .. }) if p == node && node == sender => {
                        // The dialled peer's answering Hello.
                        self.conns[i].rx = rx;
                        self.came_up(now, p);
                        on_event(self, LinkEvent::Up(p));
                    }
                    (Some(p), _) if p != sender => {
                        self.conns[i].rx = rx;
                        self.fail(i, LinkError::UnknownPeer(sender), on_event);
                    }
                    (Some(p), msg) => {
                        on_event(self, LinkEvent::Message(p, msg));
                        // A buffer grown for one large frame (a tile input, strips) is
                        // released rather than kept per connection: a node's memory is its
                        // one largest message in flight, not one per peer.
                        if let Some(c) = self.conns.get_mut(i).filter(|_| rx.len() <= RX_KEEP) {
                            c.rx = rx;
                        }
                    }
                }
            }
        }
    }
}
