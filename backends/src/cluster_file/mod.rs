//! The TOML cluster file (`tessera gateway|edge --cluster`, `tessera check`): one layout,
//! [`ClusterFile`], that both reads (each value with where it was written, so every problem
//! names its line) and writes (the testbed, the memory run and the tests build the value and
//! serialize it). With `simd`, [`Cluster::parse`] validates it into a
//! [`Deployment`](crate::node::Deployment).
//!
//! See `cluster.example.toml` at the repository root for a documented example.

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tessera_core::wire::{NodeId, Policy};

#[cfg(feature = "simd")]
mod validate;
#[cfg(feature = "simd")]
pub use validate::{parse_key, resolve, Cluster, ConfigError, Problem};

#[cfg(all(test, feature = "simd"))]
mod tests;

/// A value and where the file wrote it (byte span; nothing for a file being written).
pub type At<T> = toml::Spanned<T>;

/// `value` for a file being written (no place in any text yet).
pub fn written<T>(value: T) -> At<T> {
    toml::Spanned::new(0..0, value)
}

/// The default timeouts (ms): tile, frame, steal backoff, peer dead, connect.
pub const DEFAULT_TIMEOUTS_MS: [u64; 5] = [10_000, 60_000, 20, 5_000, 2_000];

/// The default coded tail frame deadline and data grace (ms), also `tessera demo`'s.
pub const DEFAULT_TAIL_MS: [u64; 2] = [120_000, 250];

/// The fused layers when the file gives none.
pub const DEFAULT_LAYERS: usize = 16;

/// Most threads a node's convolutions may run on (a cluster file's `threads`): a Pi 3 has 4
/// cores, and the service units allow a node 32 tasks (a gateway's tile and tail kernels each
/// start `threads − 1` workers beside its own threads; an edge's shards share its tiles').
pub const MAX_THREADS: u8 = 8;

/// The generated weights' seed when the file gives none.
pub const DEFAULT_SEED: u64 = 1;

/// A cluster file as written: strings where the file writes names (`policy = "wst-s"`), so a
/// bad one is refused at its line by [`Cluster::parse`]. An absent option takes its default
/// there.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// `wst-s`, `wsh`, `bodp`, ... ([`Policy`]).
    pub policy: At<String>,
    /// Tile grid, `RxC`.
    pub grid: At<String>,
    /// Fused layers ([`DEFAULT_LAYERS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<At<usize>>,
    /// Cluster key, 64 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<At<String>>,
    /// Conv kernel: `auto` (the default), `portable`, `simd` or `winograd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<At<String>>,
    /// Threads each node's convolutions run on (1, the default, up to [`MAX_THREADS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<At<u8>>,
    /// No key: unauthenticated links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<At<bool>>,
    /// Darknet cfg (none: the built-in YOLOv2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cfg: Option<PathBuf>,
    /// Darknet weights (none: generated from `seed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<PathBuf>,
    /// Seed of generated weights ([`DEFAULT_SEED`]).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Where the tail runs: `gateway` (the default) or a coded scheme (`cdc:R`, `2mr`,
    /// `uncoded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail: Option<At<String>>,
    /// A coded tail's frame deadline ([`DEFAULT_TAIL_MS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_deadline_ms: Option<At<u64>>,
    /// A coded tail's data grace ([`DEFAULT_TAIL_MS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_grace_ms: Option<At<u64>>,
    /// A coded tail's transport: `tcp` (the default) or `datagram`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_transport: Option<At<String>>,
    /// Sends of each coded datagram (1 by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_copies: Option<At<u8>>,
    /// Where strips are kept: `local` (the default), `gateway` or `link`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse: Option<At<String>>,
    /// Tile results' wire precision: `f32` (the default), `f16` or `i8`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<At<String>>,
    /// Results an edge keeps ahead (pacing; 0..=8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_ahead: Option<At<u8>>,
    /// Whether an edge steals before it runs dry (pacing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<At<bool>>,
    /// Timeouts ([`FileTimeouts::default`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<FileTimeouts>,
    /// The nodes, any order.
    pub nodes: Vec<FileNode>,
}

/// A cluster file's `[timeouts]`, all in ms.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileTimeouts {
    /// A tile not back this long is sent again.
    pub tile_ms: At<u64>,
    /// A frame not done this long fails.
    pub frame_ms: At<u64>,
    /// Least wait between steal requests.
    pub steal_backoff_ms: At<u64>,
    /// A peer silent this long is down.
    pub peer_dead_ms: At<u64>,
    /// A connect not made this long is abandoned.
    pub connect_ms: At<u64>,
}

impl Default for FileTimeouts {
    /// [`DEFAULT_TIMEOUTS_MS`].
    fn default() -> FileTimeouts {
        let [tile, frame, steal_backoff, peer_dead, connect] = DEFAULT_TIMEOUTS_MS.map(written);
        FileTimeouts {
            tile_ms: tile,
            frame_ms: frame,
            steal_backoff_ms: steal_backoff,
            peer_dead_ms: peer_dead,
            connect_ms: connect,
        }
    }
}

/// A cluster file's `[[nodes]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileNode {
    /// Node id (0: the gateway).
    pub id: At<NodeId>,
    /// `IP:PORT` or `HOST:PORT`.
    pub addr: At<String>,
    /// A data source (edges only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<At<bool>>,
}

impl FileNode {
    /// Node `id` at `addr`, a data source or not.
    pub fn new(id: NodeId, addr: impl core::fmt::Display, source: bool) -> FileNode {
        FileNode {
            id: written(id),
            addr: written(format!("{addr}")),
            source: Some(written(source)),
        }
    }
}

fn default_seed() -> u64 {
    DEFAULT_SEED
}

/// `key` as the 64 hex digits a cluster file's `key` takes.
pub fn key_hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClusterFile {
    /// A file of `policy` on a `grid` (rows, cols) keyed with `key`, over `nodes`; every
    /// other setting absent (its default).
    pub fn new(policy: Policy, grid: (u32, u32), key: &[u8; 32], nodes: Vec<FileNode>) -> Self {
        ClusterFile {
            policy: written(policy.name().into()),
            grid: written(format!("{}x{}", grid.0, grid.1)),
            layers: None,
            key: Some(written(key_hex(key))),
            kernel: None,
            threads: None,
            insecure: None,
            cfg: None,
            weights: None,
            seed: DEFAULT_SEED,
            tail: None,
            tail_deadline_ms: None,
            tail_grace_ms: None,
            tail_transport: None,
            tail_copies: None,
            reuse: None,
            transfer: None,
            results_ahead: None,
            prefetch: None,
            timeouts: None,
            nodes,
        }
    }

    /// The file's TOML text.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}
