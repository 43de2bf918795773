//! [`CodedNodeOn`]: a node that runs only the coded stage, on a transport of its own: the
//! authenticated TCP [`Link`] ([`CodedNode`]) or the datagram [`DgramEndpoint`]
//! ([`CodedDgramNode`]). Same stage and methods on both; what differs is what a loss costs:
//! a lost TCP segment delays every message behind it by a retransmission timeout, a lost
//! datagram loses its message at once (an erasure the parity covers).
//!
//! Datagrams have no connections, so no peer is ever "down" there: a worker that stopped
//! answering is found by the layer timeouts, as a stalled one is over TCP.

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;

use embedded_nal::{TcpFullStack, UdpFullStack};
use tessera_core::runtime::coded::{CodedConfig, CodedGateway};
use tessera_core::time::Instant;
use tessera_core::wire::{FrameKey, NodeId};

use super::transport::{StageEvent, StageTransport};
use super::{
    Chain, CodedFinished, CodedModel, CodedModelError, CodedNodeStats, CodedPart, CodedSubmitError,
    Glue, ShardExecutor,
};
use crate::dgram::{DgramConfig, DgramEndpoint, DgramError, DgramStats};
use crate::driver::DriverError;
use crate::link::{Link, LinkConfig};

/// One node of a coded run with a transport of its own (`T`: a [`Link`] or a
/// [`DgramEndpoint`]) and a [`CodedPart`] (gateway or worker machine, model, executor, and
/// the gateway's glue between layers). A node that also runs FTP holds its coded part in its
/// [`crate::driver::Node`] instead (one link for both).
pub struct CodedNodeOn<T, X: ShardExecutor, G: Glue = Chain> {
    transport: T,
    part: CodedPart<X, G>,
}

/// A coded node on the authenticated TCP link over the stack `S`.
pub type CodedNode<S, X, G = Chain> = CodedNodeOn<Link<S>, X, G>;

/// A coded node on authenticated datagrams over the UDP stack `U`.
pub type CodedDgramNode<U, X, G = Chain> = CodedNodeOn<DgramEndpoint<U>, X, G>;

/// Why a datagram coded node could not start.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CodedDgramError {
    /// The coded model or plan is unusable.
    #[error("coded model: {0}")]
    Coded(CodedModelError),
    /// The endpoint could not open its socket.
    #[error("datagram endpoint: {0}")]
    Endpoint(DgramError),
}

impl<S: TcpFullStack, X: ShardExecutor> CodedNodeOn<Link<S>, X, Chain> {
    /// A node running as `link.me` (0: the gateway, with `config`) over `stack`; each layer
    /// feeds the next.
    pub fn new(
        stack: S,
        link: LinkConfig,
        model: Arc<CodedModel>,
        config: CodedConfig,
        exec: X,
    ) -> Result<Self, DriverError> {
        Self::with_glue(stack, link, model, config, exec, Chain)
    }
}

impl<S: TcpFullStack, X: ShardExecutor, G: Glue> CodedNodeOn<Link<S>, X, G> {
    /// As [`CodedNode::new`], with `glue` computing between the gateway's layers.
    pub fn with_glue(
        stack: S,
        link: LinkConfig,
        model: Arc<CodedModel>,
        config: CodedConfig,
        exec: X,
        glue: G,
    ) -> Result<Self, DriverError> {
        let part =
            CodedPart::new(link.me, model, config, exec, glue).map_err(DriverError::Coded)?;
        let transport = Link::new(stack, link).map_err(DriverError::Link)?;
        Ok(CodedNodeOn { transport, part })
    }

    /// The link.
    pub fn link(&self) -> &Link<S> {
        &self.transport
    }
}

impl<U: UdpFullStack, X: ShardExecutor> CodedNodeOn<DgramEndpoint<U>, X, Chain> {
    /// Node `dgram.me` (0: the gateway, with `config`) on `stack`; each layer feeds the next.
    pub fn new(
        stack: U,
        dgram: DgramConfig,
        model: Arc<CodedModel>,
        config: CodedConfig,
        exec: X,
    ) -> Result<Self, CodedDgramError> {
        Self::with_glue(stack, dgram, model, config, exec, Chain)
    }
}

