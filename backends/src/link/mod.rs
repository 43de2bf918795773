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
//! Before its `Hello` verifies, a connection costs at most one `Hello`-sized buffer
//! ([`PRE_AUTH_FRAME`]) and lives at most [`HandshakeConfig::deadline`]; accepted connections
//! waiting for their `Hello` are capped in all and per source address, the newcomer evicting
//! the oldest waiting one (never an authenticated peer). An id is held by its live connection:
//! a `Hello` claiming it from another address is refused (the holder must first be proven dead
//! by `peer_dead`), one from the same address is a restart and replaces it. A refused dialler
//! is told why ([`handshake`]) and the link gives up after a run of refusals
//! ([`LinkStats::gave_up`]). Every connection that ends is counted once by reason
//! ([`Drops`]).
//!
//! Dialling never blocks: a connect in progress stays in a "connecting" state across polls and
//! is abandoned after `LinkConfig::connect`; a peer that is down is re-dialled with exponential
//! backoff, from `retry` doubling up to `max_backoff`, reset when the peer comes up.
//!
//! Sending streams the frame out of the caller's tensor with [`FrameEncoder`](tessera_core::wire::FrameEncoder) straight into the
//! socket; only what the socket does not take at once is copied into the peer's backlog.
//! Receiving buffers one frame per connection (the tag must be checked before any byte is
//! used), bounded by the receiver's [`Limits`](tessera_core::wire::Limits) once authenticated;
//! a large frame's buffer is then handed to the receiver with its message ([`Received`]).

extern crate alloc;

mod config;
mod conn;
mod error;
pub mod handshake;
mod log_lines;
pub mod mem;
mod received;
pub mod replay;
mod stats;

use alloc::vec;
use alloc::vec::Vec;

use embedded_nal::{nb, TcpError, TcpFullStack};
use tessera_core::time::{earliest, Duration, Instant};
use tessera_core::wire::{
    self, Body, Frame, HeaderRepr, Message, NodeId, ReplayWindow, Role, Sender, FLAG_AUTH, GATEWAY,
    HEADER_LEN, PROBE,
};

pub use config::{HandshakeConfig, LinkConfig, DEFAULT_BACKLOG, MAX_BACKOFF};
pub use error::LinkError;
pub use handshake::{Refusal, RefusalReason, PRE_AUTH_FRAME};
pub use received::{Received, TensorSpan};
pub use stats::{Drops, LinkStats};

use conn::{evict_for, Conn, Dial, Origin};

/// Bytes written to a socket per `send` call (also the streaming chunk).
const CHUNK: usize = 64 * 1024;
/// Largest receive buffer (and drained send backlog) a connection keeps between frames; a
/// larger frame's buffer goes to the receiver with the message.
const RX_KEEP: usize = 64 * 1024;

/// What happened on the link during a poll.
#[derive(Debug)]
pub enum LinkEvent {
    /// A peer completed its Hello.
    Up(NodeId),
    /// A peer's connection was dropped (it may come back). A dialled peer that refused our
    /// `Hello` is reported here too, with [`LinkError::Refused`].
    Down(NodeId, LinkError),
    /// A message from a peer, with the buffer it arrived in (a large frame's buffer is handed
    /// over, not copied: see [`Received::into_values`]).
    Message(NodeId, Received),
    /// A connection from an unidentified peer was refused (or a claim of an id in use).
    Refused(LinkError),
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
        let h = &cfg.handshake;
        if h.deadline.total_micros() == 0
            || h.max_pending == 0
            || h.max_pending_per_addr == 0
            || h.max_refusals == 0
        {
            return Err(LinkError::Config(
                "handshake deadline, caps and max_refusals must be positive",
            ));
        }
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
                    refusals: 0,
                    refused_since: Instant::ZERO,
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

