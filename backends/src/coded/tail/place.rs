//! Where a cluster runs the layers after the fused ones ([`TailPlace`], a cluster file's
//! `tail`): on the gateway, or coded across the edges with a [`TailScheme`].

extern crate alloc;

use alloc::string::{String, ToString};
use core::fmt;
use core::str::FromStr;

use super::TailScheme;

/// Where the tail runs: `gateway`, or a coded scheme spelt as `--coded-tail` spells it
/// (`cdc:R`, `2mr`, `uncoded`), every edge a worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TailPlace {
    /// The whole tail on the gateway.
    #[default]
    Gateway,
    /// The tail's convolutions coded across the edges; the rest (pools, routes, reorg,
    /// region) on the gateway.
    Coded(TailScheme),
}

/// A `tail` value that is neither `gateway` nor a coded scheme.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown tail '{0}': use gateway, cdc:R (R parity shards, R >= 1), 2mr or uncoded")]
pub struct PlaceError(pub String);

impl FromStr for TailPlace {
    type Err = PlaceError;

    fn from_str(s: &str) -> Result<TailPlace, PlaceError> {
        match s {
            "gateway" => Ok(TailPlace::Gateway),
            _ => s
                .parse()
                .map(TailPlace::Coded)
                .map_err(|_| PlaceError(s.to_string())),
        }
    }
}

impl fmt::Display for TailPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TailPlace::Gateway => f.write_str("gateway"),
            TailPlace::Coded(s) => write!(f, "{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_as_the_demo_does() {
        for s in ["gateway", "cdc:1", "cdc:2", "2mr", "uncoded"] {
            let p: TailPlace = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        assert_eq!("cdc:1".parse(), Ok(TailPlace::Coded(TailScheme::Cdc(1))));
        for bad in ["", "edge", "cdc:0", "Gateway"] {
            let e = bad.parse::<TailPlace>().unwrap_err();
            assert_eq!(e, PlaceError(bad.to_string()));
            assert!(e.to_string().contains("use gateway, cdc:R"), "{e}");
        }
    }
}
