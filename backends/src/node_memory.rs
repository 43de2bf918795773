//! Peak resident memory of real node processes: a gateway and three edges started as separate
//! `tessera gateway` / `tessera edge` processes from one generated cluster file on 127.0.x.y,
//! frames fed by the source edge, each process's `VmHWM` read from `/proc/PID/status` while it
//! still runs, then every process killed by its PID. With a coded tail every edge is also a
//! coded worker: its target grows by the shard weights it reports holding.

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;
use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use tessera_core::wire::{NodeId, Policy};

use crate::builtin::DEFAULT_IMAGE;
use crate::cluster_file::{written, ClusterFile, FileNode};
use crate::frame_source::SOURCE_QUEUE;
use crate::pipeline::KernelChoice as NodeKernel;

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// A file under `/proc` (or a temporary file) could not be read or written.
    #[error("{what} {}: {error}", path.display())]
    File {
        /// Reading or writing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the file system said.
        error: io::Error,
    },
    /// `/proc/PID/status` has no such line.
    #[error("reading {}: no {field} line", path.display())]
    NoField {
        /// The status file.
        path: PathBuf,
        /// The field looked for.
        field: &'static str,
    },
    /// A node process did not start.
    #[error("starting {command}: {error}")]
    Spawn {
        /// The command line.
        command: String,
        /// What the system said.
        error: io::Error,
    },
    /// The gateway's stdout could not be read.
    #[error("bench cluster: no gateway stdout")]
    NoStdout,
    /// Too few frames before the timeout.
    #[error("bench cluster: {frames} frames in {timeout:?}")]
    Timeout {
        /// Frames finished.
        frames: usize,
        /// The wait.
        timeout: Duration,
    },
    /// A node process ended before the reading.
    #[error("bench cluster: node {id} exited early: {status}")]
    Exited {
        /// Its index (0: gateway).
        id: usize,
        /// Its exit status.
        status: ExitStatus,
    },
    /// With a coded tail, an edge never said how many shard bytes it holds.
    #[error("bench cluster: edge {id} did not report its coded-tail shards")]
    NoShards {
        /// The edge.
        id: usize,
    },
}

/// `MeasureError::File` for `path`.
fn file_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> MeasureError + 'a {
    move |error| MeasureError::File {
        what,
        path: path.to_path_buf(),
        error,
    }
}

/// Bytes in a MiB (`VmHWM` is in KiB; the table prints MiB).
const MIB: u64 = 1024 * 1024;
/// Bytes in one of the MB: decimal, as it counts 50.98 M parameters as "204 MB" (so
/// "24 MB" is 22.89 MiB).
pub const MB: u64 = 1_000_000;
/// Bytes of one queued YOLOv2-608 frame at the source (608 × 608 × 3 f32).
pub const FRAME_BYTES: u64 = 608 * 608 * 3 * 4;

/// What a node of the measured cluster does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The gateway, reporting the fused output only (`--tail none`).
    Gateway,
    /// The gateway running the layers after the fused ones (`--tail run`).
    GatewayWithTail,
    /// The gateway of a coded tail: it decodes and runs the glue layers, the edges hold the
    /// tail's convolutions.
    GatewayCoded,
    /// The edge frames enter at.
    SourceEdge,
    /// An edge that only computes.
    Edge,
}

impl Role {
    /// Short name for tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::GatewayWithTail => "gateway+tail",
            Role::GatewayCoded => "gateway+coded",
            Role::SourceEdge => "source edge",
            Role::Edge => "edge",
        }
    }

    /// The YOLOv2-608 target for this role on `grid`, in bytes (`None`: no target), in the
    /// issue's decimal [`MB`].
    ///
    /// A non-source edge: 32 MB on grids of fewer than 25 tiles (3x3), 24 MB from 5x5 on; a
    /// source edge that plus its [`SOURCE_QUEUE`] queued frames; the gateway without the tail
    /// 24 MB; none for the gateway with the tail (it holds all 50.98 M parameters) or a coded
    /// one. A coded worker adds its shard weights ([`NodeRss::shard_bytes`]) to its edge's.
    pub fn target_bytes(self, grid: (u32, u32)) -> Option<u64> {
        let edge = if grid.0 * grid.1 >= 25 { 24 } else { 32 } * MB;
        match self {
            Role::Gateway => Some(24 * MB),
            Role::GatewayWithTail | Role::GatewayCoded => None,
            Role::SourceEdge => Some(edge + SOURCE_QUEUE as u64 * FRAME_BYTES),
            Role::Edge => Some(edge),
        }
    }
}

