//! What `tessera demo` prints of a local cluster run ([`crate::local::run_local`]): a line per
//! frame (latency at its source, done, tiles per node), the coded tail's lines of a frame,
//! the nodes' counters, and the coded tail's summary (weights per edge, exactness, counters).

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;

use tessera_core::runtime::coded::Protection;
use tessera_core::wire::FrameKey;

use crate::coded::tail::{CheckSummary, CodedCheck, CodedTail};
use crate::coded::CodedFinished;
use crate::local::LocalRun;

/// The header of the frame lines.
pub const FRAME_HEADER: &str = "frame         latency     done  tiles per node               boxes";

const MIB: f64 = (1 << 20) as f64;

/// The key of the `i`-th frame of a run whose frames went round-robin over sources
/// `1..=sources`, numbered per source from 0.
pub fn frame_key(i: usize, sources: u16) -> FrameKey {
    let s = sources.max(1) as usize;
    FrameKey::new(1 + (i % s) as u16, (i / s) as u32)
}

/// The line of frame `key`: its latency at the source, whether the gateway finished it
/// (`LOST` when it never did) and the tiles each node computed.
pub fn frame_line(run: &LocalRun, key: FrameKey) -> String {
    let name = format!("{}.{}", key.origin, key.number);
    let lat = run.source_latency.get(&key).map_or("-".to_string(), |d| {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    });
    let Some(f) = run.gateway.get(&key) else {
        return format!("{name:<10} {lat:>10} {:>8}", "LOST");
    };
    let tiles: Vec<String> = f.tiles_by.iter().map(|(n, c)| format!("{n}:{c}")).collect();
    format!(
        "{name:<10} {lat:>10} {:>8}  {:<28}",
        if f.complete { "yes" } else { "FAILED" },
        tiles.join(" ")
    )
}

/// The coded tail's description: `scheme` (as the command line wrote it) and how it splits
/// each coded layer.
pub fn coded_tail_line(scheme: &str, c: &CodedTail) -> String {
    let s = c.scheme();
    let replicated = s.protection == Protection::Replicated;
    format!(
        "coded tail: {scheme} ({} data + {} {} shards per layer) over {} coded layers (network layers {:?}), on the nodes' links",
        s.k,
        if replicated { s.k } else { s.r },
        if replicated { "replica" } else { "parity" },
        c.conv_layers().len(),
        c.conv_layers(),
    )
}

/// A frame's time in the coded stage, per layer and in all, and its quality.
pub fn coded_frame_line(fin: &CodedFinished) -> String {
    let layer_ms: Vec<String> = fin
        .layers
        .iter()
        .map(|l| format!("{:.0}", l.latency.total_micros() as f64 / 1e3))
        .collect();
    format!(
        "    coded tail {:.0} ms (per layer ms: {}), quality {:.3}{}",
        fin.latency.total_micros() as f64 / 1e3,
        layer_ms.join(" "),
        fin.quality.fraction,
        if fin.quality.is_complete() {
            ""
        } else {
            " (rows lost)"
        }
    )
}

/// How a frame's coded tail compares with the centralised coded run and the plain tail
/// (`layers`: the coded layers the frame went through).
pub fn check_line(check: &CodedCheck, layers: usize) -> String {
    format!(
        "    {}; {} of {} layers decoded with parity/replicas; vs plain tail max |d| {:.2e}, detections {}",
        if check.bit_identical {
            "= centralised coded run (bit-identical)".to_string()
        } else {
            format!("max |d| {:.2e} from the centralised coded run", check.vs_reference)
        },
        check.recovered_layers,
        layers,
        check.vs_plain,
        if check.detections_match { "match the plain tail's" } else { "DIFFER from the plain tail's" }
    )
}

/// Each node's counters: bytes sent and received, tiles computed, lent, re-dispatched,
/// discarded, strip reuses and the peak tile store.
pub fn node_table(run: &LocalRun) -> String {
    let mut out = format!(
        "{:<6} {:>12} {:>12} {:>9} {:>6} {:>8} {:>8} {:>7} {:>10}\n",
        "node",
        "sent MiB",
        "recv MiB",
        "computed",
        "lent",
        "re-disp",
        "discard",
        "reuse",
        "peak MiB"
    );
    for (id, s) in &run.stats {
        let _ = writeln!(
            out,
            "{:<6} {:>12.2} {:>12.2} {:>9} {:>6} {:>8} {:>8} {:>7} {:>10.1}",
            if *id == 0 {
                "gw".to_string()
            } else {
                format!("edge{id}")
            },
            s.link.bytes_sent as f64 / MIB,
            s.link.bytes_received as f64 / MIB,
            s.runtime.tiles_computed,
            s.runtime.tiles_lent,
            s.runtime.tiles_redispatched,
            s.runtime.discarded,
            s.runtime.reuse_runs,
            s.peak_store_bytes as f64 / MIB,
        );
    }
    out
}

/// The coded tail's summary over a run: the weights each of `edges` edges holds against the
/// whole tail, the median time in the stage (`tail_ms`, sorted here), how the frames compare
/// (`checks`), and the coded counters of every node.
pub fn coded_summary(
    c: &CodedTail,
    edges: u16,
    checks: &[CodedCheck],
    tail_ms: &mut [f64],
    run: &LocalRun,
) -> String {
    let mib = |b: usize| b as f64 / MIB;
    let whole = c.whole_tail_bytes();
    let per: Vec<String> = (1..=edges)
        .map(|id| {
            let b = c.model().worker_param_bytes(id);
            format!(
                "edge{id} {:.1} MiB ({:.0}%)",
                mib(b),
                100.0 * b as f64 / whole.max(1) as f64
            )
        })
        .collect();
    let mut out = format!(
        "coded tail weights: whole tail {:.1} MiB (BN folded, f32) on one device without coding; held per edge: {}\n",
        mib(whole),
        per.join(", ")
    );
    let s = CheckSummary::of(checks);
    tail_ms.sort_by(f64::total_cmp);
    let _ = writeln!(
        out,
        "coded tail: {} frames, {:.0} ms median in the stage; {} of {} bit-identical to the centralised coded run{}; max |d| vs plain tail {:.2e}; detections match the plain tail in {} of {}",
        s.frames,
        tail_ms.get(tail_ms.len() / 2).copied().unwrap_or(f64::NAN),
        s.exact,
        s.frames,
        if s.exact < s.frames {
            format!(" (others within {:.2e}: {} layers decoded from parity/replicas, float decode is not bit-exact)", s.worst_vs_reference, s.recovered_layers)
        } else {
            String::new()
        },
        s.worst_vs_plain,
        s.same_detections,
        s.frames
    );
    let coded_stats = run.stats.iter().filter_map(|(id, s)| Some((id, s.coded?)));
    for (id, s) in coded_stats {
        if let Some(g) = s.gateway {
            let _ = writeln!(
                out,
                "coded gateway: {} layers decoded ({} recovered), {} expired, {} shards re-sent, {} results discarded; glue failures {}",
                g.decoded, g.recovered, g.expired, g.resent, g.discarded, s.glue_failures
            );
        }
        if let Some(w) = s.worker {
            let _ = writeln!(
                out,
                "coded edge{id}: {} shards received, {} sent, {} late",
                w.received, w.sent, w.late,
            );
        }
    }
    out
}
