//! The HTML report pages: the simulator's experiments (`report.html`, [`sim_page`]) and the
//! coded stage's (`cdc.html`, [`cdc_page`]), with charts drawn by `plotters` as inline SVG.
//!
//! - [`style`]: policy names and colours, ticks, number formatting, the page frame.
//! - [`chart`]: line charts with a p10–p90 band, horizontal bar charts.
//! - [`gantt`]: one frame's jobs per node on a time axis.
//! - [`tables`]: the experiments' printed tables as HTML tables.
//! - [`paper`]: the published figures set beside ours.
//! - [`testbed`]: the simulator-against-testbed section.

pub mod cdc_page;
pub mod chart;
pub mod gantt;
pub mod paper;
pub mod sim_page;
pub mod style;
pub mod tables;
pub mod testbed;

pub use cdc_page::{cdc_html, CdcReport};
pub use chart::ChartError;
pub use sim_page::{html, SimReport};
pub use style::figure;
pub use tables::text_block;
