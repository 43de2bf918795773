//! A coded tail's output against the runs it must agree with ([`check`]): the centralised
//! coded run with the same arithmetic ([`CodedTail::reference`]) and the plain tail (batch norm
//! not folded, `pipeline::run_tail`), down to the decoded boxes.

extern crate alloc;

use alloc::vec::Vec;

use tessera_core::detect::Detection;
use tessera_core::kernel::Kernels;
use tessera_core::model::weights::Weights;
use tessera_core::model::Network;

use tessera_core::detect::{DEFAULT_NMS, DEFAULT_THRESH};

use super::{bit_identical, max_abs_diff, CodedTail, CodedTailError};
use crate::coded::CodedFinished;
use crate::pipeline::{boxes, run_tail, DecodeError, TailError};

/// What the coded tail did to one frame, against the centralised and the plain runs.
#[derive(Clone, Debug)]
pub struct CodedCheck {
    /// The coded output has the bits of the centralised run with the same arithmetic.
    pub bit_identical: bool,
    /// Largest difference from that run.
    pub vs_reference: f64,
    /// Largest difference from the plain tail (batch norm not folded).
    pub vs_plain: f64,
    /// The detections equal the plain tail's ([`detections_match`]).
    pub detections_match: bool,
    /// Coded layers decoded with parity or replicas standing in for a data shard.
    pub recovered_layers: usize,
}

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The centralised coded run failed.
    #[error("the centralised coded tail: {0}")]
    Reference(CodedTailError),
    /// The plain tail failed.
    #[error("the plain tail: {0}")]
    Plain(TailError),
    /// Decoding boxes failed.
    #[error("decoding boxes: {0}")]
    Decode(DecodeError),
}

/// Checks `done`, the coded tail of `fused_out` (the fused stack's output), against
/// [`CodedTail::reference`] (same kernels) and the plain tail over `weights` (every layer of
/// `net`); returns the check and the coded output's boxes for an `image_w × image_h` image.
pub fn check<K: Kernels + Clone>(
    kernels: &K,
    net: &Network,
    weights: &Weights<'_>,
    tail: &CodedTail,
    fused_out: &[f32],
    done: &CodedFinished,
    (image_w, image_h): (usize, usize),
) -> Result<(CodedCheck, Vec<Detection>), CheckError> {
    let reference = tail
        .reference(kernels, fused_out)
        .map_err(CheckError::Reference)?;
    let plain =
        run_tail(kernels, net, weights, tail.from(), fused_out, &[]).map_err(CheckError::Plain)?;
    let out = &done.output;
    let decode = |o: &[f32]| boxes(net, o, image_w, image_h, DEFAULT_THRESH, DEFAULT_NMS);
    let dets = decode(out).map_err(CheckError::Decode)?;
    let plain_dets = decode(&plain.output).map_err(CheckError::Decode)?;
    let k = tail.scheme().k;
    let recovered_layers = done
        .layers
        .iter()
        .filter(|l| (0..k).any(|d| l.present >> d & 1 == 0))
        .count();
    Ok((
        CodedCheck {
            bit_identical: bit_identical(out, &reference),
            vs_reference: max_abs_diff(out, &reference),
            vs_plain: max_abs_diff(out, &plain.output),
            detections_match: detections_match(&dets, &plain_dets),
            recovered_layers,
        },
        dets,
    ))
}

/// Same boxes (in any order): equal count, classes and anchors, probabilities and coordinates
/// within `10⁻³·max(1, |v|)` (float rounding — folded batch norm, parity decoding — moves them
/// by about `10⁻⁵` on YOLOv2; a box whose probability sits at the threshold could still flip).
pub fn detections_match(a: &[Detection], b: &[Detection]) -> bool {
    // Sorted by anchor and class: boxes of near-equal probability may swap places.
    let sorted = |d: &[Detection]| {
        let mut v = d.to_vec();
        v.sort_by_key(|x| (x.index, x.class));
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    let close = |p: f32, q: f32| (p - q).abs() <= 1e-3 * p.abs().max(q.abs()).max(1.0);
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x.class == y.class
                && x.index == y.index
                && close(x.prob, y.prob)
                && close(x.x, y.x)
                && close(x.y, y.y)
                && close(x.w, y.w)
                && close(x.h, y.h)
        })
}
