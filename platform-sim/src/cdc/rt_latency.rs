//! Runtime experiment a (`cdc latency`): layer latency of every scheme through `coded_world`
//! under the Pi 3 reply-time model.

use std::error::Error;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use tessera_backends::coded::{CodedModel, LayerScheme};
use tessera_core::runtime::coded::Protection;
use tessera_core::time::Duration;

use super::latency_model::{latency_rows, percentile};
use super::reply::{pi3_wifi_reply_model, PI3_FC_MS};
use super::runtime_setup::{fc_inputs, fc_layer, rate_for, RT_FC, RT_K};
use super::scheme::Scheme;
use super::{write_csv, RunArgs};
use crate::coded_world::{self, Arrival, CodedSimConfig};

/// Frames per scheme in experiment a.
pub const RT_LATENCY_FRAMES: usize = 2000;

fn layer_scheme(s: Scheme, k: usize) -> LayerScheme {
    match s {
        Scheme::Uncoded => LayerScheme {
            k,
            r: 0,
            protection: Protection::Coded,
        },
        Scheme::TwoMr => LayerScheme {
            k,
            r: 0,
            protection: Protection::Replicated,
        },
        Scheme::Cdc(r) => LayerScheme {
            k,
            r,
            protection: Protection::Coded,
        },
    }
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    percentile(sorted, q)
}

/// Row of runtime experiment a.
#[derive(Clone, Debug, PartialEq)]
pub struct RtLatencyRow {
    /// Scheme.
    pub scheme: Scheme,
    /// Frames submitted back to back (`None`) or one per period (ms).
    pub period_ms: Option<f64>,
    /// Workers.
    pub devices: usize,
    /// Frames left the stage / decoded in full.
    pub frames: (usize, usize),
    /// Layer latency p50, p99, p99.9, ms (first send to decode).
    pub p: [f64; 3],
    /// Mean layer latency, ms.
    pub mean: f64,
    /// MiB on the medium per frame.
    pub mib_per_frame: f64,
    /// Results discarded (after decode) and shard jobs dropped late by workers.
    pub discarded: (u64, u64),
    /// The same percentiles from the order-statistic model (reply times i.i.d.), ms.
    pub model: [f64; 3],
    /// Virtual seconds, wall seconds.
    pub time: (f64, f64),
}

/// Runtime experiment a: one int8 2048×2048 FC layer, k = 8, every scheme; a shard computes
/// in 50 ms at the chosen rate, times the Pi 3 reply factor per job (`coded_world` docs).
pub fn rt_latency_rows(
    frames: usize,
    seed: u64,
    period: Option<Duration>,
) -> Result<Vec<RtLatencyRow>, Box<dyn Error>> {
    let model_rows = latency_rows(20_000, 0x1a7e);
    let inputs = fc_inputs(8, RT_FC, seed ^ 0xfc);
    let layer = fc_layer(RT_FC, RT_FC, 0xfc2048, true);
    let mut rows = Vec::new();
    for scheme in [
        Scheme::Uncoded,
        Scheme::TwoMr,
        Scheme::Cdc(1),
        Scheme::Cdc(2),
    ] {
        let n = scheme.devices(RT_K);
        let workers: Vec<u16> = (1..=n as u16).collect();
        let model = Arc::new(CodedModel::new(
            vec![layer.clone()],
            &[layer_scheme(scheme, RT_K)],
            &workers,
        )?);
        let mut c = CodedSimConfig::new(
            model.clone(),
            n as u16,
            inputs.clone(),
            frames,
            Duration::from_secs(30),
        );
        c.gflops = rate_for(&model, 0, PI3_FC_MS);
        c.arrival = Arrival::Pi3Wifi(pi3_wifi_reply_model());
        c.seed = seed;
        c.period = period;
        let t0 = Instant::now();
        let o = coded_world::run(&c);
        let wall = t0.elapsed().as_secs_f64();
        let mut lat: Vec<f64> = o
            .frames
            .iter()
            .filter_map(|f| f.layers.first())
            .map(|l| l.latency.total_micros() as f64 / 1e3)
            .collect();
        lat.sort_by(f64::total_cmp);
        let late: u64 = o
            .nodes
            .iter()
            .filter_map(|(_, s)| s.worker.map(|w| u64::from(w.late)))
            .sum();
        let m = model_rows
            .iter()
            .find(|r| r.k == RT_K && r.scheme == scheme)
            .map_or([f64::NAN; 3], |r| r.exact);
        rows.push(RtLatencyRow {
            scheme,
            period_ms: period.map(|p| p.total_micros() as f64 / 1e3),
            devices: n,
            frames: (o.frames.len(), o.complete()),
            p: [0.5, 0.99, 0.999].map(|q| pct(&lat, q)),
            mean: lat.iter().sum::<f64>() / lat.len().max(1) as f64,
            mib_per_frame: o.medium.0 as f64 / 1048576.0 / o.frames.len().max(1) as f64,
            discarded: (u64::from(o.gateway.discarded), late),
            model: m,
            time: ((o.virtual_us - o.ready_at) as f64 / 1e6, wall),
        });
    }
    Ok(rows)
}

