//! The deployment path, as a user runs it: separate `tessera gateway` / `tessera edge`
//! processes from one cluster file on 127.77.k.x (YOLOv2 at 160×160, generated weights).
//!
//! Nodes start in every order of {gateway, source edge 1, helper edges 2 and 3} and every edge
//! computes tiles; an edge killed with SIGKILL and restarted with the same id computes again; a
//! gateway killed and restarted completes new frames, with every edge taking part, and the
//! frames in flight at the crash are re-submitted to it and complete (none fails).
//!
//! Assertions are about events (lines the processes print), never about elapsed time: waits
//! are bounded only so a broken cluster fails the test instead of hanging it. Each scenario has
//! its own loopback subnet (127.77.k.0/24, which no other test binary uses) and a port derived
//! from the process id, so parallel scenarios and parallel runs of this binary never share an
//! address. Every child is killed by PID when its handle drops.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Proc;
use tessera_backends::builtin::DEFAULT_CFG;
use tessera_backends::cluster_file::{written, ClusterFile, FileNode};
use tessera_core::wire::Policy;

/// Longest wait for one expected event (a loaded CI machine is slow, not broken).
const WAIT: Duration = Duration::from_secs(90);
/// Frames the source edge feeds: far more than any scenario needs, so it never runs dry.
const FRAMES: usize = 200;
/// Frames a `tessera edge` source keeps submitted and unfinished at most.
const IN_FLIGHT: u32 = tessera_backends::frame_source::SOURCE_QUEUE as u32;
const GATEWAY: u16 = 0;
const SOURCE: u16 = 1;
const HELPERS: [u16; 2] = [2, 3];
const EDGES: [u16; 3] = [1, 2, 3];

/// A frame the gateway finished: `(origin, number, tiles per node)`; `None` tiles: failed.
type GwFrame = (u16, u32, Option<BTreeMap<u16, u32>>);

/// Parses `frame 1.7: 12 ms in the cluster, 3 boxes, tiles [(1, 6), (2, 3)]` and
/// `frame 1.7 FAILED`.
fn parse_frame(line: &str) -> Option<GwFrame> {
    let rest = line.strip_prefix("frame ")?;
    let key_end = rest.find([':', ' ']).unwrap_or(rest.len());
    let (origin, number) = rest[..key_end].split_once('.')?;
    let (origin, number) = (origin.parse().ok()?, number.parse().ok()?);
    if rest.ends_with("FAILED") {
        return Some((origin, number, None));
    }
    let list = &rest[rest.find("tiles [")? + 7..];
    let nums: Vec<u32> = list
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let tiles = nums.chunks(2).map(|c| (c[0] as u16, c[1])).collect();
    Some((origin, number, Some(tiles)))
}

/// A cluster file in its own directory, and the processes started from it.
struct Cluster {
    dir: PathBuf,
    file: String,
    live: BTreeMap<u16, Proc>,
}

