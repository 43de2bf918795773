//! `tessera demo`: a gateway and K edges on 127.0.0.x in one process, running the sample
//! frames through the cluster, then the tail, decoding and NMS on the gateway.
//!
//! The run is `tessera_backends::local::run_local`: every node is the real thing — its own
//! address, TCP links authenticated with the cluster key, a compute thread — so the demo
//! exercises exactly what runs on a Pi cluster. With `--coded-tail` the tail's convolutions
//! run coded across the edges on the same links. This module parses, prints and writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{anyhow, Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::builtin::SECOND_IMAGE;
use tessera_backends::cluster::ClusterSpec;
use tessera_backends::coded::tail::{self, CodedCheck, CodedTail, TailScheme};
use tessera_backends::detections_json::to_json;
use tessera_backends::driver::SourceFrame;
use tessera_backends::fault_spec::FaultSpec;
use tessera_backends::gen_weights;
use tessera_backends::local::{fused_model, run_local, TailSpec};
use tessera_backends::local_report::{
    check_line, coded_frame_line, coded_summary, coded_tail_line, frame_key, frame_line,
    node_table, FRAME_HEADER,
};
use tessera_backends::model_files::ModelFiles;
use tessera_backends::pipeline::class_name;
use tessera_backends::pipeline::{boxes, run_tail, AnyKernel};
use tessera_core::detect::{Detection, DEFAULT_NMS, DEFAULT_THRESH};
use tessera_core::ftp::GridShape;
use tessera_core::kernel::Kernels;
use tessera_core::model::weights::Weights;
use tessera_core::model::Network;
use tessera_core::runtime::coded::CodedConfig;
use tessera_core::wire::{NodeId, Policy};

use crate::config::NodeKernel;
use crate::files;
use crate::image::{write_annotated, Image, ImageFiles};

/// Arguments of `tessera demo`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Number of edges.
    #[arg(long, default_value_t = 3)]
    pub edges: u16,
    /// Policy: wsh, wst, wst-s, bodp or modnn.
    #[arg(long, default_value = "wst-s")]
    pub policy: Policy,
    /// Tile grid NxM.
    #[arg(long, default_value = "3x3")]
    pub grid: GridShape,
    /// Frames to run (the images are cycled).
    #[arg(long, default_value_t = 2)]
    pub frames: usize,
    /// Data sources: edges 1..=S each get frames (a camera on each).
    #[arg(long, default_value_t = 1)]
    pub sources: u16,
    /// Input images [default: the two bundled samples].
    #[arg(long)]
    pub input: Vec<PathBuf>,
    /// Darknet cfg [default: the built-in yolov2-608.cfg].
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// Seed of the generated weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Conv kernel of every node: auto (SIMD on x86_64/aarch64), portable or simd.
    #[arg(long, default_value = "auto", value_parser = NodeKernel::parse)]
    pub kernel: NodeKernel,
    /// Run without authentication (measurements only).
    #[arg(long)]
    pub insecure: bool,
    /// Port every node listens on (each has its own 127.0.0.x address).
    #[arg(long, default_value_t = 7700)]
    pub port: u16,
    /// Where to write the annotated PNGs and JSON boxes.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Skip the tail and detection (fused layers only).
    #[arg(long)]
    pub no_tail: bool,
    /// Longest wait for all frames, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Run the tail's convolutions as coded layers across the edges: cdc:R (edges − R data
    /// shards + R parity), 2mr or uncoded [default: the whole tail on the gateway].
    #[arg(long, value_name = "SCHEME", value_parser = TailScheme::parse)]
    pub coded_tail: Option<TailScheme>,
    /// Coded tail frame deadline, ms (a frame leaves the coded stage by then, complete or not).
    #[arg(long, default_value_t = 120_000)]
    pub coded_deadline_ms: u64,
    /// Once parity could decode a coded tail layer, wait this long (ms) for its data shards
    /// still computing: then the layer is exact (bit-identical to the centralised run) rather
    /// than a float decode. 0: decode from the first results, as CDC does.
    #[arg(long, default_value_t = 250)]
    pub coded_grace_ms: u64,
    /// Stop edge ID (its FTP node and its coded worker) SECS seconds after the start: ID@SECS.
    #[arg(long, value_name = "ID@SECS")]
    pub kill: Option<String>,
    /// Make edge ID F times slower (FTP tiles and coded shards): ID:F; repeatable.
    #[arg(long, value_name = "ID:F")]
    pub slow: Vec<String>,
    /// Do not start edge ID (FTP node nor coded worker); repeatable.
    #[arg(long, value_name = "ID")]
    pub absent: Vec<u16>,
}

