//! The report's charts, drawn with `plotters` into SVG strings: line charts with a p10–p90
//! band, and horizontal bar charts. Every chart keeps its legend in a column right of the plot
//! area (never over the data), puts the unit in the axis title, and uses 1-2-5 ticks from 0.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::style::{colour, nice_ticks, tick_label, tick_values};

/// Drawing a chart failed (plotters reported an error while writing the SVG).
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart `{title}`: {why}")]
pub struct ChartError {
    /// The chart's title.
    pub title: String,
    /// What plotters said.
    pub why: String,
}

/// One point of a series: `y` at `x`, and the spread `lo..=hi` around it (equal to `y` when
/// there is none).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Abscissa.
    pub x: f64,
    /// Mean (or the only value).
    pub y: f64,
    /// Low end of the spread (p10).
    pub lo: f64,
    /// High end of the spread (p90).
    pub hi: f64,
}

impl Point {
    /// A point without spread.
    pub fn plain(x: f64, y: f64) -> Point {
        Point { x, y, lo: y, hi: y }
    }
}

/// A named series; its colour follows its name ([`colour`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text (a policy name first where it is one).
    pub label: String,
    /// Points; those with a non-finite `y` (no frame completed) are left out.
    pub points: Vec<Point>,
}

/// A line chart.
#[derive(Clone, Copy, Debug)]
pub struct LineChart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// X axis title, unit included.
    pub x_label: &'a str,
    /// Y axis title, unit included.
    pub y_label: &'a str,
    /// The series.
    pub series: &'a [Series],
}

/// A linear axis whose ticks are exactly the given values (plotters' own float axis chooses
/// its ticks itself; ours are 1-2-5 steps from 0, or the data's own x values).
#[derive(Clone, Debug)]
pub struct Axis {
    /// Shown range.
    pub range: (f64, f64),
    /// Tick values.
    pub ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let (a, b) = self.range;
        let f = if b > a { (v - a) / (b - a) } else { 0.0 };
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.range.0..self.range.1
    }
}

/// Chart size in pixels and the legend column's width.
const SIZE: (u32, u32) = (680, 320);
const LEGEND: u32 = 150;

/// Legend entries (a colour swatch and its label) in `area`, top down.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
) -> Result<(), String> {
    for (i, (label, c)) in entries.iter().enumerate() {
        let y = 40 + 18 * i as i32;
        area.draw(&Rectangle::new([(6, y), (18, y + 12)], c.filled()))
            .map_err(|e| e.to_string())?;
        area.draw(&Text::new(label.clone(), (24, y), ("sans-serif", 16)))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A label for an x value: whole numbers without decimals.
fn x_text(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The SVG `draw` writes, or what went wrong, named by the chart's `title`.
pub(super) fn render(
    title: &str,
    draw: impl FnOnce(&mut String) -> Result<(), String>,
) -> Result<String, ChartError> {
    let mut svg = String::new();
    draw(&mut svg).map_err(|why| ChartError {
        title: title.to_string(),
        why,
    })?;
    Ok(svg)
}

/// A tick label for an axis value.
pub(super) type TickText<'f> = &'f dyn Fn(&f64) -> String;

/// How a plot area is laid out and labelled.
pub(super) struct Frame<'f> {
    /// Title above the plot area.
    pub caption: Option<&'f str>,
    /// Width of the y tick labels' column, px.
    pub y_label_width: u32,
    /// The axes.
    pub axes: (Axis, Axis),
    /// Axis titles.
    pub desc: (&'f str, &'f str),
    /// Tick labels.
    pub fmt: (TickText<'f>, TickText<'f>),
    /// Vertical grid lines at the x ticks.
    pub x_grid: bool,
    /// Horizontal grid lines at the y ticks.
    pub y_grid: bool,
}

/// The plot area of `f` on `area`, its axes and grid drawn.
pub(super) fn plot_area<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    f: Frame,
) -> Result<ChartContext<'a, DB, Cartesian2d<Axis, Axis>>, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut b = ChartBuilder::on(area);
    if let Some(c) = f.caption {
        b.caption(c, ("sans-serif", 19));
    }
    let mut chart = b
        .margin(8)
        .margin_right(28)
        .x_label_area_size(38)
        .y_label_area_size(f.y_label_width)
        .build_cartesian_2d(f.axes.0, f.axes.1)
        .map_err(|x| e(&x))?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(f.desc.0)
        .y_desc(f.desc.1)
        .x_label_formatter(f.fmt.0)
        .y_label_formatter(f.fmt.1)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .label_style(("sans-serif", 15));
    if !f.x_grid {
        mesh.disable_x_mesh();
    }
    if !f.y_grid {
        mesh.disable_y_mesh();
    }
    mesh.draw().map_err(|x| e(&x))?;
    Ok(chart)
}

