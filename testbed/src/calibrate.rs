//! Calibration: each scenario in the simulator (in-process, its cost model) and on the
//! testbed, per-frame latency and bytes side by side (`calibration.csv`,
//! `tessera_sim::calibration::Row`).
//!
//! Latency: the mean over frames complete at their source (the simulator's frames are
//! measured from submission at the source to completion at the gateway; the testbed's to
//! the source hearing `FrameDone`, one message later).
//!
//! Bytes, three ways:
//! - **link payload**: what the nodes' links sent, by the links' own counters (the same driver
//!   code in both worlds; the testbed's from each process's exit line). Independent of TCP's
//!   headers, ACKs and retransmissions, and of when the interface counters were read.
//! - **link payload at the testbed's split**: work stealing decides from timing which tiles
//!   leave the source, and a moved tile costs its layer-0 input (0.8–1.2 MB at 3×3). The two
//!   worlds race differently, so the simulator's count of moved tiles is replaced by the
//!   testbed's, each at the simulator's mean input of a moved tile: what remains is the model.
//! - **IP**: the simulator's medium, per sender once the cluster is ready; the testbed's
//!   bridge-port counters from before the sources start to the last frame.

use tessera_core::runtime::Work;
use tessera_sim::calibration::{megabytes, pct, signed, Row};
use tessera_sim::world::{self, Outcome as SimOutcome};

use std::path::Path;

use crate::logs::link_bytes_sent;
use crate::record::{read, FrameRow, NodeRow, ReadError};
use crate::run::{run, scenario, Options, Outcome, RunError};

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The simulator's mean layer-0 input payload of the tiles it moved off their frame's source,
/// bytes (`None`: it moved none).
fn moved_tile_bytes(cfg: &world::SimConfig, sim: &SimOutcome) -> Option<f64> {
    let model = tessera_sim::models::model(cfg.model, cfg.grid);
    let stack = model.stack().ok()?;
    let channels = stack.layers().first()?.input.c as u64;
    let origins: std::collections::BTreeMap<_, _> = sim
        .frames
        .iter()
        .map(|f| (f.frame, f.frame.origin))
        .collect();
    let sizes: Vec<f64> = sim
        .jobs
        .iter()
        .filter_map(|j| match j.work {
            Work::Tile { frame, tile, mode } if origins.get(&frame) != Some(&j.id) => {
                let plan = model.plan(tile, mode).ok()?;
                Some((4 * plan.input(0).area() * channels) as f64)
            }
            _ => None,
        })
        .collect();
    (!sizes.is_empty()).then(|| mean(&sizes))
}

/// Tiles the frames' sources computed themselves, simulator.
fn sim_source_tiles(sim: &SimOutcome) -> u32 {
    sim.frames
        .iter()
        .flat_map(|f| f.tiles_by.iter().filter(move |t| t.0 == f.frame.origin))
        .map(|t| t.1)
        .sum()
}

/// Tiles the frames' sources computed themselves, testbed.
fn bed_source_tiles(bed: &Outcome) -> u32 {
    bed.frames
        .iter()
        .flat_map(|f| {
            let me = format!("{}:", f.origin);
            f.tiles_by
                .split_whitespace()
                .filter_map(move |t| t.strip_prefix(&me).and_then(|k| k.parse::<u32>().ok()))
        })
        .sum()
}

/// Runs scenario `name` both ways; the testbed's outcome too (for its CSVs).
pub fn compare(name: &str, text: &str, o: &Options) -> Result<(Row, Outcome), RunError> {
    let bed = run(name, text, o)?;
    Ok((against(name, text, &bed, bed.fraction)?, bed))
}

