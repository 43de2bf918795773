//! Tessera's network testbed: every node a real `tessera gateway` / `tessera edge` process in
//! its own network namespace, the namespaces joined by a bridge (the access point) over
//! veth pairs shaped with `tc` from the simulator's network presets, faults applied from the
//! simulator's scenario files (so one file drives both), results written as CSV.
//!
//! A binary rather than a script: it reads scenario files with the simulator's own parser
//! and presets (no second reading of the format to drift), runs the simulator in-process for
//! calibration, and keeps cleanup in `Drop` guards that run on every error path.
//!
//! - [`names`]: namespace, interface, address and cgroup names of one instance (its tag).
//! - [`cmd`]: running `ip`, `tc`, `nft`, `ethtool`, `ss`, `kill` with typed errors.
//! - [`netns`]: building and removing the cell; interface counters; established links.
//! - [`shape`]: token buckets from a network preset (shared WiFi channel or switched Ethernet).
//! - [`filter`]: loss, link outages and a crashed node's silence as nftables rules.
//! - [`cgroup`]: a device's compute rate as a CPU quota on each node's compute thread.
//! - [`process`]: a node's process, its signals and its `/proc` usage.
//! - [`timeline`]: a scenario's faults as timed actions.
//! - [`cluster_file`]: the cluster file the nodes read.
//! - [`logs`]: frames as the nodes printed them.
//! - [`record`]: CSV rows.
//! - [`run`]: one scenario, start to cleanup.
//! - [`calibrate`]: the same scenarios in the simulator and the testbed, compared.
#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod calibrate;
pub mod cgroup;
pub mod cluster_file;
pub mod cmd;
pub mod filter;
pub mod logs;
pub mod names;
pub mod netns;
pub mod process;
pub mod record;
pub mod run;
pub mod shape;
pub mod timeline;
