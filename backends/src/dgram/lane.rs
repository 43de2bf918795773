//! [`DgramLane`]: a [`DgramEndpoint`] behind an object-safe trait, so a node driver that is
//! generic over its TCP stack only ([`crate::driver::Node`]) can carry its coded stage's
//! messages on a datagram socket of any UDP stack (a std socket, one wrapped in [`LossyUdp`]
//! for a test) without a second stack type parameter.
//!
//! [`LossyUdp`]: super::LossyUdp

extern crate alloc;

use alloc::boxed::Box;

use embedded_nal::UdpFullStack;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Message, NodeId};

use super::{DgramEndpoint, DgramSendError, DgramStats};

/// What a node's loop needs of its datagram endpoint.
pub trait DgramLane {
    /// Sends `msg` to `to`, worth nothing after `lifetime` ([`DgramEndpoint::send`]).
    fn send(
        &mut self,
        now: Instant,
        to: NodeId,
        msg: &Message<'_>,
        lifetime: Option<Duration>,
    ) -> Result<(), DgramSendError>;
    /// Sends what waits and hands over each message completed ([`DgramEndpoint::poll`]).
    fn poll(&mut self, now: Instant, on: &mut dyn FnMut(NodeId, Message<'_>));
    /// When the endpoint next needs a poll without I/O.
    fn poll_at(&self) -> Option<Instant>;
    /// True when the endpoint has more to do at once (see [`DgramEndpoint::more`]).
    fn more(&self) -> bool;
    /// Counters so far.
    fn stats(&self) -> DgramStats;
}

/// A datagram lane chosen at run time.
pub type BoxedLane = Box<dyn DgramLane + Send>;

impl<U: UdpFullStack> DgramLane for DgramEndpoint<U> {
    fn send(
        &mut self,
        now: Instant,
        to: NodeId,
        msg: &Message<'_>,
        lifetime: Option<Duration>,
    ) -> Result<(), DgramSendError> {
        DgramEndpoint::send(self, now, to, msg, lifetime)
    }

    fn poll(&mut self, now: Instant, on: &mut dyn FnMut(NodeId, Message<'_>)) {
        DgramEndpoint::poll(self, now, on)
    }

    fn poll_at(&self) -> Option<Instant> {
        DgramEndpoint::poll_at(self)
    }

    fn more(&self) -> bool {
        DgramEndpoint::more(self)
    }

    fn stats(&self) -> DgramStats {
        DgramEndpoint::stats(self)
    }
}