/// One node's measurement.
#[derive(Clone, Debug)]
pub struct NodeRss {
    /// Node id (0: gateway).
    pub id: u16,
    /// Its role.
    pub role: Role,
    /// Peak resident set (`VmHWM`), bytes.
    pub peak_bytes: u64,
    /// Tiles it computed over the measured frames (from the gateway's per-frame report).
    pub tiles: u32,
    /// Coded-tail shard weights it holds, bytes (as the edge reports them; 0 without a coded
    /// tail).
    pub shard_bytes: u64,
    /// Target, bytes ([`Role::target_bytes`] plus the shard weights).
    pub target_bytes: Option<u64>,
}

impl NodeRss {
    /// Whether the peak is within the target (`None`: no target).
    pub fn within_target(&self) -> Option<bool> {
        self.target_bytes.map(|t| self.peak_bytes <= t)
    }
}

/// One measured cluster run.
#[derive(Clone, Debug)]
pub struct RssRun {
    /// Grid.
    pub grid: (u32, u32),
    /// The coded tail, if any (the cluster file's `tail`, e.g. `cdc:1`).
    pub coded: Option<String>,
    /// Frames the gateway finished before the reading.
    pub frames: usize,
    /// Gateway first, then edges by id.
    pub nodes: Vec<NodeRss>,
}

impl RssRun {
    /// The run as a JSON object.
    pub fn json(&self) -> serde_json::Value {
        let nodes: Vec<_> = self
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "id": n.id,
                    "role": n.role.name(),
                    "vm_hwm_bytes": n.peak_bytes,
                    "target_bytes": n.target_bytes,
                    "within_target": n.within_target(),
                    "tiles": n.tiles,
                    "shard_bytes": n.shard_bytes,
                })
            })
            .collect();
        serde_json::json!({
            "grid": format!("{}x{}", self.grid.0, self.grid.1),
            "coded_tail": self.coded,
            "frames": self.frames,
            "nodes": nodes,
        })
    }
}

/// How to measure.
#[derive(Clone, Debug)]
pub struct RssSetup {
    /// The `tessera` executable.
    pub exe: PathBuf,
    /// Grid.
    pub grid: (u32, u32),
    /// Whether the gateway runs the tail.
    pub tail: bool,
    /// A coded tail over the edges (the cluster file's `tail`, e.g. `cdc:1`; the gateway then
    /// runs with `--tail run` and `tail` is ignored).
    pub coded: Option<String>,
    /// Frames to finish before reading (more run while some edge has computed no tile yet,
    /// up to [`RssSetup::max_frames`]).
    pub frames: usize,
    /// Most frames to run.
    pub max_frames: usize,
    /// Conv kernel of every node.
    pub kernel: NodeKernel,
    /// Node `i` listens on `127.0.net.(i+1):port[i]`.
    pub net: u8,
    /// Ports of the gateway and edges 1..=3.
    pub ports: [u16; 4],
    /// Longest wait for the frames.
    pub timeout: Duration,
}

/// Child processes killed (by PID) and reaped on drop, then their files removed (the cluster
/// file, the source's picture): only then, as a source reads its picture for every frame and
/// ends when it is gone, which would lose its `VmHWM` reading.
struct Procs {
    children: Vec<Child>,
    files: Vec<PathBuf>,
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The run's cluster file: WST-S, node `i` a source for `i == 1`, defaults elsewhere.
fn cluster_text(s: &RssSetup) -> String {
    let nodes = (0..s.ports.len())
        .zip(s.ports)
        .map(|(i, port)| {
            let addr = SocketAddr::from((Ipv4Addr::new(127, 0, s.net, i as u8 + 1), port));
            FileNode::new(i as NodeId, addr, i == 1)
        })
        .collect();
    let key = core::array::from_fn(|i| i as u8);
    let mut f = ClusterFile::new(Policy::WstS, s.grid, &key, nodes);
    f.kernel = Some(written(s.kernel.name().into()));
    f.tail = s.coded.clone().map(written);
    f.to_toml().expect("a cluster file's values serialize")
}

/// `VmHWM` (peak resident set) of a running process, in bytes.
pub fn vm_hwm(pid: u32) -> Result<u64, MeasureError> {
    status_kib(pid, "VmHWM")
}

/// `VmRSS` (resident set now) of a running process, in bytes.
pub fn vm_rss(pid: u32) -> Result<u64, MeasureError> {
    status_kib(pid, "VmRSS")
}

/// File descriptors a running process holds now (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> Result<usize, MeasureError> {
    let path = PathBuf::from(format!("/proc/{pid}/fd"));
    Ok(std::fs::read_dir(&path)
        .map_err(file_error("reading", &path))?
        .count())
}

