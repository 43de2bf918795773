//! A connection's first bytes played through a real [`Link`] over a [`MemStack`], with the
//! handshake's promises checked: the handshake fuzz target and its corpus replay in the
//! tests share it.

extern crate alloc;

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{self, Key, Limits, Message, Role};

use super::mem::MemStack;
use super::{HandshakeConfig, Link, LinkConfig, LinkEvent, LinkStats, PRE_AUTH_FRAME};

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
            model: HandshakeConfig::DEFAULT.model,
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
