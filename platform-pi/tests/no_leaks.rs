//! A cluster run leaves no thread or file descriptor behind (its own process, so other tests'
//! threads do not blur the counts).

use std::time::Duration;
use tessera_testkit::loopback_port;

use tessera_backends::builtin::DEFAULT_CFG;
use tessera_backends::cluster::ClusterSpec;
use tessera_backends::gen_weights;
use tessera_backends::local::{fused_model, run_local, Faults};
use tessera_core::model::cfg;
use tessera_core::wire::Policy;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn threads_and_fds_are_released() {
    let text = DEFAULT_CFG
        .replace("width=608", "width=96")
        .replace("height=608", "height=96");
    let net = cfg::parse(&text).unwrap();
    let params = gen_weights::params(&net, 16, 2);
    let model = fused_model(&net, &params, 16, (3, 3)).unwrap();
    let image = vec![0.5f32; 96 * 96 * 3];
    let (fds, threads) = (count("/proc/self/fd"), count("/proc/self/task"));
    for policy in [Policy::WstS, Policy::Bodp] {
        let c = ClusterSpec::loopback(policy, (3, 3), 2, 1, loopback_port(), Some([1; 32]), 16);
        let faults = Faults {
            kill: Some((2, Duration::from_millis(50))),
            ..Faults::default()
        };
        let r = run_local(
            &c,
            model.clone(),
            &[image.clone(), image.clone()],
            &faults,
            Duration::from_secs(60),
            None,
        )
        .unwrap();
        assert_eq!(r.gateway.len(), 2);
    }
    // Sockets close as nodes stop; give the kernel a moment to reap nothing else.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(count("/proc/self/task"), threads, "threads leaked");
    assert_eq!(count("/proc/self/fd"), fds, "file descriptors leaked");
}
