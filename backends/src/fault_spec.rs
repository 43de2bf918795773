//! Faults of a local run as `tessera demo` spells them ([`FaultSpec`]): `--kill ID@SECS`,
//! `--slow ID:FACTOR` (repeatable), `--absent ID` (repeatable), checked against the cluster's
//! edges and data sources before anything starts.

extern crate alloc;
extern crate std;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::time::Duration;

use tessera_core::wire::NodeId;

use crate::local::Faults;

/// The faults as given, before they are checked.
#[derive(Clone, Copy, Debug)]
pub struct FaultSpec<'a> {
    /// `ID@SECS`: stop edge ID SECS seconds after the start.
    pub kill: Option<&'a str>,
    /// `ID:FACTOR`: edge ID runs FACTOR (≥ 1) times slower.
    pub slow: &'a [String],
    /// Edges not started.
    pub absent: &'a [NodeId],
    /// Edges of the cluster (ids `1..=edges`).
    pub edges: u16,
    /// Data sources (edges `1..=sources`), which may not be killed or absent.
    pub sources: u16,
}

/// Why faults were refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// Not `ID@SECS` with an edge id and finite, non-negative seconds.
    #[error("reading --kill: '{text}' is not ID@SECS with an edge ID 1..={edges}")]
    Kill {
        /// The text given.
        text: String,
        /// Edges of the cluster.
        edges: u16,
    },
    /// Not `ID:FACTOR` with an edge id and a finite factor ≥ 1.
    #[error(
        "reading --slow: '{text}' is not ID:FACTOR with an edge ID 1..={edges} and FACTOR >= 1"
    )]
    Slow {
        /// The text given.
        text: String,
        /// Edges of the cluster.
        edges: u16,
    },
    /// An absent id that is no edge.
    #[error("reading --absent: {id} is not an edge ID 1..={edges}")]
    Absent {
        /// The id given.
        id: NodeId,
        /// Edges of the cluster.
        edges: u16,
    },
    /// A data source killed or absent (its frames would never start).
    #[error("edge {id} is a data source (1..={sources}): it cannot be killed or absent")]
    Source {
        /// The edge.
        id: NodeId,
        /// Data sources of the cluster.
        sources: u16,
    },
}

/// `ID<sep>VALUE` with an edge id `1..=edges` and a value `ok` accepts.
fn pair(text: &str, sep: char, edges: u16, ok: impl Fn(f64) -> bool) -> Option<(NodeId, f64)> {
    let (id, v) = text.split_once(sep)?;
    let id: NodeId = id.trim().parse().ok()?;
    let v: f64 = v.trim().parse().ok()?;
    ((1..=edges).contains(&id) && v.is_finite() && ok(v)).then_some((id, v))
}

impl FaultSpec<'_> {
    /// The faults, checked.
    pub fn faults(&self) -> Result<Faults, FaultError> {
        let edges = self.edges;
        let kill = match self.kill {
            Some(text) => {
                let (id, secs) = pair(text, '@', edges, |s| s >= 0.0).ok_or(FaultError::Kill {
                    text: text.to_string(),
                    edges,
                })?;
                Some((id, Duration::from_secs_f64(secs)))
            }
            None => None,
        };
        let slow = self
            .slow
            .iter()
            .map(|text| {
                pair(text, ':', edges, |f| f >= 1.0).ok_or(FaultError::Slow {
                    text: text.clone(),
                    edges,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(&id) = self.absent.iter().find(|id| !(1..=edges).contains(id)) {
            return Err(FaultError::Absent { id, edges });
        }
        let hit = kill.iter().map(|k| k.0).chain(self.absent.iter().copied());
        if let Some(id) = hit.into_iter().find(|&id| id <= self.sources) {
            return Err(FaultError::Source {
                id,
                sources: self.sources,
            });
        }
        Ok(Faults {
            slow,
            kill,
            absent: self.absent.to_vec(),
            ..Faults::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn spec<'a>(kill: Option<&'a str>, slow: &'a [String], absent: &'a [NodeId]) -> FaultSpec<'a> {
        FaultSpec {
            kill,
            slow,
            absent,
            edges: 3,
            sources: 1,
        }
    }

    #[test]
    fn reads_kills_stragglers_and_absent_edges() {
        let slow = vec!["2:2.5".to_string()];
        let f = spec(Some("3@1.5"), &slow, &[2]).faults().unwrap();
        assert_eq!(f.kill, Some((3, Duration::from_millis(1500))));
        assert_eq!(f.slow, vec![(2, 2.5)]);
        assert_eq!(f.absent, vec![2]);
    }

    #[test]
    fn refuses_what_cannot_be_run() {
        let none: &[String] = &[];
        for bad in ["9@1", "3@-1", "3", "x@1", "3@inf"] {
            let e = spec(Some(bad), none, &[]).faults().unwrap_err();
            assert!(matches!(e, FaultError::Kill { .. }), "{bad}: {e}");
        }
        for bad in ["2:0.5", "2", "0:2", "2:nan"] {
            let slow = vec![bad.to_string()];
            let e = spec(None, &slow, &[]).faults().unwrap_err();
            assert!(e.to_string().starts_with("reading --slow"), "{bad}: {e}");
        }
        assert_eq!(
            spec(None, none, &[4]).faults().unwrap_err(),
            FaultError::Absent { id: 4, edges: 3 }
        );
        let e = spec(Some("1@0.5"), none, &[]).faults().unwrap_err();
        assert!(e.to_string().contains("data source"), "{e}");
        assert!(matches!(
            spec(None, none, &[1]).faults(),
            Err(FaultError::Source { id: 1, .. })
        ));
    }
}
