//! Tessera backends: bindings of the core to network stacks and platform kernels.
//!
//! Empty for now: the std socket and smoltcp adapters arrive with the distributed runtime.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
