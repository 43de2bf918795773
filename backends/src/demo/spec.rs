//! What `tessera demo` runs ([`DemoSpec`]): the cluster, its frames, the tail and the faults,
//! checked before anything slow starts.

extern crate alloc;
extern crate std;

use alloc::string::String;
use std::path::PathBuf;
use std::time::Duration;

use tessera_core::ftp::GridShape;
use tessera_core::runtime::MAX_EDGES;
use tessera_core::wire::{NodeId, Policy};

use super::DemoError;
use crate::coded::tail::TailScheme;
use crate::coded::LayerScheme;
use crate::fault_spec::FaultSpec;
use crate::local::Faults;
use crate::pipeline::KernelChoice;

/// A demo run: a gateway and `edges` edges on 127.0.0.x, frames from `sources` of them.
#[derive(Clone, Debug)]
pub struct DemoSpec<'a> {
    /// Number of edges (ids `1..=edges`).
    pub edges: u16,
    /// Scheduling policy.
    pub policy: Policy,
    /// Tile grid.
    pub grid: GridShape,
    /// Frames to run (the pictures are cycled).
    pub frames: usize,
    /// Data sources: edges `1..=sources`.
    pub sources: u16,
    /// Darknet cfg (`None`: the built-in YOLOv2-608).
    pub cfg: Option<PathBuf>,
    /// Seed of the generated weights.
    pub seed: u64,
    /// Conv kernel of every node.
    pub kernel: KernelChoice,
    /// No authentication (measurements only).
    pub insecure: bool,
    /// Port every node listens on, each at its own 127.0.0.x address.
    pub port: u16,
    /// Fused layers only: no tail, no boxes.
    pub no_tail: bool,
    /// Longest wait for all frames.
    pub timeout: Duration,
    /// Run the tail's convolutions coded across the edges with this scheme.
    pub coded_tail: Option<TailScheme>,
    /// A coded tail's frame deadline.
    pub coded_deadline: Duration,
    /// A coded tail's wait for data shards once parity could decode.
    pub coded_grace: Duration,
    /// `ID@SECS`: stop edge ID after SECS seconds.
    pub kill: Option<&'a str>,
    /// `ID:F`: edge ID runs F times slower.
    pub slow: &'a [String],
    /// Edges not started.
    pub absent: &'a [NodeId],
}

/// The key every demo node shares (a demo, not a deployment: it is public).
pub(super) const DEMO_KEY: [u8; 32] = *b"tessera-demo-key-not-for-fields!";

impl DemoSpec<'_> {
    /// The run's faults and coded layer scheme, once the counts are checked: the errors a
    /// user can make, found before the (slow) weight generation.
    pub(super) fn check(&self) -> Result<(Faults, Option<LayerScheme>), DemoError> {
        if self.edges == 0 || self.edges as usize > MAX_EDGES {
            return Err(DemoError::Edges {
                edges: self.edges,
                max: MAX_EDGES,
            });
        }
        if self.sources == 0 || self.sources > self.edges {
            return Err(DemoError::Sources {
                sources: self.sources,
                edges: self.edges,
            });
        }
        let faults = FaultSpec {
            kill: self.kill,
            slow: self.slow,
            absent: self.absent,
            edges: self.edges,
            sources: self.sources,
        }
        .faults()?;
        let split = match (self.coded_tail, self.no_tail) {
            (Some(_), true) => return Err(DemoError::CodedWithoutTail),
            (Some(scheme), false) => Some(scheme.layer_scheme(self.edges as usize)?),
            (None, _) => None,
        };
        Ok((faults, split))
    }

    /// The cluster key, `None` when insecure.
    pub(super) fn key(&self) -> Option<[u8; 32]> {
        (!self.insecure).then_some(DEMO_KEY)
    }

    /// The line the run starts with.
    pub(super) fn start_line(&self) -> String {
        alloc::format!(
            "demo: gateway + {} edges on 127.0.0.1..{} port {}, {:?}, grid {}, {:?} kernel, {} frames from {} source(s){}\n",
            self.edges,
            1 + self.edges,
            self.port,
            self.policy,
            self.grid,
            self.kernel,
            self.frames,
            self.sources,
            if self.insecure {
                ", INSECURE (no authentication)"
            } else {
                ", authenticated"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn spec() -> DemoSpec<'static> {
        DemoSpec {
            edges: 3,
            policy: Policy::WstS,
            grid: GridShape { rows: 3, cols: 3 },
            frames: 1,
            sources: 1,
            cfg: None,
            seed: 1,
            kernel: KernelChoice::Portable,
            insecure: false,
            port: 7700,
            no_tail: false,
            timeout: Duration::from_secs(1),
            coded_tail: None,
            coded_deadline: Duration::from_secs(1),
            coded_grace: Duration::ZERO,
            kill: None,
            slow: &[],
            absent: &[],
        }
    }

    #[test]
    fn counts_schemes_and_faults_are_checked_before_anything_runs() {
        assert!(spec().check().is_ok());
        let e = DemoSpec { edges: 0, ..spec() }.check().unwrap_err();
        assert!(
            matches!(
                e,
                DemoError::Edges {
                    edges: 0,
                    max: MAX_EDGES
                }
            ),
            "{e}"
        );
        let e = DemoSpec {
            sources: 4,
            ..spec()
        }
        .check()
        .unwrap_err();
        assert_eq!(e.to_string(), "demo: --sources 4 outside 1..=3");
        let both = DemoSpec {
            coded_tail: Some(TailScheme::Cdc(1)),
            no_tail: true,
            ..spec()
        };
        assert!(matches!(both.check(), Err(DemoError::CodedWithoutTail)));
        let wide = DemoSpec {
            coded_tail: Some(TailScheme::Cdc(3)),
            ..spec()
        };
        assert!(matches!(wide.check(), Err(DemoError::Scheme(_))));
        let (_, split) = DemoSpec {
            coded_tail: Some(TailScheme::Cdc(1)),
            ..spec()
        }
        .check()
        .unwrap();
        assert_eq!(split.map(|s| (s.k, s.r)), Some((2, 1)));
        let killed = DemoSpec {
            kill: Some("9@1"),
            ..spec()
        };
        assert!(matches!(killed.check(), Err(DemoError::Faults(_))));
    }

    #[test]
    fn the_key_goes_with_authentication() {
        assert_eq!(spec().key(), Some(DEMO_KEY));
        assert_eq!(
            DemoSpec {
                insecure: true,
                ..spec()
            }
            .key(),
            None
        );
        assert!(DemoSpec {
            insecure: true,
            ..spec()
        }
        .start_line()
        .contains("INSECURE"));
    }
}
