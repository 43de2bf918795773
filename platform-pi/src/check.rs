//! `tessera check --cluster F [--id N]`: what an operator runs when something does not work.
//!
//! It validates the cluster file (every problem at once, with its line; host names are
//! resolved, an unresolvable one is a problem of its line), computes this
//! machine's model fingerprint (so a missing or different weights file shows here), checks
//! that node N's address belongs to this machine, then probes every node: a TCP connect, a
//! probe `Hello` sealed with the file's key, and the node's answer (its id, its model
//! fingerprint, or a refusal such as a different key). The answers go in one table; the exit
//! status is 0 only when every row is fine.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::node_check::check_nodes;
use tessera_core::wire::NodeId;

use crate::config::Cluster;

/// Arguments of `tessera check`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Cluster file to check.
    #[arg(long)]
    pub cluster: PathBuf,
    /// This machine's node id: also check that its address is one of this machine's.
    #[arg(long)]
    pub id: Option<NodeId>,
    /// Longest wait for each node's connect and answer, ms (default: the file's connect_ms).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
}

/// Runs the checks and prints what they found; an error when anything is wrong.
pub fn run(args: &Args) -> Result<(), Error> {
    let path = &args.cluster;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cluster = match Cluster::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            for p in &e.problems {
                match p.line {
                    Some(l) => println!("{}:{l}: {}", path.display(), p.message),
                    None => println!("{}: {}", path.display(), p.message),
                }
            }
            return Err(anyhow!(
                "checking {}: {} problem(s) in the cluster file",
                path.display(),
                e.problems.len()
            ));
        }
    };
    let spec = &cluster.deployment.spec;
    println!(
        "cluster file {}: ok ({:?}, grid {}x{}, {} fused layers, {} nodes, {})",
        path.display(),
        spec.policy,
        spec.grid.0,
        spec.grid.1,
        spec.layers,
        spec.nodes.len(),
        if spec.key.is_some() {
            "authenticated"
        } else {
            "INSECURE"
        }
    );
    let timeout = args
        .timeout_ms
        .map_or(spec.timeouts.connect, Duration::from_millis);
    let check = check_nodes(&cluster.deployment, &cluster.written, args.id, timeout);
    print!("{}", check.text);
    if check.problems > 0 {
        return Err(anyhow!("check: {} problem(s), see above", check.problems));
    }
    println!("all {} nodes ok", check.nodes);
    Ok(())
}
