//! The checks of a run's coded tails summed up ([`CheckSummary`]).

use super::CodedCheck;

/// How a run's coded tails compared with the centralised and plain runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckSummary {
    /// Frames checked.
    pub frames: usize,
    /// Of them, bit-identical to the centralised coded run.
    pub exact: usize,
    /// Of them, with the plain tail's detections.
    pub same_detections: usize,
    /// Largest difference from the centralised coded run.
    pub worst_vs_reference: f64,
    /// Largest difference from the plain tail.
    pub worst_vs_plain: f64,
    /// Layers decoded with parity or replicas standing in for a data shard, over all frames.
    pub recovered_layers: usize,
}

impl CheckSummary {
    /// The summary of `checks`.
    pub fn of(checks: &[CodedCheck]) -> CheckSummary {
        let worst = |f: fn(&CodedCheck) -> f64| checks.iter().map(f).fold(0.0, f64::max);
        CheckSummary {
            frames: checks.len(),
            exact: checks.iter().filter(|c| c.bit_identical).count(),
            same_detections: checks.iter().filter(|c| c.detections_match).count(),
            worst_vs_reference: worst(|c| c.vs_reference),
            worst_vs_plain: worst(|c| c.vs_plain),
            recovered_layers: checks.iter().map(|c| c.recovered_layers).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_worst_cases() {
        let check = |exact: bool, d: f64, recovered: usize| CodedCheck {
            bit_identical: exact,
            vs_reference: d,
            vs_plain: 2.0 * d,
            detections_match: d < 0.5,
            recovered_layers: recovered,
        };
        let s = CheckSummary::of(&[
            check(true, 0.0, 0),
            check(false, 1.0, 2),
            check(false, 0.25, 1),
        ]);
        assert_eq!(
            (s.frames, s.exact, s.same_detections, s.recovered_layers),
            (3, 1, 2, 3)
        );
        assert_eq!((s.worst_vs_reference, s.worst_vs_plain), (1.0, 2.0));
        assert_eq!(CheckSummary::of(&[]).worst_vs_plain, 0.0);
    }
}
