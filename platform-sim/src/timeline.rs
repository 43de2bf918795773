//! Where the time of one target configuration goes (`tessera-sim timeline`): per frame, each
//! node's jobs in order (tile, mode, start and end from the frame's submission), how busy each
//! node was until the frame finished, and the bytes the frame put on the medium with the air
//! time they take. Used to find scheduling flaws behind a missed target (docs/report.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tessera_core::ftp::Mode;
use tessera_core::runtime::Work;
use tessera_core::wire::NodeId;

use crate::experiments::OutArgs;
use crate::targets::{config, Setup};
use crate::world::{run, SimConfig};

/// The timeline of `s` as text.
pub fn timeline(a: &OutArgs, s: Setup) -> String {
    timeline_of(&config(a, s), &s.label())
}

/// The timeline of a run of `cfg` as text, under `title`.
pub fn timeline_of(cfg: &SimConfig, title: &str) -> String {
    let out = run(cfg);
    let mut t = String::new();
    let (ip_bytes, _, _) = out.medium.first().copied().unwrap_or_default();
    let air = |bytes: f64| {
        let hops = match cfg.net.topology {
            crate::medium::Topology::SharedChannel { relay_hops } => relay_hops as f64,
            _ => 1.0,
        };
        bytes * 8.0 * hops / cfg.net.rate_bps
    };
    let frames = out.submitted.max(1) as f64;
    let _ = writeln!(
        t,
        "{title}, {} edges: {} of {} frames; medium {:.2} MiB/frame of IP ({:.2} s of air \
         time a frame)",
        cfg.edges,
        out.completed(),
        out.submitted,
        ip_bytes as f64 / frames / 1048576.0,
        air(ip_bytes as f64 / frames)
    );
    for f in &out.frames {
        let (t0, t1) = (f.submitted, f.finished);
        let _ = writeln!(
            t,
            "frame {}: {:.2} s, tiles by {:?}",
            f.frame.number,
            f.latency_s(),
            f.tiles_by
        );
        let mut by: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
        let mut busy: BTreeMap<NodeId, u64> = BTreeMap::new();
        for j in out.jobs.iter().filter(|j| j.work.frame() == f.frame) {
            let Work::Tile { tile, mode, .. } = j.work else {
                continue;
            };
            let m = if mode == Mode::Reuse { "R" } else { "P" };
            by.entry(j.id).or_default().push(format!(
                "{tile}{m} {:.2}-{:.2}",
                j.start.saturating_sub(t0) as f64 / 1e6,
                j.end.saturating_sub(t0) as f64 / 1e6
            ));
            *busy.entry(j.id).or_default() += j.end.min(t1).saturating_sub(j.start.max(t0));
        }
        for (id, jobs) in &by {
            let share = busy.get(id).copied().unwrap_or(0) as f64 / (t1 - t0).max(1) as f64;
            let _ = writeln!(
                t,
                "  node {id}: busy {:>3.0} %: {}",
                100.0 * share,
                jobs.join(", ")
            );
        }
    }
    t
}
