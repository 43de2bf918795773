//! The coded-computing page (`cdc.html`): the runtime experiments' charts and tables (as the
//! commands print them), the published figures beside ours, then the Monte Carlo models.

use std::fmt::Write as _;

use super::chart::{bar_chart, line_chart, BarChart, ChartError, LineChart, Point, Series};
use super::paper;
use super::style::{page_head, PAGE_END};
use super::tables::text_block;
use crate::cdc::{RtAccuracyRow, RtFailureRow, RtLatencyRow, RunArgs, RT_ACCURACY_CASES};

/// Everything the page shows: each experiment's printed text and its rows.
pub struct CdcReport<'a> {
    /// The run's arguments.
    pub args: &'a RunArgs,
    /// The digits MLP's training summary.
    pub train: &'a str,
    /// Experiment a.
    pub latency: (&'a str, &'a [RtLatencyRow]),
    /// Experiment b.
    pub failures: (&'a str, &'a [RtFailureRow]),
    /// Experiment c.
    pub accuracy: (&'a str, &'a [RtAccuracyRow]),
    /// The Monte Carlo models' printed tables.
    pub models: &'a str,
}

/// The page.
pub fn cdc_html(r: &CdcReport) -> Result<String, ChartError> {
    let a = r.args;
    let mut s = page_head("Tessera: coded computing in the simulator");
    let _ = write!(s, "<h1>Coded distributed computing through the runtime</h1><p>Every number on this page except the last section comes from <code>backends::coded::CodedNode</code> (the coded-stage driver: gateway dispatch, decode from the first k, erasures, deadlines, uniform and quality-aware timeouts) running as a gateway and workers over smoltcp on the simulated Pi 3 WiFi medium (<code>platform-sim/src/coded_world.rs</code>), seed {}. Produced by <code>tessera-sim cdc all --out docs/sim-report --seed {}</code>; each experiment alone: <code>tessera-sim cdc latency|failures|accuracy</code>. Worker shard jobs compute the real results; their durations are FLOPs / rate × a per-job factor drawn from the Pi 3 WiFi reply-time model (50 ms + Gamma, the CDC paper's two figures) × a scripted straggler slowdown (module docs of coded_world). Shaded cells are published figures (Hadidi et al.).</p>", a.seed, a.seed);
    let _ = write!(s, "<h2>Digits MLP</h2>{}", text_block(r.train));
    latency(&mut s, r.latency)?;
    failures(&mut s, r.failures)?;
    accuracy(&mut s, r.accuracy)?;
    let _ = write!(
        s,
        "<h2>The Monte Carlo models (no runtime, for comparison)</h2>{}",
        text_block(r.models)
    );
    s.push_str(PAGE_END);
    Ok(s)
}

fn percentiles(rows: &[RtLatencyRow], f: fn(&RtLatencyRow) -> [f64; 3]) -> Vec<(String, Vec<f64>)> {
    ["p50", "p99", "p99.9"]
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), rows.iter().map(|r| f(r)[i]).collect()))
        .collect()
}

fn latency(s: &mut String, (text, lat): (&str, &[RtLatencyRow])) -> Result<(), ChartError> {
    s.push_str("<h2>a. Layer latency under the Pi 3 WiFi reply model</h2>");
    let groups: Vec<String> = lat.iter().map(|r| r.scheme_name()).collect();
    s.push_str(&bar_chart(&BarChart {
        title: "layer latency, runtime",
        x_label: "latency (ms)",
        groups: &groups,
        series: &percentiles(lat, |r| r.p),
    })?);
    s.push_str(&bar_chart(&BarChart {
        title: "layer latency, order-statistic model",
        x_label: "latency (ms)",
        groups: &groups,
        series: &percentiles(lat, |r| r.model),
    })?);
    s.push_str(&text_block(text));
    s.push_str(&paper::beside(&[
        (
            "a 2048-wide FC layer on one Pi 3",
            "50 ms",
            format!("{} ms per shard job of the same layer before the reply factor (the rate is set from it)", paper::PI3_FC_LAYER_MS),
        ),
        (
            "reply times, 3 Pi 3 workers on WiFi",
            paper::REPLY_TIMES,
            "our reply model is fitted to these two figures (50 ms + Gamma), so it reproduces them by construction".into(),
        ),
        (
            "coverage of one failure",
            "CDC+2MR needs fewer extra devices than 2MR",
            "CDC r = 2 needs 2 extra devices, 2MR 8 (rows above)".into(),
        ),
    ]));
    s.push_str("<p>Where the runtime differs from the order-statistic model: the gateway first sends the 2048-value input to every worker over one shared WiFi channel (two air hops each), and a straggler of frame i may still be computing when frame i+1's shard reaches it (a worker stops a shard only once it is past its budget, or when the frame's next layer arrives), so coded schemes lose part of their advantage (the uncoded split waits for everyone anyway and matches the model). 2MR sends every input twice and needs 8 extra devices; CDC r = 2 needs 2.</p>");
    Ok(())
}