/// Scenario `name` run in the simulator and set against a testbed run `bed` (fresh, or read
/// back from its CSVs); `fraction` is the share of a host core each compute thread had.
pub fn against(name: &str, text: &str, bed: &Outcome, fraction: f64) -> Result<Row, RunError> {
    let (cfg, _) = scenario(text)?;
    let sim = world::run(&cfg);
    let sim_lat: Vec<f64> = sim
        .frames
        .iter()
        .filter(|f| f.complete)
        .map(|f| f.latency_s())
        .collect();
    let bed_lat = bed.latencies_s();
    let sim_bytes: u64 = sim.sent.first().map_or(0, |s| s.iter().sum());
    let sim_flops: u64 = sim.jobs.iter().map(|j| j.flops).sum();
    let flops = sim_flops as f64 / sim.completed().max(1) as f64 * bed_lat.len() as f64;
    let cpu: f64 = bed.nodes.iter().map(|n| n.compute_cpu_s).sum();
    let (sim_src, bed_src) = (sim_source_tiles(&sim), bed_source_tiles(bed));
    let bed_bytes = bed.ip_bytes();
    let sim_link: u64 = sim
        .nodes
        .iter()
        .filter(|n| n.0 == 0)
        .map(|n| n.2.link.bytes_sent)
        .sum();
    let bed_link: Option<u64> = bed.nodes.iter().map(|n| n.link_bytes_sent).sum();
    let moved = moved_tile_bytes(&cfg, &sim);
    // More tiles kept at the testbed's source: fewer inputs sent. With the same split there
    // is nothing to replace (and with no tile moved, no mean to replace it with).
    let at_split = if sim_src == bed_src {
        Some(sim_link as f64)
    } else {
        moved.map(|b| sim_link as f64 - (f64::from(bed_src) - f64::from(sim_src)) * b)
    };
    Ok(Row {
        scenario: name.to_string(),
        net: cfg.net.name.clone(),
        policy: cfg.policy.name().to_string(),
        grid: format!("{}x{}", cfg.grid.0, cfg.grid.1),
        edges: cfg.edges,
        sim_frames: format!("{}/{}", sim.completed(), sim.submitted),
        bed_frames: format!("{}/{}", bed_lat.len(), bed.frames.len()),
        sim_latency_s: mean(&sim_lat),
        bed_latency_s: mean(&bed_lat),
        latency_diff_pct: pct(mean(&sim_lat), mean(&bed_lat)),
        sim_bytes,
        bed_bytes,
        bytes_diff_pct: pct(sim_bytes as f64, bed_bytes as f64),
        sim_source_tiles: sim_src,
        bed_source_tiles: bed_src,
        bed_device_gflops: flops / cpu / 1e9 * fraction,
        sim_link_bytes: Some(sim_link),
        bed_link_bytes: bed_link,
        link_diff_pct: bed_link.map(|b| pct(sim_link as f64, b as f64)),
        moved_tile_bytes: moved,
        link_diff_at_bed_split_pct: bed_link.zip(at_split).map(|(b, s)| pct(s, b as f64)),
    })
}

/// A testbed run read back from the directory `run` or `calibrate` wrote it to (`frames.csv`,
/// `nodes.csv`, and the node logs for link bytes where `nodes.csv` predates that column), for
/// setting it against a changed simulator without running the testbed again.
pub fn saved(dir: &Path) -> Result<Outcome, ReadError> {
    let frames: Vec<FrameRow> = read(&dir.join("frames.csv"))?;
    let mut nodes: Vec<NodeRow> = read(&dir.join("nodes.csv"))?;
    for n in &mut nodes {
        if n.link_bytes_sent.is_none() {
            let log = std::fs::read_to_string(dir.join(format!("node-{}.out", n.node)));
            n.link_bytes_sent = log.ok().and_then(|t| link_bytes_sent(&t, n.starts));
        }
    }
    Ok(Outcome {
        frames,
        nodes,
        host_gflops: f64::NAN,
        compute: "read back".into(),
        fraction: f64::NAN,
        timed_out: false,
        span_s: f64::NAN,
    })
}

/// The rows as a Markdown table (for the docs).
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| scenario | net | policy | edges | frames sim / bed | latency sim s | latency bed s | Δ % | link MB sim | link MB bed | Δ % | Δ % at bed's split | IP MB sim | IP MB bed | Δ % | source tiles sim / bed | bed device GFLOP/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} {} | {} | {} / {} | {:.2} | {:.2} | {:+.1} | {} | {} | {} | {} | {:.2} | {:.2} | {:+.1} | {} / {} | {:.2} |\n",
            r.scenario,
            r.net,
            r.policy,
            r.grid,
            r.edges,
            r.sim_frames,
            r.bed_frames,
            r.sim_latency_s,
            r.bed_latency_s,
            r.latency_diff_pct,
            megabytes(r.sim_link_bytes),
            megabytes(r.bed_link_bytes),
            signed(r.link_diff_pct),
            signed(r.link_diff_at_bed_split_pct),
            r.sim_bytes as f64 / 1e6,
            r.bed_bytes as f64 / 1e6,
            r.bytes_diff_pct,
            r.sim_source_tiles,
            r.bed_source_tiles,
            r.bed_device_gflops
        ));
    }
    s
}
