//! A development knob that makes a node lose some of its own datagrams on purpose
//! ([`DevLoss`], from the environment variable [`DEV_LOSS_VAR`]): the real-process tests of
//! the datagram path use it to show coded recovery under loss without a lossy network. Never
//! for a deployment; a node using it says so on stderr when it starts.

extern crate alloc;
extern crate std;

use alloc::string::{String, ToString};

/// The variable: `P` (a fraction in `[0, 1]` of this node's outgoing datagrams dropped) or
/// `P:SEED` (the draws' seed; by default the node's id).
pub const DEV_LOSS_VAR: &str = "TESSERA_DEV_DGRAM_LOSS";

/// Seeded loss on a node's outgoing datagrams (see [`crate::dgram::LossyUdp`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DevLoss {
    /// Fraction of datagrams dropped.
    pub loss: f64,
    /// Seed of the draws (`None`: the node's id).
    pub seed: Option<u64>,
}

/// A value of [`DEV_LOSS_VAR`] that is not `P` or `P:SEED`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{DEV_LOSS_VAR}={0}: expected P or P:SEED, P a fraction in 0..=1 (e.g. 0.1:7)")]
pub struct DevLossError(pub String);

impl DevLoss {
    /// Parses `P` or `P:SEED`.
    pub fn parse(s: &str) -> Result<DevLoss, DevLossError> {
        let bad = || DevLossError(s.to_string());
        let (p, seed) = match s.split_once(':') {
            Some((p, seed)) => (p, Some(seed.trim().parse::<u64>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let loss: f64 = p.trim().parse().map_err(|_| bad())?;
        if !(0.0..=1.0).contains(&loss) {
            return Err(bad());
        }
        Ok(DevLoss { loss, seed })
    }

    /// The knob as the environment sets it (`None`: unset or empty).
    pub fn from_env() -> Result<Option<DevLoss>, DevLossError> {
        match std::env::var(DEV_LOSS_VAR) {
            Ok(v) if !v.trim().is_empty() => DevLoss::parse(&v).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(DevLossError(v.to_string_lossy().into_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_and_seeds_parse_and_anything_else_is_named() {
        assert_eq!(
            DevLoss::parse("0.25").unwrap(),
            DevLoss {
                loss: 0.25,
                seed: None
            }
        );
        assert_eq!(
            DevLoss::parse("1:9").unwrap(),
            DevLoss {
                loss: 1.0,
                seed: Some(9)
            }
        );
        for bad in ["", "x", "1.5", "-0.1", "0.1:", "0.1:x", "NaN"] {
            let e = DevLoss::parse(bad).unwrap_err();
            assert!(e.to_string().contains("expected P or P:SEED"), "{bad}: {e}");
        }
    }
}