fn failures(s: &mut String, (text, fail): (&str, &[RtFailureRow])) -> Result<(), ChartError> {
    s.push_str("<h2>b. Workers killed mid-layer, r = f</h2>");
    let groups: Vec<String> = fail
        .iter()
        .map(|r| {
            let killed: Vec<String> = r.killed.iter().map(|w| w.to_string()).collect();
            format!("{} f={} [{}]", r.numeric, r.f, killed.join("+"))
        })
        .collect();
    let series = vec![(
        "decode on a Pi 3".to_string(),
        fail.iter().map(|r| r.decode_pi_ms).collect(),
    )];
    s.push_str(&bar_chart(&BarChart {
        title: "decode time at the gateway, simulated Pi 3",
        x_label: "decode (ms)",
        groups: &groups,
        series: &series,
    })?);
    s.push_str(&text_block(text));
    let worst = fail
        .iter()
        .map(|r| 100.0 * r.decode_pi_ms / r.layer_pi_ms)
        .fold(0.0f64, f64::max);
    s.push_str(&paper::beside(&[(
        "decode cost",
        "– (not reported)",
        format!("at most {worst:.1} % of the layer's compute on a Pi 3"),
    )]));
    Ok(())
}

fn accuracy(s: &mut String, (text, acc): (&str, &[RtAccuracyRow])) -> Result<(), ChartError> {
    s.push_str("<h2>c. Digits accuracy vs packet loss</h2>");
    let per = |f: fn(&crate::cdc::RtAccuracyCell) -> f64| -> Vec<Series> {
        RT_ACCURACY_CASES
            .iter()
            .enumerate()
            .map(|(i, c)| Series {
                label: c.name.to_string(),
                points: acc
                    .iter()
                    .map(|r| Point::plain(100.0 * r.loss, f(&r.cells[i])))
                    .collect(),
            })
            .collect()
    };
    s.push_str(&line_chart(&LineChart {
        title: "test accuracy vs packet loss",
        x_label: "packet loss (%)",
        y_label: "accuracy (%)",
        series: &per(|c| 100.0 * c.accuracy),
    })?);
    s.push_str(&line_chart(&LineChart {
        title: "delivered fraction vs packet loss",
        x_label: "packet loss (%)",
        y_label: "mean quality.fraction",
        series: &per(|c| c.quality),
    })?);
    s.push_str(&text_block(text));
    let ours: Vec<String> = acc
        .iter()
        .filter_map(|r| {
            r.cells
                .first()
                .map(|c| format!("{:.0} % → {:.0} %", 100.0 * r.loss, 100.0 * c.accuracy))
        })
        .collect();
    s.push_str(&paper::beside(&[(
        "accuracy vs data lost in one layer",
        paper::ACCURACY_VS_LOSS,
        format!("packet loss → accuracy, uncoded: {}", ours.join(", ")),
    )]));
    s.push_str("<p>The coded stage runs here on authenticated datagrams (<code>CodedDgramNode</code> on a smoltcp UDP socket per node; <code>--transport tcp</code> runs it on the TCP link instead). Loss acts on IP packets: a lost datagram loses its message at once (an erasure the parity covers), never retransmitted, and every task and result is sent <code>--copies</code> times (3 here; a one-datagram message then arrives with probability 1 − p³). On the TCP link the same loss became seconds of delay (smoltcp's minimum RTO is 1 s, doubling, and one connection carries every message in order), so from 20–30 % loss almost nothing arrived within the deadline whatever the coding. Why frames missed their deadline even without loss (before issue 15): a worker finished a shard past its budget (its result dropped anyway) while its next tasks waited behind it, and the reply-time tail charged to a job is seconds long (P(reply &gt; 1.5 s) ≈ 15 %), so one straggler also stalled the next layer of the frame and the frames after. Workers now stop a shard at its budget and drop a frame's earlier-layer tasks once its next layer arrives. What remains at 0 % loss is the reply-time model itself: with the frame's 3 s split at best between the layers, 8 of 8 hidden shards on time is at most ≈ 36 % (uncoded), 8 of 10 ≈ 95 % (r = 2).</p>");
    Ok(())
}
