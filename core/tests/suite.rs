//! The integration tests of `tessera-core`, one module per file beside this one, built as one
//! test binary (see `autotests` in `core/Cargo.toml`). Each file tests one part through the
//! public API only; `cargo test -p tessera-core FILTER` runs a part by its module name (e.g.
//! `ftp_yolo::`).

#[path = "cfg.rs"]
mod cfg;

#[path = "code_dispatch.rs"]
mod code_dispatch;

#[path = "code_payload.rs"]
mod code_payload;

#[path = "code_props.rs"]
mod code_props;

#[path = "coded_runtime.rs"]
mod coded_runtime;

#[path = "deadline_model.rs"]
mod deadline_model;

#[path = "detect_boxes.rs"]
mod detect_boxes;

#[path = "embed_example.rs"]
mod embed_example;

#[path = "exec_bands.rs"]
mod exec_bands;

#[path = "exec_equivalence.rs"]
mod exec_equivalence;

#[path = "exec_errors.rs"]
mod exec_errors;

#[path = "footprint.rs"]
mod footprint;

#[path = "ftp_props.rs"]
mod ftp_props;

#[path = "ftp_yolo.rs"]
mod ftp_yolo;

#[path = "modnn.rs"]
mod modnn;

#[path = "names.rs"]
mod names;

#[path = "portable_kernel.rs"]
mod portable_kernel;

#[path = "runtime_cluster.rs"]
mod runtime_cluster;

#[path = "runtime_link.rs"]
mod runtime_link;

#[path = "runtime_pacing.rs"]
mod runtime_pacing;

#[path = "runtime_protocol.rs"]
mod runtime_protocol;

#[path = "tail_ops.rs"]
mod tail_ops;

#[path = "weights.rs"]
mod weights;

#[path = "wire_auth.rs"]
mod wire_auth;

#[path = "wire_codec.rs"]
mod wire_codec;

#[path = "wire_datagram.rs"]
mod wire_datagram;

#[path = "wire_golden.rs"]
mod wire_golden;

#[path = "wire_props.rs"]
mod wire_props;
