//! A gateway's final result of a frame ([`TailWork::result`]): the fused output as it is,
//! the tail run on the gateway, or the coded stage's output; then region decoding and NMS.
//! What `tessera gateway` writes for each frame, whichever way the cluster runs its tail.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

use tessera_core::detect::Detection;
use tessera_core::model::weights::Weights;
use tessera_core::model::Network;

use crate::coded::CodedFinished;
use crate::driver::Finished;
use crate::pipeline::{boxes, run_tail, AnyKernel, DecodeError, TailError};
use tessera_core::detect::{DEFAULT_NMS, DEFAULT_THRESH};

/// How the gateway gets from the fused output to the final result.
pub enum TailWork<'a> {
    /// The fused output is the result (the tail runs elsewhere, or not at all).
    None,
    /// The tail runs here with `kernel`, over `weights` (every layer of the network).
    Here {
        /// The kernels.
        kernel: AnyKernel,
        /// The whole network's parameters.
        weights: Box<Weights<'a>>,
    },
    /// The tail ran coded across the edges; its output is the frame's `CodedFinished`.
    Coded,
}

/// A frame's final result.
#[derive(Debug)]
pub enum FrameResult<'f> {
    /// The fused stack's output ([`TailWork::None`]).
    Fused(&'f [f32]),
    /// Boxes in network-input coordinates, most probable first.
    Boxes(Vec<Detection>),
}

/// Why a frame has no final result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// The cluster abandoned the frame (no fused output).
    #[error("abandoned by the cluster")]
    Abandoned,
    /// The coded tail lost rows by its deadline, or never reported the frame.
    #[error("the coded tail lost rows by its deadline")]
    TailLost,
    /// The tail failed here.
    #[error("{0}")]
    Tail(TailError),
    /// Decoding boxes failed.
    #[error("decoding boxes: {0}")]
    Decode(DecodeError),
}

impl TailWork<'_> {
    /// The final result of `f` in `net` whose fused layers are `[0, from)`; `tail` is the
    /// frame's coded tail ([`TailWork::Coded`]; see `coded::tail::TailJoin`).
    pub fn result<'f>(
        &self,
        net: &Network,
        from: usize,
        f: &'f Finished,
        tail: Option<&CodedFinished>,
    ) -> Result<FrameResult<'f>, ResultError> {
        let out = f
            .output
            .as_deref()
            .filter(|_| f.complete)
            .ok_or(ResultError::Abandoned)?;
        let region = match self {
            TailWork::None => return Ok(FrameResult::Fused(out)),
            TailWork::Here { kernel, weights } => {
                run_tail(kernel, net, weights, from, out, &[])
                    .map_err(ResultError::Tail)?
                    .output
            }
            TailWork::Coded => match tail.filter(|t| t.quality.is_complete()) {
                Some(t) => t.output.clone(),
                None => return Err(ResultError::TailLost),
            },
        };
        let (w, h) = (net.input().w as usize, net.input().h as usize);
        boxes(net, &region, w, h, DEFAULT_THRESH, DEFAULT_NMS)
            .map(FrameResult::Boxes)
            .map_err(ResultError::Decode)
    }
}
