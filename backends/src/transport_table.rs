//! What `tessera bench transport` prints ([`report`]): the settings, then a row per
//! transport, size and loss of `transport_bench::measure` (share delivered and in time,
//! latency quantiles); and the settings checked first ([`check`]).

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;

use tessera_core::time::Duration;

use crate::transport_bench::{measure, TransportRow, TransportSpec};

/// Settings the measurement cannot run with.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportSpecError {
    /// A loss that is no fraction.
    #[error("reading --loss: '{0}' is not a fraction 0..1")]
    Loss(f64),
    /// No size, no message or no wire rate.
    #[error(
        "reading --sizes, --messages, --rate-mbps: need at least one size, one message and a rate"
    )]
    Empty,
}

/// Checks `spec`: losses are fractions, there is a size, a message and a rate.
pub fn check(spec: &TransportSpec) -> Result<(), TransportSpecError> {
    if let Some(&l) = spec.losses.iter().find(|l| !(0.0..=1.0).contains(*l)) {
        return Err(TransportSpecError::Loss(l));
    }
    if spec.sizes.is_empty() || spec.messages == 0 || spec.rate_bps == 0 {
        return Err(TransportSpecError::Empty);
    }
    Ok(())
}

/// Milliseconds with one decimal, `-` for none.
fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| {
        format!("{:.1}", d.total_micros() as f64 / 1000.0)
    })
}

/// The table's line of `r`.
fn row(r: &TransportRow) -> String {
    let pct = |n: usize| format!("{:.1}%", 100.0 * n as f64 / r.sent.max(1) as f64);
    format!(
        "{:>9} {:>7} {:>5.2} {:>10} {:>9} {:>9} {:>9} {:>9}\n",
        r.transport.name(),
        r.bytes,
        r.loss,
        pct(r.delivered),
        pct(r.in_time),
        ms(r.quantile(0.5)),
        ms(r.quantile(0.99)),
        ms(r.quantile(1.0)),
    )
}

/// Checks and measures `spec`, and returns the settings line, the header and a row per
/// cell.
pub fn report(spec: &TransportSpec) -> Result<String, TransportSpecError> {
    check(spec)?;
    let millis = |d: Duration| d.total_micros() / 1000;
    let mut out = format!(
        "smoltcp, virtual time: {} messages every {} ms, one-way {} ms, {} Mbit/s, deadline {} ms, seed {}\n",
        spec.messages,
        millis(spec.interval),
        millis(spec.one_way),
        spec.rate_bps / 1_000_000,
        millis(spec.deadline),
        spec.seed
    );
    let _ = writeln!(
        out,
        "{:>9} {:>7} {:>5} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "transport", "bytes", "loss", "delivered", "in time", "p50 ms", "p99 ms", "max ms"
    );
    for r in measure(spec) {
        out += &row(&r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn bad_settings_are_refused_and_a_small_run_has_a_row_per_cell() {
        let spec = TransportSpec {
            sizes: vec![64],
            losses: vec![0.0],
            messages: 3,
            interval: Duration::from_millis(50),
            one_way: Duration::from_millis(2),
            rate_bps: 20_000_000,
            deadline: Duration::from_millis(200),
            seed: 1,
        };
        let lossy = TransportSpec {
            losses: vec![0.0, 1.5],
            ..spec.clone()
        };
        assert_eq!(check(&lossy), Err(TransportSpecError::Loss(1.5)));
        let silent = TransportSpec {
            messages: 0,
            ..spec.clone()
        };
        assert_eq!(check(&silent), Err(TransportSpecError::Empty));
        let text = report(&spec).unwrap();
        assert!(text
            .starts_with("smoltcp, virtual time: 3 messages every 50 ms, one-way 2 ms, 20 Mbit/s"));
        let rows: alloc::vec::Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert!(
            rows.iter().all(|r| r.contains("100.0%    100.0%")),
            "{text}"
        );
    }
}
