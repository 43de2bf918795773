//! An in-memory embedded-nal stack with scripted peers, and a replay of a connection's first
//! bytes through a real [`Link`]: the handshake fuzz target and its corpus replay in the
//! tests share it.

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{self, Key, Limits, Message, Role};

use super::{HandshakeConfig, Link, LinkConfig, LinkEvent, LinkStats, PRE_AUTH_FRAME};

/// A failed operation of [`MemStack`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemError(pub TcpErrorKind);

impl TcpError for MemError {
    fn kind(&self) -> TcpErrorKind {
        self.0
    }
}

/// One scripted connection: what the remote end sends, and what it received.
#[derive(Debug, Default)]
pub struct MemConn {
    /// Bytes the remote end sends, not yet read.
    pub input: VecDeque<u8>,
    /// Most bytes one `receive` returns.
    pub chunk: usize,
    /// Once `input` is drained: the remote end closed (true) or stays silent (false).
    pub eof: bool,
    /// Bytes the local end sent.
    pub output: Vec<u8>,
    /// Bytes the local end read.
    pub consumed: usize,
    /// The local end closed it.
    pub closed: bool,
}

/// A socket of [`MemStack`].
#[derive(Debug)]
pub enum MemSocket {
    /// Not bound or connected.
    Fresh,
    /// Bound or listening.
    Listening,
    /// Connection number `n` of the stack.
    Conn(usize),
}

/// An in-memory TCP stack: connections are scripted with [`MemStack::incoming`] (accepted by
/// the listener) and [`MemStack::outgoing`] (taken by the next connect; without one a connect
/// is refused).
#[derive(Debug, Default)]
pub struct MemStack {
    accept: VecDeque<(usize, SocketAddr)>,
    dial: VecDeque<usize>,
    conns: Vec<MemConn>,
}

impl MemStack {
    /// An empty stack.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, input: &[u8], chunk: usize, eof: bool) -> usize {
        self.conns.push(MemConn {
            input: input.iter().copied().collect(),
            chunk: chunk.max(1),
            eof,
            ..MemConn::default()
        });
        self.conns.len() - 1
    }

    /// Queues a connection from `from` for the listener; returns its number.
    pub fn incoming(&mut self, from: SocketAddr, input: &[u8], chunk: usize, eof: bool) -> usize {
        let n = self.add(input, chunk, eof);
        self.accept.push_back((n, from));
        n
    }

    /// Scripts the connection the next connect gets; returns its number.
    pub fn outgoing(&mut self, input: &[u8], chunk: usize, eof: bool) -> usize {
        let n = self.add(input, chunk, eof);
        self.dial.push_back(n);
        n
    }

    /// Connection number `n`.
    pub fn conn(&self, n: usize) -> &MemConn {
        &self.conns[n]
    }

    fn open(&mut self, s: &MemSocket) -> Result<&mut MemConn, MemError> {
        match s {
            MemSocket::Conn(n) if !self.conns[*n].closed => Ok(&mut self.conns[*n]),
            MemSocket::Conn(_) => Err(MemError(TcpErrorKind::PipeClosed)),
            _ => Err(MemError(TcpErrorKind::Other)),
        }
    }
}

impl TcpClientStack for MemStack {
    type TcpSocket = MemSocket;
    type Error = MemError;

    fn socket(&mut self) -> Result<MemSocket, MemError> {
        Ok(MemSocket::Fresh)
    }

    fn connect(&mut self, s: &mut MemSocket, _remote: SocketAddr) -> nb::Result<(), MemError> {
        match s {
            MemSocket::Conn(_) => Ok(()),
            MemSocket::Fresh => match self.dial.pop_front() {
                Some(n) => {
                    *s = MemSocket::Conn(n);
                    Ok(())
                }
                None => Err(nb::Error::Other(MemError(TcpErrorKind::Other))),
            },
            MemSocket::Listening => Err(nb::Error::Other(MemError(TcpErrorKind::Other))),
        }
    }

    fn send(&mut self, s: &mut MemSocket, buf: &[u8]) -> nb::Result<usize, MemError> {
        let c = self.open(s)?;
        c.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn receive(&mut self, s: &mut MemSocket, buf: &mut [u8]) -> nb::Result<usize, MemError> {
        let c = self.open(s)?;
        let n = buf.len().min(c.chunk).min(c.input.len());
        if n == 0 {
            return match (buf.is_empty(), c.eof) {
                (false, true) => Err(nb::Error::Other(MemError(TcpErrorKind::PipeClosed))),
                _ => Err(nb::Error::WouldBlock),
            };
        }
        for (d, b) in buf.iter_mut().zip(c.input.drain(..n)) {
            *d = b;
        }
        c.consumed += n;
        Ok(n)
    }

    fn close(&mut self, s: MemSocket) -> Result<(), MemError> {
        if let MemSocket::Conn(n) = s {
            self.conns[n].closed = true;
        }
        Ok(())
    }
}

impl TcpFullStack for MemStack {
    fn bind(&mut self, s: &mut MemSocket, _port: u16) -> Result<(), MemError> {
        *s = MemSocket::Listening;
        Ok(())
    }

