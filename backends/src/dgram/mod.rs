//! The datagram transport over any embedded-nal UDP stack: [`DgramEndpoint`] sends
//! [`Message`](tessera_core::wire::Message)s as authenticated datagrams
//! ([`tessera_core::wire::datagram`]) and delivers the ones reassembled before their deadline;
//! [`LossyUdp`] wraps a stack to drop a seeded fraction of datagrams (tests and measurements).
//!
//! What it is for: messages worth less late than lost. A lost TCP segment costs a
//! retransmission timeout (200 ms and more on Linux, a second on smoltcp) and holds up every
//! message behind it; a lost datagram costs its message, at once, and nothing else. The coded
//! stage turns a lost shard or result into an erasure its parity covers, so its messages go
//! here when the cluster chooses ([`TailTransport`]; a deployed node carries them on a
//! [`DgramLane`], a stand-alone coded node is `coded::CodedDgramNode`; see
//! `docs/datagram.md`).

#[cfg(feature = "std")]
mod dev_loss;
mod endpoint;
mod lane;
mod lossy;
mod tail_transport;

#[cfg(feature = "std")]
pub use dev_loss::{DevLoss, DevLossError, DEV_LOSS_VAR};
pub use endpoint::{DgramConfig, DgramEndpoint, DgramError, DgramSendError, DgramStats};
pub use lane::{BoxedLane, DgramLane};
pub use lossy::{LossySocket, LossyUdp};
pub use tail_transport::{TailTransport, TransportError};

/// Reassembly slots of an endpoint (messages in reassembly at once).
pub const DGRAM_SLOTS: usize = 16;
/// Senders an endpoint keeps replay windows for.
pub const DGRAM_PEERS: usize = 32;
