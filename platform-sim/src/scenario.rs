//! Scenario files: a run and its scripted faults in TOML.
//!
//! ```toml
//! policy = "wst-s"      # wsh | wst | wst-s | bodp
//! grid = "3x3"
//! edges = 4
//! frames = 3
//! sources = [1]
//! net = "wifi"          # wifi | ethernet
//! rate_mbps = 40        # optional: the preset's link (WiFi: channel) rate
//! model = "yolo"        # yolo (cost model) | small (real kernels, results checked)
//! seed = 7
//!
//! [[fault]]             # times in ms, counted from the moment every link is up
//! kind = "crash"
//! node = 2
//! at_ms = 1500
//!
//! [[fault]]
//! kind = "straggler"
//! node = 3
//! at_ms = 0
//! factor = 4.0
//!
//! [[fault]]
//! kind = "loss"         # a burst on every link, or on `link = [a, b]`
//! from_ms = 1000
//! until_ms = 3000
//! rate = 0.1
//!
//! [[fault]]
//! kind = "link_down"
//! a = 1
//! b = 0
//! from_ms = 2000
//! until_ms = 2500
//! ```
//!
//! `inflight = N` (default 1) lets each source keep N frames submitted and unfinished.
//! `reuse = "local"` keeps WST-S strips where they were made (default `"gateway"`: through the
//! gateway's cache); `reuse = "link"` keeps them there too but lets a level-1 tile's node fetch
//! them edge to edge when its link model says that beats recomputing; `transfer = "f16"` or `"i8"` sends tile results and strips in a smaller
//! precision (default `"f32"`). `picture = true` has each source ship a bundled JPEG once per
//! peer and lend tiles as `TileTask`s cut from it, the real node's bytes (default: each lent
//! tile's `f32` input, the papers' model). `results_ahead = N` (default 0: no limit) and
//! `prefetch = true` pace work stealing to the links (`runtime::Config::results_ahead`,
//! `prefetch`; cluster files default to 2 and true).
//!
//! The network testbed (`tessera-testbed`, real processes in network namespaces) reads the
//! same files, and two fault kinds only it can apply: `freeze` (SIGSTOP at `from_ms`, SIGCONT
//! at `until_ms`: the kernel still acknowledges TCP while the process is stopped, which a
//! simulated node cannot model) and `restart` (a crashed node's process started again at
//! `at_ms`). The simulator refuses a file that has them ([`ScenarioError::TestbedOnly`]).
//!
//! ```toml
//! [[fault]]
//! kind = "freeze"
//! node = 2
//! from_ms = 500
//! until_ms = 4000
//!
//! [[fault]]
//! kind = "restart"
//! node = 2
//! at_ms = 6000
//! ```

use serde::Deserialize;
use tessera_core::ftp::GridShape;
use tessera_core::time::Duration;
use tessera_core::wire::{NodeId, Policy, Precision};

use crate::medium::NetModel;
use crate::models::Net;
use crate::world::{Fault, SimConfig};

/// A scenario file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Policy name.
    pub policy: Option<String>,
    /// Grid `RxC`.
    pub grid: Option<String>,
    /// Edges per cluster.
    pub edges: Option<u16>,
    /// Frames per source.
    pub frames: Option<usize>,
    /// Frames each source keeps in flight.
    pub inflight: Option<usize>,
    /// Data-source edges.
    pub sources: Option<Vec<NodeId>>,
    /// Network preset.
    pub net: Option<String>,
    /// Residual loss on every link.
    pub loss: Option<f64>,
    /// The preset's link (or channel) rate, Mbit/s, overridden.
    pub rate_mbps: Option<f64>,
    /// `yolo` or `small`.
    pub model: Option<String>,
    /// Seed.
    pub seed: Option<u64>,
    /// Device rate, GFLOP/s.
    pub gflops: Option<f64>,
    /// WST-S strips: `local`, `link` or `gateway` (the default).
    pub reuse: Option<String>,
    /// Wire precision of tile results and strips: `f32` (the default), `f16` or `i8`.
    pub transfer: Option<String>,
    /// A source's own results unconfirmed by the gateway before it leaves its tiles to
    /// thieves (0..=8; default 0: no limit).
    pub results_ahead: Option<u8>,
    /// Thieves ask for their next tile while computing (default false).
    pub prefetch: Option<bool>,
    /// Sources ship the captured JPEG, as the real node does (default false: `f32` tiles).
    pub picture: Option<bool>,
    /// A peer silent this long is dropped by the link, ms.
    pub peer_dead_ms: Option<f64>,
    /// The runtime's tile/stripe timeout (a late tile is re-dispatched), ms.
    pub tile_timeout_ms: Option<f64>,
    /// Frame deadline, ms.
    pub frame_deadline_ms: Option<f64>,
    /// TCP receive and transmit buffer per socket, KiB.
    pub socket_kib: Option<usize>,
    /// Faults.
    #[serde(default)]
    pub fault: Vec<FaultSpec>,
}

