//! Tessera simulator: the core gateway/edge state machines and the backends driver (the code
//! platform-pi runs) over smoltcp interfaces on a simulated, seeded network, in virtual time.
//!
//! - [`rng`]: seeded generators and the gamma delay sampler.
//! - [`medium`]: link model (shared WiFi channel or switched Ethernet), presets, loss, outages.
//! - [`device`]: the smoltcp device of a node on that medium.
//! - [`compute`]: the executor in virtual time (real kernels or the FLOP cost model).
//! - [`models`]: YOLOv2's fused layers and a small net for real kernels; [`pictures`]: the
//!   bundled JPEGs a camera ships when the run models the real node's bytes.
//! - [`job_clock`]: a node's running job in virtual time (shared by both executors).
//! - [`fault`]: scripted crashes, stragglers, loss bursts and link outages.
//! - `interfaces`: each node's smoltcp interface and link configuration.
//! - `sim_core`: the event loop both worlds share: clock, packets in flight, faults, node
//!   stepping, the trace hash.
//! - [`world`]: clusters of FTP nodes (`backends::driver`) and their cameras on that loop.
//! - [`coded_world`]: the coded (CDC) stage's gateway and workers (`backends::coded`) on the
//!   same loop.
//! - [`cdc`], [`digits`]: the coded-computing experiments and the digits MLP.
//! - [`scenario`]: TOML scenario files.
//! - [`targets`]: issue 14's latency targets (papers' rate and our NEON kernel's Pi 3 rate).
//! - [`report`]: the HTML report pages; [`calibration`]: the testbed's calibration rows it
//!   can include.
#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod calibration;
pub mod cdc;
pub mod coded_world;
pub mod compute;
pub mod device;
pub mod digits;
pub mod experiments;
pub mod fault;
mod interfaces;
pub mod job_clock;
pub mod medium;
pub mod models;
pub mod pictures;
pub mod report;
pub mod rng;
pub mod scenario;
mod sim_core;
pub mod targets;
pub mod timeline;
pub mod world;
