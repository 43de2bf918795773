//! A coded plan: the chain of layers a frame runs through, each with its code, protection and
//! the worker of every shard.

use heapless::Vec;

use crate::code::dispatch::CodedLayer;
use crate::code::{replicate, Code, CodeError, MAX_SHARDS};
use crate::time::{Duration, Instant};
use crate::wire::NodeId;

use super::{CodedError, MAX_CODED_LAYERS};

/// How a layer's output rows are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// `k` data shards plus the code's `r` parity shards (`r = 0`: the uncoded split).
    Coded,
    /// 2MR: every data shard on two workers (`2k` shards), the code's parity unused.
    Replicated,
}

/// One coded layer of a plan: its code, protection and the worker of every shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodedLayerSpec {
    code: Code,
    protection: Protection,
    workers: [NodeId; MAX_SHARDS],
}

impl CodedLayerSpec {
    /// Shard `i` runs on `workers[i]`; `workers.len()` must be `n` ([`Protection::Coded`]) or
    /// `2k` ([`Protection::Replicated`]), at most [`MAX_SHARDS`]; worker ids must not be the
    /// gateway's (0).
    pub fn new(
        code: Code,
        protection: Protection,
        workers: &[NodeId],
    ) -> Result<CodedLayerSpec, CodedError> {
        let need = match protection {
            Protection::Coded => code.n(),
            Protection::Replicated => replicate::devices(code.k()),
        };
        if need > MAX_SHARDS || workers.len() != need {
            return Err(CodedError::Workers {
                need,
                have: workers.len(),
            });
        }
        if workers.contains(&crate::wire::GATEWAY) {
            return Err(CodedError::Workers {
                need,
                have: workers.len(),
            });
        }
        let mut w = [0; MAX_SHARDS];
        w[..need].copy_from_slice(workers);
        Ok(CodedLayerSpec {
            code,
            protection,
            workers: w,
        })
    }

    /// The layer's code.
    pub const fn code(&self) -> &Code {
        &self.code
    }

    /// Coded or replicated.
    pub const fn protection(&self) -> Protection {
        self.protection
    }

    /// Shards sent per frame.
    pub const fn shards(&self) -> usize {
        match self.protection {
            Protection::Coded => self.code.n(),
            Protection::Replicated => replicate::devices(self.code.k()),
        }
    }

    /// The worker of every shard.
    pub fn workers(&self) -> &[NodeId] {
        &self.workers[..self.shards()]
    }

    /// Output rows computed by shard `shard` (its result's length per column).
    pub fn shard_rows(&self, shard: usize) -> Result<usize, CodeError> {
        match self.protection {
            Protection::Coded => self.code.result_rows(shard),
            Protection::Replicated if shard < self.shards() => self
                .code
                .data_rows(replicate::replica_of(&self.code, shard))
                .map(|r| r.len()),
            Protection::Replicated => Err(CodeError::Index {
                index: shard,
                count: self.shards(),
            }),
        }
    }

    /// The dispatch state of this layer for a frame due at `deadline`, shard budgets given.
    pub(super) fn layer(
        &self,
        deadline: Instant,
        budgets: &[Duration],
    ) -> Result<CodedLayer, CodeError> {
        match self.protection {
            Protection::Coded => CodedLayer::new(self.code, deadline, budgets),
            Protection::Replicated => CodedLayer::replicated(self.code, deadline, budgets),
        }
    }
}

/// The coded layers a frame runs through, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodedPlan {
    layers: Vec<CodedLayerSpec, MAX_CODED_LAYERS>,
}

impl CodedPlan {
    /// A plan of `layers` (1 to [`MAX_CODED_LAYERS`]).
    pub fn new(layers: &[CodedLayerSpec]) -> Result<CodedPlan, CodedError> {
        if layers.is_empty() || layers.len() > MAX_CODED_LAYERS {
            return Err(CodedError::Layers { have: layers.len() });
        }
        let mut v = Vec::new();
        for l in layers {
            let _ = v.push(*l);
        }
        Ok(CodedPlan { layers: v })
    }

    /// The layers.
    pub fn layers(&self) -> &[CodedLayerSpec] {
        &self.layers
    }
}
