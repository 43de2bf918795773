//! The cluster file every node of a testbed run reads (`tessera gateway|edge --cluster`),
//! written from the scenario: the simulator's policy, grid, strip reuse, wire precision,
//! pacing, timeouts and addressing.

use tessera_backends::cluster_file::{written, ClusterFile, FileNode, FileTimeouts};
use tessera_core::rng::SplitMix64;
use tessera_sim::world::SimConfig;

use crate::names::{Names, PORT};

/// A run's pre-shared key (private namespaces only; derived from the seed so reruns match).
fn key(seed: u64) -> [u8; 32] {
    let mut rng = SplitMix64::new(seed);
    let mut key = [0u8; 32];
    for word in key.chunks_exact_mut(8) {
        word.copy_from_slice(&rng.next_u64().to_be_bytes());
    }
    key
}

/// The cluster file of `cfg` (YOLOv2's 16 fused layers, generated weights from its seed;
/// the steal backoff is the runtime's default, which the simulator uses).
pub fn render(cfg: &SimConfig) -> Result<String, toml::ser::Error> {
    let nodes = (0..=cfg.edges)
        .map(|id| {
            let addr = format!("{}:{PORT}", Names::addr(id));
            FileNode::new(id, addr, cfg.sources.contains(&id))
        })
        .collect();
    let mut f = ClusterFile::new(cfg.policy, cfg.grid, &key(cfg.seed), nodes);
    f.layers = Some(written(tessera_sim::models::YOLO_FUSED));
    f.kernel = Some(written("auto".into()));
    f.seed = cfg.seed;
    // As the simulator runs the scenario (cluster files default to local strips).
    let reuse = match (cfg.link_reuse, cfg.local_reuse) {
        (true, _) => "link",
        (false, true) => "local",
        (false, false) => "gateway",
    };
    f.reuse = Some(written(reuse.into()));
    f.transfer = Some(written(cfg.transfer.label().into()));
    // As the simulator runs it (cluster files default to 2 and true).
    f.results_ahead = Some(written(cfg.results_ahead));
    f.prefetch = Some(written(cfg.prefetch));
    f.timeouts = Some(FileTimeouts {
        tile_ms: written(cfg.tile_timeout.total_millis()),
        frame_ms: written(cfg.frame_deadline.total_millis()),
        steal_backoff_ms: written(50),
        peer_dead_ms: written(cfg.peer_dead.total_millis()),
        ..FileTimeouts::default()
    });
    f.to_toml()
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
        assert!(t.contains(&tessera_backends::cluster_file::key_hex(&key(1))));
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
