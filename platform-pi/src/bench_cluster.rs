//! `tessera bench cluster`: the policies measured on a loopback cluster in one run.
//!
//! The runs are `tessera_backends::policy_bench`'s (seconds per frame measured at the source,
//! bytes on the wire per frame with every header, tag and heartbeat, the largest edge buffers;
//! two data sources' throughput and latency), then the peak resident memory of real node
//! processes (`tessera_backends::node_memory`); `tessera_backends::policy_report` words the
//! figures. This module checks the arguments and prints.

use anyhow::{anyhow, Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::driver::SourceFrame;
use tessera_backends::gen_weights;
use tessera_backends::node_memory::{self, RssRun};
use tessera_backends::policy_bench::{sweep, transfer_rows, two_sources, BenchSetup};
use tessera_backends::policy_report::{
    label, policy_table, row_json, targets, transfer_error_json, transfer_errors, transfer_lines,
    two_sources_json, two_sources_lines, SMALLER,
};

use crate::config::NodeKernel;
use crate::files;

/// Arguments of `tessera bench cluster`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Frames per configuration (run one after another).
    #[arg(long, default_value_t = 2)]
    pub frames: usize,
    /// Network input side (multiple of 32); 608 is YOLOv2's.
    #[arg(long, default_value_t = 608)]
    pub size: u32,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Conv kernel of every node: auto, portable or simd.
    #[arg(long, default_value = "auto", value_parser = NodeKernel::parse)]
    pub kernel: NodeKernel,
    /// First port (each configuration takes the next; the node processes all use it, on
    /// 127.0.60-62.x).
    #[arg(long, default_value_t = 7800)]
    pub port: u16,
    /// Only the peak resident memory of real node processes (skip the policy runs).
    #[arg(long)]
    pub memory_only: bool,
}

/// Peak resident memory of real `tessera gateway` / `tessera edge` processes (YOLOv2-608).
fn node_memory(args: &Args) -> Result<Vec<RssRun>, Error> {
    let exe = std::env::current_exe().context("finding the tessera executable")?;
    let runs = node_memory::yolo_runs(
        &exe,
        args.kernel,
        args.frames,
        args.port,
        |grid, tail, coded| {
            if !args.json {
                let coded = coded.map_or(String::new(), |c| format!(", coded tail {c}"));
                eprintln!("  node processes {}x{}, tail {tail}{coded}", grid.0, grid.1);
            }
        },
    )?;
    Ok(runs)
}

/// Runs the benchmark.
pub fn run(args: &Args) -> Result<(), Error> {
    if args.size == 0 || !args.size.is_multiple_of(32) || args.size > 1024 {
        return Err(anyhow!(
            "bench cluster: --size must be a multiple of 32 up to 1024"
        ));
    }
    if args.frames == 0 || args.frames > 100 {
        return Err(anyhow!("bench cluster: --frames must be 1..=100"));
    }
    // Node processes run the built-in YOLOv2-608: other sizes measure the policies only.
    if args.memory_only && args.size != 608 {
        return Err(anyhow!("bench cluster: --memory-only needs --size 608"));
    }
    let memory = if args.size == 608 {
        node_memory(args)?
    } else {
        Vec::new()
    };
    if args.memory_only {
        if args.json {
            let runs: Vec<_> = memory.iter().map(RssRun::json).collect();
            println!("{}", serde_json::json!({ "node_memory": runs }));
        } else {
            println!("\npeak resident memory of node processes (VmHWM), YOLOv2-608, wst-s:");
            print!("{}", node_memory::table(&memory));
        }
        return Ok(());
    }
    let side = args.size.to_string();
    let text = files::DEFAULT_CFG
        .replace("width=608", &format!("width={side}"))
        .replace("height=608", &format!("height={side}"));
    let net = tessera_core::model::cfg::parse(&text).map_err(|e| anyhow!("bench cfg: {}", e))?;
    let params = gen_weights::params(&net, 16, 1);
    // The sample JPEG as a camera captures it: the source ships these bytes, not tile inputs.
    let n = args.size as usize;
    let input = SourceFrame::captured(files::DEFAULT_IMAGE.to_vec(), n, n)
        .map_err(|e| anyhow!("sample image: {}", e))?;
    let mut port = args.port;
    let setup = BenchSetup {
        kernel: args.kernel,
        frames: args.frames,
    };
    let rows = sweep(&net, &params, &input, setup, &mut port, |row| {
        if !args.json {
            eprintln!(
                "  {} {}x{} {} edge(s): {:.3} s/frame",
                label(row),
                row.grid.0,
                row.grid.1,
                row.edges,
                row.secs_per_frame
            );
        }
    })?;
    // Two data sources (both edges have a camera): frames overlap in the cluster.
    let multi = two_sources(&net, &params, &input, setup, &mut port)?;
    // The target configuration with smaller tile results, and what they cost.
    let transfer = transfer_rows(&net, &params, &input, setup, &mut port, &SMALLER)?;
    let errors = transfer_errors(args.kernel, &net)?;
    if args.json {
        let s = serde_json::json!({
            "size": args.size,
            "frames_per_config": args.frames,
            "targets": targets(&rows, &transfer),
            "transfer": transfer.iter().map(row_json).collect::<Vec<_>>(),
            "transfer_error": errors
                .iter()
                .map(|(frame, e)| transfer_error_json(frame, e))
                .collect::<Vec<_>>(),
            "configs": rows.iter().map(row_json).collect::<Vec<_>>(),
            "two_sources": multi.iter().map(two_sources_json).collect::<Vec<_>>(),
            "node_memory": memory.iter().map(RssRun::json).collect::<Vec<_>>(),
        });
        println!("{s}");
        return Ok(());
    }
    print!(
        "{}",
        policy_table(&rows, args.size, args.frames, args.kernel)
    );
    if !memory.is_empty() {
        println!("\npeak resident memory of node processes (VmHWM), YOLOv2-608, wst-s:");
        print!("{}", node_memory::table(&memory));
    }
    print!("{}", transfer_lines(&transfer, &errors));
    print!("{}", two_sources_lines(&multi));
    Ok(())
}
