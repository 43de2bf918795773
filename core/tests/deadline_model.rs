//! Delay model, quality model and budget allocators (docs/design.md §7).

use tessera_core::deadline::{
    expected_recovery, gamma, optimize, uniform, Actor, Channel, FitError, Graph, GraphError,
    LinkDelay,
};
use tessera_core::rng::SplitMix64;

/// `P(n, x) = 1 − e^{−x} Σ_{i<n} x^i/i!` for integer `n`, summed in log space: an independent
/// closed form for the series / continued-fraction implementation.
fn p_integer(n: u32, x: f64) -> f64 {
    let mut log_term = -x; // log(e^{-x} x^0 / 0!)
    let mut q = 0.0;
    for i in 0..n {
        if i > 0 {
            log_term += x.ln() - f64::from(i).ln();
        }
        q += log_term.exp();
    }
    1.0 - q
}

/// Why this value: both sides are double-precision evaluations of a smooth function; the log-
/// space closed form loses ~1e-13 absolute through its own rounding.
const GAMMA_ABS_TOL: f64 = 1e-11;

#[test]
fn regularized_gamma_matches_closed_forms() {
    for n in [1u32, 2, 3, 5, 10, 30, 100, 150] {
        for x in [
            0.01, 0.5, 1.0, 2.0, 5.0, 9.5, 10.0, 10.5, 30.0, 99.0, 100.0, 101.0, 140.0, 200.0,
        ] {
            let (got, want) = (gamma::reg_lower(f64::from(n), x), p_integer(n, x));
            assert!(
                (got - want).abs() <= GAMMA_ABS_TOL,
                "P({n}, {x}) = {got}, closed form {want}"
            );
        }
    }
    // Half-integer shape: P(1/2, x) = erf(√x).
    for x in [1e-4, 0.1, 0.7, 1.5, 3.0, 8.0] {
        let (got, want) = (gamma::reg_lower(0.5, x), libm::erf(x.sqrt()));
        assert!(
            (got - want).abs() <= GAMMA_ABS_TOL,
            "P(0.5, {x}) = {got}, erf {want}"
        );
    }
    // Known values (closed forms above): P(3, 2) = 1 − 5e^{−2}.
    assert!((gamma::reg_lower(3.0, 2.0) - 0.323_323_583_816_936_5).abs() < 1e-14);
    assert_eq!(gamma::reg_lower(2.0, 0.0), 0.0);
    assert_eq!(gamma::reg_lower(2.0, f64::INFINITY), 1.0);
    assert!(gamma::reg_lower(0.0, 1.0).is_nan());
    assert!(gamma::reg_lower(1.0, -1.0).is_nan());
}

