//! `tessera check --cluster F [--id N]`: what an operator runs when something does not work.
//!
//! It validates the cluster file (every problem at once, with its line; host names are
//! resolved, an unresolvable one is a problem of its line), computes this
//! machine's model fingerprint (so a missing or different weights file shows here), checks
//! that node N's address belongs to this machine, then probes every node: a TCP connect, a
//! probe `Hello` sealed with the file's key, and the node's answer (its id, its model
//! fingerprint, or a refusal such as a different key). The answers go in one table; the exit
//! status is 0 only when every row is fine.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Error};
use clap::Args as ClapArgs;

use tessera_backends::link::handshake::ProbeAnswer;
use tessera_backends::link::RefusalReason;
use tessera_backends::model_fingerprint::differences;
use tessera_backends::probe::{probe, Probe};
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

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The node's id in the file.
    pub id: NodeId,
    /// Its address.
    pub addr: SocketAddr,
    /// The address as the file writes it (a host name: resolved into `addr`).
    pub written: String,
    /// What probing it found.
    pub probe: Probe,
    /// Ours, when this machine's model loaded.
    pub ours: Option<u64>,
}

impl Row {
    /// Columns: reachable, key, id, model, and the verdict (`ok` or what is wrong).
    pub fn cells(&self) -> [String; 5] {
        let dash = || "-".to_string();
        match &self.probe {
            Probe::Unreachable(why) => ["no".into(), dash(), dash(), dash(), why.clone()],
            Probe::NoAnswer(why) => ["yes".into(), dash(), dash(), dash(), why.clone()],
            Probe::Garbled(why) => ["yes".into(), "?".into(), dash(), dash(), why.clone()],
            Probe::Answer(ProbeAnswer::Refused(r)) => {
                let key = if *r == RefusalReason::Auth {
                    "WRONG"
                } else {
                    "?"
                };
                let why = match r {
                    RefusalReason::Protocol => {
                        "probe not understood (an older tessera there?)".to_string()
                    }
                    r => format!("refused: {r}"),
                };
                ["yes".into(), key.into(), dash(), dash(), why]
            }
            Probe::Answer(ProbeAnswer::Hello { node, model, .. }) => {
                let id = if *node == self.id {
                    "ok".to_string()
                } else {
                    format!("IS {node}")
                };
                let model_cell = format!("{model:016x}");
                let verdict = match (node == &self.id, self.ours) {
                    (false, _) => format!("node {node} answers at node {}'s address", self.id),
                    (true, Some(o)) if o != *model => format!(
                        "DIFFERENT MODEL: {} differ (ours {o:016x})",
                        differences(o, *model).join(", ")
                    ),
                    (true, None) => "cannot compare models (this machine's did not load)".into(),
                    (true, Some(_)) => "ok".into(),
                };
                ["yes".into(), "ok".into(), id, model_cell, verdict]
            }
        }
    }

    /// True when nothing is wrong with this node.
    pub fn ok(&self) -> bool {
        self.cells()[4] == "ok"
    }
}

/// The table: a header and one line per row, columns padded to their widest cell.
pub fn table(rows: &[Row]) -> String {
    let head = [
        "id",
        "address",
        "reachable",
        "key",
        "id ok",
        "model",
        "status",
    ];
    let lines: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let [a, b, c, d, e] = r.cells();
            let addr = match r.addr.to_string() {
                ip if ip == r.written => ip,
                ip => format!("{} ({ip})", r.written),
            };
            [r.id.to_string(), addr, a, b, c, d, e]
        })
        .collect();
    let mut width = head.map(str::len);
    for l in &lines {
        for (w, c) in width.iter_mut().zip(l) {
            *w = (*w).max(c.len());
        }
    }
    let fmt = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = fmt(&head);
    for l in &lines {
        out += &fmt(&l.each_ref().map(String::as_str));
    }
    out
}

/// Whether `addr` belongs to this machine: binding it tells (in use: the node is running).
fn own_address(addr: SocketAddr) -> Result<&'static str, String> {
    match TcpListener::bind(addr) {
        Ok(_) => Ok("free (the node is not running)"),
        Err(e) if e.kind() == ErrorKind::AddrInUse => Ok("in use (the node is running?)"),
        Err(e) if e.kind() == ErrorKind::AddrNotAvailable => {
            Err(format!("{addr} is not an address of this machine"))
        }
        Err(e) => Err(format!("{addr}: {e}")),
    }
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