impl Cluster {
    /// Cluster `k` (its subnet 127.77.k.0/24).
    fn new(k: u8) -> Cluster {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("tessera-start-order-{pid}-{k}"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("yolo160.cfg");
        std::fs::write(
            &cfg,
            DEFAULT_CFG
                .replace("width=608", "width=160")
                .replace("height=608", "height=160"),
        )
        .unwrap();
        let port = 40_000 + (pid % 20_000) as u16;
        let nodes = (0..=3u16)
            .map(|id| FileNode::new(id, format!("127.77.{k}.{}:{port}", id + 1), id == SOURCE))
            .collect();
        let mut f = ClusterFile::new(Policy::WstS, (3, 3), &[0x5a; 32], nodes);
        f.layers = Some(written(16));
        f.seed = 3;
        f.cfg = Some(cfg.clone());
        f.timeouts = Some(common::short_timeouts());
        let text = f.to_toml().unwrap();
        let file = dir.join("cluster.toml");
        std::fs::write(&file, text).unwrap();
        Cluster {
            file: file.display().to_string(),
            dir,
            live: BTreeMap::new(),
        }
    }

    /// Starts node `id` and waits until it says it is up (listening, dialling its peers).
    fn start(&mut self, id: u16) {
        let image = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/images/1.jpg");
        let repeat = FRAMES.to_string();
        let id_s = id.to_string();
        let mut args = vec![];
        if id == GATEWAY {
            args.extend(["gateway", "--cluster", &self.file]);
        } else {
            args.extend(["edge", "--cluster", &self.file, "--id", &id_s]);
            if id == SOURCE {
                args.extend(["--input", image, "--repeat", &repeat]);
            }
        }
        let p = Proc::tessera_stdout(&args);
        let up = if id == GATEWAY {
            "gateway up".to_string()
        } else {
            format!("edge {id} up")
        };
        wait_for(&format!("node {id} up"), || {
            p.lines().iter().any(|l| l.starts_with(&up))
        });
        assert!(self.live.insert(id, p).is_none(), "node {id} started twice");
    }

    fn kill(&mut self, id: u16) -> Proc {
        let mut p = self.live.remove(&id).expect("a live node");
        p.kill();
        p
    }

    /// Frames the (current) gateway finished, in order.
    fn gateway_frames(&self) -> Vec<GwFrame> {
        self.live[&GATEWAY]
            .lines()
            .iter()
            .filter_map(|l| parse_frame(l))
            .collect()
    }

    /// Waits until frames numbered above `after` (all of them, when `None`) that the gateway
    /// completed hold tiles computed by every edge; returns how many each computed.
    fn wait_every_edge_computes(&self, what: &str, after: Option<u32>) -> BTreeMap<u16, u32> {
        let mut by = BTreeMap::new();
        wait_for(what, || {
            by = BTreeMap::new();
            for (_, n, tiles) in self.gateway_frames() {
                if after.is_some_and(|a| n.wrapping_sub(a) as i32 <= 0) {
                    continue;
                }
                for (node, count) in tiles.into_iter().flatten() {
                    *by.entry(node).or_insert(0) += count;
                }
            }
            EDGES.iter().all(|e| by.get(e).is_some_and(|&c| c > 0))
        });
        by
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Children first (killed and reaped by PID), then their files.
        self.live.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `done` until it holds; panics after [`WAIT`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the groups in `order`, each after the previous one is up and has had a moment to
/// dial peers that are not there yet; then every edge must compute tiles.
fn run_order(k: u8, order: [&[u16]; 3]) {
    let mut c = Cluster::new(k);
    for group in order {
        for &id in group {
            c.start(id);
        }
        // Long enough for failed dials and for early steals to find no victim.
        std::thread::sleep(Duration::from_millis(300));
    }
    let by = c.wait_every_edge_computes(&format!("every edge computing, order {order:?}"), None);
    eprintln!("order {order:?}: tiles {by:?}");
}

const G: &[u16] = &[GATEWAY];
const S: &[u16] = &[SOURCE];
const H: &[u16] = &HELPERS;

#[test]
fn gateway_source_helpers() {
    run_order(1, [G, S, H]);
}

#[test]
fn gateway_helpers_source() {
    run_order(2, [G, H, S]);
}

#[test]
fn source_gateway_helpers() {
    run_order(3, [S, G, H]);
}

#[test]
fn source_helpers_gateway() {
    run_order(4, [S, H, G]);
}

#[test]
fn helpers_gateway_source() {
    run_order(5, [H, G, S]);
}

#[test]
fn helpers_source_gateway() {
    run_order(6, [H, S, G]);
}

#[test]
fn an_edge_killed_and_restarted_rejoins_and_computes() {
    let mut c = Cluster::new(7);
    for id in [GATEWAY, SOURCE, 2, 3] {
        c.start(id);
    }
    c.wait_every_edge_computes("every edge computing before the kill", None);
    let old = c.kill(3);
    drop(old);
    c.start(3);
    // The old edge 3 could only compute tiles of frames submitted before it died: at most the
    // source's window past the last frame it has reported done (read after the restart, so
    // every frame finished before the kill is in it). Tiles of 3 in later frames are the new
    // edge's.
    let last = *source_done(&c.live[&SOURCE].lines())
        .last()
        .expect("frames done before the restart");
    let by = c.wait_every_edge_computes(
        "the restarted edge 3 computing",
        Some(last.wrapping_add(IN_FLIGHT)),
    );
    eprintln!("after the restart of edge 3: tiles {by:?}");
}

/// Frame numbers the source reported done (`frame 1.N: done in T ms`).
fn source_done(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("frame ")?.split_once(": done"))
        .filter_map(|(key, _)| key.split_once('.')?.1.parse().ok())
        .collect()
}

#[test]
fn a_gateway_killed_and_restarted_completes_new_frames() {
    let mut c = Cluster::new(8);
    for id in [GATEWAY, SOURCE, 2, 3] {
        c.start(id);
    }
    c.wait_every_edge_computes("every edge computing before the crash", None);
    let source_lines = |c: &Cluster| c.live[&SOURCE].lines();
    // The source hears "done" only once the gateway has the final result (after the tail).
    wait_for("a frame done at the source before the crash", || {
        !source_done(&source_lines(&c)).is_empty()
    });
    c.kill(GATEWAY);
    // The source is fed far more frames than it may hold in flight, so at the crash it holds
    // the window after the last frame it saw done, and submits no later frame until one of
    // them finishes.
    let last_done = *source_done(&source_lines(&c))
        .last()
        .expect("frames done before the crash");
    c.start(GATEWAY);
    // The edges re-dial the new gateway, every one of them takes part, and frames that were in
    // flight at the crash are re-submitted and complete there.
    let by = c.wait_every_edge_computes("every edge computing for the new gateway", None);
    let resubmitted = |c: &Cluster| {
        c.gateway_frames()
            .into_iter()
            .filter(|f| f.0 == SOURCE && f.2.is_some())
            .map(|f| f.1.wrapping_sub(last_done))
            .filter(|d| (1..=IN_FLIGHT).contains(d))
            .count()
    };
    wait_for(
        "a frame in flight at the crash completing at the new gateway",
        || resubmitted(&c) > 0,
    );
    let failed: Vec<String> = source_lines(&c)
        .into_iter()
        .filter(|l| l.contains("FAILED"))
        .collect();
    assert!(failed.is_empty(), "frames failed at the source: {failed:?}");
    eprintln!(
        "after the gateway restart: tiles {by:?}, {} re-submitted frames done",
        resubmitted(&c)
    );
}

#[test]
fn gateway_lines_parse() {
    assert_eq!(
        parse_frame("frame 1.4294967295: 171 ms in the cluster, 24 boxes, tiles [(1, 6), (3, 2)]"),
        Some((1, u32::MAX, Some(BTreeMap::from([(1, 6), (3, 2)]))))
    );
    assert_eq!(parse_frame("frame 2.7 FAILED"), Some((2, 7, None)));
    assert_eq!(
        source_done(&[
            "frame 1.9: done in 12 ms".into(),
            "frame 1.10: FAILED in 3 ms".into()
        ]),
        vec![9]
    );
    assert_eq!(parse_frame("gateway up: WstS, grid 3x3, 3 edges"), None);
}
