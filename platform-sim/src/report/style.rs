//! What every page and chart of the report shares: policy names and colours, axis ticks,
//! number formatting, HTML escaping and the page frame.

use plotters::style::RGBColor;
use tessera_core::wire::Policy;

/// The palette: the first five belong to the policies (see [`colour`]).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// One colour per policy in every chart (a series is named by its policy's label, maybe
/// followed by more words); series of other names take the remaining colours by their index `i`.
pub fn colour(label: &str, i: usize) -> RGBColor {
    let first = label.split_whitespace().next();
    match Policy::ALL.iter().position(|p| Some(p.label()) == first) {
        Some(k) => PALETTE[k],
        None => PALETTE[Policy::ALL.len() + i % (PALETTE.len() - Policy::ALL.len())],
    }
}

/// Axis ticks for values in `[0, max]`: a 1-2-5 step giving at most 6 intervals, and the top
/// of the axis (a whole number of steps at or above `max`).
pub fn nice_ticks(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&st| st >= raw)
        .unwrap_or(10.0 * mag);
    (step, (max / step - 1e-9).ceil().max(1.0) * step)
}

/// The tick values `0, step, …, top`.
pub fn tick_values(step: f64, top: f64) -> Vec<f64> {
    let n = (top / step).round() as usize;
    (0..=n).map(|k| step * k as f64).collect()
}

/// A tick label with as many decimals as the step needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// A latency (or any figure from complete frames) for a table: "no frame completed" when there
/// was none to average.
pub fn figure(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "no frame completed".into()
    }
}

/// `t` with `&`, `<` and `>` escaped for HTML text.
pub fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The start of a page titled `title` (escaped), with the report's style sheet.
pub fn page_head(title: &str) -> String {
    format!(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{}</title><style>\
body{{font-family:sans-serif;max-width:1200px;margin:auto}}\
table{{border-collapse:collapse;font-size:13px;margin:6px 0}}\
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}th{{background:#f0f0f0}}\
td:first-child,th:first-child{{white-space:nowrap}}td.paper{{background:#fff8e0}}figure{{margin:8px 0}}</style></head><body>",
        esc(title)
    )
}

/// The end of a page.
pub const PAGE_END: &str = "</body></html>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_1_2_5_steps_covering_the_maximum() {
        assert_eq!(nice_ticks(9.71), (2.0, 10.0));
        assert_eq!(nice_ticks(12.56), (5.0, 15.0));
        assert_eq!(nice_ticks(0.37), (0.1, 0.4));
        assert_eq!(nice_ticks(f64::NAN), (0.2, 1.0));
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(15.0, 5.0), "15");
        assert_eq!(tick_values(5.0, 15.0), vec![0.0, 5.0, 10.0, 15.0]);
    }

    #[test]
    fn a_missing_figure_says_so_and_policies_keep_their_colour() {
        assert_eq!(figure(f64::NAN), "no frame completed");
        assert_eq!(figure(9.714), "9.71");
        assert_eq!(colour("WST-S", 0), colour("WST-S 3x3", 3));
        assert_ne!(colour("WST", 0), colour("WST-S", 0));
        assert_ne!(colour("p50", 0), colour("WSH", 0));
    }
}
