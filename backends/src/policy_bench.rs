//! The scheduling policies measured on loopback clusters (`tessera bench cluster`):
//! [`sweep`] runs YOLOv2's fused layers for 1 and 2 edges × 3x3/5x5 × WSH/WST/WST-S/BODP on
//! real sockets and sums each configuration up ([`PolicyRow`]: seconds per frame measured at
//! the source, bytes on the wire per frame, the largest edge buffers); [`two_sources`] runs
//! two cameras whose frames overlap in the cluster. All nodes share the machine's cores, so
//! absolute times measure contention as much as the network: compare policies with each other.

extern crate alloc;
extern crate std;

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use std::time::Duration;

use tessera_core::model::Network;
use tessera_core::wire::{Policy, Precision};

use crate::cluster::ClusterSpec;
use crate::driver::{Model, NodeStats, SourceFrame};
use crate::local::{fused_model, run_local, Faults, FusedModelError, LocalError, LocalRun};
use crate::pipeline::KernelChoice;

/// Fused layers of every run (YOLOv2's first 16).
const LAYERS: usize = 16;
/// Cluster key of the runs (authenticated, as deployed).
const KEY: [u8; 32] = [7; 32];
/// Longest wait for one run.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Figures of one configuration.
#[derive(Clone, Debug)]
pub struct PolicyRow {
    /// Policy.
    pub policy: Policy,
    /// Grid.
    pub grid: (u32, u32),
    /// Edges.
    pub edges: u16,
    /// WST-S: strips stay where they were made (`Config::local_reuse`); false for the
    /// gateway's strip cache (and for the other policies, which move no strips).
    pub local_reuse: bool,
    /// WST-S: strips edge to edge by the link model (`Config::link_reuse`, with
    /// `local_reuse`).
    pub link_reuse: bool,
    /// Wire precision of the tile results and strips.
    pub transfer: Precision,
    /// Mean seconds per frame.
    pub secs_per_frame: f64,
    /// Bytes sent by all nodes per frame.
    pub bytes_per_frame: f64,
    /// Largest compute buffers of an edge.
    pub edge_compute_bytes: usize,
    /// Largest tensor store of an edge.
    pub edge_store_bytes: usize,
}

/// Two data sources feeding at once.
#[derive(Clone, Debug)]
pub struct TwoSources {
    /// Policy.
    pub policy: Policy,
    /// Frames fed.
    pub frames: usize,
    /// Frames the gateway completed.
    pub completed: usize,
    /// Completed frames over the whole run (start-up included, so a lower bound).
    pub frames_per_sec: f64,
    /// Longest source-measured latency.
    pub max_latency_secs: f64,
}

/// How the runs are made.
#[derive(Clone, Copy, Debug)]
pub struct BenchSetup {
    /// Kernels of every node.
    pub kernel: KernelChoice,
    /// Frames per configuration (one run each).
    pub frames: usize,
}

/// Why a measurement could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The fused model could not be made.
    #[error("the fused model: {0}")]
    Model(FusedModelError),
    /// A run failed.
    #[error("a loopback run: {0}")]
    Run(LocalError),
}

/// One configuration's figures from its runs.
pub fn summarize(
    policy: Policy,
    grid: (u32, u32),
    edges: u16,
    (local_reuse, link_reuse): (bool, bool),
    runs: &[LocalRun],
) -> PolicyRow {
    let frames: usize = runs
        .iter()
        .map(|r| r.source_latency.len())
        .sum::<usize>()
        .max(1);
    let secs: f64 = runs
        .iter()
        .flat_map(|r| r.source_latency.values())
        .map(|d| d.as_secs_f64())
        .sum();
    let bytes: u64 = runs
        .iter()
        .flat_map(|r| r.stats.values())
        .map(|s| s.link.bytes_sent)
        .sum();
    let edge = |f: fn(&NodeStats) -> usize| {
        runs.iter()
            .flat_map(|r| r.stats.iter())
            .filter(|(id, _)| **id != 0)
            .map(|(_, s)| f(s))
            .max()
            .unwrap_or(0)
    };
    PolicyRow {
        policy,
        grid,
        edges,
        local_reuse,
        link_reuse,
        transfer: Precision::F32,
        secs_per_frame: secs / frames as f64,
        bytes_per_frame: bytes as f64 / frames as f64,
        edge_compute_bytes: edge(|s| s.peak_compute_bytes),
        edge_store_bytes: edge(|s| s.peak_store_bytes),
    }
}

fn model(net: &Network, params: &[f32], grid: (u32, u32)) -> Result<Arc<Model>, BenchError> {
    fused_model(net, params, LAYERS, grid).map_err(BenchError::Model)
}

/// A loopback cluster on `port` (then the next port, for the next run).
fn cluster(
    policy: Policy,
    grid: (u32, u32),
    edges: u16,
    sources: u16,
    port: &mut u16,
    kernel: KernelChoice,
) -> ClusterSpec {
    let mut c = ClusterSpec::loopback(policy, grid, edges, sources, *port, Some(KEY), LAYERS);
    *port = port.wrapping_add(1);
    c.kernel = kernel;
    c
}

