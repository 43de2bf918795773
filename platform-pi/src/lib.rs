//! Tessera on Linux devices (Raspberry Pi 3 class): the `tessera` command's subcommands over
//! the libraries (`tessera-backends`, `tessera-core`), the cluster file, the node processes'
//! main loops, signals and result files, and images in and out.
#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod bench_cluster;
pub mod bench_kernels;
pub mod bench_transport;
pub mod bench_winograd;
pub mod check;
pub mod coded_demo;
pub mod config;
pub mod demo;
pub mod detect;
pub mod edge;
pub mod files;
pub mod gateway;
pub mod image;
pub mod keygen;
pub mod layers;
pub mod node;
pub mod result_file;
pub mod run_args;
pub mod signals;
