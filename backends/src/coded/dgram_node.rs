//! [`CodedDgramNode`]: a node that runs only the coded stage with its shards and results on
//! the datagram transport ([`DgramEndpoint`]) instead of a TCP link. Same stage, same
//! methods as [`CodedNode`](super::CodedNode); what differs is what a loss costs: a lost
//! datagram loses its message at once (an erasure the parity covers), where a lost TCP
//! segment delays every message behind it by a retransmission timeout.
//!
//! There are no connections, so no peer is ever "down": a worker that stopped answering is
//! found by the layer timeouts, as a stalled one is over TCP.

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;

use embedded_nal::UdpFullStack;
use tessera_core::runtime::coded::{CodedConfig, CodedGateway};
use tessera_core::time::Instant;
use tessera_core::wire::{FrameKey, NodeId};

use super::{
    Chain, CodedFinished, CodedMessage, CodedModel, CodedModelError, CodedNodeStats, CodedPart,
    CodedSubmitError, Glue, ShardExecutor,
};
use crate::dgram::{DgramConfig, DgramEndpoint, DgramError, DgramStats};

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

/// One node of a coded run on datagrams: a [`DgramEndpoint`] and a [`CodedPart`].
pub struct CodedDgramNode<U: UdpFullStack, X: ShardExecutor, G: Glue = Chain> {
    dgram: DgramEndpoint<U>,
    part: CodedPart<X, G>,
}

impl<U: UdpFullStack, X: ShardExecutor> CodedDgramNode<U, X, Chain> {
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

impl<U: UdpFullStack, X: ShardExecutor, G: Glue> CodedDgramNode<U, X, G> {
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
        let dgram = DgramEndpoint::new(stack, dgram).map_err(CodedDgramError::Endpoint)?;
        Ok(CodedDgramNode { dgram, part })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.dgram.me()
    }

    /// The datagram endpoint.
    pub fn endpoint(&self) -> &DgramEndpoint<U> {
        &self.dgram
    }

    /// Replaces the endpoint's peer table (see [`DgramEndpoint::set_peers`]).
    pub fn set_peers(&mut self, peers: Vec<(NodeId, core::net::SocketAddr)>) {
        self.dgram.set_peers(peers);
    }

    /// The gateway machine, on the gateway.
    pub fn gateway(&self) -> Option<&CodedGateway> {
        self.part.gateway()
    }

    /// The stage's counters (`link` stays zero: see [`CodedDgramNode::dgram_stats`]).
    pub fn stats(&self) -> CodedNodeStats {
        self.part.stats()
    }

    /// The endpoint's counters: datagrams sent, received, dropped per reason.
    pub fn dgram_stats(&self) -> DgramStats {
        self.dgram.stats()
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

    /// Peers this node can send to: every configured one (datagrams have no connections, so
    /// none is ever reported down; silence shows as erasures at the layer timeouts).
    pub fn peers_up(&self) -> usize {
        self.dgram.peers().len()
    }

    /// Gateway: starts a frame on `input` (`in_len × cols` values, row-major).
    pub fn submit(
        &mut self,
        now: Instant,
        input: &[f32],
        cols: usize,
    ) -> Result<FrameKey, CodedSubmitError> {
        self.part.submit(now, &mut self.dgram, input, cols)
    }

    /// When the node next needs a poll without I/O.
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.part.poll_at(), self.dgram.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when the endpoint has more to do at once (see [`DgramEndpoint::more`]).
    pub fn more(&self) -> bool {
        self.dgram.more()
    }

    /// Does all pending work: datagrams in and out, a finished computation, due timers.
    pub fn poll(&mut self, now: Instant) {
        let mut incoming: Vec<(NodeId, Option<CodedMessage>)> = Vec::new();
        self.dgram.poll(now, |from, m| {
            incoming.push((from, CodedMessage::capture(&m)))
        });
        for (from, m) in incoming {
            match m {
                Some(m) => self.part.on_message(now, &mut self.dgram, from, m),
                // Another kind on the coded port: a protocol violation, counted.
                None => self.part.refuse_peer(&mut self.dgram, from),
            }
        }
        self.part.poll(now, &mut self.dgram);
    }
}
