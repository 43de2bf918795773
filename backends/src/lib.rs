//! Tessera backends: bindings of the core to network stacks and platform kernels.
//!
//! - `nal_std` (feature `std`): embedded-nal TCP stack over std sockets.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use embedded_nal;

#[cfg(feature = "std")]
pub mod nal_std;
