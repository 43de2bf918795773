//! Why `tessera demo` ([`super::run_demo`]) stopped, with the messages the command prints.

extern crate alloc;
extern crate std;

use alloc::boxed::Box;

use crate::coded::tail::{CheckError, CodedTailError, SchemeError};
use crate::fault_spec::FaultError;
use crate::local::{FusedModelError, LocalError};
use crate::model_files::ModelFileError;
use crate::pipeline::{DecodeError, PictureError, TailError};
use tessera_core::model::weights::WeightsError;

/// Why a demo run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// `--edges` outside `1..=MAX_EDGES`.
    #[error("demo: --edges {edges} outside 1..={max}")]
    Edges {
        /// Edges asked for.
        edges: u16,
        /// Most edges a cluster has.
        max: usize,
    },
    /// `--sources` outside `1..=edges`.
    #[error("demo: --sources {sources} outside 1..={edges}")]
    Sources {
        /// Sources asked for.
        sources: u16,
        /// Edges of the cluster.
        edges: u16,
    },
    /// A coded tail was asked for with no tail at all.
    #[error("demo: --coded-tail and --no-tail exclude each other")]
    CodedWithoutTail,
    /// The faults do not fit the cluster.
    #[error(transparent)]
    Faults(#[from] FaultError),
    /// The coded tail's scheme does not fit the edges.
    #[error("--coded-tail: {0}")]
    Scheme(#[from] SchemeError),
    /// The cfg could not be read.
    #[error(transparent)]
    Model(#[from] ModelFileError),
    /// The fused layers' model could not be made.
    #[error(transparent)]
    Fused(#[from] FusedModelError),
    /// The parameters do not cover the network.
    #[error("viewing the weights: {0}")]
    Weights(#[from] WeightsError),
    /// The coded tail could not be split over the edges.
    #[error("--coded-tail {scheme}: {error}")]
    CodedTail {
        /// The scheme as written.
        scheme: alloc::string::String,
        /// Why.
        error: CodedTailError,
    },
    /// No pictures to feed.
    #[error("demo: no input pictures")]
    NoPictures,
    /// A picture could not be letterboxed for the network.
    #[error("letterboxing a frame: {0}")]
    Letterbox(#[from] PictureError),
    /// The cluster run failed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The gateway's tail failed on a frame.
    #[error(transparent)]
    Tail(#[from] TailError),
    /// Boxes could not be decoded from a frame's output.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A coded tail's output could not be checked.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The host could not save a frame's outputs.
    #[error(transparent)]
    Save(Box<dyn std::error::Error + Send + Sync>),
    /// Frames did not complete (the report was printed).
    #[error("demo: {0} frame(s) did not complete")]
    Incomplete(usize),
}
