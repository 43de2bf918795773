//! Helpers shared by the integration tests of the Tessera crates (a dev-dependency only).
//!
//! - [`conv_layer`]: one conv layer with random parameters and input, run on any region.
//! - [`net`]: layer and network builders (a conv, a pool, a network from layers, YOLOv2's
//!   fused prefix).
//! - [`strips`]: a [`StripStore`](tessera_core::exec::StripStore) in a hash map.
//! - [`events`]: the virtual clock and event loop of in-memory clusters.
//! - [`machines`]: driving the runtime's state machines by hand (instants, actions).
//! - [`tiles`]: random fused stacks and their parameters, run tile by tile and stitched.
//! - [`port`]: TCP ports: one the OS just handed out (port 0) for a single address, one free on
//!   every 127.0.0.x of a loopback cluster.

#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod conv_layer;
pub mod events;
pub mod machines;
pub mod net;
pub mod port;
pub mod strips;
pub mod tiles;

pub use events::{run, EventQueue, Stop, World};
pub use net::{conv, network, pool, yolo16};
pub use port::{free_port, loopback_port};
pub use strips::MapStore;
