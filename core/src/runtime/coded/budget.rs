//! Budgets of the coded stage: the allocators, the round-trip log a per-link delay model is
//! fitted from, the expected quality of a layer under those models, and the quality-aware
//! timeout search.

use crate::code::MAX_SHARDS;
use crate::deadline::recovery::recovered;
use crate::deadline::{FitError, LinkDelay};

use super::{CodedLayerSpec, Protection, MAX_CODED_LAYERS, RTT_WINDOW};

/// Points of the quality-aware timeout search.
const SEARCH_POINTS: usize = 48;

/// How a frame's deadline is turned into per-layer timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// The remaining time split evenly over the layers left.
    Uniform,
    /// Timeouts maximising expected quality under per-link delay models fitted from observed
    /// round trips (uniform until enough are observed).
    QualityAware,
}

/// Round trips observed from one worker for one layer, a ring of the last [`RTT_WINDOW`]
/// (`None`: the result never came while its frame was in the stage).
#[derive(Clone, Copy, Debug)]
pub(super) struct RttLog {
    samples: [Option<f32>; RTT_WINDOW],
    len: u8,
    next: u8,
}

impl RttLog {
    pub(super) const EMPTY: RttLog = RttLog {
        samples: [None; RTT_WINDOW],
        len: 0,
        next: 0,
    };

    /// Logs one round trip (`None`: lost).
    pub(super) fn push(&mut self, s: Option<f32>) {
        self.samples[self.next as usize] = s;
        self.next = ((self.next as usize + 1) % RTT_WINDOW) as u8;
        self.len = (self.len as usize + 1).min(RTT_WINDOW) as u8;
    }

    /// The delay model of the logged round trips, once `min` (at least 2) are logged.
    pub(super) fn fit(&self, min: usize) -> Option<LinkDelay> {
        let mut d = [0.0f64; RTT_WINDOW];
        let mut n = 0;
        let mut lost = 0;
        for s in &self.samples[..self.len as usize] {
            match s {
                Some(v) => {
                    d[n] = f64::from(*v);
                    n += 1;
                }
                None => lost += 1,
            }
        }
        if (self.len as usize) < min.max(2) {
            return None;
        }
        match LinkDelay::fit(&d[..n], lost) {
            Ok(m) => Some(m),
            // A link whose results (almost) never came, or always came after the same delay,
            // has no moment fit, yet it is what the allocator must know about: without a model
            // the quality-aware search fell back to uniform for as long as such a worker stayed
            // in the plan (a dead worker; a fixed-delay link). Model it as a step at the
            // observed delay (1 µs gamma part) with the observed loss; nothing ever delivered
            // is loss 1. (Found by tests/coded_runtime.rs.)
            Err(FitError::TooFewSamples { .. } | FitError::Degenerate) => {
                let loc = d[..n].iter().copied().fold(f64::INFINITY, f64::min);
                Some(LinkDelay {
                    loc: if loc.is_finite() { loc } else { 0.0 },
                    shape: 1.0,
                    scale: 1e-3,
                    loss: lost as f64 / (n + lost) as f64,
                })
            }
            Err(_) => None,
        }
    }
}

/// Expected fraction of `spec`'s output rows delivered within `t` ms when shard `s`'s result
/// arrives with probability `models[s].delivery(t)`, independently.
pub fn expected_quality(spec: &CodedLayerSpec, models: &[LinkDelay], t: f64) -> f64 {
    let code = spec.code();
    let n = spec.shards();
    let mut p = [0.0f64; MAX_SHARDS];
    for (s, m) in models.iter().take(n).enumerate() {
        p[s] = m.delivery(t).clamp(0.0, 1.0);
    }
    let rows = code.rows() as f64;
    let k = code.k();
    let share = |d: usize| code.data_rows(d).map_or(0.0, |r| r.len() as f64 / rows);
    match spec.protection() {
        Protection::Replicated => (0..k)
            .map(|d| share(d) * (1.0 - (1.0 - p[d]) * (1.0 - p[d + k])))
            .sum(),
        Protection::Coded => recovered(&p[..n], k, share),
    }
}

/// The quality-aware search: the timeout (ms) of layer `layer` of `layers`, with `remaining_ms`
/// left in the frame and `models[l][s]` the delay model of shard `s` of layer `l`, that
/// maximises the frame's expected quality when every later layer gets an even share of the
/// rest ([`SEARCH_POINTS`] candidates).
pub(super) fn best_timeout(
    layers: &[CodedLayerSpec],
    models: &[[LinkDelay; MAX_SHARDS]; MAX_CODED_LAYERS],
    remaining_ms: f64,
    layer: usize,
) -> f64 {
    let later = layers.len() - layer - 1;
    let mut best = (f64::NEG_INFINITY, remaining_ms / (later + 1) as f64);
    for p in 1..=SEARCH_POINTS {
        let t = remaining_ms * p as f64 / SEARCH_POINTS as f64;
        let rest = if later == 0 {
            0.0
        } else {
            (remaining_ms - t) / later as f64
        };
        let mut q = expected_quality(&layers[layer], &models[layer], t);
        for (l, spec) in layers.iter().enumerate().skip(layer + 1) {
            q *= expected_quality(spec, &models[l], rest);
        }
        if q > best.0 + 1e-12 {
            best = (q, t);
        }
    }
    best.1
}
