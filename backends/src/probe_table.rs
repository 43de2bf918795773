//! What `tessera check` prints about the nodes it probed: one [`Row`] per node (reachable?
//! same key? right id? same model?) with its verdict, the [`table`] of them, and whether a
//! node's address belongs to this machine ([`own_address`]).

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};

use tessera_core::wire::NodeId;

use crate::link::handshake::ProbeAnswer;
use crate::link::RefusalReason;
use crate::model_fingerprint::differences;
use crate::probe::Probe;

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
pub fn own_address(addr: SocketAddr) -> Result<&'static str, String> {
    match TcpListener::bind(addr) {
        Ok(_) => Ok("free (the node is not running)"),
        Err(e) if e.kind() == ErrorKind::AddrInUse => Ok("in use (the node is running?)"),
        Err(e) if e.kind() == ErrorKind::AddrNotAvailable => {
            Err(format!("{addr} is not an address of this machine"))
        }
        Err(e) => Err(format!("{addr}: {e}")),
    }
}
