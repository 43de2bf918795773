//! The coded layer's gateway state machine driven by simulated workers in virtual time:
//! killed, slow and duplicate workers; the decoded output is checked bit for bit.

use tessera_core::code::dispatch::{CodedLayer, LayerAction, ResultVerdict};
use tessera_core::code::{encode, shard, Arithmetic, Code, Decoder};
use tessera_core::deadline::LinkDelay;
use tessera_core::rng::SplitMix64;
use tessera_core::time::{Duration, Instant};

const IN: usize = 16;

/// A layer, its shard results, and the reference output.
struct Layer {
    code: Code,
    results: Vec<Vec<i32>>,
    want: Vec<i32>,
}

fn layer(rows: usize, k: usize, r: usize, seed: u64) -> Layer {
    let mut rng = SplitMix64::new(seed);
    let code = Code::new(rows, k, r).unwrap();
    let w: Vec<i8> = (0..rows * IN).map(|_| rng.next_u64() as i8).collect();
    let b: Vec<i32> = (0..rows).map(|_| rng.next_u64() as i32 % 1000).collect();
    let x: Vec<i8> = (0..IN).map(|_| rng.next_u64() as i8).collect();
    let mut want = vec![0; rows];
    shard::gemm_i8(&w, &b, &x, IN, 1, &mut want).unwrap();
    let s = code.shard_rows();
    let mut results = Vec::new();
    for d in 0..k {
        let (wd, bd) = encode::data_shard(&code, d, &w, &b, IN).unwrap();
        let mut y = vec![0; bd.len()];
        shard::gemm_i8(wd, bd, &x, IN, 1, &mut y).unwrap();
        results.push(y);
    }
    for j in 0..r {
        let mut y = vec![0; s];
        if code.int_arithmetic() == Arithmetic::Wrapping {
            let (mut pw, mut pb) = (vec![0; s * IN], vec![0; s]);
            encode::parity_wrapping(&code, &w, &b, IN, &mut pw, &mut pb).unwrap();
            shard::gemm_wrapping(&pw, &pb, &x, IN, 1, &mut y).unwrap();
        } else {
            let (mut pw, mut pb) = (vec![0; s * IN], vec![0; s]);
            encode::parity_mod_p(&code, j, &w, &b, IN, &mut pw, &mut pb).unwrap();
            shard::gemm_mod_p(&pw, &pb, &x, IN, 1, &mut y).unwrap();
        }
        results.push(y);
    }
    Layer {
        code,
        results,
        want,
    }
}

/// How a worker behaves: reply `delay` after each send, or never.
#[derive(Clone, Copy)]
enum Worker {
    Reply(u64),
    Dead,
}

#[derive(Debug, Default)]
struct Run {
    decoded: Option<Vec<i32>>,
    expired_rows: Option<usize>,
    verdicts: Vec<(usize, ResultVerdict)>,
    sends: Vec<usize>,
    finished_at: u64,
}

/// Virtual-time loop: results arrive `delay` µs after each send (the second reply of a
/// re-sent shard after the resend).
fn drive(l: &Layer, workers: &[Worker], budget_us: u64, deadline_us: u64) -> Run {
    drive_with(l, workers, &vec![budget_us; l.code.n()], deadline_us)
}

