//! Tessera on Linux devices (Raspberry Pi 3 class): model files, images, the single-machine
//! tiled runner and the `tessera` command's subcommands.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod bench_cluster;
pub mod check;
pub mod coded_demo;
pub mod config;
pub mod demo;
pub mod detect;
pub mod drop_log;
pub mod files;
pub mod image;
pub mod keygen;
pub mod layers;
pub mod nodes;
pub mod result_file;
pub mod signals;
