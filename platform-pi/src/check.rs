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

use tessera_backends::probe::{probe, Probe};
use tessera_backends::probe_table::{own_address, table, Row};
use tessera_core::wire::{Key, NodeId};

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
    println!(
        "cluster file {}: ok ({:?}, grid {}x{}, {} fused layers, {} nodes, {})",
        path.display(),
        cluster.policy,
        cluster.grid.0,
        cluster.grid.1,
        cluster.layers,
        cluster.nodes.len(),
        if cluster.key.is_some() {
            "authenticated"
        } else {
            "INSECURE"
        }
    );
    let mut problems = 0usize;
    let ours = match cluster.fingerprint() {
        Ok(f) => {
            println!("model here: {f:016x}");
            Some(f)
        }
        Err(e) => {
            println!("model here: {e}");
            problems += 1;
            None
        }
    };
    if let Some(id) = args.id {
        match cluster.node(id).map(|n| (n, own_address(n.addr))) {
            None => {
                println!("this machine: no node {id} in the file");
                problems += 1;
            }
            Some((n, Ok(state))) => println!("this machine: node {id} at {}: {state}", n.addr),
            Some((_, Err(why))) => {
                println!("this machine: node {id}: {why}");
                problems += 1;
            }
        }
    }
    let timeout = args
        .timeout_ms
        .map_or(cluster.timeouts.connect, Duration::from_millis);
    let key = cluster.key.map(Key::new);
    // Every node at once: a cluster of unreachable nodes costs one timeout, not one each.
    let rows: Vec<Row> = std::thread::scope(|s| {
        let probes: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| (n, s.spawn(|| probe(n.addr, key.as_ref(), timeout))))
            .collect();
        probes
            .into_iter()
            .zip(&cluster.written)
            .map(|((n, h), written)| Row {
                id: n.id,
                addr: n.addr,
                written: written.clone(),
                probe: h
                    .join()
                    .unwrap_or_else(|_| Probe::NoAnswer("probe thread panicked".into())),
                ours,
            })
            .collect()
    });
    println!();
    print!("{}", table(&rows));
    problems += rows.iter().filter(|r| !r.ok()).count();
    if problems > 0 {
        return Err(anyhow!("check: {problems} problem(s), see above"));
    }
    println!("all {} nodes ok", rows.len());
    Ok(())
}
