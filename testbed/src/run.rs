//! One scenario on the testbed: the cell built and shaped, the cluster file written, the
//! gateway and the edges started in their namespaces, the faults applied on schedule, the
//! counters and `/proc` sampled, and the frames and nodes returned as CSV rows.
//!
//! Order of a run: leftovers of this tag removed; the host's compute rate probed (or given)
//! to size each node's CPU quota; the gateway and the non-source edges started and their
//! links awaited; then the sources, and once every node holds a link to every other node,
//! the scenario's clock starts (t = 0, as in the simulator). The run ends when every source
//! has exited with no restart pending (or at the timeout); the counters are read then,
//! before the other nodes are stopped (SIGTERM, SIGKILL after a grace).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_core::wire::NodeId;
use tessera_sim::models::Net;
use tessera_sim::scenario::{parse_testbed, ScenarioError};
use tessera_sim::world::SimConfig;

use crate::cgroup::{CgroupError, CpuGroups};
use crate::cluster_file::render;
use crate::cmd::{run as run_cmd, CmdError};
use crate::logs::{link_bytes_sent, read_gateway, read_source, FrameLog, Key};
use crate::names::{BadTag, Names};
use crate::netns::{remove_leftovers, Cell, CounterError, Counters};
use crate::process::{NodeProc, SpawnError};
use crate::record::{FrameRow, NodeRow};
use crate::shape::QueueSpec;
use crate::timeline::{build, Action};

/// How nodes are held to the device's compute rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ComputeMode {
    /// A CPU quota per compute thread where the v1 `cpu` controller is mounted, else
    /// `--slowdown`.
    Auto,
    /// A CPU quota per compute thread (fails without the controller).
    Quota,
    /// The edge's `--slowdown` (compute at host speed, then sleep).
    Slowdown,
}

/// What a run needs beyond its scenario.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `tessera` binary.
    pub tessera: PathBuf,
    /// Directory for the cluster file, node logs and CSVs.
    pub out: PathBuf,
    /// Namespace and cgroup tag.
    pub tag: String,
    /// The frame every source feeds (JPEG/PNG).
    pub image: PathBuf,
    /// The host's single-thread rate of the fused layers, GFLOP/s (probed when `None`).
    pub host_gflops: Option<f64>,
    /// The run's bound, from the start of the first node.
    pub timeout: Duration,
    /// Token-bucket queue, bytes.
    pub queue_bytes: u32,
    /// One link per ordered pair of nodes (`shape::QueueSpec::pairs`).
    pub pairs: bool,
    /// Compute rate method.
    pub compute: ComputeMode,
    /// Set by a signal: stop now (cleanup still runs).
    pub stop: Arc<AtomicBool>,
}