#[test]
fn quantile_inverts_cdf_and_pdf_integrates_to_cdf() {
    for (k, th) in [(0.6, 2.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.5), (25.0, 0.3)] {
        for q in [0.001, 0.1, 0.5, 0.9, 0.999] {
            let x = gamma::quantile(k, th, q);
            let back = gamma::cdf(k, th, x);
            assert!(
                (back - q).abs() < 1e-10,
                "κ {k} θ {th}: cdf(quantile({q})) = {back}"
            );
        }
        // Simpson's rule on [a, b] away from the κ < 1 singularity at 0.
        let (a, b) = (gamma::quantile(k, th, 0.05), gamma::quantile(k, th, 0.95));
        let m = 2000;
        let h = (b - a) / f64::from(m);
        let mut s = gamma::pdf(k, th, a) + gamma::pdf(k, th, b);
        for i in 1..m {
            s += gamma::pdf(k, th, a + h * f64::from(i)) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        let integral = s * h / 3.0;
        // Simpson with 2000 panels: ~3e-7 near the κ < 1 spike at the 5 % quantile.
        assert!(
            (integral - 0.9).abs() < 1e-6,
            "κ {k} θ {th}: ∫pdf = {integral}"
        );
    }
}

#[test]
fn sampler_and_fit_recover_the_parameters() {
    let mut rng = SplitMix64::new(7);
    let truth = LinkDelay {
        loc: 3.0,
        shape: 2.5,
        scale: 1.2,
        loss: 0.1,
    };
    let mut delays = Vec::new();
    let mut lost = 0;
    for _ in 0..200_000 {
        match truth.sample(&mut rng) {
            Some(d) => delays.push(d),
            None => lost += 1,
        }
    }
    let fit = LinkDelay::fit(&delays, lost).unwrap();
    // The minimum of 180 000 draws sits a hair above loc; moments carry ~1 % sampling error.
    assert!((fit.loc - 3.0).abs() < 0.05, "{fit:?}");
    assert!((fit.shape - 2.5).abs() / 2.5 < 0.05, "{fit:?}");
    assert!((fit.scale - 1.2).abs() / 1.2 < 0.05, "{fit:?}");
    assert!((fit.loss - 0.1).abs() < 0.005, "{fit:?}");
    // Empirical delivery within δ vs π(δ).
    for delta in [3.5, 5.0, 8.0] {
        let emp = delays.iter().filter(|&&d| d <= delta).count() as f64 / 200_000.0;
        let model = truth.delivery(delta);
        assert!(
            (emp - model).abs() < 0.005,
            "δ {delta}: empirical {emp}, π {model}"
        );
    }
    // Shape below 1 (heavy head) samples too.
    let heavy = LinkDelay {
        loc: 0.0,
        shape: 0.4,
        scale: 10.0,
        loss: 0.0,
    };
    let mean = (0..100_000)
        .filter_map(|_| heavy.sample(&mut rng))
        .sum::<f64>()
        / 100_000.0;
    assert!((mean - 4.0).abs() < 0.1, "mean {mean}");
}

#[test]
fn fit_rejects_bad_samples() {
    assert_eq!(
        LinkDelay::fit(&[1.0], 0),
        Err(FitError::TooFewSamples { have: 1 })
    );
    assert_eq!(
        LinkDelay::fit(&[1.0, f64::NAN], 0),
        Err(FitError::BadSample { index: 1 })
    );
    assert_eq!(
        LinkDelay::fit(&[1.0, -2.0], 0),
        Err(FitError::BadSample { index: 1 })
    );
    assert_eq!(
        LinkDelay::fit(&[2.0, 2.0, 2.0], 0),
        Err(FitError::Degenerate)
    );
}

fn chain(links: &[LinkDelay]) -> Graph {
    let mut g = Graph::new();
    g.add_actor(Actor {
        wcet: 1.0,
        input_weight: 1.0,
        sink_weight: 0.0,
    })
    .unwrap();
    for (i, &link) in links.iter().enumerate() {
        let last = i + 1 == links.len();
        let sink_weight = if last { 1.0 } else { 0.0 };
        g.add_actor(Actor {
            wcet: 1.0,
            input_weight: 0.0,
            sink_weight,
        })
        .unwrap();
        g.add_channel(Channel {
            from: i,
            to: i + 1,
            weight: 2.0,
            link,
        })
        .unwrap();
    }
    g
}

#[test]
fn chain_quality_is_the_product_of_delivery_odds_and_uniform_splits_slack_evenly() {
    let links = [
        LinkDelay::REFERENCE,
        LinkDelay {
            loc: 0.5,
            shape: 3.0,
            scale: 1.5,
            loss: 0.02,
        },
    ];
    let g = chain(&links);
    let deadline = 12.0; // 3 ms of WCET, 9 ms of slack over 2 channels
    let s = uniform(&g, deadline).unwrap();
    assert_eq!(s.starts(), &[0.0, 5.5, 11.0]);
    assert!((g.budget(s.starts(), 0).unwrap() - 4.5).abs() < 1e-12);
    assert!((g.latency(s.starts()).unwrap() - deadline).abs() < 1e-12);
    let pi = links[0].delivery(4.5) * links[1].delivery(4.5);
    let snr = g.snr(s.starts()).unwrap();
    assert!(
        (snr - 1.0 / (1.0 - pi)).abs() / snr < 1e-12,
        "snr {snr}, 1/(1-π) {}",
        1.0 / (1.0 - pi)
    );
    // The slower second link deserves more of the slack: the search finds it.
    let opt = optimize(&g, deadline, &s, |g, t| g.snr(t).unwrap_or(0.0));
    assert!(g.feasible(opt.starts(), deadline));
    assert!(g.budget(opt.starts(), 1).unwrap() > g.budget(opt.starts(), 0).unwrap());
    assert!(g.snr(opt.starts()).unwrap() > snr);
}

fn hetero_links(seed: u64, n: usize) -> Vec<LinkDelay> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| LinkDelay {
            loc: 0.0,
            shape: 2.0 + rng.uniform(),
            scale: 1.0 + 0.5 * rng.uniform(),
            loss: 0.01,
        })
        .collect()
}

