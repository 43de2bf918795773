//! Redundancy schemes of one layer (uncoded, 2MR, CDC) and their order-statistic latency.

use tessera_core::code::replicate;

/// Redundancy schemes of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `k` devices, wait for all.
    Uncoded,
    /// Every device duplicated, wait for one copy of each.
    TwoMr,
    /// `k + r` devices, wait for any `k`.
    Cdc(usize),
}

impl Scheme {
    pub(super) fn name(&self) -> String {
        match self {
            Scheme::Uncoded => "uncoded".into(),
            Scheme::TwoMr => "2MR".into(),
            Scheme::Cdc(r) => format!("CDC r={r}"),
        }
    }
    pub(super) fn devices(&self, k: usize) -> usize {
        match *self {
            Scheme::Uncoded => k,
            Scheme::TwoMr => replicate::devices(k),
            Scheme::Cdc(r) => k + r,
        }
    }
    /// Probability that the layer is complete by `t` for i.i.d. reply CDF value `f = F(t)`.
    pub(super) fn complete_prob(&self, k: usize, f: f64) -> f64 {
        match *self {
            Scheme::Uncoded => f.powi(k as i32),
            Scheme::TwoMr => (1.0 - (1.0 - f) * (1.0 - f)).powi(k as i32),
            Scheme::Cdc(r) => {
                let n = k + r;
                (k..=n)
                    .map(|i| binom(n, i) * f.powi(i as i32) * (1.0 - f).powi((n - i) as i32))
                    .sum()
            }
        }
    }
    /// One Monte Carlo layer latency from `replies` (one per device).
    pub(super) fn latency(&self, k: usize, replies: &mut [f64]) -> f64 {
        match *self {
            Scheme::Uncoded => replies.iter().copied().fold(0.0, f64::max),
            Scheme::TwoMr => (0..k)
                .map(|d| replies[d].min(replies[d + k]))
                .fold(0.0, f64::max),
            Scheme::Cdc(_) => {
                replies.sort_by(f64::total_cmp);
                replies[k - 1]
            }
        }
    }
}

fn binom(n: usize, i: usize) -> f64 {
    (0..i).fold(1.0, |acc, j| acc * (n - j) as f64 / (j + 1) as f64)
}