/// A `kB` field of `/proc/PID/status`, in bytes.
fn status_kib(pid: u32, field: &'static str) -> Result<u64, MeasureError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = std::fs::read_to_string(&path).map_err(file_error("reading", &path))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or(MeasureError::NoField { path, field })
}

/// Parses an edge's `edge 2: coded tail shards held, 1234 bytes` line.
fn shard_bytes_of(line: &str) -> Option<u64> {
    let rest = line.split(": coded tail shards held, ").nth(1)?;
    rest.strip_suffix(" bytes")?.trim().parse().ok()
}

/// Takes the shard bytes edge `i + 1` reported from `edges[i]`'s lines so far.
fn read_shards(edges: &[Option<Receiver<String>>], shards: &mut [u64; 4]) {
    for (i, rx) in edges.iter().enumerate() {
        for l in rx.iter().flat_map(|rx| rx.try_iter()) {
            if let (Some(b), Some(s)) = (shard_bytes_of(&l), shards.get_mut(i + 1)) {
                *s = b;
            }
        }
    }
}

/// Parses the gateway's `tiles [(1, 3), (2, 2)]` suffix into (edge, count) pairs.
fn tiles_of(line: &str) -> Vec<(u16, u32)> {
    let Some(list) = line.split("tiles [").nth(1) else {
        return Vec::new();
    };
    list.split(')')
        .filter_map(|p| {
            let p = p.trim_start_matches([',', ' ', '(']);
            let (id, n) = p.split_once(',')?;
            Some((id.trim().parse().ok()?, n.trim().parse().ok()?))
        })
        .collect()
}

/// Streams a child's stdout lines into a channel (the thread ends with the pipe).
fn lines(child: &mut Child) -> Option<Receiver<String>> {
    let out = child.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Some(rx)
}

fn spawn(exe: &Path, args: &[String], stdout: bool) -> Result<Child, MeasureError> {
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| MeasureError::Spawn {
            command: format!("{} {}", exe.display(), args.join(" ")),
            error,
        })
}