/// A demo frame: its name, the decoded image (boxes are drawn on it) and the file's bytes
/// (what its source ships to the nodes that compute its tiles).
type DemoImage = (String, Image, Vec<u8>);

fn load_images(paths: &[PathBuf]) -> Result<Vec<DemoImage>, Error> {
    if paths.is_empty() {
        let sample = |name: &str, bytes: &[u8]| -> Result<DemoImage, Error> {
            let img = Image::decode(bytes).with_context(|| format!("bundled sample {name}"))?;
            Ok((name.into(), img, bytes.to_vec()))
        };
        return Ok(vec![
            sample("0", files::DEFAULT_IMAGE)?,
            sample("1", SECOND_IMAGE)?,
        ]);
    }
    paths
        .iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "frame".into());
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            let img = Image::decode(&bytes).with_context(|| format!("loading {}", p.display()))?;
            Ok((name, img, bytes))
        })
        .collect()
}

/// Tail, decoding and outputs of one frame the gateway finished; returns the box count.
fn postprocess<K: Kernels>(
    kernels: &K,
    net: &Network,
    params: &[f32],
    layers: usize,
    fused_out: &[f32],
    img: &Image,
    stem: &Path,
) -> Result<usize, Error> {
    let weights = Weights::new(net, net.layers().len(), params).context("viewing the weights")?;
    let t0 = std::time::Instant::now();
    let t = run_tail(kernels, net, &weights, layers, fused_out, &[])?;
    println!(
        "    tail (gateway alone) {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let dets = boxes(net, &t.output, img.w, img.h, DEFAULT_THRESH, DEFAULT_NMS)?;
    write_outputs(net, &dets, img, stem).map(|()| dets.len())
}

/// Prints the first boxes of one frame and writes its annotated PNG and JSON.
fn write_outputs(net: &Network, dets: &[Detection], img: &Image, stem: &Path) -> Result<(), Error> {
    let classes = match &net.layers().last().map(|l| &l.kind) {
        Some(tessera_core::model::LayerKind::Region(r)) => r.classes,
        _ => 80,
    };
    let png = stem.with_extension("png");
    write_annotated(img, dets, classes, &png)
        .with_context(|| format!("writing {}", png.display()))?;
    let json = stem.with_extension("json");
    let text = to_json(dets, img.w, img.h).context("writing JSON")?;
    std::fs::write(&json, text).with_context(|| format!("writing {}", json.display()))?;
    for d in dets.iter().take(5) {
        println!("    {:<14} {:>5.1} %", class_name(d.class), 100.0 * d.prob);
    }
    Ok(())
}

/// Runs the command.
pub fn run(args: &Args) -> Result<(), Error> {
    if args.edges == 0 || args.edges as usize > crate::config::MAX_EDGES {
        return Err(anyhow!(
            "demo: --edges {} outside 1..={}",
            args.edges,
            crate::config::MAX_EDGES
        ));
    }
    if args.sources == 0 || args.sources > args.edges {
        return Err(anyhow!(
            "demo: --sources {} outside 1..={}",
            args.sources,
            args.edges
        ));
    }
    let faults = FaultSpec {
        kill: args.kill.as_deref(),
        slow: &args.slow,
        absent: &args.absent,
        edges: args.edges,
        sources: args.sources,
    }
    .faults()?;
    // Scheme errors before the (slow) weight generation.
    let split = match (args.coded_tail, args.no_tail) {
        (Some(_), true) => {
            return Err(anyhow!(
                "demo: --coded-tail and --no-tail exclude each other"
            ))
        }
        (Some(scheme), false) => Some((
            scheme,
            scheme
                .layer_scheme(args.edges as usize)
                .context("--coded-tail")?,
        )),
        (None, _) => None,
    };
    let model_files = ModelFiles {
        cfg: args.cfg.clone(),
        ..ModelFiles::default()
    };
    let net = model_files.network()?;
    let layers = 16.min(net.layers().len());
    let all = net.layers().len();
    let params = gen_weights::params(&net, all, args.seed);
    let model = fused_model(&net, &params, layers, args.grid.into())?;
    let key = if args.insecure {
        None
    } else {
        Some(*b"tessera-demo-key-not-for-fields!")
    };
    let coded = match split {
        Some((scheme, split)) => {
            let weights = Weights::new(&net, all, &params).context("viewing the weights")?;
            let workers: Vec<NodeId> = (1..=args.edges).collect();
            Some(
                CodedTail::new(&net, &weights, layers, split, &workers)
                    .with_context(|| format!("--coded-tail {scheme}"))?,
            )
        }
        None => None,
    };
    let mut cluster = ClusterSpec::loopback(
        args.policy,
        args.grid.into(),
        args.edges,
        args.sources,
        args.port,
        key,
        layers,
    );
    cluster.kernel = args.kernel;
    let images = load_images(&args.input)?;
    let shape = net.input();
    // Each source ships its frame's file, not f32 tile inputs (`driver::SourceFrame`).
    let inputs: Vec<SourceFrame> = (0..args.frames)
        .map(|i| {
            let bytes = images[i % images.len()].2.clone();
            SourceFrame::captured(bytes, shape.w as usize, shape.h as usize)
        })
        .collect::<Result<_, _>>()
        .context("letterboxing a frame")?;
    println!(
        "demo: gateway + {} edges on 127.0.0.1..{} port {}, {:?}, grid {}, {:?} kernel, {} frames from {} source(s){}",
        args.edges,
        1 + args.edges,
        args.port,
        args.policy,
        args.grid,
        args.kernel,
        args.frames,
        args.sources,
        if args.insecure { ", INSECURE (no authentication)" } else { ", authenticated" }
    );
    let tail = match coded {
        Some(c) => {
            let scheme = args.coded_tail.map_or(String::new(), |t| t.to_string());
            println!("{}", coded_tail_line(&scheme, &c));
            let micros = |ms: u64| tessera_core::time::Duration::from_micros(ms * 1000);
            Some(TailSpec {
                tail: Arc::new(c),
                config: CodedConfig {
                    data_grace: micros(args.coded_grace_ms),
                    ..CodedConfig::new(micros(args.coded_deadline_ms))
                },
            })
        }
        None => None,
    };
    let coded = tail.as_ref().map(|t| t.tail.clone());
    let run = run_local(
        &cluster,
        model,
        &inputs,
        &faults,
        StdDuration::from_secs(args.timeout),
        tail.as_ref(),
    )?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    println!("\n{FRAME_HEADER}");
    let mut failed = 0;
    let mut checks: Vec<CodedCheck> = Vec::new();
    let mut tail_ms: Vec<f64> = Vec::new();
    for i in 0..inputs.len() {
        let key = frame_key(i, args.sources);
        println!("{}", frame_line(&run, key));
        let Some(f) = run.gateway.get(&key) else {
            failed += 1;
            continue;
        };
        if !f.complete {
            failed += 1;
        }
        let (Some(out), false) = (&f.output, args.no_tail) else {
            continue;
        };
        let (name, img, _) = &images[i % images.len()];
        let stem = args.out.join(format!("frame{i}-{name}"));
        let kernel = AnyKernel::of(args.kernel);
        let n = match &coded {
            None => postprocess(&kernel, &net, &params, layers, out, img, &stem)?,
            Some(c) => {
                let Some(fin) = run.tails.get(&key) else {
                    println!("    coded tail LOST");
                    failed += 1;
                    continue;
                };
                println!("{}", coded_frame_line(fin));
                tail_ms.push(fin.latency.total_micros() as f64 / 1e3);
                let weights = Weights::new(&net, all, &params).context("viewing the weights")?;
                let (check, dets) =
                    tail::check(&kernel, &net, &weights, c, out, fin, (img.w, img.h))?;
                write_outputs(&net, &dets, img, &stem)?;
                println!("{}", check_line(&check, fin.layers.len()));
                if !fin.quality.is_complete() {
                    failed += 1;
                }
                checks.push(check);
                dets.len()
            }
        };
        println!("    {n} boxes -> {}.png / .json", stem.display());
    }
    print!("\n{}", node_table(&run));
    if let Some(c) = &coded {
        print!(
            "\n{}",
            coded_summary(c, args.edges, &checks, &mut tail_ms, &run)
        );
    }
    println!(
        "\n{} frames in {:.2} s",
        inputs.len() - failed,
        run.elapsed.as_secs_f64()
    );
    if failed > 0 {
        return Err(anyhow!("demo: {failed} frame(s) did not complete"));
    }
    Ok(())
}
