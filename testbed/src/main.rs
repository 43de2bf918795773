//! `tessera-testbed`: Tessera clusters as real processes in network namespaces on shaped
//! links, driven by the simulator's scenario files (see `docs/testbed.md`).

#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tessera_testbed::calibrate::{against, compare, markdown, saved};
use tessera_testbed::cmd;
use tessera_testbed::names::Names;
use tessera_testbed::netns::remove_leftovers;
use tessera_testbed::record::write;
use tessera_testbed::run::{probe_host, run, ComputeMode, Options, Outcome};

#[derive(Parser)]
#[command(
    name = "tessera-testbed",
    about = "Tessera nodes as processes in network namespaces on shaped links (root only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Directory for the cluster file, the node logs and the CSVs.
    #[arg(long)]
    out: PathBuf,
    /// The `tessera` binary [default: `tessera` beside this program].
    #[arg(long)]
    tessera: Option<PathBuf>,
    /// Tag of namespace and cgroup names (runs with different tags can coexist).
    #[arg(long, default_value = "tsb")]
    tag: String,
    /// The frame every source feeds.
    #[arg(long, default_value = "data/images/0.jpg")]
    image: PathBuf,
    /// The host's single-thread GFLOP/s on the fused layers [default: probed with
    /// `tessera layers`].
    #[arg(long)]
    host_gflops: Option<f64>,
    /// Bound of each run, s.
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
    /// Token-bucket queue, bytes (the access point's or switch port's buffer).
    #[arg(long, default_value_t = 262_144)]
    queue_bytes: u32,
    /// One link per ordered pair of nodes at the preset's rate (an `htb` class per
    /// destination on each sender) instead of the preset's shared channel or switch; `run`
    /// only, the simulator has no such topology.
    #[arg(long)]
    pairs: bool,
    /// How nodes are held to the device's compute rate.
    #[arg(long, value_enum, default_value_t = ComputeMode::Auto)]
    compute: ComputeMode,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs one scenario file; writes frames.csv and nodes.csv under --out.
    Run {
        /// Scenario (the simulator's TOML format).
        scenario: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Runs scenarios in the simulator and on the testbed; writes calibration.csv (and each
    /// run's CSVs in a sub-directory) under --out, prints a Markdown table.
    Calibrate {
        /// Scenarios.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Sets saved testbed runs (each scenario's directory under --bed, as `calibrate` wrote
    /// them) against the simulator as it is now, without running the testbed; writes
    /// calibration.csv under --out and prints a Markdown table. Needs no root.
    Recompare {
        /// Scenarios.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// The directory `calibrate --out` wrote.
        #[arg(long)]
        bed: PathBuf,
        /// Where calibration.csv goes.
        #[arg(long)]
        out: PathBuf,
        /// The host rate the saved runs' quotas were sized from, GFLOP/s.
        #[arg(long)]
        host_gflops: f64,
    },
    /// Says whether this machine lets the testbed run (root, namespaces, tools); exit 0 if so.
    Check,
    /// Prints the host rate the CPU quotas are sized from (see `run::probe_host`).
    Probe {
        /// The `tessera` binary [default: `tessera` beside this program].
        #[arg(long)]
        tessera: Option<PathBuf>,
    },
    /// Removes the namespaces (and their processes) a crashed run of this tag left.
    Cleanup {
        /// Tag.
        #[arg(long, default_value = "tsb")]
        tag: String,
    },
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn options(c: &Common, out: PathBuf, stop: &Arc<AtomicBool>) -> Res<Options> {
    let tessera = match &c.tessera {
        Some(t) => t.clone(),
        None => std::env::current_exe()?.with_file_name("tessera"),
    };
    if !tessera.exists() {
        return Err(format!(
            "{} not found: build it (cargo build --release -p tessera-pi) or pass --tessera",
            tessera.display()
        )
        .into());
    }
    if !c.image.exists() {
        return Err(format!("{} not found (--image)", c.image.display()).into());
    }
    Ok(Options {
        tessera: std::fs::canonicalize(tessera)?,
        out,
        tag: c.tag.clone(),
        image: std::fs::canonicalize(&c.image)?,
        host_gflops: c.host_gflops,
        timeout: Duration::from_secs(c.timeout_s),
        queue_bytes: c.queue_bytes,
        pairs: c.pairs,
        compute: c.compute,
        stop: stop.clone(),
    })
}

fn name_of(p: &Path) -> String {
    p.file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().to_string())
}

fn summary(name: &str, o: &Outcome) {
    let lat = o.latencies_s();
    println!(
        "{name}: {} of {} frames complete{}, latency mean {:.2} s (min {:.2}, max {:.2}), {:.2} MB IP on the wire, {:.1} s; compute: {}",
        lat.len(),
        o.frames.len(),
        if o.timed_out { " (TIMED OUT)" } else { "" },
        lat.iter().sum::<f64>() / lat.len().max(1) as f64,
        lat.iter().copied().fold(f64::INFINITY, f64::min),
        lat.iter().copied().fold(0.0, f64::max),
        o.ip_bytes() as f64 / 1e6,
        o.span_s,
        o.compute
    );
    for n in &o.nodes {
        println!(
            "  node {:>2} {:<7} tx {:>9} rx {:>9} IP bytes, peak RSS {:>7} KiB, CPU {:.2} s (compute {:.2} s), starts {}, {}",
            n.node, n.role, n.tx_ip_bytes, n.rx_ip_bytes, n.peak_rss_kib, n.cpu_s, n.compute_cpu_s, n.starts,
            if n.exit.is_empty() { "stopped at the end" } else { &n.exit }
        );
    }
}

/// Why the testbed cannot run here, if it cannot.
fn blocker() -> Option<String> {
    for tool in [
        "ip", "tc", "nft", "ethtool", "ss", "sysctl", "kill", "getconf",
    ] {
        if !cmd::available(tool) {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    let probe = "tsbcheck-ap";
    if let Err(e) = cmd::run("ip", &["netns", "add", probe]) {
        return Some(format!("network namespaces not permitted: {e}"));
    }
    let ifb = cmd::run("ip", &["-n", probe, "link", "add", "ifb0", "type", "ifb"]);
    let _ = cmd::run("ip", &["netns", "del", probe]);
    ifb.err().map(|e| format!("no ifb devices: {e}"))
}

fn main() -> ExitCode {
    // Library log lines (links, re-dispatch, coded recovery) go to stderr as `RUST_LOG` asks;
    // errors only when it is unset, so the command's own output is unchanged.
    env_logger::init();
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("error: installing signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    }
    let r: Res<()> = (|| match cli.cmd {
        Cmd::Run { scenario, common } => {
            let o = options(&common, common.out.clone(), &stop)?;
            let text = std::fs::read_to_string(&scenario)?;
            let name = name_of(&scenario);
            let out = run(&name, &text, &o)?;
            write(&common.out.join("frames.csv"), &out.frames)?;
            write(&common.out.join("nodes.csv"), &out.nodes)?;
            summary(&name, &out);
            if out.timed_out {
                return Err("the run timed out".into());
            }
            Ok(())
        }
        Cmd::Calibrate { scenarios, common } => {
            if common.pairs {
                return Err("--pairs has no simulator counterpart to calibrate against".into());
            }
            let mut rows = Vec::new();
            for s in &scenarios {
                let name = name_of(s);
                let o = options(&common, common.out.join(&name), &stop)?;
                let text = std::fs::read_to_string(s)?;
                let (row, out) = compare(&name, &text, &o)?;
                write(&o.out.join("frames.csv"), &out.frames)?;
                write(&o.out.join("nodes.csv"), &out.nodes)?;
                summary(&name, &out);
                rows.push(row);
                // Written after each scenario: a long batch keeps what it measured.
                write(&common.out.join("calibration.csv"), &rows)?;
            }
            println!("{}", markdown(&rows));
            Ok(())
        }
        Cmd::Recompare {
            scenarios,
            bed,
            out,
            host_gflops,
        } => {
            let mut rows = Vec::new();
            for s in &scenarios {
                let name = name_of(s);
                let text = std::fs::read_to_string(s)?;
                let (cfg, _) = tessera_testbed::run::scenario(&text)?;
                let b = saved(&bed.join(&name))?;
                rows.push(against(&name, &text, &b, cfg.gflops / host_gflops)?);
            }
            std::fs::create_dir_all(&out)?;
            write(&out.join("calibration.csv"), &rows)?;
            println!("{}", markdown(&rows));
            Ok(())
        }
        Cmd::Check => match blocker() {
            None => {
                println!("testbed: this machine can run it");
                Ok(())
            }
            Some(why) => Err(why.into()),
        },
        Cmd::Probe { tessera } => {
            let t = match tessera {
                Some(t) => t,
                None => std::env::current_exe()?.with_file_name("tessera"),
            };
            println!("{:.1} GFLOP/s per CPU second", probe_host(&t)?);
            Ok(())
        }
        Cmd::Cleanup { tag } => {
            let n = remove_leftovers(&Names::new(&tag)?)?;
            println!("removed {n} namespaces");
            Ok(())
        }
    })();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