/// One `[[fault]]`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultSpec {
    /// Crash `node` at `at_ms`.
    Crash {
        /// Node id.
        node: NodeId,
        /// When.
        at_ms: f64,
    },
    /// Slow `node` down by `factor` from `at_ms`.
    Straggler {
        /// Node id.
        node: NodeId,
        /// When.
        at_ms: f64,
        /// Slowdown.
        factor: f64,
    },
    /// Loss burst.
    Loss {
        /// Start.
        from_ms: f64,
        /// End.
        until_ms: f64,
        /// Probability.
        rate: f64,
        /// One link.
        link: Option<[NodeId; 2]>,
    },
    /// Outage of one link.
    LinkDown {
        /// One end.
        a: NodeId,
        /// Other end.
        b: NodeId,
        /// Start.
        from_ms: f64,
        /// End.
        until_ms: f64,
    },
    /// Testbed only: `node`'s process stopped (SIGSTOP) in `[from_ms, until_ms)`.
    Freeze {
        /// Node id.
        node: NodeId,
        /// SIGSTOP.
        from_ms: f64,
        /// SIGCONT.
        until_ms: f64,
    },
    /// Testbed only: `node`'s process started again (after a crash) at `at_ms`.
    Restart {
        /// Node id.
        node: NodeId,
        /// When.
        at_ms: f64,
    },
}

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not TOML of this shape.
    #[error("scenario: {0}")]
    Parse(String),
    /// A value out of range (names the field).
    #[error("scenario: bad value of `{0}`")]
    Value(&'static str),
    /// A fault kind only the network testbed applies (names the kind).
    #[error("scenario: fault kind `{0}` runs in the network testbed only (tessera-testbed)")]
    TestbedOnly(&'static str),
}

fn us(ms: f64) -> u64 {
    (ms.max(0.0) * 1000.0).round() as u64
}

/// A fault only the network testbed applies (times in µs from the moment every link is up).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TestbedFault {
    /// The node's process is stopped in `[from, until)`.
    Freeze {
        /// Node id.
        node: NodeId,
        /// SIGSTOP, µs.
        from: u64,
        /// SIGCONT, µs.
        until: u64,
    },
    /// The node's process is started again at `at`.
    Restart {
        /// Node id.
        node: NodeId,
        /// When, µs.
        at: u64,
    },
}

/// The run a scenario describes (the simulator's view: a file with a testbed-only fault is
/// refused).
pub fn parse(text: &str) -> Result<SimConfig, ScenarioError> {
    let (cfg, testbed) = parse_testbed(text)?;
    match testbed.first() {
        Some(TestbedFault::Freeze { .. }) => Err(ScenarioError::TestbedOnly("freeze")),
        Some(TestbedFault::Restart { .. }) => Err(ScenarioError::TestbedOnly("restart")),
        None => Ok(cfg),
    }
}

