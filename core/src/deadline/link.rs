//! One channel's network delay distribution (NDD): `D = loc + Gamma(κ, θ)` with independent
//! loss `λ`; delivery probability `π(δ) = (1 − λ)·F_Γ((δ − loc)/θ; κ)` (docs/design.md §7.1).
//! Times are `f64` milliseconds.

use core::fmt;

use super::gamma;
use crate::rng::SplitMix64;

/// Per-link delay model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkDelay {
    /// Minimum delay (ms).
    pub loc: f64,
    /// Gamma shape `κ`.
    pub shape: f64,
    /// Gamma scale `θ` (ms).
    pub scale: f64,
    /// Loss probability `λ` in `[0, 1]`.
    pub loss: f64,
}

/// Why a delay model could not be fitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FitError {
    /// Fewer than two delivered samples.
    TooFewSamples {
        /// Delivered samples given.
        have: usize,
    },
    /// A sample is negative, infinite or NaN.
    BadSample {
        /// Its index.
        index: usize,
    },
    /// All delays are equal: the gamma part has zero variance.
    Degenerate,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FitError::TooFewSamples { have } => {
                write!(f, "{have} delivered samples; at least 2 needed")
            }
            FitError::BadSample { index } => write!(f, "sample {index} is not a finite delay"),
            FitError::Degenerate => f.write_str("all delays are equal"),
        }
    }
}

impl core::error::Error for FitError {}

impl LinkDelay {
    /// The reference NN link of QLA-RTS (docs/design.md §7.1): shape 2, scale 1 ms, no offset,
    /// 1 % loss.
    pub const REFERENCE: LinkDelay = LinkDelay {
        loc: 0.0,
        shape: 2.0,
        scale: 1.0,
        loss: 0.01,
    };

    /// Probability that a message is delivered within `delta` ms: `(1 − λ)·F(δ − loc)`.
    pub fn delivery(&self, delta: f64) -> f64 {
        (1.0 - self.loss) * gamma::cdf(self.shape, self.scale, delta - self.loc)
    }

    /// `dπ/dδ = (1 − λ)·f(δ − loc)`.
    pub fn delivery_density(&self, delta: f64) -> f64 {
        (1.0 - self.loss) * gamma::pdf(self.shape, self.scale, delta - self.loc)
    }

    /// Delay quantile `q` of a delivered message (loss ignored).
    pub fn quantile(&self, q: f64) -> f64 {
        self.loc + gamma::quantile(self.shape, self.scale, q)
    }

    /// Mean delay of a delivered message.
    pub fn mean(&self) -> f64 {
        self.loc + self.shape * self.scale
    }

    /// One message: `Some(delay)` or `None` if lost.
    pub fn sample(&self, rng: &mut SplitMix64) -> Option<f64> {
        if rng.bernoulli(self.loss) {
            None
        } else {
            Some(self.loc + gamma::sample(self.shape, self.scale, rng))
        }
    }

    /// Method-of-moments fit from observed delays (round trips or one-way), `lost` of the
    /// `delays.len() + lost` messages never returning: `loc` = minimum, then
    /// `κ = mean²/var` and `θ = var/mean` of `D − loc`, `λ = lost / total`.
    pub fn fit(delays: &[f64], lost: usize) -> Result<LinkDelay, FitError> {
        if delays.len() < 2 {
            return Err(FitError::TooFewSamples { have: delays.len() });
        }
        if let Some(index) = delays.iter().position(|d| !d.is_finite() || *d < 0.0) {
            return Err(FitError::BadSample { index });
        }
        let loc = delays.iter().copied().fold(f64::INFINITY, f64::min);
        let n = delays.len() as f64;
        let mean = delays.iter().map(|d| d - loc).sum::<f64>() / n;
        let var = delays
            .iter()
            .map(|d| (d - loc - mean) * (d - loc - mean))
            .sum::<f64>()
            / (n - 1.0);
        if var.is_nan() || var <= 0.0 || mean.is_nan() || mean <= 0.0 {
            return Err(FitError::Degenerate);
        }
        Ok(LinkDelay {
            loc,
            shape: mean * mean / var,
            scale: var / mean,
            loss: lost as f64 / (n + lost as f64),
        })
    }
}
