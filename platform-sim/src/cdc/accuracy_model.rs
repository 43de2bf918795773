//! Experiment 3 (`cdc accuracy-model`): the digits MLP's hidden layer over 8 actors, accuracy
//! vs packet loss for uncoded, CDC and the two deadline allocators (Monte Carlo).

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use tessera_core::code::{encode, shard, Arithmetic, Code, Decoder};
use tessera_core::deadline::{expected_recovery, optimize, uniform, Graph, LinkDelay, Schedule};
use tessera_core::rng::SplitMix64;

use super::write_csv;
use crate::digits::{self, QuantHidden, Sample, HIDDEN, PIXELS};

/// Monte Carlo repetitions of the test set per cell in experiment 3.
pub const ACCURACY_REPS: usize = 30;
/// Actors computing the hidden layer.
pub const ACTORS: usize = 8;
/// Default latency tightness `ρ` of experiment 3's deadline (docs/design.md §7.2).
pub const RHO: f64 = 0.5;
/// WCETs (ms) of the sensor, a hidden-layer actor and the output actor.
pub const WCET: (f64, f64, f64) = (0.2, 1.0, 0.2);

/// Links of experiment 3: QLA-RTS' reference ranges (shape 2–3, scale 1–1.5 ms, no offset),
/// drawn with seed `seed`, with loss `loss`.
pub fn digits_links(seed: u64, loss: f64) -> (Vec<LinkDelay>, Vec<LinkDelay>) {
    let mut rng = SplitMix64::new(seed);
    let mut draw = || LinkDelay {
        loc: 0.0,
        shape: 2.0 + rng.uniform(),
        scale: 1.0 + 0.5 * rng.uniform(),
        loss,
    };
    let li = (0..ACTORS).map(|_| draw()).collect();
    let lo = (0..ACTORS).map(|_| draw()).collect();
    (li, lo)
}

/// A column of experiment 3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccuracyCase {
    /// Column name.
    pub name: &'static str,
    /// Parity actors (of the 8).
    pub r: usize,
    /// Budget policy.
    pub budget: Budget,
}

/// How exchanges are timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// No deadline: only loss erases.
    None,
    /// Uniform-slack baseline at tightness ρ.
    Uniform,
    /// Quality/latency-aware allocator at ρ (QLA SNR for r = 0, expected recovery else).
    Aware,
}

/// The columns of experiment 3.
pub const ACCURACY_CASES: [AccuracyCase; 7] = [
    AccuracyCase {
        name: "uncoded",
        r: 0,
        budget: Budget::None,
    },
    AccuracyCase {
        name: "CDC r=1",
        r: 1,
        budget: Budget::None,
    },
    AccuracyCase {
        name: "CDC r=2",
        r: 2,
        budget: Budget::None,
    },
    AccuracyCase {
        name: "uncoded+uniform",
        r: 0,
        budget: Budget::Uniform,
    },
    AccuracyCase {
        name: "uncoded+aware",
        r: 0,
        budget: Budget::Aware,
    },
    AccuracyCase {
        name: "CDC r=2+uniform",
        r: 2,
        budget: Budget::Uniform,
    },
    AccuracyCase {
        name: "CDC r=2+aware",
        r: 2,
        budget: Budget::Aware,
    },
];

/// Per-actor budgets `(δ_in, δ_out)` in ms.
pub type ActorBudgets = Vec<(f64, f64)>;

/// Budgets `(δ_in, δ_out)` per actor for a case (∞ without deadline), and the model's
/// prediction of the expected recovered fraction.
pub fn budgets(
    case: &AccuracyCase,
    rho: f64,
    li: &[LinkDelay],
    lo: &[LinkDelay],
) -> Result<(ActorBudgets, f64), Box<dyn Error>> {
    let g = Graph::fan_out(WCET.0, WCET.1, WCET.2, li, lo)?;
    let k = ACTORS - case.r;
    let sched: Schedule = match case.budget {
        Budget::None => return Ok((vec![(f64::INFINITY, f64::INFINITY); ACTORS], f64::NAN)),
        Budget::Uniform => uniform(&g, g.deadline_at(rho))?,
        Budget::Aware => {
            let l = g.deadline_at(rho);
            let base = uniform(&g, l)?;
            if case.r == 0 {
                optimize(&g, l, &base, |g, t| g.snr(t).unwrap_or(0.0))
            } else {
                optimize(&g, l, &base, |g, t| expected_recovery(g, k, t))
            }
        }
    };
    let t = sched.starts();
    let b = (0..ACTORS)
        .map(|i| Ok((g.budget(t, i)?, g.budget(t, ACTORS + i)?)))
        .collect::<Result<Vec<_>, tessera_core::deadline::GraphError>>()?;
    Ok((b, expected_recovery(&g, k, t)))
}

