//! The coded (CDC) stage of the runtime, sans-IO: a chain of output-split linear layers run on
//! workers under a frame deadline (docs/design.md §6.6, §7).
//!
//! [`CodedGateway`] runs each frame through the layers of a [`CodedPlan`] one after the other.
//! For a layer it sends every shard once ([`CodedAction::Send`], the layer input broadcast to
//! the shard's worker), accepts the first results in time, decodes as soon as they determine
//! the output ([`CodedAction::Decode`]: any `k` for a code, one copy of every data shard for
//! 2MR), ignores stragglers, turns a timeout or a lost worker into an erasure that parity
//! covers without re-sending work, re-sends only when parity can no longer cover and the
//! deadline still allows, and otherwise ends the layer at its budget with the rows that came
//! ([`CodedAction::Expired`]; the driver zero-fills the rest). Each frame ends with
//! [`CodedAction::FrameDone`] and its [`Quality`].
//!
//! # Budgets
//!
//! A frame must finish `frame_deadline` after it starts; when a layer starts, its timeout
//! (every shard's budget, sent to the worker in the task) is chosen from what remains:
//!
//! * [`Allocator::Uniform`] (the baseline): the remaining time split evenly over the layers
//!   left.
//! * [`Allocator::QualityAware`]: per (worker, layer) a shifted-gamma delay model
//!   ([`LinkDelay`](crate::deadline::LinkDelay)) is fitted from the round trips this gateway
//!   observed (send to result, compute included). A result that never came is censored, not
//!   lost: the trip took longer than the gateway waited for it (at most the shard's budget,
//!   after which the worker stops), and a loss rate is estimated alongside
//!   ([`fit_round_trips`]). The layer's timeout `t` maximises the expected quality of the
//!   frame counting that the layer ends when it decodes, usually before `t`:
//!   `Σ_{x ≤ t} P(decoded in (x', x]) · Q(R − x) + (E[q_l(t)] − P(decoded by t)) · Q(R − t)`,
//!   where `E[q]` is the expected fraction of output rows a layer delivers (decoded, or the
//!   data shards that arrived) under the fitted models and `Q(r)` the later layers' product
//!   of `E[q_j]` sharing `r` evenly. Until every worker involved has
//!   [`CodedConfig::min_samples`] round trips, it falls back to uniform.
//!
//! Workers ([`CodedWorker`]) drop a task they cannot start within its budget and a result
//! finished after it: late data is discarded at the source instead of loading the network.
//! State is bounded: [`MAX_CODED_LAYERS`], [`MAX_CODED_FRAMES`], `MAX_EDGES` round-trip logs of
//! [`RTT_WINDOW`] samples per layer; nothing allocates.

mod budget;
mod error;
mod gateway;
mod plan;
mod trips;
mod worker;

pub use budget::{decode_probability, expected_quality, Allocator};
pub use error::CodedError;
pub use gateway::{CodedAction, CodedConfig, CodedGateway, CodedStats, Quality};
pub use plan::{CodedLayerSpec, CodedPlan, Protection};
pub use trips::fit_round_trips;
pub use worker::{CodedWorker, ShardWork, WorkerAction, WorkerStats};

/// Most coded layers in a plan.
pub const MAX_CODED_LAYERS: usize = 12;
/// Most frames in the coded stage at once.
pub const MAX_CODED_FRAMES: usize = 8;
/// Round trips kept per (worker, layer) for the delay model.
pub const RTT_WINDOW: usize = 32;
/// Most tasks a worker holds (one computing, the rest waiting).
pub const MAX_WORKER_TASKS: usize = 8;