/// The run a scenario describes and the faults only the network testbed applies.
pub fn parse_testbed(text: &str) -> Result<(SimConfig, Vec<TestbedFault>), ScenarioError> {
    let f: ScenarioFile = toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
    let mut testbed = Vec::new();
    let policy = match &f.policy {
        Some(p) => p
            .parse::<Policy>()
            .map_err(|_| ScenarioError::Value("policy"))?,
        None => Policy::WstS,
    };
    let grid = match &f.grid {
        Some(g) => g
            .parse::<GridShape>()
            .map_err(|_| ScenarioError::Value("grid"))?
            .into(),
        None => (3, 3),
    };
    let edges = f.edges.unwrap_or(4);
    if edges == 0 || edges as usize > tessera_core::runtime::MAX_EDGES {
        return Err(ScenarioError::Value("edges"));
    }
    let model = match f.model.as_deref() {
        None | Some("yolo") => Net::Yolo16,
        Some("small") => Net::Small,
        Some(_) => return Err(ScenarioError::Value("model")),
    };
    let mut cfg = match model {
        Net::Yolo16 => SimConfig::yolo(policy, grid, edges),
        Net::Small => SimConfig::small(policy, grid, edges),
    };
    if let Some(n) = &f.net {
        cfg.net = NetModel::preset(n).ok_or(ScenarioError::Value("net"))?;
    }
    if let Some(r) = f.rate_mbps {
        if !(r > 0.0 && r <= 100_000.0) {
            return Err(ScenarioError::Value("rate_mbps"));
        }
        cfg.net.rate_bps = r * 1e6;
    }
    if let Some(l) = f.loss {
        if !(0.0..1.0).contains(&l) {
            return Err(ScenarioError::Value("loss"));
        }
        cfg.net.loss = l;
    }
    cfg.frames = f.frames.unwrap_or(cfg.frames);
    if let Some(n) = f.inflight {
        if n == 0 {
            return Err(ScenarioError::Value("inflight"));
        }
        cfg.inflight = n;
    }
    if let Some(s) = f.sources {
        if s.iter().any(|&x| x == 0 || x > edges) {
            return Err(ScenarioError::Value("sources"));
        }
        cfg.sources = s;
    }
    cfg.seed = f.seed.unwrap_or(cfg.seed);
    (cfg.local_reuse, cfg.link_reuse) = match f.reuse.as_deref() {
        None | Some("gateway") => (false, false),
        Some("local") => (true, false),
        Some("link") => (true, true),
        Some(_) => return Err(ScenarioError::Value("reuse")),
    };
    cfg.picture = f.picture.unwrap_or(cfg.picture);
    if let Some(t) = &f.transfer {
        cfg.transfer = Precision::parse(t).ok_or(ScenarioError::Value("transfer"))?;
    }
    if let Some(n) = f.results_ahead {
        if n > 8 {
            return Err(ScenarioError::Value("results_ahead"));
        }
        cfg.results_ahead = n;
    }
    cfg.prefetch = f.prefetch.unwrap_or(cfg.prefetch);
    if let Some(g) = f.gflops {
        if g <= 0.0 {
            return Err(ScenarioError::Value("gflops"));
        }
        cfg.gflops = g;
    }
    let ms = |v: Option<f64>, name: &'static str, d: Duration| match v {
        Some(v) if v > 0.0 && v.is_finite() => Ok(Duration::from_micros(us(v))),
        Some(_) => Err(ScenarioError::Value(name)),
        None => Ok(d),
    };
    cfg.peer_dead = ms(f.peer_dead_ms, "peer_dead_ms", cfg.peer_dead)?;
    cfg.tile_timeout = ms(f.tile_timeout_ms, "tile_timeout_ms", cfg.tile_timeout)?;
    cfg.frame_deadline = ms(f.frame_deadline_ms, "frame_deadline_ms", cfg.frame_deadline)?;
    if let Some(k) = f.socket_kib {
        if !(1..=1024).contains(&k) {
            return Err(ScenarioError::Value("socket_kib"));
        }
        cfg.socket_buffer = k * 1024;
    }
    for spec in f.fault {
        let fault = match spec {
            FaultSpec::Crash { node, at_ms } => Fault::Crash {
                node,
                at: us(at_ms),
            },
            FaultSpec::Straggler {
                node,
                at_ms,
                factor,
            } => {
                if factor <= 0.0 {
                    return Err(ScenarioError::Value("factor"));
                }
                Fault::Straggler {
                    node,
                    at: us(at_ms),
                    factor,
                }
            }
            FaultSpec::Loss {
                from_ms,
                until_ms,
                rate,
                link,
            } => {
                if !(0.0..=1.0).contains(&rate) {
                    return Err(ScenarioError::Value("rate"));
                }
                Fault::Loss {
                    from: us(from_ms),
                    until: us(until_ms),
                    rate,
                    link: link.map(|[a, b]| (a, b)),
                }
            }
            FaultSpec::LinkDown {
                a,
                b,
                from_ms,
                until_ms,
            } => Fault::LinkDown {
                a,
                b,
                from: us(from_ms),
                until: us(until_ms),
            },
            FaultSpec::Freeze {
                node,
                from_ms,
                until_ms,
            } => {
                if node > edges || until_ms < from_ms {
                    return Err(ScenarioError::Value("freeze"));
                }
                testbed.push(TestbedFault::Freeze {
                    node,
                    from: us(from_ms),
                    until: us(until_ms),
                });
                continue;
            }
            FaultSpec::Restart { node, at_ms } => {
                if node > edges {
                    return Err(ScenarioError::Value("node"));
                }
                testbed.push(TestbedFault::Restart {
                    node,
                    at: us(at_ms),
                });
                continue;
            }
        };
        let node = match fault {
            Fault::Crash { node, .. } | Fault::Straggler { node, .. } => node,
            _ => 0,
        };
        if node > edges {
            return Err(ScenarioError::Value("node"));
        }
        cfg.faults.push(fault);
    }
    Ok((cfg, testbed))
}
