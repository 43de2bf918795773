//! `tessera bench kernels` as a library ([`KernelBench::run`]): the machine's single-core FMA
//! peak, then YOLOv2 608's fused layers (built-in cfg, generated weights, the built-in sample
//! image) through the reference, portable, FMA and Winograd kernels (`bench`), and the tiled
//! runs against the full frame; worded by `kernel_table` (tables) or `kernel_report` (JSON).

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::vec::Vec;

use tessera_core::ftp::{Grid, Mode, Partition, PlanError};

use crate::bench::{bench_layers, peak_gflops, tiled_check, BenchError, LayerBench, LayerTimes};
use crate::kernel_report::{KernelReport, KernelRun};
use crate::kernel_table::{forms_line, loadavg, row, summary, tiled_layers, winograd_summary};
use crate::kernels::{Fma, Form, Isa, Winograd};
use crate::yolo_bench_setup::{SetupError, YoloBench};

/// The benchmark's settings.
#[derive(Clone, Copy, Debug)]
pub struct KernelBench {
    /// One JSON object instead of tables.
    pub json: bool,
    /// Seed of the generated weights.
    pub seed: u64,
    /// Timed repetitions of each run (the fastest is kept).
    pub reps: usize,
    /// Fraction of each layer's output rows the reference kernel computes.
    pub reference_rows: f64,
    /// Layers `[0, upto)`.
    pub upto: usize,
    /// Skip the tiled checks.
    pub no_tiled: bool,
    /// Only the tiled checks, with their per-layer breakdown (no per-layer timing, no JSON).
    pub tiled_only: bool,
    /// Time only the FMA kernel.
    pub fma_only: bool,
    /// Time the Winograd kernel (and its tiled check) too.
    pub winograd: bool,
    /// Winograd form of the 3x3 layers.
    pub form: Form,
    /// Instruction set of the FMA and Winograd kernels (`None`: the fastest this machine
    /// runs, [`Isa::detect`]).
    pub isa: Option<Isa>,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelBenchError {
    /// The model or the input could not be made.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The 3x3 grid does not fit the layers, or the Winograd forms could not be chosen.
    #[error("{what}: {error}")]
    Plan {
        /// What was planned.
        what: &'static str,
        /// Why.
        error: PlanError,
    },
    /// A measurement failed.
    #[error("{what}: {error}")]
    Bench {
        /// Which measurement.
        what: &'static str,
        /// Why.
        error: BenchError,
    },
    /// The instruction set asked for does not run on this machine.
    #[error("instruction set {} is not available on this machine (it runs: {})", .isa.name(), available())]
    IsaUnavailable {
        /// The instruction set asked for.
        isa: Isa,
    },
    /// The JSON report did not serialise.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The names of the instruction sets this machine runs.
fn available() -> alloc::string::String {
    Isa::available()
        .map(Isa::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `error` in measurement `what`.
fn bench(what: &'static str) -> impl FnOnce(BenchError) -> KernelBenchError {
    move |error| KernelBenchError::Bench { what, error }
}

impl KernelBench {
    /// Runs the benchmark; its output goes to `say` as it is measured (whole lines).
    pub fn run(&self, mut say: impl FnMut(&str)) -> Result<(), KernelBenchError> {
        let isa = self.isa.unwrap_or_else(Isa::detect);
        let fma = Fma::with_isa(isa).ok_or(KernelBenchError::IsaUnavailable { isa })?;
        let setup = YoloBench::load(self.upto, self.seed)?;
        let (net, upto, image) = (&setup.net, self.upto, &setup.image);
        let plan = |what: &'static str| move |error| KernelBenchError::Plan { what, error };
        let stack = setup.stack()?;
        let weights = setup.weights()?;
        let load = loadavg();
        let mut peak = peak_gflops(isa);
        let tables = !self.json;
        if tables {
            say(&format!(
                "tessera bench kernels: YOLOv2 608 layers [0, {upto}), seed {}, best of {} runs, FMA kernel {:?}, load average {load}\n",
                self.seed, self.reps, isa
            ));
            say(&format!("measured single-core FMA peak: {peak:.1} GFLOP/s (measured again at the end; the higher is used)\n"));
        }
        let winograd = self.winograd.then_some(self.form);
        let layers = LayerBench {
            reps: self.reps,
            reference_rows: self.reference_rows,
            fma_only: self.fma_only,
            winograd,
            isa,
        };
        let rows = if self.tiled_only {
            Vec::new()
        } else {
            bench_layers(net, &weights, upto, image, &layers, |l, r| {
                if tables {
                    say(&row(l, r, peak));
                }
            })
            .map_err(bench("measuring the layers"))?
        };
        let tiled = if self.no_tiled {
            None
        } else {
            Some(
                tiled_check(&fma, &stack, &weights, image, self.reps)
                    .map_err(bench("tiled check"))?,
            )
        };
        let tiled_wino = if self.no_tiled || !self.winograd {
            None
        } else {
            // The per-layer choice the cost model makes for the 3x3 grid with reuse, on the
            // full frame too (bit-identical tiles need the same choice).
            let three = Grid::new(3, 3, Partition::Darknet, &stack).map_err(plan("3x3 grid"))?;
            let wino = Winograd::new()
                .with_isa(isa)
                .ok_or(KernelBenchError::IsaUnavailable { isa })?
                .with_form(self.form)
                .planned(&stack, &three, Mode::Reuse)
                .map_err(plan("choosing the winograd forms"))?;
            if tables {
                say(&format!(
                    "winograd forms chosen for 3x3 with reuse (per layer, - = direct): {}\n",
                    forms_line(&wino.layer_forms(&stack))
                ));
            }
            let wino = wino.prepare(&weights);
            Some(
                tiled_check(&wino, &stack, &weights, image, self.reps)
                    .map_err(bench("tiled check (winograd)"))?,
            )
        };
        if self.tiled_only {
            for (name, t) in [("fma", &tiled), ("winograd", &tiled_wino)] {
                if let Some(t) = t {
                    say(&format!(
                        "tiled check ({name}, 1 thread): 3x3 with reuse {:.2} ms vs full frame {:.2} ms: time ratio {:.3} (on-CPU {:.3}), FLOP ratio {:.3}, direct FLOP ratio {:.3}, bound {:.3}\n",
                        t.tiled * 1e3,
                        t.full * 1e3,
                        t.time_ratio(),
                        t.cpu_ratio(),
                        t.flop_ratio,
                        t.direct_flop_ratio,
                        t.direct_flop_ratio + 0.10
                    ));
                    say(&tiled_layers(t));
                }
            }
            say(&format!("load average at the end: {}\n", loadavg()));
            return Ok(());
        }
        peak = peak.max(peak_gflops(isa));
        let totals = LayerTimes::total("total", &rows);
        if self.json {
            let run = KernelRun {
                upto,
                seed: self.seed,
                reps: self.reps,
                reference_rows: self.reference_rows,
                load: [load, loadavg()],
                isa,
                peak,
                winograd,
            };
            let report =
                KernelReport::new(&run, &rows, &totals, tiled.as_ref(), tiled_wino.as_ref());
            say(&format!("{}\n", serde_json::to_string(&report)?));
        } else {
            say(&format!("load average at the end: {}\n", loadavg()));
            say(&summary(peak, &rows, &totals, tiled.as_ref()));
            say(&winograd_summary(self.form, &totals, tiled_wino.as_ref()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn layers_that_do_not_fuse_are_refused_before_anything_is_timed() {
        let bench = KernelBench {
            json: false,
            seed: 1,
            reps: 1,
            reference_rows: 0.1,
            upto: 99,
            no_tiled: false,
            tiled_only: false,
            fma_only: true,
            winograd: true,
            form: Form::F4,
            isa: None,
        };
        let e = bench.run(|t| panic!("said {t}")).unwrap_err();
        assert!(
            matches!(
                e,
                KernelBenchError::Setup(SetupError::Fuse { upto: 99, .. })
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("fusing layers [0, 99): "), "{e}");
    }

    #[test]
    fn an_instruction_set_this_machine_lacks_is_refused_before_anything_is_timed() {
        let Some(missing) = Isa::ALL.into_iter().find(|isa| !isa.is_available()) else {
            return;
        };
        let bench = KernelBench {
            json: false,
            seed: 1,
            reps: 1,
            reference_rows: 0.1,
            upto: 16,
            no_tiled: false,
            tiled_only: false,
            fma_only: true,
            winograd: true,
            form: Form::F4,
            isa: Some(missing),
        };
        let e = bench.run(|t| panic!("said {t}")).unwrap_err();
        assert!(
            matches!(e, KernelBenchError::IsaUnavailable { isa } if isa == missing),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.contains(missing.name()) && text.contains("scalar"),
            "{text}"
        );
    }
}
