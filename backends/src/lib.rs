//! Tessera backends: bindings of the core to network stacks and platform kernels.
//!
//! - `link` (feature `alloc`): authenticated long-lived connections between cluster nodes over
//!   any embedded-nal TCP stack.
//! - `driver` (feature `alloc`): binds the core runtime state machines to a link, tensor
//!   stores and an executor.
//! - `dgram` (feature `alloc`): the datagram transport over any embedded-nal UDP stack
//!   (authenticated, fragmented, deadline-bounded, never retransmitted), and a lossy wrapper.
//! - `coded` (feature `alloc`): the coded (CDC) stage driver: linear layers split into data and
//!   parity shards over workers, decoded at the gateway under a frame deadline; `coded_demo`
//!   (features `std` + `simd`): the stage alone on loopback, as `tessera coded` runs it.
//! - `pipeline` (feature `alloc`): one frame on one machine: the fused stack tile by tile, the
//!   tail, region decoding; the kernel set chosen at run time (feature `simd`).
//! - `nal_std` (feature `std`): embedded-nal TCP and UDP stacks over std sockets; `weights_file`: the
//!   parameters of the layers a node runs, read from a Darknet weights file validated whole.
//! - `cluster_file` (feature `std`): the TOML cluster file's one layout, read and written
//!   (with `simd`, validated into a node's deployment).
//! - `cluster` (features `std` + `simd`): a cluster's description and starting one node of it
//!   on its own threads; `local`: a whole cluster in one process on loopback, with faults and
//!   an optional coded tail, `fault_spec` its faults as the demo spells them; `bench`: the
//!   kernel benchmark's measurements, `kernel_report` their JSON report and `kernel_table`
//!   their table, `kernel_bench` (with `codecs`) the whole `tessera bench kernels`; `transfer_error` (feature `std`): what `f16`/`i8` tile results cost the
//!   fused output and the boxes; `policy_bench`: the policies measured on loopback,
//!   `policy_report` (with `codecs`) their tables, targets and JSON, `cluster_bench` (with
//!   `codecs`) the whole `tessera bench cluster`; `probe`: what
//!   `tessera check` asks a node, `probe_table` the table of the answers, `node_check` every
//!   node of a cluster probed from this machine; `local_report`:
//!   what `tessera demo` prints of a local run; `demo` (features `codecs` + `simd`): the
//!   demo itself, a local run of pictures through the tail to boxes.
//! - `frame_result` (features `alloc` + `simd`): a gateway's final result of a frame (fused
//!   output, the tail run here, or the coded stage's output; then boxes).
//! - `gen_weights` (feature `alloc`): seeded random parameters in Darknet order
//!   (drawn from `tessera_core::rng::SplitMix64`).
//! - `builtin`: the built-in YOLOv2-608 cfg and sample frames; `frame_source` (feature
//!   `std`): where a data-source edge's frames come from (files, a spool directory, a list);
//!   `node_memory` (features `std` + `simd`): peak resident memory of real node processes;
//!   `model_files`: a node's cfg and parameters from files or a seed, `model_fingerprint` the
//!   digest nodes compare in their `Hello`; `weights_writer` (feature `std`): seeded weights
//!   written as a Darknet file.
//! - `annotate` (feature `alloc`): detections drawn on a frame; `detections_json` (feature
//!   `std`): a frame's detections as a JSON report.
//! - `mem_device` (features `alloc` + `smoltcp`): an in-memory smoltcp device for tests and
//!   virtual-time measurements.
//! - `transport_bench` (features `alloc` + `smoltcp`): the TCP link against datagrams under
//!   packet loss, two smoltcp nodes in virtual time (`tessera bench transport`), and
//!   `transport_table` what that command prints.
//! - `kernels` (feature `simd`): FMA conv kernels (AVX2+FMA, NEON), multi-core with `std`,
//!   and Winograd kernels for 3×3 stride-1 convs; `unsafe` is allowed only in its arch
//!   modules. `winograd_report` (features `std` + `simd`): the Winograd kernels' measured
//!   errors and tile overlap; `winograd_bench` (features `codecs` + `simd`): what
//!   `tessera bench winograd` prints of them; `yolo_bench_setup` what both kernel benchmarks
//!   measure on.
#![no_std]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

pub use embedded_nal;

#[cfg(feature = "alloc")]
pub mod annotate;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod bench;
pub mod builtin;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod cluster;
#[cfg(all(feature = "codecs", feature = "simd"))]
pub mod cluster_bench;
#[cfg(feature = "std")]
pub mod cluster_file;
#[cfg(feature = "alloc")]
pub mod coded;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod coded_demo;
#[cfg(all(feature = "codecs", feature = "simd"))]
pub mod demo;
#[cfg(feature = "std")]
pub mod detections_json;
#[cfg(feature = "alloc")]
pub mod dgram;
#[cfg(feature = "alloc")]
pub mod driver;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod fault_spec;
#[cfg(all(feature = "alloc", feature = "simd"))]
pub mod frame_result;
#[cfg(feature = "std")]
pub mod frame_source;
#[cfg(feature = "alloc")]
pub mod gen_weights;
#[cfg(all(feature = "codecs", feature = "simd"))]
pub mod kernel_bench;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod kernel_report;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod kernel_table;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod layer_timer;
#[cfg(feature = "alloc")]
pub mod link;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod local;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod local_report;
#[cfg(all(feature = "alloc", feature = "smoltcp"))]
pub mod mem_device;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod model_files;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod model_fingerprint;
#[cfg(feature = "smoltcp")]
pub mod nal_smoltcp;
#[cfg(feature = "std")]
pub mod nal_std;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod node;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod node_check;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod node_memory;
#[cfg(feature = "alloc")]
pub mod pipeline;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod policy_bench;
#[cfg(all(feature = "codecs", feature = "simd"))]
pub mod policy_report;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod probe;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod probe_table;
#[cfg(feature = "std")]
pub mod transfer_error;
#[cfg(all(feature = "alloc", feature = "smoltcp"))]
pub mod transport_bench;
#[cfg(all(feature = "alloc", feature = "smoltcp"))]
pub mod transport_table;
#[cfg(feature = "std")]
pub mod weights_file;
#[cfg(feature = "std")]
pub mod weights_writer;
#[cfg(all(feature = "codecs", feature = "simd"))]
pub mod winograd_bench;
#[cfg(all(feature = "std", feature = "simd"))]
pub mod winograd_report;
#[cfg(all(feature = "codecs", feature = "simd"))]
pub mod yolo_bench_setup;

#[cfg(feature = "simd")]
pub mod kernels;
