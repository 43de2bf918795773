//! Experiment 1 (`cdc latency-model`): layer latency percentiles of every scheme under the
//! Pi 3 reply-time model, Monte Carlo and exact.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use tessera_core::deadline::gamma;
use tessera_core::rng::SplitMix64;

use super::reply::pi3_wifi_reply_model;
use super::scheme::Scheme;
use super::write_csv;

/// Monte Carlo trials per scheme in experiment 1.
pub const LATENCY_TRIALS: usize = 200_000;

pub(super) fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Row of experiment 1.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyRow {
    /// Data shards.
    pub k: usize,
    /// Scheme.
    pub scheme: Scheme,
    /// Devices used.
    pub devices: usize,
    /// Monte Carlo p50, p99, p99.9 (ms).
    pub mc: [f64; 3],
    /// Exact p50, p99, p99.9 from the order-statistic CDF (ms).
    pub exact: [f64; 3],
}

/// Experiment 1 rows for `k ∈ {3, 8}` and every scheme.
pub fn latency_rows(trials: usize, seed: u64) -> Vec<LatencyRow> {
    let model = pi3_wifi_reply_model();
    let mut rows = Vec::new();
    for k in [3usize, 8] {
        for scheme in [
            Scheme::Uncoded,
            Scheme::TwoMr,
            Scheme::Cdc(1),
            Scheme::Cdc(2),
        ] {
            let n = scheme.devices(k);
            let mut rng = SplitMix64::new(seed ^ (k as u64) << 8 ^ n as u64);
            let mut lat = Vec::with_capacity(trials);
            let mut replies = vec![0.0; n];
            for _ in 0..trials {
                for r in replies.iter_mut() {
                    *r = model.sample(&mut rng).unwrap_or(f64::INFINITY);
                }
                lat.push(scheme.latency(k, &mut replies));
            }
            lat.sort_by(f64::total_cmp);
            let qs = [0.5, 0.99, 0.999];
            let mc = qs.map(|q| percentile(&lat, q));
            let exact = qs.map(|q| {
                let (mut lo, mut hi) = (model.loc, model.loc + 1.0);
                while scheme.complete_prob(k, gamma::cdf(model.shape, model.scale, hi - model.loc))
                    < q
                {
                    hi = model.loc + 2.0 * (hi - model.loc);
                }
                for _ in 0..100 {
                    let mid = 0.5 * (lo + hi);
                    let f = gamma::cdf(model.shape, model.scale, mid - model.loc);
                    if scheme.complete_prob(k, f) < q {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                0.5 * (lo + hi)
            });
            rows.push(LatencyRow {
                k,
                scheme,
                devices: n,
                mc,
                exact,
            });
        }
    }
    rows
}

/// `tessera-sim cdc latency`.
pub fn latency(out: &Path, trials: usize) -> Result<String, Box<dyn Error>> {
    let model = pi3_wifi_reply_model();
    let rows = latency_rows(trials, 0x1a7e);
    let mut s = String::new();
    let mut csv = String::from("k,scheme,devices,extra_devices,p50_ms,p99_ms,p999_ms,exact_p50_ms,exact_p99_ms,exact_p999_ms\n");
    writeln!(s, "## Experiment 1: layer latency, Pi 3 WiFi reply model")?;
    writeln!(
        s,
        "reply time = {:.0} ms + Gamma(shape {:.3}, scale {:.1} ms): P(<=100 ms) = {:.3}, P(<=150 ms) = {:.3}, mean {:.0} ms; {trials} Monte Carlo layers per row (seeded), exact = order-statistic CDF",
        model.loc,
        model.shape,
        model.scale,
        gamma::cdf(model.shape, model.scale, 100.0 - model.loc),
        gamma::cdf(model.shape, model.scale, 150.0 - model.loc),
        model.mean()
    )?;
    writeln!(s, "| k | scheme | devices | extra | p50 ms | p99 ms | p99.9 ms | exact p50 / p99 / p99.9 ms |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|")?;
    for r in &rows {
        writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} |",
            r.k,
            r.scheme.name(),
            r.devices,
            r.devices - r.k,
            r.mc[0],
            r.mc[1],
            r.mc[2],
            r.exact[0],
            r.exact[1],
            r.exact[2]
        )?;
        writeln!(
            csv,
            "{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3}",
            r.k,
            r.scheme.name(),
            r.devices,
            r.devices - r.k,
            r.mc[0],
            r.mc[1],
            r.mc[2],
            r.exact[0],
            r.exact[1],
            r.exact[2]
        )?;
    }
    let p = write_csv(out, "cdc_latency.csv", &csv)?;
    writeln!(s, "(CSV: {})\n", p.display())?;
    Ok(s)
}
