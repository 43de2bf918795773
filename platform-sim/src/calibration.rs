//! One row of the simulator-against-testbed calibration (`tessera-testbed calibrate` writes
//! them, `tessera-sim report --testbed` reads them back into its testbed section).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One scenario, run in the simulator and on the testbed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Network preset.
    pub net: String,
    /// Policy.
    pub policy: String,
    /// Grid.
    pub grid: String,
    /// Edges.
    pub edges: u16,
    /// Frames complete / submitted, simulator.
    pub sim_frames: String,
    /// Frames complete / seen, testbed.
    pub bed_frames: String,
    /// Mean latency, simulator, s.
    pub sim_latency_s: f64,
    /// Mean latency, testbed, s.
    pub bed_latency_s: f64,
    /// (sim − bed) / bed, %.
    pub latency_diff_pct: f64,
    /// IP bytes on the medium, simulator.
    pub sim_bytes: u64,
    /// IP bytes, testbed (interface counters).
    pub bed_bytes: u64,
    /// (sim − bed) / bed, %.
    pub bytes_diff_pct: f64,
    /// Tiles the source computed itself over every frame (no input sent), simulator.
    pub sim_source_tiles: u32,
    /// The same on the testbed.
    pub bed_source_tiles: u32,
    /// The device rate the testbed's compute threads reached, GFLOP/s.
    pub bed_device_gflops: f64,
    /// Link payload bytes every node sent (the links' own counters), simulator.
    #[serde(default)]
    pub sim_link_bytes: Option<u64>,
    /// The same on the testbed, from each process's exit line (empty when a process was
    /// killed and so never said).
    #[serde(default)]
    pub bed_link_bytes: Option<u64>,
    /// Link payload bytes, (sim − bed) / bed, %.
    #[serde(default)]
    pub link_diff_pct: Option<f64>,
    /// The simulator's mean layer-0 input payload of a tile it moved off the source, bytes.
    #[serde(default)]
    pub moved_tile_bytes: Option<f64>,
    /// Link payload bytes with the simulator's count of moved tiles replaced by the
    /// testbed's (each at [`Row::moved_tile_bytes`]), (sim − bed) / bed, %.
    #[serde(default)]
    pub link_diff_at_bed_split_pct: Option<f64>,
}

/// Reading a calibration CSV failed.
#[derive(Debug, thiserror::Error)]
#[error("reading the calibration CSV {path}: {source}")]
pub struct ReadError {
    /// The file.
    pub path: String,
    /// Why.
    pub source: csv::Error,
}

/// The rows of a calibration CSV (older files without the link columns read too).
pub fn read(path: &Path) -> Result<Vec<Row>, ReadError> {
    let err = |source| ReadError {
        path: path.display().to_string(),
        source,
    };
    let mut r = csv::Reader::from_path(path).map_err(err)?;
    r.deserialize().collect::<Result<_, _>>().map_err(err)
}

/// `(sim − bed) / bed` in %.
pub fn pct(sim: f64, bed: f64) -> f64 {
    100.0 * (sim - bed) / bed
}

/// A signed percentage with one decimal, or a dash where a row has none (tables of rows).
pub fn signed(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or("–".into(), |x| format!("{x:+.1}"))
}

/// Bytes as megabytes with two decimals, or a dash where a row has none (tables of rows).
pub fn megabytes(v: Option<u64>) -> String {
    v.map_or("–".into(), |b| format!("{:.2}", b as f64 / 1e6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_csv_without_link_columns_reads_and_a_bad_one_says_where() {
        let dir = std::env::temp_dir().join(format!("tessera-cal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ok = dir.join("ok.csv");
        std::fs::write(
            &ok,
            "scenario,net,policy,grid,edges,sim_frames,bed_frames,sim_latency_s,bed_latency_s,latency_diff_pct,sim_bytes,bed_bytes,bytes_diff_pct,sim_source_tiles,bed_source_tiles,bed_device_gflops\n\
             eth-single,ethernet-100M,wst,3x3,1,2/2,2/2,26.0,25.3,2.7,3087422,3103872,-0.5,18,18,1.53\n",
        )
        .expect("write");
        let rows = read(&ok).expect("reads");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].edges, 1);
        assert_eq!(rows[0].bed_link_bytes, None);
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "scenario,edges\nx,many\n").expect("write");
        let e = read(&bad).expect_err("refused").to_string();
        assert!(e.contains("bad.csv"), "{e}");
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
