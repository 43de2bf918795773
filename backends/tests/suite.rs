//! The integration tests of `tessera-backends`, one module per file beside this one, built as
//! one test binary (see `autotests` in `backends/Cargo.toml`); `log_lines.rs` and
//! `kernel_workers.rs` are binaries of their own. `cargo test -p tessera-backends FILTER` runs
//! a part by its module name (e.g. `winograd::`).

/// Helpers of the loopback and pipeline tests, compiled where one of them is.
#[cfg(any(feature = "std", all(feature = "alloc", feature = "simd")))]
mod common;

#[path = "cluster.rs"]
mod cluster;

#[path = "coded_cluster.rs"]
mod coded_cluster;

#[path = "coded_datagram.rs"]
mod coded_datagram;

#[path = "coded_queue.rs"]
mod coded_queue;

#[path = "coded_worker_model.rs"]
mod coded_worker_model;

#[path = "demo.rs"]
mod demo;

#[path = "dgram_endpoint.rs"]
mod dgram_endpoint;

#[path = "dgram_smoltcp.rs"]
mod dgram_smoltcp;

#[path = "fma_kernels.rs"]
mod fma_kernels;

#[path = "link.rs"]
mod link;

#[path = "link_guard.rs"]
mod link_guard;

#[path = "link_handshake_replay.rs"]
mod link_handshake_replay;

#[path = "link_io.rs"]
mod link_io;

#[path = "link_strips.rs"]
mod link_strips;

#[path = "picture_digest.rs"]
mod picture_digest;

#[path = "pipeline.rs"]
mod pipeline;

#[path = "send_refused.rs"]
mod send_refused;

#[path = "transport_loss.rs"]
mod transport_loss;

#[path = "weights_prefix.rs"]
mod weights_prefix;

#[path = "winograd.rs"]
mod winograd;

#[path = "winograd_cluster.rs"]
mod winograd_cluster;