fn drive_with(l: &Layer, workers: &[Worker], budgets_us: &[u64], deadline_us: u64) -> Run {
    let n = l.code.n();
    let budgets: Vec<Duration> = budgets_us
        .iter()
        .map(|&b| Duration::from_micros(b))
        .collect();
    let mut m = CodedLayer::new(l.code, Instant::from_micros(deadline_us), &budgets).unwrap();
    let mut inbox: Vec<(u64, usize)> = Vec::new();
    let mut run = Run::default();
    let mut now = 0u64;
    let mut arrived: Vec<Option<&[i32]>> = vec![None; n];
    for _ in 0..10_000 {
        while let Some(a) = m.poll(Instant::from_micros(now)) {
            match a {
                LayerAction::Send { shard } => {
                    run.sends.push(shard);
                    if let Worker::Reply(d) = workers[shard] {
                        inbox.push((now + d, shard));
                    }
                }
                LayerAction::Decode { present } => {
                    let mut out = vec![0; l.code.rows()];
                    let views: Vec<Option<&[i32]>> = (0..n)
                        .map(|i| {
                            if present >> i & 1 == 1 {
                                arrived[i]
                            } else {
                                None
                            }
                        })
                        .collect();
                    Decoder::from_mask(&l.code, present)
                        .unwrap()
                        .decode_i32(&views, 1, &mut out)
                        .unwrap();
                    run.decoded = Some(out);
                    run.finished_at = now;
                }
                LayerAction::Expired { rows, .. } => {
                    run.expired_rows = Some(rows);
                    run.finished_at = now;
                }
            }
        }
        // Stragglers still arrive after the end (and are told apart).
        let next_msg = inbox.iter().map(|e| e.0).min();
        let next = match (next_msg, m.poll_at().map(|t| t.total_micros())) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
        now = now.max(next);
        let (due, rest): (Vec<_>, Vec<_>) = inbox.iter().partition(|e| e.0 <= now);
        inbox = rest;
        for (_, shard) in due {
            let v = m.on_result(Instant::from_micros(now), shard).unwrap();
            if v == ResultVerdict::Accept {
                arrived[shard] = Some(&l.results[shard]);
            }
            run.verdicts.push((shard, v));
        }
    }
    run
}

#[test]
fn everyone_on_time_decodes_at_the_kth_result_and_drops_stragglers() {
    let l = layer(20, 4, 2, 1);
    let workers: Vec<Worker> = (0..6).map(|i| Worker::Reply(100 + 10 * i)).collect();
    let run = drive(&l, &workers, 1_000, 10_000);
    assert_eq!(run.decoded.as_ref(), Some(&l.want));
    assert_eq!(run.finished_at, 130, "decoded at the 4th reply");
    let unneeded: Vec<usize> = run
        .verdicts
        .iter()
        .filter(|v| v.1 == ResultVerdict::Unneeded)
        .map(|v| v.0)
        .collect();
    assert_eq!(unneeded, vec![4, 5]);
    assert_eq!(
        run.sends,
        vec![0, 1, 2, 3, 4, 5],
        "every shard sent exactly once"
    );
}

#[test]
fn killed_workers_up_to_r_are_recovered_without_resending() {
    for (k, r) in [(4, 1), (6, 2), (5, 3), (8, 4)] {
        let l = layer(3 * k + 1, k, r, k as u64);
        let n = k + r;
        // Every pattern of r dead workers.
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != r {
                continue;
            }
            let workers: Vec<Worker> = (0..n)
                .map(|i| {
                    if mask >> i & 1 == 1 {
                        Worker::Dead
                    } else {
                        Worker::Reply(50 + i as u64)
                    }
                })
                .collect();
            let run = drive(&l, &workers, 1_000, 10_000);
            assert_eq!(
                run.decoded.as_ref(),
                Some(&l.want),
                "k {k} r {r} dead {mask:#b}"
            );
            assert_eq!(run.sends.len(), n, "no re-send");
        }
    }
}

#[test]
fn a_slow_worker_is_late_and_decoded_around() {
    let l = layer(12, 3, 1, 9);
    let workers = [
        Worker::Reply(100),
        Worker::Reply(5_000),
        Worker::Reply(120),
        Worker::Reply(130),
    ];
    let run = drive(&l, &workers, 1_000, 10_000);
    assert_eq!(run.decoded.as_ref(), Some(&l.want));
    assert_eq!(run.finished_at, 130);
    assert!(run.verdicts.contains(&(1, ResultVerdict::Unneeded)));
    // Past its own budget the slow result is an erasure (late), decoded around with parity.
    let l = layer(12, 2, 2, 10);
    let workers = [
        Worker::Reply(100),
        Worker::Reply(1_500),
        Worker::Reply(1_200),
        Worker::Dead,
    ];
    let run = drive_with(&l, &workers, &[1_000, 1_000, 2_000, 2_000], 10_000);
    assert_eq!(run.decoded.as_ref(), Some(&l.want));
    assert_eq!(run.finished_at, 1_200);
    assert!(run.verdicts.contains(&(1, ResultVerdict::Late)));
    assert_eq!(run.sends.len(), 4, "parity still covers: no re-send");
}

