//! The integration tests of `tessera-core`, one module per file beside this one, built as one
//! test binary (see `autotests` in `core/Cargo.toml`). Each file tests one part through the
//! public API only; `cargo test -p tessera-core FILTER` runs a part by its module name (e.g.
//! `ftp_yolo::`).

mod cfg;
mod code_dispatch;
mod code_payload;
mod code_props;
mod coded_runtime;
mod deadline_model;
mod detect_boxes;
mod embed_example;
mod exec_bands;
mod exec_equivalence;
mod exec_errors;
mod footprint;
mod ftp_props;
mod ftp_yolo;
mod modnn;
mod names;
mod portable_kernel;
mod runtime_cluster;
mod runtime_link;
mod runtime_pacing;
mod runtime_protocol;
mod tail_ops;
mod weights;
mod wire_auth;
mod wire_codec;
mod wire_datagram;
mod wire_golden;
mod wire_props;