#[test]
fn quality_aware_allocator_beats_or_keeps_the_uniform_baseline() {
    let n = 8;
    let mut gains = Vec::new();
    for seed in 0..5 {
        let (li, lo) = (hetero_links(2 * seed, n), hetero_links(2 * seed + 1, n));
        let g = Graph::fan_out(0.2, 1.0, 0.2, &li, &lo).unwrap();
        for rho in [0.1, 0.3, 0.6] {
            let l = g.deadline_at(rho);
            let base = uniform(&g, l).unwrap();
            assert!(g.feasible(base.starts(), l));
            let opt = optimize(&g, l, &base, |g, t| g.snr(t).unwrap_or(0.0));
            assert!(g.feasible(opt.starts(), l), "seed {seed} ρ {rho}");
            let (b, o) = (g.snr(base.starts()).unwrap(), g.snr(opt.starts()).unwrap());
            assert!(o >= b, "seed {seed} ρ {rho}: {o} < {b}");
            gains.push(o / b - 1.0);
            // Coded objective: 6 data + 2 parity.
            let bc = expected_recovery(&g, 6, base.starts());
            let oc = optimize(&g, l, &base, |g, t| expected_recovery(g, 6, t));
            assert!(expected_recovery(&g, 6, oc.starts()) >= bc);
        }
    }
    let mean = gains.iter().sum::<f64>() / gains.len() as f64;
    println!("mean SNR gain over uniform: {:.1} %", 100.0 * mean);
    assert!(mean > 0.0);
    // Identical links: the uniform split is already optimal, the baseline is kept (±1e-9).
    let same = vec![LinkDelay::REFERENCE; n];
    let g = Graph::fan_out(0.2, 1.0, 0.2, &same, &same).unwrap();
    let l = g.deadline_at(0.3);
    let base = uniform(&g, l).unwrap();
    let opt = optimize(&g, l, &base, |g, t| g.snr(t).unwrap_or(0.0));
    let (b, o) = (g.snr(base.starts()).unwrap(), g.snr(opt.starts()).unwrap());
    assert!((o - b).abs() <= 1e-9 * b, "{o} vs {b}");
}

#[test]
fn expected_recovery_counts_parities() {
    let links = vec![
        LinkDelay {
            loc: 0.0,
            shape: 2.0,
            scale: 1.0,
            loss: 0.2
        };
        8
    ];
    let g = Graph::fan_out(0.0, 1.0, 0.0, &links, &links).unwrap();
    let l = 100.0; // budgets far beyond the delay: only loss matters
    let s = uniform(&g, l).unwrap();
    let p = 0.8f64 * 0.8;
    let uncoded = expected_recovery(&g, 8, s.starts());
    assert!((uncoded - p).abs() < 1e-9, "{uncoded}");
    // k = 6 of 8: P(≥6 of 8) + E[D/6; N < 6].
    let coded = expected_recovery(&g, 6, s.starts());
    assert!(coded > uncoded);
    assert!(expected_recovery(&g, 0, s.starts()) == 0.0);
}

#[test]
fn graph_errors_are_typed() {
    let mut g = Graph::new();
    let a = g
        .add_actor(Actor {
            wcet: 1.0,
            input_weight: 1.0,
            sink_weight: 0.0,
        })
        .unwrap();
    let b = g
        .add_actor(Actor {
            wcet: 1.0,
            input_weight: 0.0,
            sink_weight: 1.0,
        })
        .unwrap();
    let link = LinkDelay::REFERENCE;
    assert_eq!(
        g.add_channel(Channel {
            from: b,
            to: a,
            weight: 1.0,
            link
        }),
        Err(GraphError::BadChannel { from: 1, to: 0 })
    );
    assert!(g
        .add_channel(Channel {
            from: a,
            to: 5,
            weight: 1.0,
            link
        })
        .is_err());
    g.add_channel(Channel {
        from: a,
        to: b,
        weight: 1.0,
        link,
    })
    .unwrap();
    assert!(matches!(
        uniform(&g, 1.5),
        Err(GraphError::Infeasible { .. })
    ));
    assert!(matches!(
        g.snr(&[0.0]),
        Err(GraphError::Length { need: 2, have: 1 })
    ));
    assert!(g
        .add_actor(Actor {
            wcet: f64::NAN,
            input_weight: 0.0,
            sink_weight: 0.0
        })
        .is_err());
    assert!(matches!(
        Graph::fan_out(0.0, 1.0, 0.0, &[], &[]),
        Err(GraphError::Parameter)
    ));
    assert_eq!(
        tessera_core::deadline::budget_duration(1.5).total_micros(),
        1500
    );
    assert_eq!(
        tessera_core::deadline::budget_duration(-1.0).total_micros(),
        0
    );
}

/// The gamma sampler's moments, boosted shapes (`κ < 1`) included, and a degenerate model
/// delays nothing. 200 000 samples: the standard error of the mean is `√κ·θ/√n`, about 0.3 %
/// of the mean for κ = 2, so 2 % is far outside noise.
#[test]
fn gamma_sampler_moments() {
    const TOL: f64 = 0.02;
    for (k, theta) in [(2.0, 1.0), (3.0, 1.5), (0.7, 2.0)] {
        let mut r = SplitMix64::new(42);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| gamma::sample(k, theta, &mut r)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let (m, v) = (k * theta, k * theta * theta);
        assert!(
            ((mean - m) / m).abs() < TOL,
            "κ {k} θ {theta}: mean {mean} vs {m}"
        );
        assert!(
            ((var - v) / v).abs() < 3.0 * TOL,
            "κ {k} θ {theta}: var {var} vs {v}"
        );
    }
    let mut r = SplitMix64::new(1);
    assert_eq!(gamma::sample(0.0, 1.0, &mut r), 0.0);
    assert_eq!(gamma::sample(2.0, -1.0, &mut r), 0.0);
    assert_eq!(gamma::sample(f64::NAN, 1.0, &mut r), 0.0);
}
