//! The published figures the report sets beside ours (docs/design.md §8 lists them with their
//! sources): the DeepThings evaluation (FTP on up to six Raspberry Pi 3 over WiFi, with MoDNN
//! as its baseline) and the coded-computing paper of Hadidi et al. (DAC 2019).

use std::fmt::Write as _;

use tessera_core::wire::Policy;

use super::style::esc;

/// The DeepThings evaluation's single-source latency on 6 devices (3×3 grid for FTP), with
/// its speedup over the method's own single-device run: `(seconds, speedup)`.
pub fn six_device_latency(p: Policy) -> Option<(f64, f64)> {
    match p {
        Policy::WstS => Some((6.8, 3.5)),
        // MoDNN as published; the gateway-resident BODP is ours, not the paper's.
        Policy::Modnn => Some((8.1, 2.1)),
        _ => None,
    }
}

/// A table cell with the published figure for a latency row, or a dash where the paper has
/// none for that configuration.
pub fn latency_cell(p: Policy, grid: (u32, u32), devices: u16) -> String {
    match six_device_latency(p) {
        Some((s, x)) if devices == 6 && (p == Policy::Modnn || grid == (3, 3)) => {
            format!("{s} s, {x}×")
        }
        _ => "–".into(),
    }
}

/// Latency cut by reuse scheduling (WST → WST-S), 6 devices, %.
pub const REUSE_CUT_PCT: f64 = 27.0;
/// Communication of WST-S against WSH, averaged over device counts, %.
pub const WSTS_VS_WSH_COMM_PCT: f64 = -52.0;
/// Throughput of work stealing over work sharing with several sources (journal version).
pub const SOURCES_THROUGHPUT: &str = "1.7–2.2×";
/// One 2048-wide FC layer on one Pi 3 (Hadidi et al.), ms.
pub const PI3_FC_LAYER_MS: f64 = 50.0;
/// Reply times of 3 Pi 3 workers on WiFi (Hadidi et al.).
pub const REPLY_TIMES: &str = "≈ 34 % of replies within 100 ms, ≈ 42 % within 150 ms";
/// Accuracy against data lost in one layer (Hadidi et al., Inception v3).
pub const ACCURACY_VS_LOSS: &str = "large drop past 30 % lost, near zero past 50 %";

/// A small table of `(quantity, published, ours)` rows, the published column shaded.
pub fn beside(rows: &[(&str, &str, String)]) -> String {
    let mut s = String::from("<table><tr><th>quantity</th><th>published</th><th>ours</th></tr>");
    for (q, p, o) in rows {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class='paper'>{}</td><td>{}</td></tr>",
            esc(q),
            esc(p),
            esc(o)
        );
    }
    s.push_str("</table>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_published_configurations_get_a_figure() {
        assert_eq!(latency_cell(Policy::WstS, (3, 3), 6), "6.8 s, 3.5×");
        assert_eq!(latency_cell(Policy::WstS, (5, 5), 6), "–");
        assert_eq!(latency_cell(Policy::Modnn, (3, 3), 6), "8.1 s, 2.1×");
        assert_eq!(latency_cell(Policy::Bodp, (3, 3), 6), "–");
        assert_eq!(latency_cell(Policy::Wst, (3, 3), 6), "–");
        assert_eq!(latency_cell(Policy::WstS, (3, 3), 4), "–");
    }
}