#[test]
fn too_many_losses_resend_when_the_deadline_allows_else_expire_with_quality() {
    let l = layer(12, 3, 1, 4);
    // Workers 0 and 1 dead, r = 1: a re-send of shard 0 fits (budget 1 ms, deadline 10 ms) but
    // its worker is still dead; then shard 1; then the layer expires at the deadline.
    let workers = [
        Worker::Dead,
        Worker::Dead,
        Worker::Reply(100),
        Worker::Reply(100),
    ];
    let run = drive(&l, &workers, 1_000, 10_000);
    assert!(run.decoded.is_none());
    assert_eq!(run.expired_rows, Some(4), "only data shard 2's 4 rows");
    assert!(run.sends.len() > 4, "re-dispatched: {:?}", run.sends);
    assert!(run.finished_at <= 10_000);
    // Two late shards with r = 1: shard 0 is sent again, and its first answer (same input,
    // same weights) is accepted when it comes, completing the decode.
    let l = layer(12, 3, 1, 5);
    let workers = [
        Worker::Reply(1_500),
        Worker::Reply(1_500),
        Worker::Reply(100),
        Worker::Reply(100),
    ];
    let run = drive(&l, &workers, 1_000, 10_000);
    assert_eq!(run.decoded.as_ref(), Some(&l.want));
    assert_eq!(run.sends, vec![0, 1, 2, 3, 0]);
    assert_eq!(run.finished_at, 1_500);
    // No time left for a re-send: the layer expires at once with what it has.
    let run = drive(&l, &workers, 1_000, 1_400);
    assert_eq!(run.expired_rows, Some(4), "data shard 2 only");
    assert_eq!(run.sends.len(), 4);
}

#[test]
fn random_arrivals_decode_exactly_whenever_k_arrive() {
    let mut rng = SplitMix64::new(77);
    let link = LinkDelay {
        loc: 200.0,
        shape: 0.5,
        scale: 800.0,
        loss: 0.15,
    };
    let (mut decoded, mut expired) = (0, 0);
    for trial in 0..300u64 {
        let (k, r) = (6, (trial % 4) as usize + 1);
        let l = layer(26, k, r, trial);
        let workers: Vec<Worker> = (0..k + r)
            .map(|_| match link.sample(&mut rng) {
                Some(d) => Worker::Reply(d as u64),
                None => Worker::Dead,
            })
            .collect();
        let run = drive(&l, &workers, 1_500, 3_000);
        match (&run.decoded, run.expired_rows) {
            (Some(out), None) => {
                assert_eq!(out, &l.want, "trial {trial}");
                decoded += 1;
            }
            (None, Some(rows)) => {
                assert!(rows < 26);
                expired += 1;
            }
            other => panic!("trial {trial}: {other:?}"),
        }
        assert!(
            run.finished_at <= 3_000,
            "trial {trial} ended at {}",
            run.finished_at
        );
    }
    assert!(
        decoded > 200 && expired > 0,
        "decoded {decoded}, expired {expired}"
    );
}

#[test]
fn bad_indices_and_duplicates() {
    let l = layer(8, 2, 1, 3);
    let mut m = CodedLayer::new(
        l.code,
        Instant::from_micros(1_000),
        &[Duration::from_micros(500); 3],
    )
    .unwrap();
    assert!(CodedLayer::new(
        l.code,
        Instant::from_micros(1_000),
        &[Duration::from_micros(5); 2]
    )
    .is_err());
    while let Some(LayerAction::Send { .. }) = m.poll(Instant::ZERO) {}
    assert!(m.on_result(Instant::ZERO, 3).is_err());
    assert!(m.on_result(Instant::ZERO, 99).is_err());
    assert_eq!(
        m.on_result(Instant::from_micros(10), 0).unwrap(),
        ResultVerdict::Accept
    );
    assert_eq!(
        m.on_result(Instant::from_micros(11), 0).unwrap(),
        ResultVerdict::Duplicate
    );
    m.on_worker_lost(1);
    assert_eq!(
        m.on_result(Instant::from_micros(12), 1).unwrap(),
        ResultVerdict::Late
    );
    assert_eq!(
        m.on_result(Instant::from_micros(13), 2).unwrap(),
        ResultVerdict::Accept
    );
    assert_eq!(
        m.poll(Instant::from_micros(13)),
        Some(LayerAction::Decode { present: 0b101 })
    );
    assert!(m.is_finished());
    assert_eq!(m.poll(Instant::from_micros(14)), None);
    assert_eq!(m.poll_at(), None);
}
