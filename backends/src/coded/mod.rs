//! The coded (CDC) stage driver: binds `runtime::coded`'s gateway and worker machines to a
//! [`Link`](crate::link::Link) over any embedded-nal stack, to a [`CodedModel`] and to a [`ShardExecutor`].
//!
//! The gateway takes a frame's input ([`CodedNode::submit`]), sends each layer's shards as
//! `CodedTask`s, keeps the `CodedResult`s the machine accepts, decodes (or zero-fills on
//! expiry), applies the activation and feeds the next layer; a finished frame comes out of
//! [`CodedNode::take_finished`] with its output, [`Quality`] and per-layer times. A worker
//! computes the shards it is sent with the parameters of its shards and answers within the
//! task's budget, or drops the work. Like the FTP driver, it takes time as an argument, so
//! the same code runs over Linux sockets and over smoltcp in the simulator.
//!
//! The stage itself is a [`CodedPart`] without a link: [`CodedNodeOn`] gives it a transport
//! of its own (a node that runs only the coded stage): a link ([`CodedNode`]) or the datagram
//! transport ([`CodedDgramNode`]); `driver::Node::attach_coded` runs it on an FTP node's
//! link (or its datagram lane), so a device has one port number for both stages.
//!
//! [`tail`] maps a network's tail (YOLOv2's layers 16–31) onto coded layers; with `std`,
//! [`ThreadShards`] computes a worker's shards on its own thread; `loopback` runs the stage
//! alone on loopback (`tessera coded`) and `loopback_report` words its results.

extern crate alloc;

mod generated;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod loopback;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod loopback_report;
pub mod model;
mod node;
mod part;
pub mod tail;
#[cfg(feature = "std")]
mod thread_shards;
mod transport;

use alloc::sync::Arc;
use alloc::vec::Vec;

use tessera_core::runtime::coded::{CodedError, CodedStats, Quality, ShardWork, WorkerStats};
use tessera_core::time::Duration;
use tessera_core::wire::FrameKey;

pub use generated::generated_chain;
#[cfg(feature = "std")]
pub(crate) use model::CONV_BAND_BYTES;
pub use model::{
    Activation, CodedModel, CodedModelError, ConvGeom, LayerScheme, LinearLayer, Numeric,
};
pub use node::{CodedDgramError, CodedDgramNode, CodedNode, CodedNodeOn};
pub use part::{BoxedGlue, BoxedShards, CodedMessage, CodedPart, CODED_QUEUE};
#[cfg(feature = "std")]
pub use thread_shards::ThreadShards;
pub use transport::{CodedTransport, StageEvent, StageTransport};

use crate::link::LinkStats;

/// What the gateway computes itself between coded layers: a network's non-linear or
/// data-movement layers (pooling, routes, reorg, the detection head), so a coded chain can be
/// the weight-heavy layers of a CNN tail rather than a plain stack.
pub trait Glue {
    /// Coded layer `layer` of `frame` produced `output` (activated, `rows × cols`): return the
    /// input of coded layer `layer + 1`.
    fn between(&mut self, frame: FrameKey, layer: usize, output: Vec<f32>) -> Vec<f32>;
    /// The last coded layer produced `output`: return the frame's output.
    fn finish(&mut self, frame: FrameKey, output: Vec<f32>) -> Vec<f32>;
    /// Steps that failed so far (their output replaced); none for glue that cannot fail.
    fn failed_steps(&self) -> u64 {
        0
    }
}

/// No glue: each layer's output is the next one's input, the last one's the frame's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chain;

impl Glue for Chain {
    fn between(&mut self, _: FrameKey, _: usize, output: Vec<f32>) -> Vec<f32> {
        output
    }

    fn finish(&mut self, _: FrameKey, output: Vec<f32>) -> Vec<f32> {
        output
    }
}

/// One shard computation, owning its input.
#[derive(Clone, Debug)]
pub struct ShardJob {
    /// What to compute.
    pub work: ShardWork,
    /// Columns of the input.
    pub cols: usize,
    /// `in_len × cols` wire words.
    pub input: Vec<u32>,
}

