//! What `tessera coded` prints of a loopback run ([`super::loopback`]): each frame's latency,
//! quality and error against the centralised run of the same model, then p50/p99, the shard
//! parameters each worker holds against the whole model, and the gateway's counters
//! (coded stage, datagrams).

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;

use tessera_core::wire::datagram::DropReason;

use super::loopback::LoopbackFrame;
use super::tail::{bit_identical, max_abs_diff};
use super::{CodedModel, CodedModelError, CodedNodeStats};
use crate::dgram::DgramStats;

/// The value at quantile `q` (0..=1) of `sorted` (nearest rank; NaN when empty).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The report of a run of `model` (`float`: float arithmetic, else exact int8) over workers
/// `1..=workers`: a line per frame in `done`, then the summary lines.
pub fn report(
    model: &CodedModel,
    float: bool,
    workers: u16,
    gateway: &CodedNodeStats,
    done: &[LoopbackFrame],
) -> Result<String, CodedModelError> {
    let mut out = String::new();
    let mut lat = Vec::new();
    let mut exact = 0;
    let mut worst: f64 = 0.0;
    for LoopbackFrame { finished: f, input } in done {
        let expect = model.reference(input, 1)?;
        let same = bit_identical(&f.output, &expect);
        let err = max_abs_diff(&f.output, &expect);
        worst = worst.max(if f.quality.is_complete() { err } else { 0.0 });
        exact += same as usize;
        let layers: Vec<String> = f
            .layers
            .iter()
            .map(|l| {
                format!(
                    "{:.1} ms {}{}",
                    l.latency.total_micros() as f64 / 1000.0,
                    if l.decoded { "decoded" } else { "expired" },
                    format_args!(" from {:#x}", l.present)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "frame {:>3}: {:>8.1} ms  quality {:.3}{}  {}  [{}]",
            f.frame.number,
            f.latency.total_micros() as f64 / 1000.0,
            f.quality.fraction,
            if f.quality.is_complete() {
                ""
            } else {
                " (rows lost)"
            },
            if same {
                "= reference".to_string()
            } else {
                format!("max |err| {err:.3e}")
            },
            layers.join(", ")
        );
        lat.push(f.latency.total_micros() as f64 / 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let full: usize = (0..model.len())
        .filter_map(|l| model.layer(l))
        .map(|l| {
            let w = if float { 4 } else { 1 };
            l.weights.len() * w + l.bias.len() * 4
        })
        .sum();
    let per_worker = (1..=workers)
        .map(|id| model.worker_param_bytes(id))
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "{} frames: p50 {:.1} ms, p99 {:.1} ms; {exact} bit-identical to the centralised run{}",
        done.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        if float {
            format!(", complete frames within {worst:.3e}")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "parameters: {:.2} MiB for the whole model, at most {:.2} MiB on one worker ({:.0}%)",
        full as f64 / 1048576.0,
        per_worker as f64 / 1048576.0,
        100.0 * per_worker as f64 / full.max(1) as f64
    );
    if let Some(s) = gateway.gateway {
        let _ = writeln!(
            out,
            "gateway: {} layers decoded ({} recovered from parity or replicas), {} expired, \
             {} shards re-sent, {} results discarded, {} budgets from fitted link models",
            s.decoded, s.recovered, s.expired, s.resent, s.discarded, s.fitted_budgets
        );
    }
    Ok(out)
}

/// The gateway's datagram counters as one line.
pub fn dgram_line(d: &DgramStats) -> String {
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .map(|&r| format!("{} {}", r.name(), d.rx.dropped(r)))
        .collect();
    format!(
        "gateway datagrams: {} messages / {} datagrams sent, {} accepted, {} messages delivered, \
         {} expired in reassembly; dropped: {}; wrong source {}, unparsable {}",
        d.sent_messages,
        d.sent_datagrams,
        d.rx.accepted,
        d.rx.delivered,
        d.rx.expired,
        drops.join(", "),
        d.wrong_source,
        d.bad_message
    )
}
