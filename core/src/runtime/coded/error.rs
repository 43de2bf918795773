//! Why a coded-stage call was refused.

use crate::code::CodeError;
use crate::wire::NodeId;

use super::{MAX_CODED_FRAMES, MAX_CODED_LAYERS, MAX_WORKER_TASKS};

/// Why a coded-stage call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodedError {
    /// A plan needs 1 to [`MAX_CODED_LAYERS`] layers.
    Layers {
        /// Layers given.
        have: usize,
    },
    /// A layer's worker list does not match its shard count, or names the gateway.
    Workers {
        /// Workers needed.
        need: usize,
        /// Workers given.
        have: usize,
    },
    /// [`MAX_CODED_FRAMES`] frames are already in the stage.
    TooManyFrames,
    /// The frame is already in the stage.
    DuplicateFrame,
    /// A result names a layer or shard that does not exist.
    OutOfRange,
    /// A result came from a node that is not the shard's worker.
    WrongWorker {
        /// The sender.
        from: NodeId,
    },
    /// The worker's task queue is full.
    Busy,
    /// `on_computed` without a computation running.
    NotComputing,
    /// `abandon` while the running computation is still within its budget.
    NotOverdue,
    /// The code refused (see [`CodeError`]).
    Code(CodeError),
}

impl core::fmt::Display for CodedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            CodedError::Layers { have } => {
                write!(f, "{have} coded layers; 1..={MAX_CODED_LAYERS} allowed")
            }
            CodedError::Workers { need, have } => write!(
                f,
                "{have} workers for {need} shards (one non-gateway worker per shard needed)"
            ),
            CodedError::TooManyFrames => {
                write!(f, "{MAX_CODED_FRAMES} frames already in the coded stage")
            }
            CodedError::DuplicateFrame => f.write_str("frame already in the coded stage"),
            CodedError::OutOfRange => f.write_str("coded layer or shard out of range"),
            CodedError::WrongWorker { from } => {
                write!(f, "node {from} is not the worker of that shard")
            }
            CodedError::Busy => write!(f, "{MAX_WORKER_TASKS} coded tasks already queued"),
            CodedError::NotComputing => f.write_str("no coded task is computing"),
            CodedError::NotOverdue => f.write_str("the computing coded task is within its budget"),
            CodedError::Code(e) => write!(f, "code: {e}"),
        }
    }
}

impl core::error::Error for CodedError {}

impl From<CodeError> for CodedError {
    fn from(e: CodeError) -> Self {
        CodedError::Code(e)
    }
}

impl CodedError {
    /// True when the error shows the peer broke the protocol (the driver may drop it).
    pub fn peer_fault(&self) -> bool {
        matches!(
            self,
            CodedError::OutOfRange | CodedError::WrongWorker { .. }
        )
    }
}
