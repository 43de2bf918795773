//! Deterministic simulator tests: real kernels on a small net through smoltcp links, the
//! same driver as platform-pi; results bit-identical to the single-device run.

use tessera_core::wire::Policy;
use tessera_sim::world::{run, SimConfig};

fn check_all_correct(cfg: &SimConfig, what: &str) -> tessera_sim::world::Outcome {
    let out = run(cfg);
    assert_eq!(
        out.submitted,
        cfg.frames * cfg.sources.len(),
        "{what} (seed {}): only {} frames submitted by t = {} µs",
        cfg.seed,
        out.submitted,
        out.virtual_us
    );
    assert_eq!(
        out.completed(),
        out.submitted,
        "{what} (seed {}): {} of {} frames completed by t = {} µs",
        cfg.seed,
        out.completed(),
        out.submitted,
        out.virtual_us
    );
    for f in &out.frames {
        assert_eq!(
            f.correct,
            Some(true),
            "{what} (seed {}): frame {:?} differs from the single-device run",
            cfg.seed,
            f.frame
        );
    }
    out
}

#[test]
fn two_nodes_over_smoltcp_match_the_single_device_run() {
    let mut cfg = SimConfig::small(Policy::Wsh, (2, 2), 1);
    cfg.frames = 2;
    let out = check_all_correct(&cfg, "wsh 2x2 1 edge");
    println!(
        "{} events, {} steps, t = {} µs, frames {:?}",
        out.events,
        out.steps,
        out.virtual_us,
        out.frames.iter().map(|f| f.latency_s()).collect::<Vec<_>>()
    );
}
