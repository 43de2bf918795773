//! Real-time budgets (docs/design.md §7): per-link gamma delay models fitted from observed round
//! trips, the QLA-RTS quality model on a dataflow graph, and two allocators of a frame's
//! deadline into per-exchange timeouts — the uniform-slack baseline and a quality/latency-aware
//! search.
//!
//! Everything is `no_std`, allocation-free, and in `f64` milliseconds; convert a budget to a
//! [`Duration`](crate::time::Duration) with [`budget_duration`].

pub mod alloc;
pub mod gamma;
pub mod graph;
pub mod link;
pub mod recovery;

pub use alloc::{expected_recovery, optimize, uniform, Schedule};
pub use graph::{Actor, Channel, Graph, GraphError};
pub use link::{FitError, LinkDelay};

/// A budget in milliseconds as a timeout (negative and NaN become zero, saturating).
pub fn budget_duration(ms: f64) -> crate::time::Duration {
    let us = if ms.is_nan() || ms <= 0.0 {
        0.0
    } else {
        ms * 1e3
    };
    crate::time::Duration::from_micros(if us >= u64::MAX as f64 {
        u64::MAX
    } else {
        us as u64
    })
}