/// Starts the cluster, waits until the gateway finished `frames` frames and every edge computed
/// a tile (or `max_frames`), reads every process's `VmHWM`, then kills them all.
pub fn measure(s: &RssSetup) -> Result<RssRun, MeasureError> {
    let file = std::env::temp_dir().join(format!(
        "tessera-rss-{}-{}-{}.toml",
        std::process::id(),
        s.net,
        s.ports[0]
    ));
    std::fs::write(&file, cluster_text(s)).map_err(file_error("writing", &file))?;
    let mut procs = Procs {
        children: Vec::new(),
        files: alloc::vec![file.clone()],
    };
    let cluster = file.display().to_string();
    let arg = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let tail = if s.tail || s.coded.is_some() {
        "run"
    } else {
        "none"
    };
    // A coded worker says how many shard bytes it holds on stdout.
    let coded = s.coded.is_some();
    procs.children.push(spawn(
        &s.exe,
        &arg(&["gateway", "--cluster", &cluster, "--tail", tail]),
        true,
    )?);
    let gateway_lines = lines(&mut procs.children[0]).ok_or(MeasureError::NoStdout)?;
    // The source first, the other edges after it: started before the source, an edge may sit
    // idle for a tile timeout (a start-order problem apart from memory).
    let image = std::env::temp_dir().join(format!(
        "tessera-rss-{}-{}-{}.jpg",
        std::process::id(),
        s.net,
        s.ports[0]
    ));
    std::fs::write(&image, DEFAULT_IMAGE).map_err(file_error("writing", &image))?;
    procs.files.push(image.clone());
    let image_arg = image.display().to_string();
    // More frames than are ever waited for: a source that ran out would exit before its
    // `VmHWM` is read (a reaped-to-be process has no such line).
    let repeat = (2 * s.max_frames + 8).to_string();
    procs.children.push(spawn(
        &s.exe,
        &arg(&[
            "edge",
            "--cluster",
            &cluster,
            "--id",
            "1",
            "--input",
            &image_arg,
            "--repeat",
            &repeat,
            "--seconds",
            "3600",
        ]),
        coded,
    )?);
    std::thread::sleep(Duration::from_millis(300));
    for id in 2..=3 {
        let id = id.to_string();
        procs.children.push(spawn(
            &s.exe,
            &arg(&["edge", "--cluster", &cluster, "--id", &id]),
            coded,
        )?);
    }
    let edge_lines: Vec<Option<Receiver<String>>> =
        procs.children[1..].iter_mut().map(lines).collect();
    let mut shards = [0u64; 4];
    let start = Instant::now();
    let mut tiles = [0u32; 4];
    let mut frames = 0;
    let outcome = loop {
        let all_worked = tiles[1..].iter().all(|&t| t > 0);
        if frames >= s.max_frames || (frames >= s.frames && all_worked) {
            break Ok(());
        }
        if start.elapsed() > s.timeout {
            break Err(MeasureError::Timeout {
                frames,
                timeout: s.timeout,
            });
        }
        for (i, c) in procs.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(MeasureError::Exited { id: i, status });
            }
        }
        read_shards(&edge_lines, &mut shards);
        match gateway_lines.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.starts_with("frame ") => {
                frames += 1;
                for (id, n) in tiles_of(&l) {
                    if let Some(t) = tiles.get_mut(id as usize) {
                        *t += n;
                    }
                }
            }
            _ => {}
        }
    };
    outcome?;
    read_shards(&edge_lines, &mut shards);
    if coded {
        if let Some(id) = (1..4).find(|&i| shards[i] == 0) {
            return Err(MeasureError::NoShards { id });
        }
    }
    let mut nodes = Vec::new();
    for (i, c) in procs.children.iter_mut().enumerate() {
        // A node gone since the last check has no `VmHWM` left: say which and how.
        if let Ok(Some(status)) = c.try_wait() {
            return Err(MeasureError::Exited { id: i, status });
        }
        let role = match i {
            0 if coded => Role::GatewayCoded,
            0 if s.tail => Role::GatewayWithTail,
            0 => Role::Gateway,
            1 => Role::SourceEdge,
            _ => Role::Edge,
        };
        nodes.push(NodeRss {
            id: i as u16,
            role,
            peak_bytes: vm_hwm(c.id())?,
            tiles: tiles[i],
            shard_bytes: shards[i],
            target_bytes: role.target_bytes(s.grid).map(|t| t + shards[i]),
        });
    }
    drop(procs);
    Ok(RssRun {
        grid: s.grid,
        coded: s.coded.clone(),
        frames,
        nodes,
    })
}

/// Peak resident memory of real `tessera gateway` / `tessera edge` processes (YOLOv2-608), as
/// `tessera bench cluster` reports it: 3x3 and 5x5 with the gateway reporting the fused output
/// only, 3x3 with the tail on the gateway, then 3x3 and 5x5 with the tail coded over the edges
/// (`cdc:1`: every edge a coded worker). Run `i` listens on 127.0.(60+i).x at `port`;
/// `progress` hears each run's grid, tail on the gateway and coded tail before it starts.
pub fn yolo_runs(
    exe: &Path,
    kernel: NodeKernel,
    frames: usize,
    port: u16,
    mut progress: impl FnMut((u32, u32), bool, Option<&str>),
) -> Result<Vec<RssRun>, MeasureError> {
    let mut runs = Vec::new();
    let configs = [
        ((3, 3), false, None),
        ((5, 5), false, None),
        ((3, 3), true, None),
        ((3, 3), false, Some("cdc:1")),
        ((5, 5), false, Some("cdc:1")),
    ];
    for (i, (grid, tail, coded)) in configs.into_iter().enumerate() {
        progress(grid, tail, coded);
        runs.push(measure(&RssSetup {
            exe: exe.to_path_buf(),
            grid,
            tail,
            coded: coded.map(str::to_string),
            frames: frames.max(3),
            max_frames: 40,
            kernel,
            net: 60 + i as u8,
            ports: [port; 4],
            timeout: Duration::from_secs(600),
        })?);
    }
    Ok(runs)
}

