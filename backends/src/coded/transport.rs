//! What the coded stage needs of a transport ([`CodedTransport`]): send a task or a result,
//! and drop a peer that broke the protocol. The authenticated TCP [`Link`] and the datagram
//! [`DgramEndpoint`] both provide it, so [`CodedPart`](super::CodedPart) runs on either.

use core::fmt::Display;

use embedded_nal::{TcpFullStack, UdpFullStack};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Body, Message, NodeId};

use crate::dgram::{BoxedLane, DgramEndpoint, DgramSendError};
use crate::link::{Link, LinkError};

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