    /// Connections open but not authenticated yet (accepted or dialled).
    pub fn unauthenticated(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| c.socket.is_some() && !c.authenticated)
            .count()
    }

    /// True when `peer` is connected: a peer we dialled from the connect on (our Hello is
    /// sent, its frames are still checked), a peer that dialled us once its Hello verified.
    pub fn is_up(&self, peer: NodeId) -> bool {
        self.up_conn(peer).is_some()
    }

    /// The connected peers.
    pub fn peers_up(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.conns
            .iter()
            .filter(|c| c.connected())
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

    fn up_conn(&self, peer: NodeId) -> Option<usize> {
        self.conns
            .iter()
            .position(|c| c.peer == Some(peer) && c.connected())
    }

    /// Sends `msg` (whose trailing tensor or strips come from `body`) to `to`.
    pub fn send(
        &mut self,
        now: Instant,
        to: NodeId,
        msg: &Message<'_>,
        body: Body<'_>,
    ) -> Result<(), LinkError> {
        let idx = self.up_conn(to).ok_or(LinkError::NotConnected(to))?;
        self.send_on(now, idx, msg, body)
    }

    /// Sends on connection `idx` (authenticated or not: our `Hello` goes first).
    fn send_on(
        &mut self,
        now: Instant,
        idx: usize,
        msg: &Message<'_>,
        body: Body<'_>,
    ) -> Result<(), LinkError> {
        let to = self.conns[idx].peer.unwrap_or(GATEWAY);
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
        if !conn.tx.is_empty() {
            // Queued behind others: room for the whole frame at once, not grown by doubling
            // (a megabyte frame would otherwise briefly hold two and a half of itself).
            conn.tx.reserve_exact(encoder.frame_len());
        }
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
                            // Reported to the caller, not as an event: counted here.
                            self.close(idx, &err);
                            return Err(err);
                        }
                    }
                }
            }
            if at < n && conn.tx.is_empty() {
                // The socket took what it could: the rest of the frame waits whole.
                conn.tx.reserve_exact(encoder.frame_len());
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
            self.close(i, &LinkError::Local);
        }
    }

    /// Closes connection `i` (once) and counts why.
    fn close(&mut self, i: usize, why: &LinkError) {
        if let Some(s) = self.conns[i].socket.take() {
            why.count(&mut self.stats.dropped);
            log_lines::closed(self.cfg.me, &self.conns[i], why);
            let _ = self.stack.close(s);
        }
    }

    fn hello(&self) -> Message<'static> {
        Message::Hello {
            node: self.cfg.me,
            role: self.role,
            model: self.cfg.handshake.model,
        }
    }

    /// True when the last poll left work behind (a frame behind the one it delivered,
    /// connections behind the accept bound): a loop that sleeps on edge-triggered readiness
    /// must poll again before sleeping, as no new readiness event will report it.
    pub fn more(&self) -> bool {
        self.more
    }

    /// When the link next needs a poll without I/O (dial retries and timeouts, heartbeats,
    /// silence checks, handshake deadlines). See also [`Link::more`].
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
                // Every open connection wakes at its heartbeat time, even one that sends none
                // (waiting for a Hello): the wake-up schedule of the links before the
                // handshake guards, which the simulator's seeded traces depend on.
                let due = (c.last_heard + self.cfg.peer_dead)
                    .min(c.last_sent + heartbeat(self.cfg.peer_dead));
                if c.authenticated {
                    due
                } else {
                    due.min(c.opened + self.cfg.handshake.deadline)
                }
            })
            .min();
        earliest(dial, live)
    }

    /// Accepts, dials, reads, flushes and checks liveness; reports what happened through
    /// `on_event`. Bounded work: at most one frame per connection per call.
    pub fn poll(&mut self, now: Instant, mut on_event: impl FnMut(&mut Self, LinkEvent)) {
        self.more = false;
        self.accept(now, &mut on_event);
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
                Err(e) => self.fail(now, i, e, &mut on_event),
            }
            // Deadlines are checked after reading, so a Hello already in the socket counts
            // even when this poll comes late.
            if let Some(c) = self.conns.get(i) {
                if c.socket.is_some() && now >= c.last_heard + self.cfg.peer_dead {
                    self.fail(now, i, LinkError::Silent, &mut on_event);
                } else if c.socket.is_some()
                    && !c.authenticated
                    && now >= c.opened + self.cfg.handshake.deadline
                {
                    self.fail(now, i, LinkError::HandshakeTimeout, &mut on_event);
                } else if c.connected() && now >= c.last_sent + heartbeat(self.cfg.peer_dead) {
                    let _ = self.send_on(now, i, &Message::Heartbeat, Body::Message);
                }
            }
            i += 1;
        }
        self.conns.retain(|c| c.socket.is_some());
    }

    fn fail(
        &mut self,
        now: Instant,
        i: usize,
        e: LinkError,
        on_event: &mut impl FnMut(&mut Self, LinkEvent),
    ) {
        if self.conns[i].socket.is_none() {
            return;
        }
        if matches!(
            e,
            LinkError::Wire(_)
                | LinkError::NoHello
                | LinkError::UnknownPeer(_)
                | LinkError::Oversize { .. }
        ) {
            self.stats.violations += 1;
        }
        let (peer, origin, authenticated) = {
            let c = &self.conns[i];
            (c.peer, c.origin, c.authenticated)
        };
        if peer.is_some() {
            self.stats.peers_lost += 1;
        }
        if origin == Origin::Accepted && !authenticated {
            if let Some(reason) = e.refusal() {
                self.send_refusal(i, reason);
            }
        }
        if let (LinkError::Refused(reason), Some(p)) = (e, peer) {
            self.refused(now, p, reason);
        }
        self.close(i, &e);
        let st = self.receiver.stats();
        self.stats.forged = st.forged;
        self.stats.replayed = st.replayed;
        match peer {
            Some(p) if origin == Origin::Dialled || authenticated => {
                on_event(self, LinkEvent::Down(p, e))
            }
            _ => on_event(self, LinkEvent::Refused(e)),
        }
    }

    /// Tells an unauthenticated dialler why it is dropped: one clear frame, best effort (a
    /// socket that does not take it at once gets nothing; nothing is ever queued for it).
    fn send_refusal(&mut self, i: usize, reason: RefusalReason) {
        let frame = handshake::refusal_frame(self.cfg.me, reason);
        if let Some(s) = self.conns[i].socket.as_mut() {
            if let Ok(n) = self.stack.send(s, &frame) {
                self.stats.bytes_sent += n as u64;
            }
        }
    }

    /// Dialled peer `p` refused our Hello: count the run and give up after enough of them.
    fn refused(&mut self, now: Instant, p: NodeId, reason: RefusalReason) {
        let limit = self.cfg.handshake.max_refusals;
        let proven = Duration::from_micros(self.cfg.peer_dead.total_micros().saturating_mul(2));
        let Some(d) = self.dials.iter_mut().find(|d| d.id == p) else {
            return;
        };
        if !reason.is_persistent() {
            return;
        }
        if d.refusals == 0 {
            d.refused_since = now;
        }
        d.refusals = d.refusals.saturating_add(1);
        // An id in use may be our own previous life, half dead: the listener drops it after
        // `peer_dead` of silence, so only a refusal outliving that is final.
        let lasting = reason != RefusalReason::IdInUse || now >= d.refused_since + proven;
        if d.refusals >= limit && lasting && self.stats.gave_up.is_none() {
            let r = Refusal { peer: p, reason };
            log_lines::gave_up(self.cfg.me, &r);
            self.stats.gave_up = Some(r);
        }
    }

    fn accept(&mut self, now: Instant, on_event: &mut impl FnMut(&mut Self, LinkEvent)) {
        // Bounded: a flood of connects is served a few per poll (the rest on the next one).
        self.more = true;
        for _ in 0..4 {
            match self.stack.accept(&mut self.listener) {
                Ok((socket, addr)) => {
                    log_lines::accepted(self.cfg.me, addr);
                    let ip = Some(addr.ip());
                    // Make room first: the newcomer may be a restarted peer locked out by
                    // connections that will never authenticate.
                    if let Some((victim, per_addr)) =
                        evict_for(&self.conns, ip, &self.cfg.handshake)
                    {
                        self.fail(now, victim, LinkError::Capacity { per_addr }, on_event);
                    }
                    self.conns
                        .push(Conn::new(socket, Origin::Accepted, None, ip, now));
                }
                Err(_) => {
                    self.more = false;
                    break;
                }
            }
        }
    }

    fn dial(&mut self, now: Instant, on_event: &mut impl FnMut(&mut Self, LinkEvent)) {
        for k in 0..self.dials.len() {
            let id = self.dials[k].id;
            if self
                .conns
                .iter()
                .any(|c| c.peer == Some(id) && c.socket.is_some())
            {
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
                        log_lines::dialling(self.cfg.me, id, addr);
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
                    let timed_out = matches!(e, nb::Error::WouldBlock);
                    if timed_out {
                        self.stats.dial_timeouts += 1;
                    }
                    log_lines::dial_failed(self.cfg.me, id, addr, timed_out);
                    let _ = self.stack.close(socket);
                    self.backoff(k, now);
                    log_lines::retry_in(
                        self.cfg.me,
                        id,
                        self.dials[k].at.saturating_duration_since(now),
                    );
                    continue;
                }
            }
            // Until the peer's Hello comes back, a lost connection counts as a failed dial.
            self.backoff(k, now);
            self.conns.push(Conn::new(
                socket,
                Origin::Dialled,
                Some(id),
                Some(addr.ip()),
                now,
            ));
            let i = self.conns.len() - 1;
            let hello = self.hello();
            if let Err(e) = self.send_on(now, i, &hello, Body::Message) {
                self.fail(now, i, e, on_event);
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
            d.refusals = 0;
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
                        conn.tx = alloc::collections::VecDeque::new();
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
                let h = HeaderRepr::parse(
                    &Frame::new_unchecked(&conn.rx.bytes()[..conn.rx_len]),
                    &limits,
                )?;
                let declared = h.frame_len();
                // Nothing sized by an unverified header beyond one Hello.
                if !conn.authenticated && declared > PRE_AUTH_FRAME {
                    return Err(LinkError::Oversize { declared });
                }
                declared
            };
            if conn.rx_len >= want {
                return Ok(Some(want));
            }
            conn.rx.grow_to(want);
            match self
                .stack
                .receive(socket, &mut conn.rx.bytes_mut()[conn.rx_len..want])
            {
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
        on_event: &mut impl FnMut(&mut Self, LinkEvent),
    ) {
        // Take the buffer out so the callback may use the link (e.g. to reply).
        let mut rx = core::mem::take(&mut self.conns[i].rx);
        self.conns[i].rx_len = 0;
        let (known, origin, authenticated) = {
            let c = &self.conns[i];
            (c.peer, c.origin, c.authenticated)
        };
        // A listener that refuses our Hello says why in a clear frame before closing.
        if origin == Origin::Dialled && !authenticated && rx.bytes()[6] & FLAG_AUTH == 0 {
            if let Some(reason) = handshake::parse_refusal(&mut rx.bytes_mut()[..len]) {
                self.conns[i].rx = rx;
                self.fail(now, i, LinkError::Refused(reason), on_event);
                return;
            }
        }
        let claimed =
            HeaderRepr::parse(&Frame::new_unchecked(&rx.bytes()[..len]), &self.cfg.limits)
                .map(|h| h.sender);
        // What the session needs of a message: its header and, for a Hello, who it names.
        let hello_of = |(h, m): (HeaderRepr, Message<'_>)| match m {
            Message::Hello { node, role, model } => (h, Some((node, role, model))),
            _ => (h, None),
        };
        let mut window: Option<(usize, ReplayWindow)> = None;
        let result = match claimed {
            Err(e) => Err(LinkError::Wire(e)),
            Ok(sender) => match self.windows.iter().position(|(id, _)| *id == sender) {
                // A probe's Hello, checked against a window of its own: a probe sends nothing
                // else, and a replayed one earns only our sealed Hello.
                None if sender == PROBE && !authenticated && origin == Origin::Accepted => self
                    .receiver
                    .decode(&mut rx.bytes_mut()[..len], &mut ReplayWindow::new())
                    .map_err(LinkError::Wire)
                    .map(|v| (sender, hello_of(v))),
                None => Err(LinkError::UnknownPeer(sender)),
                Some(w) => {
                    // Before authentication the Hello is checked against a copy of the
                    // sender's window, kept only if the Hello is accepted: a refused claim
                    // (an id in use) must not make the holder's next frames look stale.
                    window = Some((w, self.windows[w].1));
                    let copy = window.as_mut().map(|(_, c)| c);
                    let win = match (authenticated, copy) {
                        (false, Some(c)) => c,
                        _ => &mut self.windows[w].1,
                    };
                    self.receiver
                        .decode(&mut rx.bytes_mut()[..len], win)
                        .map_err(LinkError::Wire)
                        .map(|v| (sender, hello_of(v)))
                }
            },
        };
        let st = self.receiver.stats();
        self.stats.forged = st.forged;
        self.stats.replayed = st.replayed;
        let (sender, (header, hello)) = match result {
            Err(e) => {
                self.conns[i].rx = rx;
                self.fail(now, i, e, on_event);
                return;
            }
            Ok(v) => v,
        };
        self.stats.frames_received += 1;
        let ours = self.cfg.handshake.model;
        match (known, authenticated, hello) {
            (None, false, Some((node, role, _)))
                if node == sender && node == PROBE && role == Role::Probe =>
            {
                self.conns[i].rx = rx;
                let hello = self.hello();
                let answered = self.send_on(now, i, &hello, Body::Message);
                self.fail(
                    now,
                    i,
                    answered.err().unwrap_or(LinkError::Probed),
                    on_event,
                );
            }
            (None, false, _) if sender == PROBE => {
                // The probe id says nothing but a probe's Hello, and never joins.
                self.conns[i].rx = rx;
                self.fail(now, i, LinkError::NoHello, on_event);
            }
            (_, false, Some((node, _, model))) if node == sender && model != ours => {
                self.conns[i].rx = rx;
                let e = LinkError::ModelMismatch {
                    peer: node,
                    theirs: model,
                    ours,
                };
                self.fail(now, i, e, on_event);
            }
            (None, false, Some((node, ..))) if node == sender => {
                self.conns[i].rx = rx;
                self.hello_accepted(now, i, node, window, on_event);
            }
            (Some(p), false, Some((node, ..))) if p == node && node == sender => {
                // The dialled peer's answering Hello.
                self.conns[i].rx = rx;
                self.conns[i].authenticated = true;
                if let Some((w, copy)) = window {
                    self.windows[w].1 = copy;
                }
                self.came_up(now, p);
                log_lines::up(self.cfg.me, p, &self.conns[i]);
                on_event(self, LinkEvent::Up(p));
            }
            (_, false, _) => {
                self.conns[i].rx = rx;
                self.fail(now, i, LinkError::NoHello, on_event);
            }
            (Some(p), true, _) if p != sender => {
                self.conns[i].rx = rx;
                self.fail(now, i, LinkError::UnknownPeer(sender), on_event);
            }
            (Some(p), true, _) => {
                // A buffer grown for one large frame (a tile input, strips) is handed over
                // with the message, never kept per connection: a node's memory is its one
                // largest message in flight, held once. A small frame is copied out and the
                // connection keeps its buffer.
                let (buf, keep) = if rx.len() <= RX_KEEP {
                    (rx.copy_of(len), Some(rx))
                } else {
                    (rx, None)
                };
                let payload = header.payload_len as usize;
                let received = Received::new(buf, header.kind, payload, self.cfg.limits);
                on_event(self, LinkEvent::Message(p, received));
                if let (Some(c), Some(rx)) = (self.conns.get_mut(i), keep) {
                    c.rx = rx;
                }
            }
            (None, true, _) => {
                // Unreachable: authentication sets the peer. Dropped rather than trusted.
                self.conns[i].rx = rx;
                self.fail(now, i, LinkError::NoHello, on_event);
            }
        }
    }

    /// A verified Hello from `node` on accepted connection `i`: the id is taken unless a live
    /// connection from another address holds it.
    fn hello_accepted(
        &mut self,
        now: Instant,
        i: usize,
        node: NodeId,
        window: Option<(usize, ReplayWindow)>,
        on_event: &mut impl FnMut(&mut Self, LinkEvent),
    ) {
        let holder = self
            .conns
            .iter()
            .enumerate()
            .position(|(j, c)| j != i && c.peer == Some(node) && c.up());
        if let Some(old) = holder {
            if self.conns[old].ip != self.conns[i].ip {
                // Another process claims a live peer's id: refuse it. A restart of that peer
                // elsewhere gets in once the old connection is dropped as silent.
                self.fail(now, i, LinkError::IdInUse(node), on_event);
                return;
            }
            // The same address dials again before we noticed it died: a restart.
            self.fail(now, old, LinkError::Duplicate(node), on_event);
        }
        if let Some((w, copy)) = window {
            self.windows[w].1 = copy;
        }
        self.conns[i].peer = Some(node);
        self.conns[i].authenticated = true;
        let hello = self.hello();
        match self.send_on(now, i, &hello, Body::Message) {
            Ok(()) => {
                self.came_up(now, node);
                log_lines::up(self.cfg.me, node, &self.conns[i]);
                on_event(self, LinkEvent::Up(node))
            }
            Err(e) => self.fail(now, i, e, on_event),
        }
    }
}
