//! The coded stage through the real runtime (`backends::coded::CodedNode` over smoltcp on
//! the simulated medium): killed and slow workers, deadlines, fitted delay models, loss,
//! determinism.

use std::sync::Arc;

use tessera_backends::coded::{Activation, CodedModel, LayerScheme, LinearLayer, Numeric};
use tessera_core::runtime::coded::{Allocator, Protection};
use tessera_core::time::Duration;
use tessera_sim::cdc::pi3_wifi_reply_model;
use tessera_sim::coded_world::{run, Arrival, CodedOutcome, CodedSimConfig};
use tessera_sim::rng::stream;
use tessera_sim::world::Fault;

/// Two int8 layers 64 → 32 (ReLU) → 16, `k` data and `r` parity shards each, on workers
/// `1..=k + r`.
fn model(k: usize, r: usize, seed: u64) -> Arc<CodedModel> {
    let mut rng = stream(seed);
    let mut layer = |in_len: usize, rows: usize, activation| LinearLayer {
        in_len,
        rows,
        weights: (0..rows * in_len)
            .map(|_| (rng.uniform() * 2.0 - 1.0) as f32)
            .collect(),
        bias: (0..rows).map(|_| (rng.uniform() - 0.5) as f32).collect(),
        activation,
        numeric: Numeric::Int8 {
            in_scale: 1.0 / 16.0,
            w_scale: 1.0 / 127.0,
        },
    };
    let layers = vec![
        layer(64, 32, Activation::Relu),
        layer(32, 16, Activation::Linear),
    ];
    let scheme = LayerScheme {
        k,
        r,
        protection: Protection::Coded,
    };
    let workers: Vec<u16> = (1..=(k + r) as u16).collect();
    Arc::new(CodedModel::new(layers, &[scheme, scheme], &workers).expect("model"))
}

fn inputs(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = stream(seed);
    (0..n)
        .map(|_| {
            (0..64)
                .map(|_| (rng.uniform() * 16.0).floor() as f32 / 16.0)
                .collect()
        })
        .collect()
}

/// The two-layer model with `k + r` workers; the rate is set so a layer-0 shard computes in
/// 10 ms (no reply-time factor unless a test sets one).
fn config(k: usize, r: usize, frames: usize, deadline_ms: u64) -> CodedSimConfig {
    let m = model(k, r, 5);
    let shard_flops = m.shard_flops(0, 0, 1) as f64;
    let mut c = CodedSimConfig::new(
        m,
        (k + r) as u16,
        inputs(16, 9),
        frames,
        Duration::from_millis(deadline_ms),
    );
    c.gflops = shard_flops / 10_000.0 / 1e3; // 10 ms per layer-0 shard
    c.check = true;
    c
}

fn assert_all_exact(o: &CodedOutcome, frames: usize) {
    assert_eq!(o.frames.len(), frames, "every frame leaves the stage");
    for f in &o.frames {
        assert!(
            f.quality.is_complete(),
            "frame {} incomplete: {:?}",
            f.index,
            f.quality
        );
        assert_eq!(f.exact, Some(true), "frame {} not bit-exact", f.index);
    }
}

#[test]
fn killed_workers_with_r_equal_f_give_exact_frames() {
    for f in [1usize, 2] {
        let mut c = config(4, f, 24, 2_000);
        // Kill data-shard workers (1, then also 3) while frames are in flight.
        c.faults = [1u16, 3]
            .iter()
            .take(f)
            .map(|&node| Fault::Crash {
                node,
                at: 95_000 + node as u64 * 1_000,
            })
            .collect();
        let o = run(&c);
        assert_all_exact(&o, 24);
        assert!(o.gateway.recovered > 0, "f = {f}: parity recovered layers");
        // Layers after the kill never wait for the dead: no frame near the deadline.
        let worst = o.frames.iter().map(|x| x.latency_ms()).fold(0.0, f64::max);
        assert!(worst < 500.0, "f = {f}: worst latency {worst} ms");
    }
}

#[test]
fn a_slow_worker_is_decoded_around() {
    let base = run(&config(4, 1, 20, 5_000));
    assert_all_exact(&base, 20);
    let mut c = config(4, 1, 20, 5_000);
    c.faults = vec![Fault::Straggler {
        node: 2,
        at: 0,
        factor: 50.0,
    }];
    let o = run(&c);
    assert_all_exact(&o, 20);
    // Shard 1 (worker 2) takes 500 ms per job; frames do not wait for it.
    let used = o
        .frames
        .iter()
        .flat_map(|f| f.layers.iter())
        .filter(|l| l.present >> 1 & 1 == 1)
        .count();
    assert_eq!(used, 0, "the straggler's results are never decoded from");
    let mean = |o: &CodedOutcome| {
        o.frames.iter().map(|f| f.latency_ms()).sum::<f64>() / o.frames.len() as f64
    };
    assert!(
        mean(&o) < 1.5 * mean(&base) && mean(&o) < 100.0,
        "straggler run {} ms vs {} ms",
        mean(&o),
        mean(&base)
    );
    assert!(o.gateway.recovered > 0);
    let w2 = o.nodes.iter().find(|(id, _)| *id == 2).expect("worker 2");
    let late = w2.1.worker.expect("worker stats").late;
    assert!(
        late > 0 || o.gateway.discarded > 0,
        "its late work is dropped or discarded"
    );
}

