//! [`ClusterFile`] validated into a [`Deployment`]: unique ids, one gateway with id 0, a
//! usable key, sane grid and timeouts, so a bad file is one clear error (every problem, each
//! with its line) before any socket opens.

extern crate alloc;
extern crate std;

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use tessera_core::ftp::GridShape;
use tessera_core::runtime::coded::CodedConfig;
use tessera_core::runtime::MAX_EDGES;
use tessera_core::wire::{NodeId, Policy, Precision};

use super::{At, ClusterFile, DEFAULT_LAYERS, DEFAULT_TAIL_MS, MAX_THREADS};
use crate::cluster::{ClusterNode as Node, ClusterSpec, Pacing, StartError, Timeouts};
use crate::coded::tail::TailPlace;
use crate::dgram::TailTransport;
use crate::model_files::{ModelFileError, ModelFiles};
use crate::node::Deployment;
use crate::pipeline::KernelChoice;

/// Most sends of each coded task or result on datagrams (`tail_copies`).
const MAX_TAIL_COPIES: u8 = 8;

/// A validated cluster description: what its nodes run from, and how the file wrote their
/// addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// Policy, grid, fused layers, key, kernel, timeouts, nodes (sorted by id, host names
    /// resolved when the file was loaded), strips, transfer and pacing; the model files; the
    /// tail and its coded stage.
    pub deployment: Deployment,
    /// Each node's address as the file writes it (`192.168.1.11:7700`, `tessera-1.local:7700`),
    /// in the order of the deployment's nodes.
    pub written: Vec<String>,
}

/// One thing wrong with a cluster file, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the offending value (`None`: the file as a whole).
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Why a cluster file was refused: every problem found, not just the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match p.line {
                Some(l) => write!(f, "line {l}: {}", p.message)?,
                None => f.write_str(&p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

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

/// `host:port` as a socket address: an IP address as it is, a host name resolved (the first
/// address the resolver gives, IPv4 preferred: the nodes' addresses are usually IPv4).
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    if addr
        .rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(format!("address {addr:?}: expected HOST:PORT or IP:PORT"));
    }
    let all: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| format!("cannot resolve {addr}: no address"))
}

/// Longest timeout accepted (one hour).
const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// Collects problems with the line each value is on.
struct Problems<'a> {
    text: &'a str,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn line_of(&self, span: std::ops::Range<usize>) -> usize {
        let at = span.start.min(self.text.len());
        self.text.as_bytes()[..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn at<T>(&mut self, v: &At<T>, message: impl Into<String>) {
        let line = Some(self.line_of(v.span()));
        self.list.push(Problem {
            line,
            message: message.into(),
        });
    }

    fn whole(&mut self, message: impl Into<String>) {
        self.list.push(Problem {
            line: None,
            message: message.into(),
        });
    }

    /// `r`'s value, or `None` with its error recorded at `v`'s line.
    fn check<T, U, E: std::fmt::Display>(&mut self, v: &At<T>, r: Result<U, E>) -> Option<U> {
        r.map_err(|e| self.at(v, e.to_string())).ok()
    }

    fn ms(&mut self, what: &str, v: &At<u64>) -> Duration {
        let ms = *v.get_ref();
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            self.at(
                v,
                format!("timeouts.{what} must be 1..={MAX_TIMEOUT_MS} ms, got {ms}"),
            );
        }
        Duration::from_millis(ms)
    }
}

/// The file's `tail` and the coded stage's timing, checked against the `edges` workers.
fn tail_of(raw: &ClusterFile, p: &mut Problems<'_>, edges: usize) -> (TailPlace, CodedConfig) {
    let parsed = match &raw.tail {
        Some(t) => p.check(
            t,
            t.get_ref().parse::<TailPlace>().map_err(|e| e.to_string()),
        ),
        None => Some(TailPlace::Gateway),
    };
    let place = parsed.unwrap_or_default();
    if let (TailPlace::Coded(scheme), Some(t)) = (place, &raw.tail) {
        p.check(t, scheme.layer_scheme(edges).map_err(|e| e.to_string()));
    }
    let [deadline, grace] = DEFAULT_TAIL_MS;
    let ms = |v: &Option<At<u64>>, default| v.as_ref().map_or(default, |v| *v.get_ref());
    let (deadline_ms, grace_ms) = (
        ms(&raw.tail_deadline_ms, deadline),
        ms(&raw.tail_grace_ms, grace),
    );
    for v in [&raw.tail_deadline_ms, &raw.tail_grace_ms]
        .into_iter()
        .flatten()
    {
        if parsed == Some(TailPlace::Gateway) {
            p.at(v, "tail_deadline_ms and tail_grace_ms time a coded tail: set tail = \"cdc:R\", \"2mr\" or \"uncoded\"");
        }
    }
    if let Some(v) = &raw.tail_deadline_ms {
        if deadline_ms == 0 || deadline_ms > MAX_TIMEOUT_MS {
            p.at(
                v,
                format!("tail_deadline_ms must be 1..={MAX_TIMEOUT_MS} ms, got {deadline_ms}"),
            );
        }
    }
    if let Some(v) = &raw.tail_grace_ms {
        if grace_ms >= deadline_ms {
            p.at(
                v,
                format!(
                    "tail_grace_ms ({grace_ms}) must be below tail_deadline_ms ({deadline_ms})"
                ),
            );
        }
    }
    if let Some(v) = raw
        .tail_transport
        .as_ref()
        .filter(|_| place == TailPlace::Gateway)
    {
        p.at(
            v,
            "tail_transport carries a coded tail: set tail = \"cdc:R\", \"2mr\" or \"uncoded\"",
        );
    }
    let micros = |ms: u64| tessera_core::time::Duration::from_micros(ms * 1000);
    let coded = CodedConfig {
        data_grace: micros(grace_ms),
        ..CodedConfig::new(micros(deadline_ms))
    };
    (place, coded)
}