/// A coded hidden layer: code, data-shard views and parity weights (int8 exact mode).
struct CodedHidden {
    code: Code,
    parity_wrap: Vec<(Vec<i32>, Vec<i32>)>,
    parity_p: Vec<(Vec<u32>, Vec<u32>)>,
}

impl CodedHidden {
    fn new(q: &QuantHidden, r: usize) -> Result<Self, Box<dyn Error>> {
        let code = Code::new(HIDDEN, ACTORS - r, r)?;
        let s = code.shard_rows();
        let (mut parity_wrap, mut parity_p) = (Vec::new(), Vec::new());
        for j in 0..r {
            if code.int_arithmetic() == Arithmetic::Wrapping {
                let (mut w, mut b) = (vec![0i32; s * PIXELS], vec![0i32; s]);
                encode::parity_wrapping(&code, &q.w, &q.b, PIXELS, &mut w, &mut b)?;
                parity_wrap.push((w, b));
            } else {
                let (mut w, mut b) = (vec![0u32; s * PIXELS], vec![0u32; s]);
                encode::parity_mod_p(&code, j, &q.w, &q.b, PIXELS, &mut w, &mut b)?;
                parity_p.push((w, b));
            }
        }
        Ok(CodedHidden {
            code,
            parity_wrap,
            parity_p,
        })
    }