impl RtLatencyRow {
    /// The scheme's name.
    pub fn scheme_name(&self) -> String {
        self.scheme.name()
    }
}

/// `tessera-sim cdc latency`: runtime experiment a (back to back, and one frame per second).
pub fn rt_latency(a: &RunArgs) -> Result<(String, Vec<RtLatencyRow>), Box<dyn Error>> {
    let frames = a.frames.unwrap_or(RT_LATENCY_FRAMES);
    let rows = rt_latency_rows(frames, a.seed, None)?;
    let mut s = String::new();
    let mut csv = String::from("scheme,submission,devices,extra_devices,frames,complete,p50_ms,p99_ms,p999_ms,mean_ms,model_p50_ms,model_p99_ms,model_p999_ms,mib_per_frame,discarded_results,late_jobs_dropped,virtual_s,wall_s\n");
    writeln!(
        s,
        "## Experiment a (runtime): layer latency, int8 FC {RT_FC}x{RT_FC}, k = {RT_K}, Pi 3 WiFi"
    )?;
    writeln!(
        s,
        "CodedNode gateway + workers over smoltcp on the simulated WiFi medium (Pi 3 preset, authenticated links); a shard computes in {PI3_FC_MS} ms × D/{PI3_FC_MS} ms per job, D ~ Pi 3 reply model (50 ms + Gamma, module cdc), real int8 results; {frames} frames per row, seed {}; latency = first send to decode of the layer; model = order-statistic percentiles of the reply model alone (no network, no queueing)",
        a.seed
    )?;
    writeln!(s, "| scheme | submission | devices | extra | done/complete | p50 ms | p99 ms | p99.9 ms | mean ms | model p50/p99/p99.9 | MiB/frame | discarded / dropped late |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &rows {
        let sub = r
            .period_ms
            .map_or("back to back".to_string(), |p| format!("every {p:.0} ms"));
        writeln!(
            s,
            "| {} | {sub} | {} | {} | {}/{} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}/{:.0}/{:.0} | {:.2} | {} / {} |",
            r.scheme.name(),
            r.devices,
            r.devices - RT_K,
            r.frames.0,
            r.frames.1,
            r.p[0],
            r.p[1],
            r.p[2],
            r.mean,
            r.model[0],
            r.model[1],
            r.model[2],
            r.mib_per_frame,
            r.discarded.0,
            r.discarded.1
        )?;
        writeln!(
            csv,
            "{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.4},{},{},{:.1},{:.2}",
            r.scheme.name(),
            sub,
            r.devices,
            r.devices - RT_K,
            r.frames.0,
            r.frames.1,
            r.p[0],
            r.p[1],
            r.p[2],
            r.mean,
            r.model[0],
            r.model[1],
            r.model[2],
            r.mib_per_frame,
            r.discarded.0,
            r.discarded.1,
            r.time.0,
            r.time.1
        )?;
    }
    let p = write_csv(&a.out, "cdc_rt_latency.csv", &csv)?;
    writeln!(s, "(CSV: {})\n", p.display())?;
    write_csv(&a.out, "cdc_rt_latency.txt", &s)?;
    Ok((s, rows))
}