impl Cluster {
    /// Parses and validates cluster TOML: every problem is reported at once, each with its
    /// line (a syntax error, the first one only).
    pub fn parse(text: &str) -> Result<Cluster, ConfigError> {
        let raw: ClusterFile = toml::from_str(text).map_err(|e| ConfigError {
            problems: vec![Problem {
                line: e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
                message: e.message().to_string(),
            }],
        })?;
        let mut p = Problems {
            text,
            list: Vec::new(),
        };
        let policy = p.check(&raw.policy, raw.policy.get_ref().parse::<Policy>());
        let grid = p
            .check(&raw.grid, raw.grid.get_ref().parse::<GridShape>())
            .and_then(|g| {
                if g.rows == 0 || g.cols == 0 || g.rows > 8 || g.cols > 8 {
                    p.at(&raw.grid, format!("grid {g} outside 1x1..8x8"));
                    return None;
                }
                Some(g.into())
            });
        let layers = match &raw.layers {
            Some(l) if *l.get_ref() == 0 || *l.get_ref() > 32 => {
                p.at(l, format!("layers = {} outside 1..=32", l.get_ref()));
                DEFAULT_LAYERS
            }
            Some(l) => *l.get_ref(),
            None => DEFAULT_LAYERS,
        };
        let (local_reuse, link_reuse) = match &raw.reuse {
            None => (true, false),
            Some(r) => match r.get_ref().as_str() {
                "local" => (true, false),
                "gateway" => (false, false),
                "link" => (true, true),
                other => {
                    p.at(
                        r,
                        format!("reuse = \"{other}\": \"local\", \"gateway\" or \"link\""),
                    );
                    (true, false)
                }
            },
        };
        let transfer = match &raw.transfer {
            None => Precision::F32,
            Some(t) => Precision::parse(t.get_ref()).unwrap_or_else(|| {
                let bad = t.get_ref();
                p.at(
                    t,
                    format!("transfer = \"{bad}\": \"f32\", \"f16\" or \"i8\""),
                );
                Precision::F32
            }),
        };
        let mut pacing = Pacing::default();
        if let Some(n) = &raw.results_ahead {
            if *n.get_ref() > 8 {
                p.at(n, format!("results_ahead = {} outside 0..=8", n.get_ref()));
            } else {
                pacing.results_ahead = *n.get_ref();
            }
        }
        if let Some(b) = &raw.prefetch {
            pacing.prefetch = *b.get_ref();
        }
        let insecure = raw.insecure.as_ref().is_some_and(|i| *i.get_ref());
        let key = match (&raw.key, insecure) {
            (Some(k), false) => p.check(k, parse_key(k.get_ref())).map(Some),
            (None, true) => Some(None),
            (Some(k), true) => {
                p.at(k, "give either key or insecure = true, not both");
                None
            }
            (None, false) => {
                p.whole("no key: set key = \"<64 hex digits>\" (or insecure = true)");
                None
            }
        };
        let kernel = match &raw.kernel {
            Some(k) => p.check(
                k,
                KernelChoice::parse(k.get_ref()).map_err(|e| e.to_string()),
            ),
            None => KernelChoice::parse("auto").ok(),
        };
        // Absent, the kernel is `auto`, which runs every policy.
        if let (Some(at), Some(k), Some(policy)) = (&raw.kernel, kernel, policy) {
            if !k.runs(policy) {
                p.at(at, StartError::WinogradStripes(policy.name()).to_string());
            }
        }
        let threads = match &raw.threads {
            Some(n) if !(1..=MAX_THREADS).contains(n.get_ref()) => {
                p.at(
                    n,
                    format!("threads = {} outside 1..={MAX_THREADS}", n.get_ref()),
                );
                1
            }
            Some(n) => *n.get_ref() as usize,
            None => 1,
        };
        // Absent: the defaults, which pass every check below.
        let t = raw.timeouts.clone().unwrap_or_default();
        let timeouts = Timeouts {
            tile: p.ms("tile_ms", &t.tile_ms),
            frame: p.ms("frame_ms", &t.frame_ms),
            steal_backoff: p.ms("steal_backoff_ms", &t.steal_backoff_ms),
            peer_dead: p.ms("peer_dead_ms", &t.peer_dead_ms),
            connect: p.ms("connect_ms", &t.connect_ms),
        };
        let valid = |v: &At<u64>| (1..=MAX_TIMEOUT_MS).contains(v.get_ref());
        let both = valid(&t.tile_ms) && valid(&t.frame_ms);
        if both && timeouts.tile >= timeouts.frame {
            p.at(
                &t.tile_ms,
                format!(
                    "timeouts.tile_ms ({}) must be below frame_ms ({}): a tile sent \
                     again could never finish its frame",
                    t.tile_ms.get_ref(),
                    t.frame_ms.get_ref()
                ),
            );
        }
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        let mut resolved = Vec::with_capacity(raw.nodes.len());
        for n in &raw.nodes {
            let id = *n.id.get_ref();
            if !ids.insert(id) {
                p.at(&n.id, format!("node id {id} listed twice"));
            }
            if id as usize > MAX_EDGES {
                p.at(&n.id, format!("node id {id} above {MAX_EDGES}"));
            }
            if let Some(addr) = p.check(&n.addr, resolve(n.addr.get_ref())) {
                resolved.push(addr);
                if !addrs.insert(addr) {
                    p.at(&n.addr, format!("address {addr} listed twice"));
                }
                if addr.port() == 0 {
                    p.at(
                        &n.addr,
                        format!("address {addr}: port 0 (peers could not find the node)"),
                    );
                }
                if addr.ip().is_unspecified() || addr.ip().is_multicast() {
                    p.at(
                        &n.addr,
                        format!("address {addr}: not a node's own address (peers dial it)"),
                    );
                }
            }
            if let Some(src) = n.source.as_ref().filter(|s| *s.get_ref() && id == 0) {
                p.at(
                    src,
                    "source = true on the gateway (id 0): frames enter at an edge",
                );
            }
        }
        if !ids.contains(&0) {
            p.whole("no gateway: one node must have id 0");
        }
        let edges = ids.iter().filter(|&&id| id != 0).count();
        if edges == 0 || edges > MAX_EDGES {
            p.whole(format!("{edges} edges; a cluster has 1..={MAX_EDGES}"));
        }
        let (tail, coded) = tail_of(&raw, &mut p, edges);
        let tail_transport = match &raw.tail_transport {
            Some(t) => p
                .check(t, t.get_ref().parse::<TailTransport>())
                .unwrap_or_default(),
            None => TailTransport::Tcp,
        };
        if let Some(c) = &raw.tail_copies {
            if !(1..=MAX_TAIL_COPIES).contains(c.get_ref()) {
                p.at(
                    c,
                    format!("tail_copies = {}: 1..={MAX_TAIL_COPIES}", c.get_ref()),
                );
            } else if tail_transport != TailTransport::Datagram {
                p.at(
                    c,
                    "tail_copies repeats coded datagrams: set tail_transport = \"datagram\"",
                );
            }
        }
        let coded = CodedConfig {
            copies: raw.tail_copies.as_ref().map_or(1, |c| *c.get_ref()),
            ..coded
        };
        if let (Some(t), TailTransport::Datagram, Some(None)) =
            (&raw.tail_transport, tail_transport, key)
        {
            p.at(t, "tail_transport = \"datagram\" authenticates with the cluster key: insecure = true has none");
        }
        let (Some(policy), Some(grid), Some(key), Some(kernel), true) =
            (policy, grid, key, kernel, p.list.is_empty())
        else {
            p.list.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            return Err(ConfigError { problems: p.list });
        };
        let mut nodes: Vec<(Node, String)> = raw
            .nodes
            .iter()
            .zip(resolved)
            .map(|(n, addr)| {
                let node = Node {
                    id: *n.id.get_ref(),
                    addr,
                    source: n.source.as_ref().is_some_and(|s| *s.get_ref()),
                };
                (node, n.addr.get_ref().clone())
            })
            .collect();
        nodes.sort_by_key(|(n, _)| n.id);
        let (nodes, written) = nodes.into_iter().unzip();
        Ok(Cluster {
            deployment: Deployment {
                spec: ClusterSpec {
                    policy,
                    grid,
                    layers,
                    key,
                    kernel,
                    threads,
                    timeouts,
                    nodes,
                    local_reuse,
                    link_reuse,
                    transfer,
                    pacing,
                },
                model: ModelFiles {
                    cfg: raw.cfg,
                    weights: raw.weights,
                    seed: raw.seed,
                },
                tail,
                coded,
                tail_transport,
            },
            written,
        })
    }

    /// The model fingerprint of this cluster as this machine runs it (reads the cfg and the
    /// fused layers' part of the weights file).
    pub fn fingerprint(&self) -> Result<u64, ModelFileError> {
        self.deployment.fingerprint()
    }

    /// The node with `id`, if listed.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.deployment.spec.node(id)
    }

    /// The edges (every node but the gateway).
    pub fn edges(&self) -> impl Iterator<Item = &Node> {
        self.deployment.spec.nodes.iter().filter(|n| n.id != 0)
    }
}
