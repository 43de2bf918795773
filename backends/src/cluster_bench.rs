//! `tessera bench cluster` as a library ([`ClusterBench::run`]): the policies measured on a
//! loopback cluster (`policy_bench`: seconds per frame, bytes per frame, edge buffers; two
//! sources; smaller tile results and what they cost), then the peak resident memory of real
//! node processes (`node_memory`), worded by `policy_report` as tables or one JSON object.

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::path::PathBuf;

use crate::builtin::{DEFAULT_CFG, DEFAULT_IMAGE};
use crate::driver::SourceFrame;
use crate::gen_weights;
use crate::node_memory::{self, MeasureError, RssRun};
use crate::pipeline::{KernelChoice, PictureError};
use crate::policy_bench::{sweep, transfer_rows, two_sources, BenchError, BenchSetup};
use crate::policy_report::{
    label, policy_table, row_json, targets, transfer_error_json, transfer_errors, transfer_lines,
    two_sources_json, two_sources_lines, SampleError, SMALLER,
};

/// The benchmark's settings.
#[derive(Clone, Debug)]
pub struct ClusterBench {
    /// Frames per configuration.
    pub frames: usize,
    /// Network input side (a multiple of 32 up to 1024; 608 is YOLOv2's).
    pub size: u32,
    /// One JSON object instead of tables.
    pub json: bool,
    /// Conv kernel of every node.
    pub kernel: KernelChoice,
    /// First port (each configuration takes the next).
    pub port: u16,
    /// Only the node processes' peak memory.
    pub memory_only: bool,
    /// The `tessera` executable the node processes run.
    pub exe: PathBuf,
}

/// Why the benchmark was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterBenchError {
    /// `size` is no multiple of 32 up to 1024.
    #[error("bench cluster: --size must be a multiple of 32 up to 1024")]
    Size,
    /// `frames` outside 1..=100.
    #[error("bench cluster: --frames must be 1..=100")]
    Frames,
    /// Node processes run the built-in YOLOv2-608 only.
    #[error("bench cluster: --memory-only needs --size 608")]
    MemoryNeeds608,
    /// The resized cfg did not parse.
    #[error("bench cfg: {0}")]
    Cfg(String),
    /// The sample picture could not be used.
    #[error("sample image: {0}")]
    Picture(#[from] PictureError),
    /// A node process measurement failed.
    #[error(transparent)]
    Memory(#[from] MeasureError),
    /// A loopback run failed.
    #[error(transparent)]
    Bench(#[from] BenchError),
    /// The transfer-error samples failed.
    #[error(transparent)]
    Samples(#[from] SampleError),
}

/// The heading of the node memory table.
const MEMORY_HEADING: &str =
    "\npeak resident memory of node processes (VmHWM), YOLOv2-608, wst-s:\n";

impl ClusterBench {
    /// Runs the benchmark; `progress` hears a line per configuration as it finishes (tables
    /// only); returns the output.
    pub fn run(&self, mut progress: impl FnMut(&str)) -> Result<String, ClusterBenchError> {
        if self.size == 0 || !self.size.is_multiple_of(32) || self.size > 1024 {
            return Err(ClusterBenchError::Size);
        }
        if self.frames == 0 || self.frames > 100 {
            return Err(ClusterBenchError::Frames);
        }
        if self.memory_only && self.size != 608 {
            return Err(ClusterBenchError::MemoryNeeds608);
        }
        let json = self.json;
        let mut say = |line: String| {
            if !json {
                progress(&line);
            }
        };
        // Node processes run the built-in YOLOv2-608: other sizes measure the policies only.
        let memory = if self.size == 608 {
            node_memory::yolo_runs(
                &self.exe,
                self.kernel,
                self.frames,
                self.port,
                |grid, tail, coded| {
                    let coded = coded.map_or(String::new(), |c| format!(", coded tail {c}"));
                    say(format!(
                        "  node processes {}x{}, tail {tail}{coded}",
                        grid.0, grid.1
                    ));
                },
            )?
        } else {
            Vec::new()
        };
        let memory_json = || memory.iter().map(RssRun::json).collect::<Vec<_>>();
        if self.memory_only {
            return Ok(if json {
                format!("{}\n", serde_json::json!({ "node_memory": memory_json() }))
            } else {
                format!("{MEMORY_HEADING}{}", node_memory::table(&memory))
            });
        }
        let side = self.size.to_string();
        let text = DEFAULT_CFG
            .replace("width=608", &format!("width={side}"))
            .replace("height=608", &format!("height={side}"));
        let net = tessera_core::model::cfg::parse(&text)
            .map_err(|e| ClusterBenchError::Cfg(e.to_string()))?;
        let params = gen_weights::params(&net, 16, 1);
        // The sample JPEG as a camera captures it: the source ships these bytes.
        let n = self.size as usize;
        let input = SourceFrame::captured(DEFAULT_IMAGE.to_vec(), n, n)?;
        let mut port = self.port;
        let setup = BenchSetup {
            kernel: self.kernel,
            frames: self.frames,
        };
        let rows = sweep(&net, &params, &input, setup, &mut port, |row| {
            say(format!(
                "  {} {}x{} {} edge(s): {:.3} s/frame",
                label(row),
                row.grid.0,
                row.grid.1,
                row.edges,
                row.secs_per_frame
            ))
        })?;
        // Two data sources (both edges have a camera): frames overlap in the cluster.
        let multi = two_sources(&net, &params, &input, setup, &mut port)?;
        // The target configuration with smaller tile results, and what they cost.
        let transfer = transfer_rows(&net, &params, &input, setup, &mut port, &SMALLER)?;
        let errors = transfer_errors(self.kernel, &net)?;
        if json {
            let s = serde_json::json!({
                "size": self.size,
                "frames_per_config": self.frames,
                "targets": targets(&rows, &transfer),
                "transfer": transfer.iter().map(row_json).collect::<Vec<_>>(),
                "transfer_error": errors
                    .iter()
                    .map(|(frame, e)| transfer_error_json(frame, e))
                    .collect::<Vec<_>>(),
                "configs": rows.iter().map(row_json).collect::<Vec<_>>(),
                "two_sources": multi.iter().map(two_sources_json).collect::<Vec<_>>(),
                "node_memory": memory_json(),
            });
            return Ok(format!("{s}\n"));
        }
        let mut out = policy_table(&rows, self.size, self.frames, self.kernel);
        if !memory.is_empty() {
            out += MEMORY_HEADING;
            out += &node_memory::table(&memory);
        }
        out += &transfer_lines(&transfer, &errors);
        out += &two_sources_lines(&multi);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench() -> ClusterBench {
        ClusterBench {
            frames: 1,
            size: 608,
            json: false,
            kernel: KernelChoice::Portable,
            port: 7800,
            memory_only: true,
            exe: PathBuf::from("/nonexistent/tessera"),
        }
    }

    #[test]
    fn settings_are_checked_before_anything_runs() {
        let runs = |b: ClusterBench| b.run(|_| panic!("nothing runs")).unwrap_err();
        assert!(matches!(
            runs(ClusterBench {
                size: 100,
                ..bench()
            }),
            ClusterBenchError::Size
        ));
        assert!(matches!(
            runs(ClusterBench {
                frames: 0,
                ..bench()
            }),
            ClusterBenchError::Frames
        ));
        assert!(matches!(
            runs(ClusterBench {
                size: 320,
                ..bench()
            }),
            ClusterBenchError::MemoryNeeds608
        ));
    }
}
