//! `tessera bench winograd` as a library ([`WinogradBench::run`]): YOLOv2 608's fused layers
//! (built-in cfg, generated weights, the built-in sample image) through the Winograd kernels,
//! their worst error per layer against exact sums beside the direct kernel's, then how much
//! block-aligned tiles grow the overlap (`winograd_report` measures both).

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;

use tessera_core::ftp::Mode;

use crate::bench::BenchError;
use crate::kernels::{Form, Winograd};
use crate::winograd_report::{layer_errors, overlap};
use crate::yolo_bench_setup::{SetupError, YoloBench};

/// The benchmark's settings.
#[derive(Clone, Copy, Debug)]
pub struct WinogradBench {
    /// Seed of the generated weights.
    pub seed: u64,
    /// Output rows compared per band (the top rows and the middle).
    pub rows: u32,
    /// Layers `[0, upto)`.
    pub upto: usize,
    /// Winograd form of the 3x3 layers.
    pub form: Form,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WinogradBenchError {
    /// The model or the input could not be made.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The error measurement failed.
    #[error("measuring the errors: {0}")]
    Errors(BenchError),
    /// A grid could not be planned.
    #[error("planning: {0}")]
    Overlap(BenchError),
}

impl WinogradBench {
    /// Runs the benchmark and returns its report.
    pub fn run(&self) -> Result<String, WinogradBenchError> {
        let setup = YoloBench::load(self.upto, self.seed)?;
        let (net, upto, image) = (&setup.net, self.upto, &setup.image);
        let stack = setup.stack()?;
        let weights = setup.weights()?;
        let wino = Winograd::new().with_form(self.form).prepare(&weights);
        let mut out = format!(
            "tessera bench winograd: YOLOv2 608 layers [0, {upto}), seed {}; error = |out - exact| / (|a|*sum|w*x| + |b|), worst over {} top and {} middle output rows\n",
            self.seed, self.rows, self.rows
        );
        let _ = writeln!(
            out,
            "{:>5} {:<27} {:>5} {:>10} {:>11} {:>11}",
            "layer", "", "form", "outputs", "direct", "winograd"
        );
        let errors = layer_errors(net, &weights, &wino, upto, image, self.rows)
            .map_err(WinogradBenchError::Errors)?;
        for e in &errors {
            let _ = writeln!(
                out,
                "{:>5} {:<27} {:>5} {:>10} {:>11.2e} {:>11.2e}",
                e.layer,
                e.name,
                e.form.map_or("-".into(), |f| format!("{f:?}")),
                e.outputs,
                e.direct,
                e.winograd
            );
        }
        out += "tile overlap: multiply-accumulates over the full frame's (plain regions = direct kernels; aligned = Winograd layers' regions rounded to the block grid; blocks = what the Winograd kernel computes, whole blocks)\n";
        for grid in [(3, 3), (5, 5)] {
            for mode in [Mode::Plain, Mode::Reuse] {
                let o = overlap(&stack, &wino, grid, mode).map_err(WinogradBenchError::Overlap)?;
                let f = o.frame as f64;
                let _ = writeln!(
                    out,
                    "  {}x{} {:<6} plain {:.4}  aligned {:.4}  blocks {:.4}  (aligned / plain {:.4})",
                    grid.0,
                    grid.1,
                    if o.reuse { "reuse" } else { "plain" },
                    o.plain as f64 / f,
                    o.aligned as f64 / f,
                    o.blocks as f64 / f,
                    o.aligned as f64 / o.plain as f64
                );
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn reports_each_conv_layer_and_each_grid() {
        let bench = WinogradBench {
            seed: 1,
            rows: 1,
            upto: 3,
            form: Form::F4,
        };
        let text = bench.run().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Title, header, layers 0 and 2 (1 is a pool), the overlap title, four grids.
        assert_eq!(lines.len(), 2 + 2 + 1 + 4, "{text}");
        for l in &lines[2..4] {
            let worst: Vec<f64> = l
                .split_whitespace()
                .rev()
                .take(2)
                .map(|v| v.parse().unwrap())
                .collect();
            assert!(worst.iter().all(|&e| e < 1e-5), "{l}");
        }
        assert!(lines[3].contains(" F4 "), "{text}");
        let bad = WinogradBench { upto: 99, ..bench };
        assert!(matches!(
            bad.run(),
            Err(WinogradBenchError::Setup(SetupError::Fuse { upto: 99, .. }))
        ));
    }
}
