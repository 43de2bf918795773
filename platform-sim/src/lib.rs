//! Tessera simulator: runs the core state machines over a simulated network.
//!
//! Empty for now: the simulator arrives with its own issue.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
