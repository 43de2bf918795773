//! What the coded stage needs of a transport ([`CodedTransport`]): send a task or a result,
//! and drop a peer that broke the protocol. The authenticated TCP [`Link`] and the datagram
//! [`DgramEndpoint`] both provide it, so [`CodedPart`](super::CodedPart) runs on either; a
//! node that owns its transport also polls it ([`StageTransport`]).

extern crate alloc;

use alloc::vec::Vec;

use core::fmt::Display;

use embedded_nal::{TcpFullStack, UdpFullStack};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Body, Message, NodeId};

use super::CodedMessage;
use crate::dgram::{BoxedLane, DgramEndpoint, DgramSendError};
use crate::link::{Link, LinkError, LinkEvent, LinkStats};

/// A transport for the coded stage's messages.
pub trait CodedTransport {
    /// Why a send was refused (the stage then counts the shard as an erasure at once).
    type Error: Display;

    /// Sends `msg` to `to`; it is worth nothing after `lifetime` (a task's budget; `None`:
    /// the transport's default). A stream transport may ignore it.
    fn send_coded(
        &mut self,
        now: Instant,
        to: NodeId,
        msg: &Message<'_>,
        lifetime: Option<Duration>,
    ) -> Result<(), Self::Error>;

    /// True when the transport has a connection per peer and reports peers up and down: a
    /// peer whose connection failed is down until it comes back up. False for a datagram
    /// transport: no peer is ever reported up, so a failed send or a refusal costs the
    /// shards in flight (erasures) but does not shut the peer out.
    const CONNECTED: bool;

    /// Drops `peer`, which broke the protocol (closes its connection, if any).
    fn refuse_peer(&mut self, peer: NodeId);
}

impl<S: TcpFullStack> CodedTransport for Link<S> {
    type Error = LinkError;

    fn send_coded(
        &mut self,
        now: Instant,
        to: NodeId,
        msg: &Message<'_>,
        _: Option<Duration>,
    ) -> Result<(), LinkError> {
        self.send(now, to, msg, Body::Message)
    }

    const CONNECTED: bool = true;

    fn refuse_peer(&mut self, peer: NodeId) {
        self.disconnect(peer);
    }
}

impl<U: UdpFullStack> CodedTransport for DgramEndpoint<U> {
    type Error = DgramSendError;

    fn send_coded(
        &mut self,
        now: Instant,
        to: NodeId,
        msg: &Message<'_>,
        lifetime: Option<Duration>,
    ) -> Result<(), DgramSendError> {
        self.send(now, to, msg, lifetime)
    }

    const CONNECTED: bool = false;

    fn refuse_peer(&mut self, _: NodeId) {}
}

impl CodedTransport for BoxedLane {
    type Error = DgramSendError;

    fn send_coded(
        &mut self,
        now: Instant,
        to: NodeId,
        msg: &Message<'_>,
        lifetime: Option<Duration>,
    ) -> Result<(), DgramSendError> {
        self.send(now, to, msg, lifetime)
    }

    const CONNECTED: bool = false;

    fn refuse_peer(&mut self, _: NodeId) {}
}

/// What a transport's poll gave a coded node, in arrival order.
#[derive(Debug)]
pub enum StageEvent {
    /// The peer is connected.
    Up(NodeId),
    /// The peer's connection is gone.
    Down(NodeId),
    /// A coded message.
    Coded(NodeId, CodedMessage),
    /// Another kind of message where only coded ones belong: a protocol violation.
    Foreign(NodeId),
}

/// A transport a coded node owns and polls ([`super::CodedNodeOn`]).
pub trait StageTransport: CodedTransport {
    /// Moves bytes both ways and appends what arrived to `events`.
    fn poll_stage(&mut self, now: Instant, events: &mut Vec<StageEvent>);
    /// When the transport next needs a poll without I/O.
    fn next_poll(&self) -> Option<Instant>;
    /// True when it has more to do at once (readiness will not report it again).
    fn more(&self) -> bool;
    /// The link's counters (zero without a link).
    fn link_stats(&self) -> LinkStats {
        LinkStats::default()
    }
}

impl<S: TcpFullStack> StageTransport for Link<S> {
    fn poll_stage(&mut self, now: Instant, events: &mut Vec<StageEvent>) {
        self.poll(now, |_, ev| match ev {
            LinkEvent::Up(p) => events.push(StageEvent::Up(p)),
            LinkEvent::Down(p, _) => events.push(StageEvent::Down(p)),
            // Session traffic (Hello, heartbeats) is the link's; anything else not coded is
            // ignored, as a node that only runs this stage has nothing else to give it to.
            LinkEvent::Message(p, r) => {
                if let Ok(m) = CodedMessage::take(r) {
                    events.push(StageEvent::Coded(p, m));
                }
            }
            LinkEvent::Refused(_) => {}
        });
    }

    fn next_poll(&self) -> Option<Instant> {
        self.poll_at()
    }

    fn more(&self) -> bool {
        Link::more(self)
    }

    fn link_stats(&self) -> LinkStats {
        self.stats()
    }
}

impl<U: UdpFullStack> StageTransport for DgramEndpoint<U> {
    fn poll_stage(&mut self, now: Instant, events: &mut Vec<StageEvent>) {
        self.poll(now, |from, m| {
            events.push(match CodedMessage::capture(&m) {
                Some(m) => StageEvent::Coded(from, m),
                None => StageEvent::Foreign(from),
            })
        });
    }

    fn next_poll(&self) -> Option<Instant> {
        self.poll_at()
    }

    fn more(&self) -> bool {
        DgramEndpoint::more(self)
    }
}

impl StageTransport for BoxedLane {
    fn poll_stage(&mut self, now: Instant, events: &mut Vec<StageEvent>) {
        self.poll(now, &mut |from, m| {
            events.push(match CodedMessage::capture(&m) {
                Some(m) => StageEvent::Coded(from, m),
                None => StageEvent::Foreign(from),
            })
        });
    }

    fn next_poll(&self) -> Option<Instant> {
        self.poll_at()
    }

    fn more(&self) -> bool {
        (**self).more()
    }
}