/// The runs as a table, one row per node, in MiB (2^20 bytes), each target also in the issue's
/// decimal MB (10^6 bytes) it is set in.
pub fn table(runs: &[RssRun]) -> String {
    let mut s = format!(
        "{:<5} {:<6} {:>3} {:<13} {:>9} {:>10} {:>10} {:>9} {:>6} {:>6}\n",
        "grid",
        "tail",
        "id",
        "role",
        "VmHWM MiB",
        "shards MiB",
        "target MiB",
        "target MB",
        "tiles",
        "target"
    );
    let mib = |b: u64| b as f64 / MIB as f64;
    let mb = |b: u64| b as f64 / MB as f64;
    for r in runs {
        for n in &r.nodes {
            let target = n
                .target_bytes
                .map_or("-".to_string(), |t| format!("{:.2}", mib(t)));
            let target_mb = n
                .target_bytes
                .map_or("-".to_string(), |t| format!("{:.2}", mb(t)));
            let verdict = match n.within_target() {
                Some(true) => "pass",
                Some(false) => "miss",
                None => "-",
            };
            let _ = writeln!(
                s,
                "{:<5} {:<6} {:>3} {:<13} {:>9.2} {:>10.2} {:>10} {:>9} {:>6} {:>6}",
                format!("{}x{}", r.grid.0, r.grid.1),
                r.coded.as_deref().unwrap_or("-"),
                n.id,
                n.role.name(),
                mib(n.peak_bytes),
                mib(n.shard_bytes),
                target,
                target_mb,
                n.tiles,
                verdict
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn parses_the_gateway_tiles_report() {
        let l = "frame 1.2: 241 ms in the cluster, fused output 369664 values, tiles [(1, 5), (2, 2), (3, 12)]";
        assert_eq!(tiles_of(l), vec![(1, 5), (2, 2), (3, 12)]);
        assert_eq!(tiles_of("frame 1.3 FAILED"), vec![]);
    }

    #[test]
    fn parses_a_workers_shard_bytes() {
        assert_eq!(
            shard_bytes_of("edge 3: coded tail shards held, 95063040 bytes"),
            Some(95_063_040)
        );
        assert_eq!(shard_bytes_of("edge 3: 2 frames done"), None);
    }

    #[test]
    fn targets_are_in_decimal_megabytes() {
        // 24 MB is 22.89 MiB, not 24 MiB: a 5x5 edge at 23.5 MiB misses it.
        let e = Role::Edge.target_bytes((5, 5)).unwrap();
        assert_eq!(e, 24_000_000);
        assert!(e < 23 * MIB && e > 22 * MIB + 880 * 1024);
        assert_eq!(Role::Edge.target_bytes((3, 3)), Some(32_000_000));
        assert_eq!(Role::Gateway.target_bytes((5, 5)), Some(24_000_000));
        let n = NodeRss {
            id: 2,
            role: Role::Edge,
            peak_bytes: 23 * MIB + MIB / 2,
            tiles: 1,
            shard_bytes: 0,
            target_bytes: Some(e),
        };
        assert_eq!(n.within_target(), Some(false));
        let t = table(&[RssRun {
            grid: (5, 5),
            coded: None,
            frames: 1,
            nodes: vec![n],
        }]);
        let row = t.lines().nth(1).unwrap();
        assert!(row.contains(" 22.89 ") && row.contains(" 24.00 "), "{row}");
        assert!(row.ends_with("miss"), "{row}");
    }

    #[test]
    fn source_target_adds_its_queued_frames() {
        let e = Role::Edge.target_bytes((5, 5)).unwrap();
        assert_eq!(
            Role::SourceEdge.target_bytes((5, 5)),
            Some(e + SOURCE_QUEUE as u64 * FRAME_BYTES)
        );
        assert_eq!(Role::GatewayWithTail.target_bytes((3, 3)), None);
    }
}
