//! Tessera core: the allocation-free, `no_std` heart of a distributed CNN runtime.
//!
//! It describes a Darknet network ([`model`]), partitions the first fused layers into tiles with
//! Fused Tile Partitioning ([`ftp`]), and runs tile convolutions into caller-owned buffers
//! ([`kernel`], [`exec`]). Nothing here allocates, reads a clock or touches a socket: platform
//! crates own memory, time and I/O.
#![no_std]
#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod code;
pub mod deadline;
pub mod detect;
pub mod exec;
pub mod ftp;
pub mod kernel;
pub mod model;
pub mod region;
pub mod rng;
pub mod round;
pub mod runtime;
pub mod tensor;
pub mod time;
pub mod wire;

pub use region::{Region, Span};
