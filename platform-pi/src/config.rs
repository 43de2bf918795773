//! The TOML cluster file: who is in the cluster, where, and how it schedules.
//!
//! See `cluster.example.toml` at the repository root for a documented example. Everything is
//! validated on load (unique ids, one gateway with id 0, a usable key, sane grid and timeouts),
//! so a bad file is one clear error before any socket opens.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tessera_core::wire::{NodeId, Policy};

use crate::error::{error, Context, Error};

/// Most edges a cluster file may list.
pub const MAX_EDGES: usize = 16;

/// A validated cluster description.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// Scheduling policy.
    pub policy: Policy,
    /// Tile grid (rows, columns) over the last fused layer's output.
    pub grid: (u32, u32),
    /// Number of fused layers run on the edges (`[0, L)`).
    pub layers: usize,
    /// Pre-shared cluster key (ChaCha20-Poly1305), `None` when insecure.
    pub key: Option<[u8; 32]>,
    /// Conv kernel every node runs (all nodes must agree for bit-identical tiles).
    pub kernel: NodeKernel,
    /// Darknet cfg (`None`: the built-in YOLOv2 608).
    pub cfg: Option<PathBuf>,
    /// Darknet weights (`None`: generated from `seed`).
    pub weights: Option<PathBuf>,
    /// Seed of generated weights.
    pub seed: u64,
    /// Timeouts of every exchange.
    pub timeouts: Timeouts,
    /// The gateway (id 0) and the edges, sorted by id.
    pub nodes: Vec<Node>,
}

/// The conv kernel of a cluster's nodes (`auto`, `portable` or `simd`).
pub use tessera_backends::pipeline::KernelChoice as NodeKernel;

/// Timeouts, all finite and positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A dispatched tile not back by then is dispatched again.
    pub tile: Duration,
    /// A frame not complete by then is reported failed.
    pub frame: Duration,
    /// A thief that found nothing waits this long before asking again.
    pub steal_backoff: Duration,
    /// A peer silent for this long is considered dead.
    pub peer_dead: Duration,
    /// Longest wait for a TCP connect.
    pub connect: Duration,
}

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// 0 for the gateway, 1.. for edges.
    pub id: NodeId,
    /// Listening address.
    pub addr: SocketAddr,
    /// Frames enter here (a camera on the device).
    pub source: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    policy: String,
    grid: String,
    #[serde(default = "default_layers")]
    layers: usize,
    key: Option<String>,
    kernel: Option<String>,
    #[serde(default)]
    insecure: bool,
    cfg: Option<PathBuf>,
    weights: Option<PathBuf>,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    timeouts: RawTimeouts,
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    tile_ms: u64,
    frame_ms: u64,
    steal_backoff_ms: u64,
    peer_dead_ms: u64,
    connect_ms: u64,
}

impl Default for RawTimeouts {
    fn default() -> Self {
        RawTimeouts {
            tile_ms: 10_000,
            frame_ms: 60_000,
            steal_backoff_ms: 20,
            peer_dead_ms: 5_000,
            connect_ms: 2_000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: NodeId,
    addr: SocketAddr,
    #[serde(default)]
    source: bool,
}

fn default_layers() -> usize {
    16
}

fn default_seed() -> u64 {
    1
}

/// Parses `3x3` style grids (rows x columns).
pub fn parse_grid(s: &str) -> Result<(u32, u32), String> {
    let (n, m) = s.split_once(['x', 'X']).ok_or("expected NxM, e.g. 3x3")?;
    let n = n.trim().parse::<u32>().map_err(|e| format!("rows: {e}"))?;
    let m = m
        .trim()
        .parse::<u32>()
        .map_err(|e| format!("columns: {e}"))?;
    Ok((n, m))
}

/// Parses a policy name: `wsh`, `wst`, `wst-s` or `bodp`.
pub fn parse_policy(s: &str) -> Result<Policy, String> {
    match s.to_ascii_lowercase().as_str() {
        "wsh" => Ok(Policy::Wsh),
        "wst" => Ok(Policy::Wst),
        "wst-s" | "wsts" => Ok(Policy::WstS),
        "bodp" | "modnn" => Ok(Policy::Bodp),
        other => Err(format!("unknown policy {other:?} (wsh, wst, wst-s, bodp)")),
    }
}

/// Parses a 32-byte key written as 64 hex digits.
pub fn parse_key(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return Err(format!(
            "key must be 64 hex digits (32 bytes), got {} characters",
            s.len()
        ));
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|_| "key must be hex digits".to_string())?;
    }
    Ok(key)
}

fn ms(what: &str, v: u64) -> Result<Duration, String> {
    if v == 0 || v > 3_600_000 {
        return Err(format!("timeouts.{what} must be 1..=3600000 ms, got {v}"));
    }
    Ok(Duration::from_millis(v))
}