    /// Runs the actors flagged present and decodes (or zero-fills what cannot be recovered).
    fn forward(
        &self,
        q: &QuantHidden,
        x: &[i8; PIXELS],
        present: u32,
    ) -> Result<[i32; HIDDEN], Box<dyn Error>> {
        let (k, s) = (self.code.k(), self.code.shard_rows());
        let mut res: Vec<Option<Vec<i32>>> = vec![None; self.code.n()];
        for (i, slot) in res.iter_mut().enumerate() {
            if present >> i & 1 == 0 {
                continue;
            }
            let mut y;
            if i < k {
                let (w, b) = encode::data_shard(&self.code, i, &q.w, &q.b, PIXELS)?;
                y = vec![0; b.len()];
                shard::gemm_i8(w, b, x, PIXELS, 1, &mut y)?;
            } else {
                y = vec![0; s];
                if let Some((w, b)) = self.parity_wrap.get(i - k) {
                    shard::gemm_wrapping(w, b, x, PIXELS, 1, &mut y)?;
                } else if let Some((w, b)) = self.parity_p.get(i - k) {
                    shard::gemm_mod_p(w, b, x, PIXELS, 1, &mut y)?;
                }
            }
            *slot = Some(y);
        }
        let views: Vec<Option<&[i32]>> = res.iter().map(|r| r.as_deref()).collect();
        let mut out = [0i32; HIDDEN];
        match Decoder::from_mask(&self.code, present) {
            Ok(dec) => dec.decode_i32(&views, 1, &mut out)?,
            Err(_) => {
                // Not decodable: the data shards that arrived, zeros elsewhere.
                for d in 0..k {
                    if let Some(Some(y)) = views.get(d) {
                        let rows = self.code.data_rows(d)?;
                        out[rows].copy_from_slice(y);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Row of experiment 3: accuracy per case at one loss rate.
#[derive(Clone, Debug, PartialEq)]
pub struct AccuracyRow {
    /// Packet loss rate.
    pub loss: f64,
    /// Accuracy per [`ACCURACY_CASES`] entry.
    pub acc: Vec<f64>,
    /// Fraction of hidden outputs missing (after decode) per case.
    pub missing: Vec<f64>,
    /// Model-predicted expected recovered fraction per case (NaN without a deadline).
    pub predicted: Vec<f64>,
}

/// Experiment 3 over `losses`, `reps` passes over the test set per cell.
pub fn accuracy_rows(
    m: &digits::Mlp,
    q: &QuantHidden,
    test: &[Sample],
    losses: &[f64],
    rho: f64,
    reps: usize,
) -> Result<Vec<AccuracyRow>, Box<dyn Error>> {
    let coded: Vec<CodedHidden> = (0..=2)
        .map(|r| CodedHidden::new(q, r))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for (li_idx, &loss) in losses.iter().enumerate() {
        let (lin, lout) = digits_links(0xd1617, loss);
        let mut row = AccuracyRow {
            loss,
            acc: Vec::new(),
            missing: Vec::new(),
            predicted: Vec::new(),
        };
        for (ci, case) in ACCURACY_CASES.iter().enumerate() {
            let (b, pred) = budgets(case, rho, &lin, &lout)?;
            let ch = &coded[case.r];
            let mut rng = SplitMix64::new(0xacc0 ^ (li_idx as u64) << 16 ^ ci as u64);
            let (mut ok, mut trials, mut missing) = (0usize, 0usize, 0usize);
            for _ in 0..reps {
                for s in test {
                    let mut present = 0u32;
                    for i in 0..ACTORS {
                        let inp = lin[i].sample(&mut rng).is_some_and(|d| d <= b[i].0);
                        let outp = lout[i].sample(&mut rng).is_some_and(|d| d <= b[i].1);
                        if inp && outp {
                            present |= 1 << i;
                        }
                    }
                    let x = QuantHidden::input(s);
                    let y = ch.forward(q, &x, present)?;
                    let decodable = present.count_ones() as usize >= ch.code.k();
                    if !decodable {
                        missing += (0..ch.code.k())
                            .filter(|d| present >> d & 1 == 0)
                            .map(|d| ch.code.data_rows(d).map_or(0, |r| r.len()))
                            .sum::<usize>();
                    }
                    if digits::argmax(&m.head(&q.dequantize(&y))) == s.label {
                        ok += 1;
                    }
                    trials += 1;
                }
            }
            row.acc.push(ok as f64 / trials as f64);
            row.missing.push(missing as f64 / (trials * HIDDEN) as f64);
            row.predicted.push(pred);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `tessera-sim cdc accuracy`.
pub fn accuracy(data: &Path, out: &Path, rho: f64, reps: usize) -> Result<String, Box<dyn Error>> {
    let all = digits::load(data)?;
    let (train, test) = digits::split(&all);
    let (m, _) = digits::train(&train);
    let q = digits::quantize_hidden(&m);
    let losses: Vec<f64> = (0..=6).map(|i| f64::from(i) * 0.1).collect();
    let rows = accuracy_rows(&m, &q, &test, &losses, rho, reps)?;
    let (lin, lout) = digits_links(0xd1617, 0.0);
    let g = Graph::fan_out(WCET.0, WCET.1, WCET.2, &lin, &lout)?;
    let mut s = String::new();
    writeln!(s, "## Experiment 3: digits MLP accuracy vs packet loss")?;
    writeln!(
        s,
        "hidden layer (int8, {HIDDEN} units) over {ACTORS} actors: uncoded k=8; CDC r=1 k=7; r=2 k=6 (exact decode); every message (sensor -> actor and actor -> output) lost independently with the given rate and delayed by Gamma(2-3, 1-1.5 ms) (seeded links); deadline columns: frame deadline at rho = {rho} = {:.2} ms (L_lo {:.2}, L_hi {:.2}), WCETs {:?} ms, late = lost; aware = pattern search on QLA SNR (uncoded) or expected recovery (CDC); {reps} passes over the {} test images per cell (Monte Carlo, core::deadline samplers)",
        g.deadline_at(rho),
        g.quantile_latency(0.001),
        g.quantile_latency(0.999),
        WCET,
        test.len()
    )?;
    write!(s, "| loss |")?;
    let mut csv = String::from("loss");
    for c in &ACCURACY_CASES {
        write!(s, " {} |", c.name)?;
        write!(csv, ",{0}_acc,{0}_missing,{0}_predicted_recovery", c.name)?;
    }
    csv.push('\n');
    writeln!(s)?;
    writeln!(s, "|---|{}", "---|".repeat(ACCURACY_CASES.len()))?;
    for r in &rows {
        write!(s, "| {:.0} % |", 100.0 * r.loss)?;
        write!(csv, "{:.2}", r.loss)?;
        for i in 0..ACCURACY_CASES.len() {
            write!(s, " {:.1} |", 100.0 * r.acc[i])?;
            write!(
                csv,
                ",{:.4},{:.4},{:.4}",
                r.acc[i], r.missing[i], r.predicted[i]
            )?;
        }
        writeln!(s)?;
        csv.push('\n');
    }
    writeln!(
        s,
        "(accuracy %, CSV with missing-output fractions and model predictions: {})\n",
        write_csv(out, &format!("cdc_accuracy_rho{rho}.csv"), &csv)?.display()
    )?;
    Ok(s)
}