/// The chart as an SVG element.
pub fn line_chart(c: &LineChart) -> Result<String, ChartError> {
    render(c.title, |svg| draw_lines(c, svg))
}

fn draw_lines(c: &LineChart, svg: &mut String) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let shown = |p: &&Point| p.y.is_finite();
    let mut xs: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter(shown).map(|p| p.x))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let ymax = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter(shown))
        .map(|p| if p.hi.is_finite() { p.hi.max(p.y) } else { p.y })
        .fold(0.0f64, f64::max);
    let (step, top) = nice_ticks(ymax);
    let (x0, x1) = match (xs.first(), xs.last()) {
        (Some(&a), Some(&b)) => (a, b),
        _ => (0.0, 1.0),
    };
    let pad = ((x1 - x0) * 0.04).max(0.3);
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    let (plot, side) = root.split_horizontally(SIZE.0 - LEGEND);
    let y_fmt = |v: &f64| tick_label(*v, step);
    let x_fmt = |v: &f64| x_text(*v);
    let mut chart = plot_area(
        &plot,
        Frame {
            caption: Some(c.title),
            y_label_width: 52,
            axes: (
                Axis {
                    range: (x0 - pad, x1 + pad),
                    ticks: xs.clone(),
                },
                Axis {
                    range: (0.0, top),
                    ticks: tick_values(step, top),
                },
            ),
            desc: (c.x_label, c.y_label),
            fmt: (&x_fmt, &y_fmt),
            x_grid: true,
            y_grid: true,
        },
    )?;
    let mut entries = Vec::new();
    for (i, s) in c.series.iter().enumerate() {
        let col = colour(&s.label, i);
        let pts: Vec<Point> = s.points.iter().filter(shown).copied().collect();
        if pts.is_empty() {
            continue;
        }
        entries.push((s.label.clone(), col));
        // The p10–p90 band: the low ends left to right, then the high ends back.
        if pts.iter().any(|p| p.hi > p.lo) {
            let band: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| (p.x, if p.lo.is_finite() { p.lo } else { p.y }))
                .chain(
                    pts.iter()
                        .rev()
                        .map(|p| (p.x, if p.hi.is_finite() { p.hi } else { p.y })),
                )
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, col.mix(0.18).filled())))
                .map_err(|x| e(&x))?;
        }
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.x, p.y)),
                col.stroke_width(2),
            ))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(pts.iter().map(|p| Circle::new((p.x, p.y), 3, col.filled())))
            .map_err(|x| e(&x))?;
    }
    legend(&side, &entries)?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// A horizontal bar chart: one group of bars per row label (read down the left side), one bar
/// per series in each group.
#[derive(Clone, Copy, Debug)]
pub struct BarChart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Value axis title, unit included.
    pub x_label: &'a str,
    /// Row labels, top down.
    pub groups: &'a [String],
    /// `(legend text, one value per group)`; non-finite or negative values draw no bar.
    pub series: &'a [(String, Vec<f64>)],
}

/// The chart as an SVG element.
pub fn bar_chart(c: &BarChart) -> Result<String, ChartError> {
    render(c.title, |svg| draw_bars(c, svg))
}

