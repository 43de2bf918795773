//! The round trips a per-(worker, layer) delay model is fitted from, and the fit itself.
//!
//! A result that never came is not a loss as such: workers stop a shard at its budget, and a
//! frame's next layer supersedes the previous one's tasks, so most unanswered tasks were cut
//! short, not dropped by the network. Logging them as losses hid every delay beyond the
//! budget in use, so the fitted tail could never justify a longer budget and the chosen
//! timeouts drifted down (docs/loss.md). Each unanswered task is therefore logged as
//! *censored*: its round trip was longer than the time the gateway waited while the shard
//! could still have counted. The fit is a mixture: with probability `λ` a message is lost,
//! otherwise it takes `loc + Gamma(κ, θ)`; an EM on the first two moments splits each
//! censored trip between "lost" and "late" by the current model.

use crate::deadline::gamma::reg_lower;
use crate::deadline::{FitError, LinkDelay};

use super::RTT_WINDOW;

/// Most EM rounds of the censored fit (each is three incomplete-gamma evaluations per
/// censored trip); it stops earlier once a round moves no parameter by more than
/// [`SETTLED`] (relative; absolute for the loss).
const EM_ROUNDS: usize = 24;

/// A round that changes the model less than this ends the EM.
const SETTLED: f64 = 1e-4;

/// Survival below which the tail moments use the gamma's exponential tail (the ratio of two
/// tiny incomplete gammas loses its precision there).
const TINY_TAIL: f64 = 1e-12;

/// One logged round trip, in ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Trip {
    /// The result came after this long.
    Delivered(f32),
    /// No result came; the round trip was longer than this (possibly infinite: lost).
    Censored(f32),
}

/// Round trips observed from one worker for one layer, a ring of the last [`RTT_WINDOW`].
#[derive(Clone, Copy, Debug)]
pub(super) struct RttLog {
    samples: [Trip; RTT_WINDOW],
    len: u8,
    next: u8,
}

impl RttLog {
    pub(super) const EMPTY: RttLog = RttLog {
        samples: [Trip::Censored(0.0); RTT_WINDOW],
        len: 0,
        next: 0,
    };

    /// Logs one round trip.
    pub(super) fn push(&mut self, t: Trip) {
        self.samples[self.next as usize] = t;
        self.next = ((self.next as usize + 1) % RTT_WINDOW) as u8;
        self.len = (self.len as usize + 1).min(RTT_WINDOW) as u8;
    }

    /// The delay model of the logged round trips, once `min` (at least 2) are logged.
    pub(super) fn fit(&self, min: usize) -> Option<LinkDelay> {
        if (self.len as usize) < min.max(2) {
            return None;
        }
        let mut d = [0.0f64; RTT_WINDOW];
        let mut c = [0.0f64; RTT_WINDOW];
        let (mut n, mut m) = (0, 0);
        for s in &self.samples[..self.len as usize] {
            match *s {
                Trip::Delivered(v) => {
                    d[n] = f64::from(v);
                    n += 1;
                }
                Trip::Censored(v) => {
                    c[m] = f64::from(v);
                    m += 1;
                }
            }
        }
        match fit_round_trips(&d[..n], &c[..m]) {
            Ok(model) => Some(model),
            // A link whose results (almost) never came, or always came after the same delay,
            // has no moment fit, yet it is what the allocator must know about: without a model
            // the quality-aware search fell back to uniform for as long as such a worker stayed
            // in the plan (a dead worker; a fixed-delay link). Model it as a step at the
            // observed delay (1 µs gamma part) with every unanswered trip a loss; nothing ever
            // delivered is loss 1. (Found by tests/coded_runtime.rs.)
            Err(FitError::TooFewSamples { .. } | FitError::Degenerate) => {
                let loc = d[..n].iter().copied().fold(f64::INFINITY, f64::min);
                Some(LinkDelay {
                    loc: if loc.is_finite() { loc } else { 0.0 },
                    shape: 1.0,
                    scale: 1e-3,
                    loss: m as f64 / (n + m) as f64,
                })
            }
            Err(_) => None,
        }
    }
}

/// `E[X | X > x]` and `E[X² | X > x]` for `X ~ Gamma(κ, θ)`, `x ≥ 0`, given the survival
/// `q0 = P(X > x)`.
fn tail_moments(shape: f64, scale: f64, x: f64, q0: f64) -> (f64, f64) {
    let z = x / scale;
    if q0 < TINY_TAIL || !q0.is_finite() {
        // Far in the tail the excess over `x` is about exponential with mean θ.
        let m1 = x + scale;
        return (m1, m1 * m1 + scale * scale);
    }
    let q1 = 1.0 - reg_lower(shape + 1.0, z);
    let q2 = 1.0 - reg_lower(shape + 2.0, z);
    let m1 = (shape * scale * q1 / q0).max(x);
    let m2 = (shape * (shape + 1.0) * scale * scale * q2 / q0).max(m1 * m1);
    (m1, m2)
}

/// The delay model of round trips `delivered` (ms) and of trips `censored` (ms: no result came,
/// the trip was longer than that): a loss-and-shifted-gamma mixture (module docs), starting
/// from [`LinkDelay::fit`] with every censored trip a loss. `loc` is the smallest delivered
/// trip. Fails as [`LinkDelay::fit`] does on the delivered trips.
pub fn fit_round_trips(delivered: &[f64], censored: &[f64]) -> Result<LinkDelay, FitError> {
    LinkDelay::fit(delivered, censored.len()).map(|start| fit_censored(start, delivered, censored))
}

/// The EM of [`fit_round_trips`] from `start`. A round that would leave the model undefined
/// ends it with the last good model.
fn fit_censored(start: LinkDelay, d: &[f64], c: &[f64]) -> LinkDelay {
    if c.is_empty() {
        return start;
    }
    let loc = start.loc;
    let (n, m) = (d.len() as f64, c.len() as f64);
    let s1: f64 = d.iter().map(|x| x - loc).sum();
    let s2: f64 = d.iter().map(|x| (x - loc) * (x - loc)).sum();
    let mut model = start;
    for _ in 0..EM_ROUNDS {
        let (mut late, mut e1, mut e2) = (0.0, 0.0, 0.0);
        for &cj in c {
            let x = (cj - loc).max(0.0);
            let q0 = 1.0 - reg_lower(model.shape, x / model.scale);
            let survive = (1.0 - model.loss) * q0;
            let w = if survive + model.loss > 0.0 {
                survive / (survive + model.loss)
            } else {
                0.0
            };
            let (m1, m2) = tail_moments(model.shape, model.scale, x, q0);
            late += w;
            e1 += w * m1;
            e2 += w * m2;
        }
        let weight = n + late;
        let mean = (s1 + e1) / weight;
        let var = (s2 + e2) / weight - mean * mean;
        if !(mean.is_finite() && var.is_finite() && mean > 0.0 && var > 0.0) {
            break;
        }
        let next = LinkDelay {
            loc,
            shape: mean * mean / var,
            scale: var / mean,
            loss: ((m - late) / (n + m)).clamp(0.0, 1.0),
        };
        let settled = (next.shape - model.shape).abs() <= SETTLED * model.shape
            && (next.scale - model.scale).abs() <= SETTLED * model.scale
            && (next.loss - model.loss).abs() <= SETTLED;
        model = next;
        if settled {
            break;
        }
    }
    model
}
