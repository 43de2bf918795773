//! `tessera demo`: a gateway and K edges on 127.0.0.x in one process, running the sample
//! frames through the cluster, then the tail, decoding and NMS on the gateway
//! (`tessera_backends::demo::run_demo`: every node is the real thing, so the demo exercises
//! what runs on a Pi cluster). This module parses, reads the pictures, prints and writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::builtin::SECOND_IMAGE;
use tessera_backends::cluster_file::DEFAULT_TAIL_MS;
use tessera_backends::coded::tail::TailScheme;
use tessera_backends::demo::{run_demo, DemoOutput, DemoPicture, DemoSpec};
use tessera_core::detect::Detection;
use tessera_core::ftp::GridShape;
use tessera_core::model::Network;
use tessera_core::wire::Policy;

use crate::config::NodeKernel;
use crate::files;
use crate::image::{Image, ImageFiles};

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
    /// Conv kernel of every node: auto (SIMD on x86_64/aarch64), portable, simd or winograd
    /// (planned for the grid; FTP policies only).
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
    #[arg(long, default_value_t = DEFAULT_TAIL_MS[0])]
    pub coded_deadline_ms: u64,
    /// Once parity could decode a coded tail layer, wait this long (ms) for its data shards
    /// still computing: then the layer is exact (bit-identical to the centralised run) rather
    /// than a float decode. 0: decode from the first results, as CDC does.
    #[arg(long, default_value_t = DEFAULT_TAIL_MS[1])]
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

/// A demo frame's picture: its name and the decoded image (boxes are drawn on it).
type Named = (String, Image);

/// The pictures: `paths`, or the two bundled samples.
fn load_pictures(paths: &[PathBuf]) -> Result<(Vec<Named>, Vec<DemoPicture>), Error> {
    let named: Vec<(String, Vec<u8>)> = if paths.is_empty() {
        vec![
            ("0".into(), files::DEFAULT_IMAGE.to_vec()),
            ("1".into(), SECOND_IMAGE.to_vec()),
        ]
    } else {
        paths
            .iter()
            .map(|p| {
                let name = p
                    .file_stem()
                    .map_or_else(|| "frame".into(), |s| s.to_string_lossy().into_owned());
                let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                Ok((name, bytes))
            })
            .collect::<Result<_, Error>>()?
    };
    named
        .into_iter()
        .zip(paths.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|((name, bytes), path)| {
            let img = Image::decode(&bytes).with_context(|| match path {
                Some(p) => format!("loading {}", p.display()),
                None => format!("bundled sample {name}"),
            })?;
            let size = (img.w, img.h);
            Ok(((name, img), DemoPicture { bytes, size }))
        })
        .collect::<Result<Vec<_>, Error>>()
        .map(|v| v.into_iter().unzip())
}

/// Prints the report and writes each frame's annotated PNG and JSON under `--out`.
struct Host<'a> {
    out: &'a Path,
    pictures: Vec<Named>,
}

impl DemoOutput for Host<'_> {
    fn say(&mut self, text: &str) {
        print!("{text}");
    }

    fn ready(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        std::fs::create_dir_all(self.out)
            .with_context(|| format!("creating {}", self.out.display()))
            .map_err(Into::into)
    }

    fn save(
        &mut self,
        frame: usize,
        picture: usize,
        dets: &[Detection],
        net: &Network,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let (name, img) = &self.pictures[picture];
        let stem = self.out.join(format!("frame{frame}-{name}"));
        let (png, json) = (stem.with_extension("png"), stem.with_extension("json"));
        files::write_boxes(img, dets, net, Some(&png), Some(&json))?;
        Ok(format!("{}.png / .json", stem.display()))
    }
}

/// Runs the command.
pub fn run(args: &Args) -> Result<(), Error> {
    let (named, pictures) = load_pictures(&args.input)?;
    let spec = DemoSpec {
        edges: args.edges,
        policy: args.policy,
        grid: args.grid,
        frames: args.frames,
        sources: args.sources,
        cfg: args.cfg.clone(),
        seed: args.seed,
        kernel: args.kernel,
        insecure: args.insecure,
        port: args.port,
        no_tail: args.no_tail,
        timeout: Duration::from_secs(args.timeout),
        coded_tail: args.coded_tail,
        coded_deadline: Duration::from_millis(args.coded_deadline_ms),
        coded_grace: Duration::from_millis(args.coded_grace_ms),
        kill: args.kill.as_deref(),
        slow: &args.slow,
        absent: &args.absent,
    };
    let mut host = Host {
        out: &args.out,
        pictures: named,
    };
    run_demo(&spec, &pictures, &mut host)?;
    Ok(())
}
