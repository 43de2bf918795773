//! The cluster file every node of a testbed run reads (`tessera gateway|edge --cluster`),
//! written from the scenario: the simulator's policy, grid, strip reuse, wire precision,
//! pacing, timeouts and addressing.

use serde::Serialize;
use tessera_core::rng::SplitMix64;
use tessera_core::wire::NodeId;
use tessera_sim::world::SimConfig;

use crate::names::{Names, PORT};

#[derive(Serialize)]
struct File {
    policy: &'static str,
    grid: String,
    layers: usize,
    kernel: &'static str,
    key: String,
    seed: u64,
    reuse: &'static str,
    transfer: &'static str,
    results_ahead: u8,
    prefetch: bool,
    timeouts: Timeouts,
    nodes: Vec<Node>,
}

#[derive(Serialize)]
struct Timeouts {
    tile_ms: u64,
    frame_ms: u64,
    steal_backoff_ms: u64,
    peer_dead_ms: u64,
    connect_ms: u64,
}

#[derive(Serialize)]
struct Node {
    id: NodeId,
    addr: String,
    source: bool,
}

/// A run's pre-shared key (private namespaces only; derived from the seed so reruns match).
fn key(seed: u64) -> String {
    let mut rng = SplitMix64::new(seed);
    (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect()
}

/// The cluster file of `cfg` (YOLOv2's 16 fused layers, generated weights from its seed;
/// the steal backoff is the runtime's default, which the simulator uses).
pub fn render(cfg: &SimConfig) -> Result<String, toml::ser::Error> {
    let f = File {
        policy: cfg.policy.name(),
        grid: format!("{}x{}", cfg.grid.0, cfg.grid.1),
        layers: tessera_sim::models::YOLO_FUSED,
        kernel: "auto",
        key: key(cfg.seed),
        seed: cfg.seed,
        // As the simulator runs the scenario (cluster files default to local strips).
        reuse: match (cfg.link_reuse, cfg.local_reuse) {
            (true, _) => "link",
            (false, true) => "local",
            (false, false) => "gateway",
        },
        transfer: cfg.transfer.label(),
        // As the simulator runs it (cluster files default to 2 and true).
        results_ahead: cfg.results_ahead,
        prefetch: cfg.prefetch,
        timeouts: Timeouts {
            tile_ms: cfg.tile_timeout.total_millis(),
            frame_ms: cfg.frame_deadline.total_millis(),
            steal_backoff_ms: 50,
            peer_dead_ms: cfg.peer_dead.total_millis(),
            connect_ms: 2_000,
        },
        nodes: (0..=cfg.edges)
            .map(|id| Node {
                id,
                addr: format!("{}:{PORT}", Names::addr(id)),
                source: cfg.sources.contains(&id),
            })
            .collect(),
    };
    toml::to_string(&f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::wire::Policy;

    #[test]
    fn renders_every_node_and_the_sources() {
        let cfg = SimConfig::yolo(Policy::WstS, (3, 3), 2);
        let t = render(&cfg).unwrap();
        assert!(t.contains("policy = \"wst-s\""));
        assert!(t.contains("reuse = \"gateway\""));
        assert!(t.contains("transfer = \"f32\""));
        assert!(t.contains("results_ahead = 0"));
        assert!(t.contains("prefetch = false"));
        assert!(t.contains("addr = \"10.77.0.3:7700\""));
        assert_eq!(t.matches("source = true").count(), 1);
        assert_eq!(key(1).len(), 64);
    }

    #[test]
    fn the_20_mbit_scenario_runs_paced_local_strips_at_20_mbit() {
        let text = include_str!("../scenarios/links20/wsts-3x3.toml");
        let (cfg, _) = crate::run::scenario(text).unwrap();
        assert_eq!(cfg.net.rate_bps, 20e6);
        let t = render(&cfg).unwrap();
        assert!(t.contains("reuse = \"local\""));
        assert!(t.contains("results_ahead = 2"));
        assert!(t.contains("prefetch = true"));
    }
}
