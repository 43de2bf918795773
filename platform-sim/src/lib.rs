//! Tessera simulator: the core gateway/edge state machines and the backends driver (the code
//! platform-pi runs) over smoltcp interfaces on a simulated, seeded network, in virtual time.
//!
//! - [`rng`]: seeded generators and the gamma delay sampler.
//! - [`medium`]: link model (shared WiFi channel or switched Ethernet), presets, loss, outages.
//! - [`device`]: the smoltcp device of a node on that medium.
//! - [`compute`]: the executor in virtual time (real kernels or the FLOP cost model).
//! - [`models`]: YOLOv2's fused layers and a small net for real kernels.
//! - [`world`]: the event loop, faults, the trace hash.
//! - [`coded_world`]: the coded (CDC) stage's gateway and workers (`backends::coded`) on the
//!   same medium, in virtual time.
//! - [`cdc`], [`digits`]: the coded-computing experiments and the digits MLP.
//! - [`scenario`]: TOML scenario files.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cdc;
pub mod coded_world;
pub mod compute;
pub mod device;
pub mod digits;
pub mod experiments;
pub mod medium;
pub mod models;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod world;
