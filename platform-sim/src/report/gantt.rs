//! The Gantt chart of one frame: a row per node (the gateway's first), a bar per job on a time
//! axis counted from the frame's submission, red lines where a node crashed.

use std::collections::BTreeMap;

use plotters::prelude::*;
use tessera_core::ftp::Mode;
use tessera_core::runtime::Work;

use super::chart::{plot_area, render, Axis, ChartError, Frame};
use super::style::{nice_ticks, tick_label, tick_values};
use crate::world::{Fault, Outcome, SimConfig};

const PLAIN: RGBColor = RGBColor(0xc7, 0xe9, 0xc0);
const REUSE: RGBColor = RGBColor(0x9e, 0xca, 0xe1);
const LAYER: RGBColor = RGBColor(0xda, 0xda, 0xeb);
const OWN: RGBColor = RGBColor(0x55, 0x55, 0x55);
const STOLEN: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const AGAIN: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// One bar: node row, start and end (s from submission), label, fill and outline.
struct Bar {
    row: usize,
    t: (f64, f64),
    label: String,
    fill: RGBColor,
    outline: RGBColor,
}

/// The bars of the first finished frame's jobs, and the time span the chart covers (s).
fn bars(out: &Outcome) -> Option<(Vec<Bar>, f64)> {
    let frame = out.frames.first()?;
    let jobs: Vec<_> = out
        .jobs
        .iter()
        .filter(|j| j.work.frame() == frame.frame)
        .collect();
    let t0 = frame.submitted as f64;
    let end = jobs
        .iter()
        .map(|j| j.end as f64)
        .fold(frame.finished as f64, f64::max);
    let mut runs = BTreeMap::new();
    for j in &jobs {
        if let Work::Tile { tile, .. } = j.work {
            *runs.entry(tile).or_insert(0) += 1;
        }
    }
    let bars = jobs
        .iter()
        .map(|j| {
            let (label, fill, outline) = match j.work {
                Work::Tile { tile, mode, .. } => {
                    let reuse = mode == Mode::Reuse;
                    let outline = if runs.get(&tile).copied().unwrap_or(0) > 1 {
                        AGAIN
                    } else if j.id != frame.frame.origin {
                        STOLEN
                    } else {
                        OWN
                    };
                    (
                        format!("t{tile}{}", if reuse { "r" } else { "" }),
                        if reuse { REUSE } else { PLAIN },
                        outline,
                    )
                }
                Work::Layer { layer, stripe, .. } => (format!("L{layer}s{stripe}"), LAYER, OWN),
            };
            Bar {
                row: j.id as usize,
                t: ((j.start as f64 - t0) / 1e6, (j.end as f64 - t0) / 1e6),
                label,
                fill,
                outline,
            }
        })
        .collect();
    Some((bars, (end - t0) / 1e6))
}

/// The chart as HTML: the SVG and its key, or a sentence when no frame finished.
pub fn gantt(cfg: &SimConfig, out: &Outcome) -> Result<String, ChartError> {
    let Some((bars, span)) = bars(out) else {
        return Ok("<p>No frame completed, so there is no frame to draw.</p>".into());
    };
    let frame = &out.frames[0];
    // Crashes inside the frame's window: (row, s from submission).
    let crashes: Vec<(usize, f64)> = cfg
        .faults
        .iter()
        .filter_map(|f| match *f {
            Fault::Crash { node, at } => {
                let t = (out.ready_at + at) as f64 - frame.submitted as f64;
                (t >= 0.0 && t <= span * 1e6).then_some((node as usize, t / 1e6))
            }
            _ => None,
        })
        .collect();
    let names: Vec<String> = (0..=cfg.edges as usize)
        .map(|n| match n {
            0 => "gateway".to_string(),
            n if cfg.sources.contains(&(n as u16)) => format!("edge {n} (source)"),
            n => format!("edge {n}"),
        })
        .collect();
    let svg = render("Gantt", |svg| draw(&bars, span, &crashes, &names, svg))?;
    Ok(format!(
        "{svg}<p>Time from the frame's submission at its source; the frame was done at the \
gateway at {span:.2} s. Bars: green = plain tile, blue = reuse tile (r), lilac = a BODP layer \
stripe. Outline: grey = run by the source, <b style='color:#ff7f0e'>orange = stolen</b>, \
<b style='color:#d62728'>red = tile run more than once (re-dispatched)</b>. A red line marks a \
crash. The gateway's row shows the jobs it ran itself (none while an edge is left).</p>"
    ))
}

fn draw(
    bars: &[Bar],
    span: f64,
    crashes: &[(usize, f64)],
    names: &[String],
    svg: &mut String,
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let rows = names.len();
    let height = 70 + 28 * rows as u32;
    let root = SVGBackend::with_string(svg, (960, height)).into_drawing_area();
    let (step, top) = nice_ticks(span);
    // Row r is drawn between y = r and r + 1, the gateway (row 0) at the top.
    let y = |r: usize, f: f64| (rows - r) as f64 - f;
    let centres: Vec<f64> = (0..rows).map(|r| y(r, 0.5)).collect();
    let x_fmt = |v: &f64| format!("{} s", tick_label(*v, step));
    let y_fmt = |v: &f64| {
        let r = rows as f64 - v - 0.5;
        names
            .get(r.round().max(0.0) as usize)
            .cloned()
            .unwrap_or_default()
    };
    let mut chart = plot_area(
        &root,
        Frame {
            caption: None,
            y_label_width: 120,
            axes: (
                Axis {
                    range: (0.0, top),
                    ticks: tick_values(step, top),
                },
                Axis {
                    range: (0.0, rows as f64),
                    ticks: centres,
                },
            ),
            desc: ("time since the frame's submission (s)", ""),
            fmt: (&x_fmt, &y_fmt),
            x_grid: true,
            y_grid: true,
        },
    )?;
    for b in bars {
        let rect = [(b.t.0, y(b.row, 0.12)), (b.t.1, y(b.row, 0.88))];
        chart
            .draw_series([
                Rectangle::new(rect, b.fill.filled()),
                Rectangle::new(rect, b.outline.stroke_width(2)),
            ])
            .map_err(|x| e(&x))?;
        chart
            .draw_series(std::iter::once(Text::new(
                b.label.clone(),
                (b.t.0 + top * 0.003, y(b.row, 0.3)),
                ("sans-serif", 14),
            )))
            .map_err(|x| e(&x))?;
    }
    for &(row, t) in crashes {
        chart
            .draw_series([PathElement::new(
                vec![(t, y(row, 0.0)), (t, y(row, 1.0))],
                AGAIN.stroke_width(3),
            )])
            .map_err(|x| e(&x))?;
        chart
            .draw_series(std::iter::once(Text::new(
                "crash",
                (t + top * 0.005, y(row, 0.05)),
                ("sans-serif", 15).into_font().color(&AGAIN),
            )))
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