impl<U: UdpFullStack, X: ShardExecutor, G: Glue> CodedNodeOn<DgramEndpoint<U>, X, G> {
    /// As [`CodedDgramNode::new`], with `glue` computing between the gateway's layers.
    pub fn with_glue(
        stack: U,
        dgram: DgramConfig,
        model: Arc<CodedModel>,
        config: CodedConfig,
        exec: X,
        glue: G,
    ) -> Result<Self, CodedDgramError> {
        let part =
            CodedPart::new(dgram.me, model, config, exec, glue).map_err(CodedDgramError::Coded)?;
        let transport = DgramEndpoint::new(stack, dgram).map_err(CodedDgramError::Endpoint)?;
        Ok(CodedNodeOn { transport, part })
    }

    /// The datagram endpoint.
    pub fn endpoint(&self) -> &DgramEndpoint<U> {
        &self.transport
    }

    /// Replaces the endpoint's peer table (see [`DgramEndpoint::set_peers`]).
    pub fn set_peers(&mut self, peers: Vec<(NodeId, core::net::SocketAddr)>) {
        self.transport.set_peers(peers);
    }

    /// The endpoint's counters: datagrams sent, received, dropped per reason.
    pub fn dgram_stats(&self) -> DgramStats {
        self.transport.stats()
    }

    /// Peers this node can send to: every configured one (datagrams have no connections, so
    /// none is ever reported down; silence shows as erasures at the layer timeouts).
    pub fn peers_up(&self) -> usize {
        self.transport.peers().len()
    }
}

impl<T: StageTransport, X: ShardExecutor, G: Glue> CodedNodeOn<T, X, G> {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.part.id()
    }

    /// The gateway machine (e.g. for its fitted link models), on the gateway.
    pub fn gateway(&self) -> Option<&CodedGateway> {
        self.part.gateway()
    }

    /// Counters so far (`link` stays zero on datagrams: see [`CodedDgramNode::dgram_stats`]).
    pub fn stats(&self) -> CodedNodeStats {
        CodedNodeStats {
            link: self.transport.link_stats(),
            ..self.part.stats()
        }
    }

    /// Frames finished since the last call.
    pub fn take_finished(&mut self) -> Vec<CodedFinished> {
        self.part.take_finished()
    }

    /// Frames in the stage (gateway).
    pub fn in_flight(&self) -> usize {
        self.part.in_flight()
    }

    /// True while a worker computes.
    pub fn computing(&self) -> bool {
        self.part.computing()
    }

    /// Gateway: starts a frame on `input` (`in_len × cols` values, row-major).
    pub fn submit(
        &mut self,
        now: Instant,
        input: &[f32],
        cols: usize,
    ) -> Result<FrameKey, CodedSubmitError> {
        self.part.submit(now, &mut self.transport, input, cols)
    }

    /// When the node next needs a poll without I/O.
    pub fn poll_at(&self) -> Option<Instant> {
        [self.part.poll_at(), self.transport.next_poll()]
            .into_iter()
            .flatten()
            .min()
    }

    /// True when the transport has more to do at once (readiness will not report it again).
    pub fn more(&self) -> bool {
        self.transport.more()
    }

    /// Does all pending work: network I/O, a finished computation, due timers, actions.
    pub fn poll(&mut self, now: Instant) {
        let mut events: Vec<StageEvent> = Vec::new();
        self.transport.poll_stage(now, &mut events);
        for ev in events {
            match ev {
                StageEvent::Up(p) => self.part.on_peer_up(p),
                StageEvent::Down(p) => self.part.on_peer_down(p),
                StageEvent::Coded(from, m) => {
                    self.part.on_message(now, &mut self.transport, from, m)
                }
                StageEvent::Foreign(from) => self.part.refuse_peer(&mut self.transport, from),
            }
        }
        self.part.poll(now, &mut self.transport);
    }
}
