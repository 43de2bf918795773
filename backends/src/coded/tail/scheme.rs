//! How the tail's layers are split over the edges ([`TailScheme`], `--coded-tail`).

extern crate alloc;

use alloc::string::{String, ToString};
use core::fmt;
use core::str::FromStr;

use tessera_core::runtime::coded::Protection;

use super::super::LayerScheme;

/// How the tail's layers are split over the edges (`--coded-tail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailScheme {
    /// `cdc:R`: `edges − R` data shards plus `R` parity shards.
    Cdc(usize),
    /// `2mr`: `⌊edges/2⌋` data shards, each computed twice.
    TwoMr,
    /// `uncoded`: one data shard per edge, no protection.
    Uncoded,
}

/// Why a scheme cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemeError {
    /// Not `cdc:R` (R ≥ 1), `2mr` or `uncoded`: the text given.
    Unknown(String),
    /// The scheme needs more edges than there are.
    TooFewEdges {
        /// The scheme.
        scheme: TailScheme,
        /// Edges there are.
        edges: usize,
    },
}

impl fmt::Display for SchemeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemeError::Unknown(s) => write!(
                f,
                "unknown coded tail scheme '{s}': use cdc:R (R parity shards, R >= 1), 2mr or \
                 uncoded"
            ),
            SchemeError::TooFewEdges {
                scheme: TailScheme::Cdc(r),
                edges,
            } => write!(
                f,
                "coded tail cdc:{r} needs more than {r} edges (k = edges − R data shards), \
                 there are {edges}"
            ),
            SchemeError::TooFewEdges { scheme, edges } => write!(
                f,
                "coded tail {scheme} needs 2 or more edges, there are {edges}"
            ),
        }
    }
}

impl core::error::Error for SchemeError {}

impl FromStr for TailScheme {
    type Err = SchemeError;

    fn from_str(s: &str) -> Result<TailScheme, SchemeError> {
        match s {
            "2mr" => Ok(TailScheme::TwoMr),
            "uncoded" => Ok(TailScheme::Uncoded),
            _ => match s.strip_prefix("cdc:").and_then(|r| r.parse::<usize>().ok()) {
                Some(r) if r > 0 => Ok(TailScheme::Cdc(r)),
                _ => Err(SchemeError::Unknown(s.to_string())),
            },
        }
    }
}

impl TailScheme {
    /// Parses `cdc:R`, `2mr` or `uncoded` (as [`str::parse`]; a function for argument parsers).
    pub fn parse(s: &str) -> Result<TailScheme, SchemeError> {
        s.parse()
    }

    /// The split of every tail layer over `edges` workers.
    pub fn layer_scheme(self, edges: usize) -> Result<LayerScheme, SchemeError> {
        let refuse = Err(SchemeError::TooFewEdges {
            scheme: self,
            edges,
        });
        match self {
            TailScheme::Cdc(r) if r >= edges => refuse,
            TailScheme::Cdc(r) => Ok(LayerScheme {
                k: edges - r,
                r,
                protection: Protection::Coded,
            }),
            TailScheme::TwoMr if edges < 2 => refuse,
            TailScheme::TwoMr => Ok(LayerScheme {
                k: edges / 2,
                r: 0,
                protection: Protection::Replicated,
            }),
            TailScheme::Uncoded => Ok(LayerScheme {
                k: edges,
                r: 0,
                protection: Protection::Coded,
            }),
        }
    }
}

impl fmt::Display for TailScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TailScheme::Cdc(r) => write!(f, "cdc:{r}"),
            TailScheme::TwoMr => f.write_str("2mr"),
            TailScheme::Uncoded => f.write_str("uncoded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_splits() {
        assert_eq!("cdc:2".parse(), Ok(TailScheme::Cdc(2)));
        assert_eq!("2mr".parse(), Ok(TailScheme::TwoMr));
        assert_eq!("uncoded".parse(), Ok(TailScheme::Uncoded));
        for bad in ["cdc:0", "cdc:", "cdc:x", "mds", ""] {
            assert_eq!(
                bad.parse::<TailScheme>(),
                Err(SchemeError::Unknown(bad.to_string()))
            );
        }
        assert_eq!(TailScheme::Cdc(1).layer_scheme(3).unwrap().k, 2);
        assert_eq!(TailScheme::TwoMr.layer_scheme(5).unwrap().k, 2);
        assert!(matches!(
            TailScheme::Cdc(3).layer_scheme(3),
            Err(SchemeError::TooFewEdges { edges: 3, .. })
        ));
        assert!(TailScheme::TwoMr.layer_scheme(1).is_err());
    }
}