/// A run failed (everything it built is removed all the same).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario file.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// Something the testbed cannot do.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The tag.
    #[error(transparent)]
    Tag(#[from] BadTag),
    /// A system command.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// A cgroup.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A node's process.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// Interface counters.
    #[error(transparent)]
    Counters(#[from] CounterError),
    /// A file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The cluster file.
    #[error("writing the cluster file: {0}")]
    Cluster(#[from] toml::ser::Error),
    /// The host probe.
    #[error("probing the host's compute rate: {0}")]
    Probe(String),
    /// The nodes did not all connect.
    #[error("nodes not connected after {0} s: {1}")]
    NotConnected(u64, String),
    /// A signal asked to stop.
    #[error("interrupted")]
    Interrupted,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Frames.
    pub frames: Vec<FrameRow>,
    /// Nodes.
    pub nodes: Vec<NodeRow>,
    /// The host rate the quotas were sized from, GFLOP/s.
    pub host_gflops: f64,
    /// How compute was held to the device rate.
    pub compute: String,
    /// The fraction of a host core each compute thread was given (quota mode).
    pub fraction: f64,
    /// The run hit its timeout.
    pub timed_out: bool,
    /// From t = 0 to the end, s.
    pub span_s: f64,
}

impl Outcome {
    /// Latencies (s) of the frames complete at their source.
    pub fn latencies_s(&self) -> Vec<f64> {
        self.frames
            .iter()
            .filter(|f| f.complete)
            .filter_map(|f| f.source_ms.or(f.gateway_ms))
            .map(|ms| ms as f64 / 1e3)
            .collect()
    }

    /// IP bytes every node sent.
    pub fn ip_bytes(&self) -> u64 {
        self.nodes.iter().map(|n| n.tx_ip_bytes).sum()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The host's single-thread rate of YOLOv2's fused layers (`tessera layers`, SIMD, one
/// thread) per second of CPU time, GFLOP/s: the median of three runs.
///
/// The command reports FLOPs over wall time; on a loaded host the probe is not scheduled
/// all the time, so its rate is scaled by wall time over CPU time (both over the process's
/// life, CPU time sampled from `/proc` every 2 ms). A CPU quota is CPU time, so this is the
/// rate it buys.
pub fn probe_host(tessera: &Path) -> Result<f64, RunError> {
    let mut rates = Vec::new();
    let tick = clock_ticks();
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut child = std::process::Command::new(tessera)
            .args(["layers", "--kernel", "simd", "--threads", "1"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| RunError::Probe(format!("starting {}: {e}", tessera.display())))?;
        let stat = format!("/proc/{}/stat", child.id());
        let mut ticks = 0;
        let status = loop {
            if let Some(t) = std::fs::read_to_string(&stat)
                .ok()
                .as_deref()
                .and_then(crate::process::stat_ticks)
            {
                ticks = ticks.max(t);
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(RunError::Probe(format!("waiting: {e}"))),
            }
        };
        let wall = t0.elapsed().as_secs_f64();
        let mut out = String::new();
        if let Some(mut o) = child.stdout.take() {
            use std::io::Read;
            let _ = o.read_to_string(&mut out);
        }
        if !status.success() {
            return Err(RunError::Probe(format!("`tessera layers` {status}")));
        }
        let rate = out
            .lines()
            .find(|l| l.starts_with("time "))
            .and_then(|l| l.split(", ").last())
            .and_then(|s| s.strip_suffix(" GFLOP/s"))
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| RunError::Probe(format!("no rate in: {out}")))?;
        let scheduled = (ticks as f64 / tick / wall).clamp(0.05, 1.0);
        rates.push(rate / scheduled);
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

/// The testbed's view of the scenario, checked.
pub fn scenario(
    text: &str,
) -> Result<(SimConfig, Vec<tessera_sim::scenario::TestbedFault>), RunError> {
    let (cfg, tb) = parse_testbed(text)?;
    if cfg.model != Net::Yolo16 {
        return Err(RunError::Unsupported(
            "model `small` exists in the simulator only; the testbed runs YOLOv2".into(),
        ));
    }
    if !cfg.net.link_rates.is_empty() {
        return Err(RunError::Unsupported("per-link rates".into()));
    }
    Ok((cfg, tb))
}

struct Live<'a> {
    procs: BTreeMap<NodeId, NodeProc>,
    groups: Option<&'a CpuGroups>,
    stop: &'a AtomicBool,
}

impl Live<'_> {
    /// Samples every process; puts newly found compute threads in their cgroups.
    fn tick(&mut self) -> Result<(), RunError> {
        for p in self.procs.values_mut() {
            if let (Some(tid), Some(g)) = (p.sample(), self.groups) {
                g.add_thread(p.id, tid)?;
            }
        }
        if self.stop.load(Ordering::Relaxed) {
            return Err(RunError::Interrupted);
        }
        Ok(())
    }

    /// Waits until each of `ids` holds links to all of them but itself.
    fn wait_links(&mut self, cell: &Cell, ids: &[NodeId], bound: Duration) -> Result<(), RunError> {
        let t0 = Instant::now();
        loop {
            self.tick()?;
            let mut short = Vec::new();
            for &id in ids {
                let n = cell.established(id)?;
                if n + 1 < ids.len() {
                    short.push(format!("node {id}: {n} links"));
                }
                if let Some(p) = self.procs.get_mut(&id) {
                    if !p.running() {
                        short.push(format!("node {id} exited ({:?})", p.exit));
                    }
                }
            }
            if short.is_empty() {
                return Ok(());
            }
            if t0.elapsed() > bound {
                return Err(RunError::NotConnected(bound.as_secs(), short.join(", ")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs scenario `name` (`text`) on the testbed.
pub fn run(name: &str, text: &str, o: &Options) -> Result<Outcome, RunError> {
    let (cfg, testbed_faults) = scenario(text)?;
    let names = Names::new(&o.tag)?;
    let left = remove_leftovers(&names)?;
    if left > 0 {
        eprintln!("testbed: removed {left} namespaces left by an earlier run");
    }
    std::fs::create_dir_all(&o.out).map_err(io(&o.out))?;
    for f in ["frames.csv", "nodes.csv"] {
        let _ = std::fs::remove_file(o.out.join(f));
    }
    for id in 0..=cfg.edges {
        for ext in ["out", "err"] {
            let _ = std::fs::remove_file(o.out.join(format!("node-{id}.{ext}")));
        }
    }
    let host = match o.host_gflops {
        Some(h) => h,
        None => probe_host(&o.tessera)?,
    };
    let fraction = cfg.gflops / host;
    let quota = match o.compute {
        ComputeMode::Quota => true,
        ComputeMode::Slowdown => false,
        ComputeMode::Auto => CpuGroups::available(),
    };
    let timeline = build(&names, cfg.edges + 1, &cfg.faults, &testbed_faults);
    let mut slowdown = BTreeMap::new();
    if !quota {
        for &(at, a) in &timeline.actions {
            if let Action::Slow(node, f) = a {
                if at > 0 {
                    return Err(RunError::Unsupported(
                        "a straggler after t = 0 needs the cgroup CPU quota".into(),
                    ));
                }
                slowdown.insert(node, f);
            }
        }
    }
    let ids: Vec<NodeId> = (0..=cfg.edges).collect();
    let cell = Cell::build(
        &names,
        &ids,
        &cfg.net,
        QueueSpec {
            limit_bytes: o.queue_bytes,
            pairs: o.pairs,
        },
    )?;
    // Residual loss of the preset or scenario: the whole run, every sender.
    let residual: Vec<_> = if cfg.net.loss > 0.0 {
        ids.iter()
            .map(|&id| {
                let d = crate::filter::Drop::Loss {
                    to: None,
                    rate: cfg.net.loss,
                };
                crate::filter::rule(&names, 1000 + id as usize, id, d)
            })
            .collect()
    } else {
        Vec::new()
    };
    for r in &residual {
        r.apply()?;
    }
    let groups = if quota {
        let g = CpuGroups::create(&names)?;
        for &id in &ids {
            g.limit(id, fraction)?;
        }
        Some(g)
    } else {
        None
    };
    let compute = if quota {
        format!(
            "cgroup v1 CPU quota {:.2} % of a core per compute thread ({} GFLOP/s of {host:.1})",
            100.0 * fraction,
            cfg.gflops
        )
    } else {
        format!(
            "--slowdown {:.1} ({} GFLOP/s of {host:.1})",
            host / cfg.gflops,
            cfg.gflops
        )
    };
    let links = if o.pairs {
        format!(
            "; links: one per ordered pair at {:.1} Mbit/s",
            cfg.net.rate_bps / 1e6
        )
    } else {
        String::new()
    };
    eprintln!(
        "testbed: {name}: {}{links}; compute: {compute}",
        tessera_sim::experiments::describe(&cfg)
    );
    let cluster_path = o.out.join("cluster.toml");
    std::fs::write(&cluster_path, render(&cfg)?).map_err(io(&cluster_path))?;
    let cluster = cluster_path.to_string_lossy().to_string();
    let mut live = Live {
        procs: BTreeMap::new(),
        groups: groups.as_ref(),
        stop: &o.stop,
    };
    for &id in &ids {
        let mut args: Vec<String> = if id == 0 {
            vec!["gateway".into(), "--cluster".into(), cluster.clone()]
        } else {
            vec![
                "edge".into(),
                "--cluster".into(),
                cluster.clone(),
                "--id".into(),
                id.to_string(),
            ]
        };
        if id == 0 {
            args.extend(["--tail".into(), "none".into()]);
        } else if !quota {
            let s = (host / cfg.gflops * slowdown.get(&id).copied().unwrap_or(1.0)).max(1.0);
            args.extend(["--slowdown".into(), format!("{s:.3}")]);
        }
        if cfg.sources.contains(&id) {
            args.extend([
                "--input".into(),
                o.image.to_string_lossy().to_string(),
                "--repeat".into(),
                cfg.frames.to_string(),
                "--inflight".into(),
                cfg.inflight.to_string(),
            ]);
        }
        let p = NodeProc::new(id, names.node(id), &o.tessera, args, &o.out);
        live.procs.insert(id, p);
    }
    let started = Instant::now();
    let links_bound = Duration::from_secs(60);
    let (sources, others): (Vec<NodeId>, Vec<NodeId>) =
        ids.iter().partition(|id| cfg.sources.contains(id));
    for id in &others {
        live.procs.get_mut(id).map(NodeProc::start).transpose()?;
    }
    live.wait_links(&cell, &others, links_bound)?;
    // The counters' baseline is read before the sources start: a source feeds its first frame
    // as soon as its own links are up, before this loop's polls see every link, and the tile
    // inputs it sent in between were missed (up to 3 tiles, 10 % of a run, at Ethernet rates).
    // What it adds instead is the sources' connection set-up, a few kB.
    let c0 = cell.counters()?;
    for id in &sources {
        live.procs.get_mut(id).map(NodeProc::start).transpose()?;
    }
    live.wait_links(&cell, &ids, links_bound)?;
    let t0 = Instant::now();
    let mut next = 0;
    let mut timed_out = false;
    loop {
        live.tick()?;
        let now_us = t0.elapsed().as_micros() as u64;
        while let Some(&(at, a)) = timeline.actions.get(next) {
            if at > now_us {
                break;
            }
            next += 1;
            apply(&mut live, &timeline.rules, a, fraction, quota)?;
        }
        let pending_start = |id: NodeId| {
            timeline.actions[next..]
                .iter()
                .any(|&(_, a)| a == Action::Start(id))
        };
        let sources_done = sources.iter().all(|&id| {
            let running = live.procs.get_mut(&id).is_some_and(NodeProc::running);
            !running && !pending_start(id)
        });
        if sources_done {
            break;
        }
        if started.elapsed() > o.timeout {
            timed_out = true;
            eprintln!("testbed: {name}: timed out after {} s", o.timeout.as_secs());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let span_s = t0.elapsed().as_secs_f64();
    let c1 = cell.counters()?;
    for p in live.procs.values_mut() {
        p.stop(Duration::from_secs(10));
    }
    let frames = frame_rows(name, &live.procs, &sources)?;
    let tick = clock_ticks();
    let nodes = ids
        .iter()
        .map(|&id| {
            let p = &live.procs[&id];
            let c = c1
                .get(&id)
                .copied()
                .unwrap_or_default()
                .since(&c0.get(&id).copied().unwrap_or_default());
            let rx = Counters {
                tx_bytes: c.rx_bytes,
                tx_packets: c.rx_packets,
                ..Counters::default()
            };
            let u = p.usage();
            let log = std::fs::read_to_string(p.stdout_path()).unwrap_or_default();
            NodeRow {
                scenario: name.to_string(),
                node: id,
                role: if id == 0 {
                    "gateway"
                } else if sources.contains(&id) {
                    "source"
                } else {
                    "edge"
                }
                .into(),
                starts: p.starts,
                tx_ip_bytes: c.tx_ip_bytes(),
                rx_ip_bytes: rx.tx_ip_bytes(),
                tx_packets: c.tx_packets,
                rx_packets: c.rx_packets,
                peak_rss_kib: u.peak_rss_kib,
                cpu_s: u.cpu_ticks as f64 / tick,
                compute_cpu_s: u.compute_ticks as f64 / tick,
                exit: p.exit.clone().unwrap_or_default(),
                link_bytes_sent: link_bytes_sent(&log, p.starts),
            }
        })
        .collect();
    drop(live);
    drop(groups);
    drop(cell);
    Ok(Outcome {
        frames,
        nodes,
        host_gflops: host,
        compute,
        fraction,
        timed_out,
        span_s,
    })
}

/// Applies one timeline action.
fn apply(
    live: &mut Live<'_>,
    rules: &[crate::filter::Rule],
    a: Action,
    fraction: f64,
    quota: bool,
) -> Result<(), RunError> {
    match a {
        Action::Apply(k) => rules[k].apply()?,
        Action::Remove(k) => rules[k].remove()?,
        Action::Kill(n) => {
            if let Some(p) = live.procs.get_mut(&n) {
                p.kill();
            }
        }
        Action::Start(n) => {
            if let Some(p) = live.procs.get_mut(&n) {
                if !p.running() {
                    p.start()?;
                }
            }
        }
        Action::Slow(n, f) => {
            if let (true, Some(g)) = (quota, live.groups) {
                g.limit(n, fraction / f)?;
            }
        }
        Action::Freeze(n) | Action::Thaw(n) => {
            if let Some(p) = live.procs.get_mut(&n) {
                p.freeze(matches!(a, Action::Freeze(_)))?;
            }
        }
    }
    Ok(())
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 if it cannot say).
fn clock_ticks() -> f64 {
    run_cmd("getconf", &["CLK_TCK"])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The frames as the sources and the gateway reported them.
fn frame_rows(
    name: &str,
    procs: &BTreeMap<NodeId, NodeProc>,
    sources: &[NodeId],
) -> Result<Vec<FrameRow>, RunError> {
    let mut frames: BTreeMap<Key, FrameLog> = BTreeMap::new();
    for (&id, p) in procs {
        let path = p.stdout_path();
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        if id == 0 {
            read_gateway(&text, &mut frames);
        } else if sources.contains(&id) {
            read_source(&text, &mut frames);
        }
    }
    Ok(frames
        .into_iter()
        .map(|((origin, number), f)| FrameRow {
            scenario: name.to_string(),
            origin,
            number,
            complete: f.source_done.or(f.gateway_done).unwrap_or(false),
            source_ms: f.source_ms,
            gateway_ms: f.gateway_ms,
            tiles_by: f
                .tiles_by
                .iter()
                .map(|(n, k)| format!("{n}:{k}"))
                .collect::<Vec<_>>()
                .join(" "),
        })
        .collect())
}
