//! Per-connection and per-dial state, and which waiting connection makes room for a new one.

extern crate alloc;

use alloc::collections::VecDeque;
use core::cmp::Reverse;
use core::net::IpAddr;

use tessera_core::time::{Duration, Instant};
use tessera_core::wire::NodeId;

use super::received::FrameBuf;
use super::HandshakeConfig;

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// A peer dialled us; its `Hello` names it.
    Accepted,
    /// We dialled the peer; its answering `Hello` confirms it.
    Dialled,
}

/// One TCP connection.
pub(super) struct Conn<T> {
    pub socket: Option<T>,
    /// The peer: claimed by its verified `Hello` (accepted), or the one dialled.
    pub peer: Option<NodeId>,
    pub origin: Origin,
    /// The remote address (accepted: its source; dialled: the peer's configured address).
    pub ip: Option<IpAddr>,
    /// The peer's `Hello` verified on this connection.
    pub authenticated: bool,
    /// When it was accepted or its connect completed (the handshake deadline runs from here).
    pub opened: Instant,
    pub rx: FrameBuf,
    pub rx_len: usize,
    pub tx: VecDeque<u8>,
    pub last_heard: Instant,
    pub last_sent: Instant,
}

impl<T> Conn<T> {
    pub fn new(
        socket: T,
        origin: Origin,
        peer: Option<NodeId>,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Self {
        Conn {
            socket: Some(socket),
            peer,
            origin,
            ip,
            authenticated: false,
            opened: now,
            rx: FrameBuf::default(),
            rx_len: 0,
            tx: VecDeque::new(),
            last_heard: now,
            last_sent: now,
        }
    }

    /// An accepted connection still waiting for its `Hello` (what the caps count).
    pub fn waiting(&self) -> bool {
        self.socket.is_some() && self.origin == Origin::Accepted && !self.authenticated
    }

    /// Open to a known peer: authenticated, or dialled by us (the address is the peer's and
    /// our Hello went first; what comes back is still checked before it is believed).
    pub fn connected(&self) -> bool {
        self.socket.is_some() && (self.authenticated || self.origin == Origin::Dialled)
    }

    /// Open and authenticated.
    pub fn up(&self) -> bool {
        self.socket.is_some() && self.authenticated
    }
}

/// Dialling state of one lower-id peer.
pub(super) struct Dial<T> {
    pub id: NodeId,
    /// Earliest next attempt.
    pub at: Instant,
    /// Wait after the next failure.
    pub backoff: Duration,
    /// A connect in progress and when it started.
    pub pending: Option<(T, Instant)>,
    /// Consecutive persistent refusals since the peer was last up, and when the run began.
    pub refusals: u32,
    pub refused_since: Instant,
}

/// Which waiting connection a new one from `ip` evicts, and whether the per-address cap (true)
/// or the global one (false) made it necessary. The per-address cap evicts that address's
/// oldest; the global cap evicts the oldest of the address holding the most waiting
/// connections, so one noisy address cannot push out a lone newcomer (a restarted peer).
/// Authenticated connections are never candidates.
pub(super) fn evict_for<T>(
    conns: &[Conn<T>],
    ip: Option<IpAddr>,
    cfg: &HandshakeConfig,
) -> Option<(usize, bool)> {
    let waiting = || conns.iter().enumerate().filter(|(_, c)| c.waiting());
    let oldest_from = |from: Option<IpAddr>| {
        waiting()
            .filter(|(_, c)| c.ip == from)
            .min_by_key(|(_, c)| c.opened)
            .map(|(i, _)| i)
    };
    if waiting().filter(|(_, c)| c.ip == ip).count() >= cfg.max_pending_per_addr {
        return oldest_from(ip).map(|i| (i, true));
    }
    if waiting().count() >= cfg.max_pending {
        // The address with the most waiting connections; among equals, the one holding the
        // oldest (`max_by_key` keeps the last maximum, so the age must be part of the key).
        let (_, _, heaviest) = waiting()
            .map(|(_, c)| {
                let n = waiting().filter(|(_, d)| d.ip == c.ip).count();
                (n, Reverse(c.opened), c.ip)
            })
            .max_by_key(|&(n, opened, _)| (n, opened))?;
        return oldest_from(heaviest).map(|i| (i, false));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn waiting_from(last: u8, opened_ms: u64) -> Conn<()> {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
        let opened = Instant::from_millis(opened_ms);
        Conn::new((), Origin::Accepted, None, Some(ip), opened)
    }

    #[test]
    fn the_global_cap_evicts_the_oldest_of_equally_loaded_addresses() {
        let cfg = HandshakeConfig {
            max_pending: 4,
            ..HandshakeConfig::default()
        };
        // One waiting connection per address, the oldest in the middle: a newcomer evicts it,
        // not the most recent arrival (which may be a restarted peer about to say Hello).
        let conns = [
            waiting_from(2, 30),
            waiting_from(3, 10),
            waiting_from(4, 20),
            waiting_from(5, 40),
        ];
        let new = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)));
        assert_eq!(evict_for(&conns, new, &cfg), Some((1, false)));
    }

    #[test]
    fn the_global_cap_evicts_from_the_noisiest_address_first() {
        let cfg = HandshakeConfig {
            max_pending: 4,
            ..HandshakeConfig::default()
        };
        let conns = [
            waiting_from(2, 1),
            waiting_from(3, 30),
            waiting_from(3, 20),
            waiting_from(4, 2),
        ];
        let new = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)));
        assert_eq!(evict_for(&conns, new, &cfg), Some((2, false)));
    }
}
