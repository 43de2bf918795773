//! A gateway's final result of a frame ([`TailWork::result`]): the fused output as it is,
//! the tail run on the gateway, or the coded stage's output; then region decoding and NMS.
//! What `tessera gateway` writes for each frame, whichever way the cluster runs its tail
//! ([`FrameResult::line`], [`FrameResult::file`]).

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
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

impl FrameResult<'_> {
    /// The line `tessera gateway` prints of frame `f` with this result (`tail`: its coded
    /// stage, when it had one).
    pub fn line(&self, f: &Finished, tail: Option<&CodedFinished>) -> String {
        let (key, ms) = (f.frame, f.latency.total_millis());
        match self {
            FrameResult::Fused(out) => format!(
                "frame {}.{}: {ms} ms in the cluster, fused output {} values, tiles {:?}",
                key.origin,
                key.number,
                out.len(),
                f.tiles_by
            ),
            FrameResult::Boxes(dets) => {
                let how = tail.map_or(String::new(), |t| {
                    format!(", coded tail {} ms", t.latency.total_millis())
                });
                format!(
                    "frame {}.{}: {ms} ms in the cluster{how}, {} boxes, tiles {:?}",
                    key.origin,
                    key.number,
                    dets.len(),
                    f.tiles_by
                )
            }
        }
    }

    /// The result file of frame `f`: `frame-O-N.f32`, the fused output as little-endian f32,
    /// or `frame-O-N.json`, the boxes relative to the network input (`input`: its width and
    /// height).
    #[cfg(feature = "std")]
    pub fn file(
        &self,
        f: &Finished,
        input: (usize, usize),
    ) -> Result<(String, Vec<u8>), serde_json::Error> {
        let name = |ext: &str| format!("frame-{}-{}.{ext}", f.frame.origin, f.frame.number);
        Ok(match self {
            FrameResult::Fused(out) => (
                name("f32"),
                out.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            FrameResult::Boxes(dets) => (
                name("json"),
                crate::detections_json::to_json(dets, input.0, input.1)?.into_bytes(),
            ),
        })
    }
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

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use alloc::vec;
    use tessera_core::time::Duration;
    use tessera_core::wire::FrameKey;

    #[test]
    fn a_result_names_its_file_and_says_its_line() {
        let f = Finished {
            frame: FrameKey::new(2, 7),
            complete: true,
            latency: Duration::from_millis(42),
            output: Some(vec![1.0, -2.5]),
            tiles_by: vec![(1, 5), (2, 4)],
        };
        let fused = FrameResult::Fused(f.output.as_deref().unwrap());
        assert_eq!(
            fused.line(&f, None),
            "frame 2.7: 42 ms in the cluster, fused output 2 values, tiles [(1, 5), (2, 4)]"
        );
        let (name, bytes) = fused.file(&f, (608, 608)).unwrap();
        assert_eq!(name, "frame-2-7.f32");
        assert_eq!(bytes[4..], (-2.5f32).to_le_bytes());
        let boxes = FrameResult::Boxes(Vec::new());
        assert_eq!(
            boxes.line(&f, None),
            "frame 2.7: 42 ms in the cluster, 0 boxes, tiles [(1, 5), (2, 4)]"
        );
        let (name, json) = boxes.file(&f, (608, 608)).unwrap();
        assert_eq!(name, "frame-2-7.json");
        assert!(String::from_utf8(json).unwrap().contains("608"));
    }
}
