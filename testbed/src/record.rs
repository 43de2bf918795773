//! The testbed's results as CSV rows: one per frame (`frames.csv`) and one per node
//! (`nodes.csv`), each row naming its scenario so that files of several runs concatenate.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One frame.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FrameRow {
    /// Scenario name.
    pub scenario: String,
    /// Source edge.
    pub origin: u16,
    /// Frame number (per source start).
    pub number: u32,
    /// Finished with its result (the source heard `FrameDone`, or the gateway made it).
    pub complete: bool,
    /// Submission to `FrameDone` at the source, ms (empty: the source never said).
    pub source_ms: Option<u64>,
    /// Arrival to completion at the gateway, ms.
    pub gateway_ms: Option<u64>,
    /// Results accepted per node, `id:count` separated by spaces.
    pub tiles_by: String,
}

/// One node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeRow {
    /// Scenario name.
    pub scenario: String,
    /// Node id (0: gateway).
    pub node: u16,
    /// `gateway`, `source` or `edge`.
    pub role: String,
    /// Processes started (restarts + 1).
    pub starts: u32,
    /// IP bytes sent, from the first frame's start to the last frame's end.
    pub tx_ip_bytes: u64,
    /// IP bytes received over the same span.
    pub rx_ip_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Peak resident memory (VmHWM) of any of its processes, KiB.
    pub peak_rss_kib: u64,
    /// CPU time of its processes, s.
    pub cpu_s: f64,
    /// CPU time of their compute threads, s.
    pub compute_cpu_s: f64,
    /// How its last process ended (empty: running when the run ended, then stopped).
    pub exit: String,
    /// Link payload bytes its processes sent, from their exit lines (empty: a process was
    /// killed and never said; older files lack the column).
    #[serde(default)]
    pub link_bytes_sent: Option<u64>,
}

/// Writing a CSV failed.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct CsvError {
    /// The file.
    pub path: String,
    /// Why.
    pub source: csv::Error,
}

/// Reading a CSV failed.
#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {source}")]
pub struct ReadError {
    /// The file.
    pub path: String,
    /// Why.
    pub source: csv::Error,
}

/// Reads rows written by [`write()`].
pub fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, ReadError> {
    let err = |source| ReadError {
        path: path.display().to_string(),
        source,
    };
    let mut r = csv::Reader::from_path(path).map_err(err)?;
    r.deserialize().collect::<Result<_, _>>().map_err(err)
}

/// Writes `rows` to `path` with a header.
pub fn write<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), CsvError> {
    let err = |source| CsvError {
        path: path.display().to_string(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    for r in rows {
        w.serialize(r).map_err(err)?;
    }
    w.flush().map_err(|e| err(e.into()))
}
