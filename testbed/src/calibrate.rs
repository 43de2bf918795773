//! Calibration: each scenario in the simulator (in-process, its cost model) and on the
//! testbed, per-frame latency and bytes on the wire side by side (`calibration.csv`).
//!
//! Latency: the mean over frames complete at their source (the simulator's frames are
//! measured from submission at the source to completion at the gateway; the testbed's to
//! the source hearing `FrameDone`, one message later). Bytes: IP bytes on the medium over
//! the run (the simulator's medium counter; the testbed's bridge-port counters from t = 0 to
//! the last frame), connection set-up excluded on the testbed, included in the simulator.

use serde::Serialize;
use tessera_sim::world;

use crate::run::{run, scenario, Options, Outcome, RunError};

/// One scenario, both ways.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Network preset.
    pub net: String,
    /// Policy.
    pub policy: &'static str,
    /// Grid.
    pub grid: String,
    /// Edges.
    pub edges: u16,
    /// Frames complete / submitted, simulator.
    pub sim_frames: String,
    /// Frames complete / seen, testbed.
    pub bed_frames: String,
    /// Mean latency, simulator, s.
    pub sim_latency_s: f64,
    /// Mean latency, testbed, s.
    pub bed_latency_s: f64,
    /// (sim − bed) / bed, %.
    pub latency_diff_pct: f64,
    /// IP bytes, simulator.
    pub sim_bytes: u64,
    /// IP bytes, testbed.
    pub bed_bytes: u64,
    /// (sim − bed) / bed, %.
    pub bytes_diff_pct: f64,
    /// Tiles the source computed itself over every frame (no input sent), simulator.
    pub sim_source_tiles: u32,
    /// The same on the testbed.
    pub bed_source_tiles: u32,
    /// The device rate the testbed's compute threads reached, GFLOP/s: the simulator's FLOPs
    /// per complete frame times the testbed's complete frames, over the compute threads' CPU
    /// time, times the quota's fraction of a core (meaningful without crashes).
    pub bed_device_gflops: f64,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn pct(sim: f64, bed: f64) -> f64 {
    100.0 * (sim - bed) / bed
}

/// Runs scenario `name` both ways; the testbed's outcome too (for its CSVs).
pub fn compare(name: &str, text: &str, o: &Options) -> Result<(Row, Outcome), RunError> {
    let (cfg, _) = scenario(text)?;
    let sim = world::run(&cfg);
    let bed = run(name, text, o)?;
    let sim_lat: Vec<f64> = sim
        .frames
        .iter()
        .filter(|f| f.complete)
        .map(|f| f.latency_s())
        .collect();
    let bed_lat = bed.latencies_s();
    let sim_bytes = sim.medium.first().map_or(0, |m| m.0);
    let sim_flops: u64 = sim.jobs.iter().map(|j| j.flops).sum();
    let flops = sim_flops as f64 / sim.completed().max(1) as f64 * bed_lat.len() as f64;
    let cpu: f64 = bed.nodes.iter().map(|n| n.compute_cpu_s).sum();
    let sim_source_tiles = sim
        .frames
        .iter()
        .flat_map(|f| f.tiles_by.iter().filter(move |t| t.0 == f.frame.origin))
        .map(|t| t.1)
        .sum();
    let bed_source_tiles = bed
        .frames
        .iter()
        .flat_map(|f| {
            let me = format!("{}:", f.origin);
            f.tiles_by
                .split_whitespace()
                .filter_map(move |t| t.strip_prefix(&me).and_then(|k| k.parse::<u32>().ok()))
        })
        .sum();
    let bed_bytes = bed.ip_bytes();
    let row = Row {
        scenario: name.to_string(),
        net: cfg.net.name.clone(),
        policy: cfg.policy.name(),
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
        sim_source_tiles,
        bed_source_tiles,
        bed_device_gflops: flops / cpu / 1e9 * bed.fraction,
    };
    Ok((row, bed))
}

/// The rows as a Markdown table (for the docs).
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| scenario | net | policy | edges | frames sim / bed | latency sim s | latency bed s | Δ % | MB sim | MB bed | Δ % | source tiles sim / bed | bed device GFLOP/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} {} | {} | {} / {} | {:.2} | {:.2} | {:+.1} | {:.2} | {:.2} | {:+.1} | {} / {} | {:.2} |\n",
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