/// The configurations of a sweep at each grid and edge count: every policy, WST-S with its
/// strips kept where they were made, fetched edge to edge by the link model, and with the
/// gateway's strip cache (policy, `local_reuse`, `link_reuse`).
const POLICIES: [(Policy, bool, bool); 7] = [
    (Policy::Wsh, false, false),
    (Policy::Wst, false, false),
    (Policy::WstS, true, false),
    (Policy::WstS, true, true),
    (Policy::WstS, false, false),
    (Policy::Bodp, false, false),
    (Policy::Modnn, false, false),
];

/// One configuration of a sweep.
#[derive(Clone, Copy, Debug)]
struct Configuration {
    policy: Policy,
    grid: (u32, u32),
    edges: u16,
    local_reuse: bool,
    link_reuse: bool,
    transfer: Precision,
}

/// `setup.frames` runs of `c` (one frame of `input` each), summed up.
fn measure(
    net: &Network,
    params: &[f32],
    input: &SourceFrame,
    setup: BenchSetup,
    port: &mut u16,
    c: Configuration,
) -> Result<PolicyRow, BenchError> {
    let model = model(net, params, c.grid)?;
    let mut runs = Vec::new();
    for _ in 0..setup.frames {
        let mut spec = cluster(c.policy, c.grid, c.edges, 1, port, setup.kernel);
        spec.local_reuse = c.local_reuse;
        spec.link_reuse = c.link_reuse;
        spec.transfer = c.transfer;
        let images = vec![input.clone()];
        let r = run_local(
            &spec,
            model.clone(),
            &images,
            &Faults::default(),
            RUN_TIMEOUT,
            None,
        );
        runs.push(r.map_err(BenchError::Run)?);
    }
    let reuse = (c.local_reuse, c.link_reuse);
    let mut row = summarize(c.policy, c.grid, c.edges, reuse, &runs);
    row.transfer = c.transfer;
    Ok(row)
}

/// Every configuration, one run per frame of `input` (the network input, and the picture a
/// data source ships in its place when it has one), from `port` on; `progress` sees each row
/// as it is made.
pub fn sweep(
    net: &Network,
    params: &[f32],
    input: &SourceFrame,
    setup: BenchSetup,
    port: &mut u16,
    mut progress: impl FnMut(&PolicyRow),
) -> Result<Vec<PolicyRow>, BenchError> {
    let mut rows = Vec::new();
    for edges in [1u16, 2] {
        for grid in [(3, 3), (5, 5)] {
            for (policy, local_reuse, link_reuse) in POLICIES {
                // Winograd nodes refuse the stripe policies (their stripes are not on the
                // block grid): those rows are left out, not failed.
                if !setup.kernel.runs(policy) {
                    continue;
                }
                let c = Configuration {
                    policy,
                    grid,
                    edges,
                    local_reuse,
                    link_reuse,
                    transfer: Precision::F32,
                };
                let row = measure(net, params, input, setup, port, c)?;
                progress(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// WST-S with local strips, 3x3, gateway + 2 edges (the byte target), with tile
/// results sent in each of `precisions`, from `port` on.
pub fn transfer_rows(
    net: &Network,
    params: &[f32],
    input: &SourceFrame,
    setup: BenchSetup,
    port: &mut u16,
    precisions: &[Precision],
) -> Result<Vec<PolicyRow>, BenchError> {
    precisions
        .iter()
        .map(|&transfer| {
            let c = Configuration {
                policy: Policy::WstS,
                grid: (3, 3),
                edges: 2,
                local_reuse: true,
                link_reuse: false,
                transfer,
            };
            measure(net, params, input, setup, port, c)
        })
        .collect()
}

/// Two data sources (2 edges, both cameras, 3x3) feeding `2 × frames` frames: WSH and WST-S.
pub fn two_sources(
    net: &Network,
    params: &[f32],
    input: &SourceFrame,
    setup: BenchSetup,
    port: &mut u16,
) -> Result<Vec<TwoSources>, BenchError> {
    let mut out = Vec::new();
    for policy in [Policy::Wsh, Policy::WstS] {
        let c = cluster(policy, (3, 3), 2, 2, port, setup.kernel);
        let frames = 2 * setup.frames;
        let images = vec![input.clone(); frames];
        let r = run_local(
            &c,
            model(net, params, (3, 3))?,
            &images,
            &Faults::default(),
            RUN_TIMEOUT,
            None,
        )
        .map_err(BenchError::Run)?;
        let completed = r.gateway.values().filter(|f| f.complete).count();
        out.push(TwoSources {
            policy,
            frames,
            completed,
            frames_per_sec: completed as f64 / r.elapsed.as_secs_f64(),
            max_latency_secs: r
                .source_latency
                .values()
                .map(|d| d.as_secs_f64())
                .fold(0.0, f64::max),
        });
    }
    Ok(out)
}