    fn listen(&mut self, _s: &mut MemSocket) -> Result<(), MemError> {
        Ok(())
    }

    fn accept(&mut self, _s: &mut MemSocket) -> nb::Result<(MemSocket, SocketAddr), MemError> {
        let (n, from) = self.accept.pop_front().ok_or(nb::Error::WouldBlock)?;
        Ok((MemSocket::Conn(n), from))
    }
}

/// The cluster key of [`replay_first_bytes`].
pub const REPLAY_KEY: Key = Key::new([0x5a; 32]);

/// What [`replay_first_bytes`] saw.
#[derive(Debug)]
pub struct Replay {
    /// The connection authenticated.
    pub up: bool,
    /// Bytes read from it before it authenticated (all of them when it never did).
    pub read_before_up: usize,
    /// The link's counters at the end.
    pub stats: LinkStats,
    /// What the link sent on it.
    pub output: Vec<u8>,
    /// The link closed it.
    pub closed: bool,
}

/// Plays `data` as the first bytes of one connection into a [`Link`] over a [`MemStack`] and
/// checks the handshake's promises; panics when one breaks.
///
/// `data[0]`: bit 0 the link dials (node 1 dialling the gateway) rather than accepts (the
/// gateway, the peer being node 1); bit 1 the remote end closes after its bytes (rather than
/// going silent); bit 2 a valid sealed `Hello` from the remote end comes first (so the rest
/// reaches an authenticated connection). `data[1] % 64 + 1`: bytes per read. The rest: the
/// remote end's bytes. Promises: no more than [`PRE_AUTH_FRAME`] bytes are read before the
/// connection authenticates; a connection that does not authenticate is closed by the
/// handshake deadline and counted exactly once; an accepted one gets at most one refusal.
pub fn replay_first_bytes(data: &[u8]) -> Replay {
    let (mode, chunk, rest) = match data {
        [m, c, rest @ ..] => (*m, *c as usize % 64 + 1, rest),
        _ => (0, 1, data),
    };
    let dialler = mode & 1 != 0;
    let (me, peer) = if dialler { (1, 0) } else { (0, 1) };
    let peer_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 13, 0, 2 - me as u8)), 7700);
    let mut input = Vec::new();
    if mode & 4 != 0 {
        let hello = Message::Hello {
            node: peer,
            role: if peer == 0 { Role::Gateway } else { Role::Edge },
        };
        let mut buf = [0u8; PRE_AUTH_FRAME];
        if let Ok(n) = wire::encode(&hello, peer, 1, Some(&REPLAY_KEY), &mut buf) {
            input.extend_from_slice(&buf[..n]);
        }
    }
    input.extend_from_slice(rest);
    let mut stack = MemStack::new();
    let conn = if dialler {
        stack.outgoing(&input, chunk, mode & 2 != 0)
    } else {
        stack.incoming(peer_addr, &input, chunk, mode & 2 != 0)
    };
    let handshake = HandshakeConfig::DEFAULT;
    let cfg = LinkConfig {
        me,
        port: 7700,
        peers: alloc::vec![(peer, peer_addr)],
        key: Some(REPLAY_KEY),
        limits: Limits {
            max_payload: 1 << 16,
            max_channels: 64,
            max_side: 1024,
        },
        first_seq: 1,
        peer_dead: Duration::from_secs(30),
        retry: Duration::from_secs(3600),
        max_backoff: Duration::from_secs(3600),
        connect: Duration::from_secs(1),
        backlog: 1 << 20,
        handshake,
    };
    let mut link = match Link::new(stack, cfg) {
        Ok(l) => l,
        Err(e) => panic!("link: {e}"),
    };
    let mut up_at = None;
    let mut t = Instant::ZERO;
    // Enough polls to read every byte (one frame per poll), then one past the deadline.
    let polls = input.len() / chunk + 8;
    for k in 0..=polls {
        if k == polls {
            t += handshake.deadline + Duration::from_millis(1);
        }
        let mut came_up = false;
        link.poll(t, |_, e| {
            if let LinkEvent::Up(_) = e {
                came_up = true;
            }
        });
        if came_up && up_at.is_none() {
            up_at = Some(link.stack().conn(conn).consumed);
        }
        t += Duration::from_millis(1);
    }
    let c = link.stack().conn(conn);
    let stats = link.stats();
    let read_before_up = up_at.unwrap_or(c.consumed);
    assert!(
        read_before_up <= PRE_AUTH_FRAME,
        "{read_before_up} bytes read before authentication"
    );
    if up_at.is_none() {
        assert!(
            c.closed,
            "an unauthenticated connection outlived its deadline"
        );
        assert_eq!(stats.dropped.total(), 1, "{:?}", stats.dropped);
        assert!(link.unauthenticated() == 0);
        if !dialler {
            assert!(c.output.len() <= super::handshake::REFUSAL_LEN);
        }
    }
    Replay {
        up: up_at.is_some(),
        read_before_up,
        stats,
        output: c.output.clone(),
        closed: c.closed,
    }
}
