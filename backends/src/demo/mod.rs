//! `tessera demo` as a library ([`run_demo`]): a gateway and K edges on 127.0.0.x in one
//! process ([`crate::local::run_local`]: real nodes, authenticated TCP links, compute
//! threads), fed pictures, then the tail (on the gateway, or coded across the edges and
//! checked against the centralised run), region decoding and NMS per frame. The host reads the
//! pictures and saves each frame's boxes ([`DemoOutput`]); the report goes to it as text.

extern crate alloc;
extern crate std;

mod error;
mod spec;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use tessera_core::detect::{Detection, DEFAULT_NMS, DEFAULT_THRESH};
use tessera_core::model::weights::Weights;
use tessera_core::model::Network;
use tessera_core::runtime::coded::CodedConfig;
use tessera_core::time::Duration;
use tessera_core::wire::NodeId;

use crate::cluster::ClusterSpec;
use crate::coded::tail::{self, CodedCheck, CodedTail};
use crate::driver::SourceFrame;
use crate::gen_weights;
use crate::local::{fused_model, run_local, TailSpec};
use crate::local_report::{
    check_line, coded_frame_line, coded_summary, coded_tail_line, frame_key, frame_line,
    node_table, FRAME_HEADER,
};
use crate::model_files::ModelFiles;
use crate::pipeline::{boxes, class_name, run_tail, AnyKernel};

pub use error::DemoError;
pub use spec::DemoSpec;

/// A picture a demo source feeds: the file's bytes as captured, and its size once decoded.
#[derive(Clone, Debug)]
pub struct DemoPicture {
    /// JPEG or PNG bytes (what the source ships to the nodes that compute its tiles).
    pub bytes: Vec<u8>,
    /// Width and height of the decoded picture (boxes are scaled to it).
    pub size: (usize, usize),
}