fn draw_bars(c: &BarChart, svg: &mut String) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let n = c.groups.len().max(1);
    let k = c.series.len().max(1);
    let height = (60 + n * (10 * k as u32 as usize + 14)).max(160) as u32;
    let vmax = c
        .series
        .iter()
        .flat_map(|s| s.1.iter())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let (step, top) = nice_ticks(vmax);
    let label_w = c.groups.iter().map(|g| g.len()).max().unwrap_or(4) as u32 * 7 + 10;
    let root = SVGBackend::with_string(svg, (SIZE.0 + label_w, height)).into_drawing_area();
    let (plot, side) = root.split_horizontally(SIZE.0 + label_w - LEGEND);
    // Group g occupies rows (g, g + 1) on the y axis, top down: y runs from n at the bottom.
    let centres: Vec<f64> = (0..n).map(|g| n as f64 - g as f64 - 0.5).collect();
    let x_fmt = |v: &f64| tick_label(*v, step);
    let y_fmt = |v: &f64| {
        let g = (n as f64 - v - 0.5).round();
        if g >= 0.0 {
            c.groups.get(g as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut chart = plot_area(
        &plot,
        Frame {
            caption: Some(c.title),
            y_label_width: label_w,
            axes: (
                Axis {
                    range: (0.0, top),
                    ticks: tick_values(step, top),
                },
                Axis {
                    range: (0.0, n as f64),
                    ticks: centres,
                },
            ),
            desc: (c.x_label, ""),
            fmt: (&x_fmt, &y_fmt),
            x_grid: true,
            y_grid: false,
        },
    )?;
    let mut entries = Vec::new();
    let slot = 0.8 / k as f64;
    for (i, (label, values)) in c.series.iter().enumerate() {
        let col = colour(label, i);
        entries.push((label.clone(), col));
        let bars = values.iter().enumerate().filter_map(|(g, &v)| {
            let top_y = n as f64 - g as f64 - 0.1 - slot * i as f64;
            (v.is_finite() && v > 0.0)
                .then(|| Rectangle::new([(0.0, top_y), (v, top_y - slot * 0.9)], col.filled()))
        });
        chart.draw_series(bars).map_err(|x| e(&x))?;
    }
    legend(&side, &entries)?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How plotters' SVG writes a text element's content.
    fn text(t: &str) -> String {
        format!(">\n{t}\n</text>")
    }

    fn series(label: &str, pts: &[(f64, f64, f64, f64)]) -> Series {
        Series {
            label: label.into(),
            points: pts
                .iter()
                .map(|&(x, y, lo, hi)| Point { x, y, lo, hi })
                .collect(),
        }
    }

    #[test]
    fn a_line_chart_has_its_ticks_band_legend_and_skips_missing_points() {
        let s = [
            series(
                "WST-S",
                &[(1.0, 9.7, 9.0, 10.4), (2.0, f64::NAN, f64::NAN, f64::NAN)],
            ),
            series("WSH", &[(1.0, 12.0, 12.0, 12.0), (2.0, 7.5, 7.0, 8.0)]),
        ];
        let svg = line_chart(&LineChart {
            title: "latency",
            x_label: "edge devices",
            y_label: "latency (s)",
            series: &s,
        })
        .expect("draws");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(!svg.contains("NaN"));
        // 1-2-5 ticks from 0 past the highest value (12.0).
        let (step, top) = nice_ticks(12.0);
        for t in tick_values(step, top) {
            assert!(svg.contains(&text(&tick_label(t, step))), "tick {t}");
        }
        // Both legend entries, each in its policy's colour, right of the plot area.
        for l in ["WST-S", "WSH"] {
            assert!(svg.contains(&text(l)), "{l}");
        }
        let wsts = colour("WST-S", 0);
        assert!(svg.contains(&format!("#{:02X}{:02X}{:02X}", wsts.0, wsts.1, wsts.2)));
        assert!(svg.contains("<polygon"), "the p10–p90 band");
    }

    #[test]
    fn a_bar_chart_names_every_group() {
        let groups = vec!["uncoded k=8".to_string(), "CDC r=2".to_string()];
        let series = vec![
            ("p50".to_string(), vec![60.0, 55.0]),
            ("p99".to_string(), vec![f64::NAN, 140.0]),
        ];
        let svg = bar_chart(&BarChart {
            title: "layer latency",
            x_label: "ms",
            groups: &groups,
            series: &series,
        })
        .expect("draws");
        for g in &groups {
            assert!(svg.contains(&text(g)), "{g}");
        }
        assert!(
            svg.matches("<rect").count() >= 3,
            "three bars and the legend"
        );
        assert!(!svg.contains("NaN"));
    }
}