/// A finished shard computation.
#[derive(Clone, Debug)]
pub struct ShardDone {
    /// What was computed.
    pub work: ShardWork,
    /// The result words, or why the input was refused.
    pub output: Result<Vec<u32>, CodedModelError>,
}

/// Runs shard computations (one at a time): inline, on a thread, or in virtual time.
pub trait ShardExecutor {
    /// Starts `job` with `model`'s parameters.
    fn start(&mut self, model: &Arc<CodedModel>, job: ShardJob);
    /// The finished job, once.
    fn poll(&mut self) -> Option<ShardDone>;
    /// Whether [`cancel`](Self::cancel) can stop a running job (default: no).
    fn can_cancel(&self) -> bool {
        false
    }
    /// Stops the running job, whose result will never come: true when stopped. The worker
    /// abandons a computation past its budget this way; an executor that cannot stop one
    /// (the default) finishes it, and its result is dropped as late.
    fn cancel(&mut self) -> bool {
        false
    }
}

/// Computes at [`ShardExecutor::start`], convolutions with `K`.
#[derive(Debug, Default)]
pub struct InlineShards<K = tessera_core::kernel::Portable> {
    kernels: K,
    done: Option<ShardDone>,
}

impl<K> InlineShards<K> {
    /// Computing with `kernels`.
    pub fn new(kernels: K) -> Self {
        InlineShards {
            kernels,
            done: None,
        }
    }
}

impl<K: tessera_core::kernel::Kernels> ShardExecutor for InlineShards<K> {
    fn start(&mut self, model: &Arc<CodedModel>, job: ShardJob) {
        let output = model.compute_shard_with(&self.kernels, job.work, job.cols, &job.input);
        self.done = Some(ShardDone {
            work: job.work,
            output,
        });
    }

    fn poll(&mut self) -> Option<ShardDone> {
        self.done.take()
    }
}

/// One layer of a finished frame, as the gateway saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerRecord {
    /// From the layer's first send to its decode or expiry.
    pub latency: Duration,
    /// Decoded in full (false: expired with rows missing).
    pub decoded: bool,
    /// Results used (bit `i` = shard `i`).
    pub present: u32,
}

/// A frame that left the coded stage.
#[derive(Clone, Debug)]
pub struct CodedFinished {
    /// The frame.
    pub frame: FrameKey,
    /// The last layer's output (`rows × cols`, zeros where rows were lost).
    pub output: Vec<f32>,
    /// How much of it is real.
    pub quality: Quality,
    /// From submission to completion.
    pub latency: Duration,
    /// Per layer.
    pub layers: Vec<LayerRecord>,
}

/// Why a frame could not be submitted.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum CodedSubmitError {
    /// Only the gateway submits frames.
    #[error("only the gateway submits frames")]
    NotGateway,
    /// The input is not `in_len × cols` values (or `cols` is 0).
    #[error("input has {have} values, {need} needed")]
    Length {
        /// Values needed.
        need: usize,
        /// Values given.
        have: usize,
    },
    /// The stage refused (too many frames in flight).
    #[error("{0}")]
    Stage(CodedError),
}

/// Counters of a coded node.
#[derive(Clone, Copy, Debug, Default)]
pub struct CodedNodeStats {
    /// Gateway machine counters.
    pub gateway: Option<CodedStats>,
    /// Worker machine counters.
    pub worker: Option<WorkerStats>,
    /// Link counters.
    pub link: LinkStats,
    /// Messages refused (wrong sender, bad length, unexpected kind); their peers dropped.
    pub refused: u64,
    /// Shard computations that failed.
    pub failed_jobs: u64,
    /// Bytes of shard parameters this node holds.
    pub param_bytes: usize,
    /// Gateway: steps of the glue between layers that failed (see [`Glue::failed_steps`]).
    pub glue_failures: u64,
}
