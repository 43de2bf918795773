//! The integration tests of `tessera-backends`, one module per file beside this one, built as
//! one test binary (see `autotests` in `backends/Cargo.toml`); `log_lines.rs` and
//! `kernel_workers.rs` are binaries of their own. `cargo test -p tessera-backends FILTER` runs
//! a part by its module name (e.g. `winograd::`).

/// Helpers of the loopback and pipeline tests, compiled where one of them is.
#[cfg(any(feature = "std", all(feature = "alloc", feature = "simd")))]
mod common;

mod cluster;
mod coded_cluster;
mod coded_datagram;
mod coded_queue;
mod coded_worker_model;
mod demo;
mod dgram_endpoint;
mod dgram_smoltcp;
mod fma_kernels;
mod link;
mod link_guard;
mod link_handshake_replay;
mod link_io;
mod link_strips;
mod picture_digest;
mod pipeline;
mod send_refused;
mod transport_loss;
mod weights_prefix;
mod winograd;
mod winograd_cluster;