/// Where a demo's report and outputs go.
pub trait DemoOutput {
    /// A piece of the report (whole lines, each ending in a newline).
    fn say(&mut self, text: &str);
    /// Called once the cluster has run, before the first frame is saved.
    fn ready(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
    /// Saves frame `frame`'s boxes, found by `net` on picture `picture`; returns what was
    /// written, for the report.
    fn save(
        &mut self,
        frame: usize,
        picture: usize,
        dets: &[Detection],
        net: &Network,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>>;
}

/// What a demo ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoSummary {
    /// Frames run.
    pub frames: usize,
    /// Frames that completed (the fused stack, and a coded tail in full).
    pub completed: usize,
}

/// Runs the demo `spec` over `pictures` (cycled over the frames), reporting and saving through
/// `out`; an error [`DemoError::Incomplete`] after the report when frames did not complete.
pub fn run_demo(
    spec: &DemoSpec<'_>,
    pictures: &[DemoPicture],
    out: &mut impl DemoOutput,
) -> Result<DemoSummary, DemoError> {
    let (faults, split) = spec.check()?;
    if pictures.is_empty() {
        return Err(DemoError::NoPictures);
    }
    let net = ModelFiles {
        cfg: spec.cfg.clone(),
        ..ModelFiles::default()
    }
    .network()?;
    let all = net.layers().len();
    let layers = 16.min(all);
    let params = gen_weights::params(&net, all, spec.seed);
    let model = fused_model(&net, &params, layers, spec.grid.into())?;
    let weights = Weights::new(&net, all, &params)?;
    let coded = match (spec.coded_tail, split) {
        (Some(scheme), Some(split)) => {
            let workers: Vec<NodeId> = (1..=spec.edges).collect();
            let c = CodedTail::new(&net, &weights, layers, split, &workers).map_err(|error| {
                DemoError::CodedTail {
                    scheme: scheme.to_string(),
                    error,
                }
            })?;
            Some((scheme, Arc::new(c)))
        }
        _ => None,
    };
    let mut cluster = ClusterSpec::loopback(
        spec.policy,
        spec.grid.into(),
        spec.edges,
        spec.sources,
        spec.port,
        spec.key(),
        layers,
    );
    cluster.kernel = spec.kernel;
    let shape = net.input();
    // Each source ships its frame's file, not f32 tile inputs (`driver::SourceFrame`).
    let inputs: Vec<SourceFrame> = (0..spec.frames)
        .map(|i| {
            let bytes = pictures[i % pictures.len()].bytes.clone();
            SourceFrame::captured(bytes, shape.w as usize, shape.h as usize)
        })
        .collect::<Result<_, _>>()?;
    out.say(&spec.start_line());
    let tail = coded.as_ref().map(|(scheme, c)| {
        out.say(&format!("{}\n", coded_tail_line(&scheme.to_string(), c)));
        let micros = |d: std::time::Duration| Duration::from_micros(d.as_micros() as u64);
        TailSpec {
            tail: c.clone(),
            config: CodedConfig {
                data_grace: micros(spec.coded_grace),
                ..CodedConfig::new(micros(spec.coded_deadline))
            },
        }
    });
    let run = run_local(
        &cluster,
        model,
        &inputs,
        &faults,
        spec.timeout,
        tail.as_ref(),
    )?;
    out.ready().map_err(DemoError::Save)?;
    out.say(&format!("\n{FRAME_HEADER}\n"));
    let kernel = AnyKernel::of(spec.kernel);
    let mut failed = 0;
    let mut checks: Vec<CodedCheck> = Vec::new();
    let mut tail_ms: Vec<f64> = Vec::new();
    for i in 0..inputs.len() {
        let key = frame_key(i, spec.sources);
        out.say(&format!("{}\n", frame_line(&run, key)));
        let Some(f) = run.gateway.get(&key) else {
            failed += 1;
            continue;
        };
        let mut complete = f.complete;
        let picture = i % pictures.len();
        let size = pictures[picture].size;
        // The boxes, and the coded check's line printed after them.
        let done = match (&f.output, spec.no_tail, &coded) {
            (None, _, _) | (_, true, _) => None,
            (Some(fused), false, None) => {
                let t0 = std::time::Instant::now();
                let t = run_tail(&kernel, &net, &weights, layers, fused, &[])?;
                out.say(&format!(
                    "    tail (gateway alone) {:.0} ms\n",
                    t0.elapsed().as_secs_f64() * 1e3
                ));
                let dets = boxes(&net, &t.output, size.0, size.1, DEFAULT_THRESH, DEFAULT_NMS)?;
                Some((dets, None))
            }
            (Some(fused), false, Some((_, c))) => match run.tails.get(&key) {
                None => {
                    out.say("    coded tail LOST\n");
                    complete = false;
                    None
                }
                Some(fin) => {
                    out.say(&format!("{}\n", coded_frame_line(fin)));
                    tail_ms.push(fin.latency.total_micros() as f64 / 1e3);
                    let (check, dets) = tail::check(&kernel, &net, &weights, c, fused, fin, size)?;
                    complete &= fin.quality.is_complete();
                    let line = check_line(&check, fin.layers.len());
                    checks.push(check);
                    Some((dets, Some(line)))
                }
            },
        };
        if !complete {
            failed += 1;
        }
        let Some((dets, check)) = done else {
            continue;
        };
        let saved = out.save(i, picture, &dets, &net).map_err(DemoError::Save)?;
        for d in dets.iter().take(5) {
            out.say(&format!(
                "    {:<14} {:>5.1} %\n",
                class_name(d.class),
                100.0 * d.prob
            ));
        }
        if let Some(line) = check {
            out.say(&format!("{line}\n"));
        }
        out.say(&format!("    {} boxes -> {saved}\n", dets.len()));
    }
    out.say(&format!("\n{}", node_table(&run)));
    if let Some((_, c)) = &coded {
        out.say(&format!(
            "\n{}",
            coded_summary(c, spec.edges, &checks, &mut tail_ms, &run)
        ));
    }
    out.say(&format!(
        "\n{} frames in {:.2} s\n",
        inputs.len() - failed,
        run.elapsed.as_secs_f64()
    ));
    let summary = DemoSummary {
        frames: inputs.len(),
        completed: inputs.len() - failed,
    };
    match failed {
        0 => Ok(summary),
        n => Err(DemoError::Incomplete(n)),
    }
}
