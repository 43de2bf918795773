//! Helpers shared by the integration tests of the Tessera crates (a dev-dependency only).
//!
//! - [`net`]: layer and network builders (a conv, a pool, a network from layers, YOLOv2's
//!   fused prefix).
//! - [`strips`]: a [`StripStore`](tessera_core::exec::StripStore) in a hash map.
//! - [`port`]: a TCP port the OS just handed out (port 0), so parallel test binaries never
//!   pick the same one.

pub mod net;
pub mod port;
pub mod strips;

pub use net::{conv, network, pool, yolo16};
pub use port::free_port;
pub use strips::MapStore;
