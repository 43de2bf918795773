//! MoDNN's Biased One-Dimensional Partition (docs/design.md §5): one layer's output rows split
//! into stripes sized by each worker's measured speed.

use heapless::Vec;

use crate::region::{Region, Span};
use crate::time::Instant;
use crate::wire::NodeId;

use super::MAX_STRIPES;

/// One stripe of the current layer of a BODP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stripe {
    /// Output rows.
    pub rows: Span,
    /// Current assignee (the gateway itself when no edge is alive).
    pub to: NodeId,
    /// The previous assignee, whose late result is still accepted.
    pub prev: Option<NodeId>,
    /// When it was sent to `to` (speed measurement).
    pub sent: Instant,
    /// When it was first sent (measures a late `prev`).
    pub first_sent: Instant,
    /// When it is re-dispatched.
    pub deadline: Instant,
    /// Result in.
    pub done: bool,
    /// The gateway is computing it.
    pub running: bool,
}

/// The lock-step state of one BODP frame.
#[derive(Clone, Debug)]
pub(crate) struct Bodp {
    pub layer: u8,
    pub width: u32,
    pub stripes: Vec<Stripe, MAX_STRIPES>,
}

impl Bodp {
    pub(crate) fn region(&self, stripe: usize) -> Option<Region> {
        self.stripes
            .get(stripe)
            .map(|s| Region::new(Span::new(0, self.width), s.rows))
    }

    pub(crate) fn all_done(&self) -> bool {
        self.stripes.iter().all(|s| s.done)
    }
}

/// Splits rows `0..height` into `weights.len()` non-empty bands proportional to the weights
/// (each at least 1). The caller passes at most `height` weights, each `>= 1`.
pub(crate) fn split(height: u32, weights: &[u64]) -> Vec<Span, MAX_STRIPES> {
    let n = weights.len().min(MAX_STRIPES).min(height as usize).max(1);
    let weights = &weights[..n.min(weights.len())];
    let total: u128 = weights
        .iter()
        .map(|&w| w.max(1) as u128)
        .sum::<u128>()
        .max(1);
    let mut bounds = [0u32; MAX_STRIPES + 1];
    let mut cum: u128 = 0;
    for k in 1..n {
        cum += weights.get(k - 1).copied().unwrap_or(1).max(1) as u128;
        let b = (height as u128 * cum / total) as u32;
        let lo = bounds[k - 1] + 1;
        let hi = height - (n - k) as u32;
        bounds[k] = b.clamp(lo, hi);
    }
    bounds[n] = height;
    let mut out = Vec::new();
    for k in 0..n {
        let _ = out.push(Span::new(bounds[k], bounds[k + 1]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_biased_and_covers() {
        let s = split(38, &[1, 1]);
        assert_eq!(s.as_slice(), &[Span::new(0, 19), Span::new(19, 38)]);
        let s = split(100, &[3, 1]);
        assert_eq!(s.as_slice(), &[Span::new(0, 75), Span::new(75, 100)]);
        let s = split(3, &[1, 1000, 1]);
        assert!(s.iter().all(|r| !r.is_empty()));
        assert_eq!(s.last().unwrap().end, 3);
        let s = split(2, &[1, 1, 1, 1]);
        assert_eq!(s.len(), 2);
    }
}
