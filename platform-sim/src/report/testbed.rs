//! The report's testbed section: the latest calibration CSV (simulator against real processes
//! on shaped links, `tessera-testbed calibrate`) as a table beside the simulator's figures.

use std::fmt::Write as _;

use super::style::{esc, figure};
use crate::calibration::{megabytes, signed, Row};

/// Whether `|v| ≤ bound`, counted over the rows that have `v`: `(within, of)`.
fn within(rows: &[Row], bound: f64, v: impl Fn(&Row) -> Option<f64>) -> (usize, usize) {
    let vs: Vec<f64> = rows
        .iter()
        .filter_map(&v)
        .filter(|x| x.is_finite())
        .collect();
    (vs.iter().filter(|x| x.abs() <= bound).count(), vs.len())
}

/// The published figure for a calibration scenario, where the DeepThings evaluation has one
/// (6 devices, WiFi, WST-S 3×3).
fn published(r: &Row) -> &'static str {
    if r.net.starts_with("wifi") && r.policy == "wst-s" && r.grid == "3x3" && r.edges == 6 {
        "6.8 s"
    } else {
        "–"
    }
}

/// The section (`source` names the CSV it was read from).
pub fn section(rows: &[Row], source: &str) -> String {
    let mut s = format!(
        "<h2>7. Simulator against the testbed</h2><p>Each scenario run in the simulator and on \
the testbed (real <code>tessera</code> processes in network namespaces on links shaped like \
the preset, each edge's compute held to a Pi 3's rate by a CPU quota), from <code>{}</code>. \
Δ = (simulator − testbed) / testbed. Link bytes are the payload the nodes' links sent (their \
own counters, the same code in both worlds); IP bytes are the medium's count in the \
simulator and the interface counters on the testbed. “At the testbed's split” replaces the \
simulator's number of tiles moved off the source by the testbed's, each at the simulator's \
mean tile input: work stealing decides from timing which tiles move, and one tile more or less \
is 3–4 % of a frame's bytes.</p>",
        esc(source)
    );
    s.push_str("<div style='overflow-x:auto'><table style='font-size:12px'><tr><th>scenario</th><th>net</th><th>policy</th><th>edges</th><th>frames sim / bed</th><th>latency sim s</th><th>latency bed s</th><th>Δ %</th><th>published s</th><th>link MB sim</th><th>link MB bed</th><th>Δ %</th><th>Δ % at the testbed's split</th><th>IP MB sim</th><th>IP MB bed</th><th>Δ %</th><th>source tiles sim / bed</th></tr>");
    for r in rows {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td><td class='paper'>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{} / {}</td></tr>",
            esc(&r.scenario),
            esc(&r.net),
            esc(&r.policy),
            esc(&r.grid),
            r.edges,
            esc(&r.sim_frames),
            esc(&r.bed_frames),
            figure(r.sim_latency_s),
            figure(r.bed_latency_s),
            signed(Some(r.latency_diff_pct)),
            published(r),
            megabytes(r.sim_link_bytes),
            megabytes(r.bed_link_bytes),
            signed(r.link_diff_pct),
            signed(r.link_diff_at_bed_split_pct),
            r.sim_bytes as f64 / 1e6,
            r.bed_bytes as f64 / 1e6,
            signed(Some(r.bytes_diff_pct)),
            r.sim_source_tiles,
            r.bed_source_tiles
        );
    }
    s.push_str("</table></div>");
    let lat = within(rows, 15.0, |r| Some(r.latency_diff_pct));
    let link = within(rows, 5.0, |r| r.link_diff_pct);
    let split = within(rows, 5.0, |r| r.link_diff_at_bed_split_pct);
    let ip = within(rows, 5.0, |r| Some(r.bytes_diff_pct));
    let _ = write!(
        s,
        "<p>Latency within ±15 %: {} of {}. Bytes within ±5 %: link {} of {}, link at the \
testbed's split {} of {}, IP {} of {}.</p>",
        lat.0, lat.1, link.0, link.1, split.0, split.1, ip.0, ip.1
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, lat: f64, link: Option<f64>) -> Row {
        Row {
            scenario: name.into(),
            net: "wifi-pi3-2.4GHz".into(),
            policy: "wst-s".into(),
            grid: "3x3".into(),
            edges: 6,
            sim_frames: "4/4".into(),
            bed_frames: "4/4".into(),
            sim_latency_s: 9.7,
            bed_latency_s: f64::NAN,
            latency_diff_pct: lat,
            sim_bytes: 37_000_000,
            bed_bytes: 41_000_000,
            bytes_diff_pct: -9.8,
            sim_source_tiles: 12,
            bed_source_tiles: 11,
            bed_device_gflops: 1.6,
            sim_link_bytes: Some(35_500_000),
            bed_link_bytes: None,
            link_diff_pct: link,
            moved_tile_bytes: None,
            link_diff_at_bed_split_pct: None,
        }
    }

    #[test]
    fn the_section_tables_every_row_counts_the_bounds_and_cites_the_paper() {
        let s = section(
            &[
                row("wifi-wsts-6", 3.1, Some(-2.9)),
                row("x<y", 16.8, Some(6.0)),
            ],
            "results.csv",
        );
        assert!(s.contains("<td>wifi-wsts-6</td>"));
        assert!(s.contains("x&lt;y"));
        assert!(
            s.contains("no frame completed"),
            "NaN latency is said, not printed"
        );
        assert!(s.contains("<td class='paper'>6.8 s</td>"));
        assert!(s.contains("Latency within ±15 %: 1 of 2"));
        assert!(s.contains("link 1 of 2, link at the testbed's split 0 of 0, IP 0 of 2"));
    }
}