#[test]
fn more_kills_than_parity_end_frames_at_the_deadline_with_partial_quality() {
    let deadline = 400u64;
    let mut c = config(4, 1, 6, deadline);
    c.faults = vec![
        Fault::Crash { node: 1, at: 0 },
        Fault::Crash { node: 2, at: 0 },
    ];
    let o = run(&c);
    assert_eq!(o.frames.len(), 6, "every frame still leaves the stage");
    for f in &o.frames {
        assert!(!f.quality.is_complete());
        assert!(
            f.quality.fraction < 1.0 && f.quality.fraction > 0.0,
            "{:?}",
            f.quality
        );
        let ms = f.latency_ms();
        assert!(
            ms >= deadline as f64 * 0.99 && ms <= deadline as f64 + 5.0,
            "frame {} left at {ms} ms, deadline {deadline} ms",
            f.index
        );
        assert_eq!(f.exact, None);
    }
    assert!(o.gateway.expired > 0);
}

#[test]
fn quality_aware_allocator_fits_link_models() {
    let mut c = config(4, 1, 30, 3_000);
    c.arrival = Arrival::Pi3Wifi(pi3_wifi_reply_model());
    c.coded.allocator = Allocator::QualityAware;
    c.coded.min_samples = 8;
    let o = run(&c);
    assert_eq!(o.frames.len(), 30);
    assert_eq!(
        o.fitted.len(),
        5 * 2,
        "a model per worker and layer: {:?}",
        o.fitted
    );
    assert!(o.gateway.fitted_budgets > 0, "{:?}", o.gateway);
    for (w, l, d) in &o.fitted {
        assert!(
            d.loc > 0.0 && d.mean() > d.loc,
            "worker {w} layer {l}: {d:?}"
        );
    }
}

#[test]
fn same_seed_same_outcome() {
    let mut c = config(4, 2, 12, 1_000);
    c.arrival = Arrival::Pi3Wifi(pi3_wifi_reply_model());
    c.loss = 0.05;
    let a = run(&c);
    let b = run(&c);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.events, b.events);
    let lat = |o: &CodedOutcome| o.frames.iter().map(|f| f.finished).collect::<Vec<_>>();
    assert_eq!(lat(&a), lat(&b));
    c.seed = 2;
    let d = run(&c);
    assert_ne!(a.trace_hash, d.trace_hash);
}

#[test]
fn frames_survive_packet_loss() {
    let mut c = config(4, 2, 16, 3_000);
    c.loss = 0.2;
    let o = run(&c);
    assert_eq!(o.frames.len(), 16);
    assert!(o.medium.2 > 0, "packets were lost");
    let complete = o.frames.iter().filter(|f| f.quality.is_complete()).count();
    assert!(complete > 0);
    for f in o.frames.iter().filter(|f| f.quality.is_complete()) {
        assert_eq!(f.exact, Some(true));
    }
}

#[test]
fn a_worker_stops_a_shard_past_its_budget_so_the_next_tasks_are_not_held() {
    // The Pi 3 WiFi reply-time tail charged to every job (50 ms shards, 3 s frames, as in
    // `cdc accuracy`), uncoded (k = 8): a straggling job used to run to its end while the
    // worker's next tasks (the next layer of the frame, the next frames) waited behind it.
    // Stopped at its budget, the worker takes them on time.
    let run_with = |stop: bool| {
        let mut c = config(8, 0, 60, 3000);
        c.gflops /= 5.0;
        c.arrival = Arrival::Pi3Wifi(pi3_wifi_reply_model());
        c.stop_late_jobs = stop;
        c.check = false;
        run(&c)
    };
    let (old, new) = (run_with(false), run_with(true));
    assert_eq!(old.frames.len(), 60);
    assert_eq!(new.frames.len(), 60);
    let abandoned: u32 = new
        .nodes
        .iter()
        .filter_map(|(_, s)| s.worker.map(|w| w.abandoned))
        .sum();
    assert!(abandoned > 0, "no job was stopped");
    let old_abandoned: u32 = old
        .nodes
        .iter()
        .filter_map(|(_, s)| s.worker.map(|w| w.abandoned))
        .sum();
    assert_eq!(old_abandoned, 0);
    assert!(
        new.gateway.expired < old.gateway.expired,
        "layers expired: {} stopping late jobs vs {} finishing them",
        new.gateway.expired,
        old.gateway.expired
    );
    let quality = |o: &CodedOutcome| {
        o.frames
            .iter()
            .map(|f| f64::from(f.quality.fraction))
            .sum::<f64>()
    };
    assert!(
        quality(&new) > quality(&old),
        "rows delivered: {} vs {}",
        quality(&new),
        quality(&old)
    );
}

#[test]
fn over_datagrams_a_killed_worker_and_loss_are_erasures_the_parity_covers() {
    use tessera_sim::coded_world::Transport;
    let datagram = |seed: u64| {
        let mut c = config(4, 2, 24, 2_000);
        c.transport = Transport::Datagram;
        c.coded.copies = 2;
        c.loss = 0.1;
        c.seed = seed;
        c.faults = vec![Fault::Crash {
            node: 2,
            at: 95_000,
        }];
        run(&c)
    };
    let o = datagram(3);
    // No connection notices the dead worker: its shards are erasures at their timeouts, and
    // lost datagrams are erasures at once; two parities cover both.
    assert_eq!(o.frames.len(), 24, "every frame leaves the stage");
    let exact = o.frames.iter().filter(|f| f.exact == Some(true)).count();
    assert!(exact >= 20, "{exact} of 24 frames exact");
    for f in o.frames.iter().filter(|f| f.quality.is_complete()) {
        assert_eq!(f.exact, Some(true), "frame {} decoded wrong", f.index);
    }
    assert!(o.gateway.recovered > 0, "parity recovered no layer");
    assert!(o.medium.2 > 0, "no packet was lost");
    assert_eq!(datagram(3).trace_hash, o.trace_hash, "same seed, same run");
    assert_ne!(datagram(4).trace_hash, o.trace_hash);
}