impl Cluster {
    /// Loads and validates a cluster file.
    pub fn load(path: &Path) -> Result<Cluster, Error> {
        let text =
            std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))?;
        Cluster::parse(&text).map_err(|e| error(format!("cluster file {}", path.display()), e))
    }

    /// Parses and validates cluster TOML.
    pub fn parse(text: &str) -> Result<Cluster, String> {
        let raw: RawCluster = toml::from_str(text).map_err(|e| e.to_string())?;
        let policy = parse_policy(&raw.policy)?;
        let grid = parse_grid(&raw.grid)?;
        if grid.0 == 0 || grid.1 == 0 || grid.0 > 8 || grid.1 > 8 {
            return Err(format!("grid {}x{} outside 1x1..8x8", grid.0, grid.1));
        }
        if raw.layers == 0 || raw.layers > 32 {
            return Err(format!("layers = {} outside 1..=32", raw.layers));
        }
        let key = match (&raw.key, raw.insecure) {
            (Some(k), false) => Some(parse_key(k)?),
            (None, true) => None,
            (Some(_), true) => return Err("give either key or insecure = true, not both".into()),
            (None, false) => {
                return Err("no key: set key = \"<64 hex digits>\" (or insecure = true)".into())
            }
        };
        let t = &raw.timeouts;
        let timeouts = Timeouts {
            tile: ms("tile_ms", t.tile_ms)?,
            frame: ms("frame_ms", t.frame_ms)?,
            steal_backoff: ms("steal_backoff_ms", t.steal_backoff_ms)?,
            peer_dead: ms("peer_dead_ms", t.peer_dead_ms)?,
            connect: ms("connect_ms", t.connect_ms)?,
        };
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for n in &raw.nodes {
            if !ids.insert(n.id) {
                return Err(format!("node id {} listed twice", n.id));
            }
            if !addrs.insert(n.addr) {
                return Err(format!("address {} listed twice", n.addr));
            }
        }
        if !ids.contains(&0) {
            return Err("no gateway: one node must have id 0".into());
        }
        let edges = raw.nodes.len() - 1;
        if edges == 0 || edges > MAX_EDGES {
            return Err(format!("{edges} edges; a cluster has 1..={MAX_EDGES}"));
        }
        if let Some(n) = raw.nodes.iter().find(|n| n.id as usize > MAX_EDGES) {
            return Err(format!("node id {} above {MAX_EDGES}", n.id));
        }
        let mut nodes: Vec<Node> = raw
            .nodes
            .iter()
            .map(|n| Node {
                id: n.id,
                addr: n.addr,
                source: n.source,
            })
            .collect();
        nodes.sort_by_key(|n| n.id);
        Ok(Cluster {
            policy,
            grid,
            layers: raw.layers,
            key,
            kernel: NodeKernel::parse(raw.kernel.as_deref().unwrap_or("auto"))
                .map_err(|e| e.to_string())?,
            cfg: raw.cfg,
            weights: raw.weights,
            seed: raw.seed,
            timeouts,
            nodes,
        })
    }

    /// The node with `id`, if listed.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The edges (every node but the gateway).
    pub fn edges(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.id != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../cluster.example.toml");

    #[test]
    fn the_example_parses() {
        let c = Cluster::parse(EXAMPLE).unwrap();
        assert_eq!(c.policy, Policy::WstS);
        assert_eq!(c.grid, (3, 3));
        assert_eq!(c.layers, 16);
        assert!(c.key.is_some());
        assert_eq!(c.nodes.len(), 4);
        assert_eq!(c.edges().count(), 3);
        assert!(c.node(1).unwrap().source);
        assert_eq!(c.timeouts.tile, Duration::from_millis(10_000));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("policy = \"fifo\"", "unknown policy"),
            ("grid = \"9x9\"", "outside 1x1..8x8"),
            ("grid = \"3by3\"", "NxM"),
            ("key = \"abcd\"", "64 hex digits"),
            ("layers = 0", "outside 1..=32"),
            ("colour = \"red\"", "unknown field"),
        ];
        for (line, needle) in cases {
            let key = line.split('=').next().unwrap().trim();
            let text: String = EXAMPLE
                .lines()
                .filter(|l| {
                    !l.trim_start().starts_with(&format!("{key} "))
                        && !l.trim_start().starts_with(&format!("{key}="))
                })
                .map(|l| format!("{l}\n"))
                .collect();
            let text = format!("{line}\n{text}");
            let err = Cluster::parse(&text).unwrap_err();
            assert!(err.contains(needle), "{line}: {err}");
        }
        let dup = EXAMPLE.replace("id = 2", "id = 1");
        assert!(Cluster::parse(&dup).unwrap_err().contains("listed twice"));
        let no_gw = EXAMPLE.replace("id = 0", "id = 9");
        assert!(Cluster::parse(&no_gw).unwrap_err().contains("no gateway"));
        let both = format!("insecure = true\n{EXAMPLE}");
        assert!(Cluster::parse(&both).unwrap_err().contains("not both"));
        let zero = EXAMPLE.replace("tile_ms = 10000", "tile_ms = 0");
        assert!(Cluster::parse(&zero).unwrap_err().contains("tile_ms"));
    }
}
