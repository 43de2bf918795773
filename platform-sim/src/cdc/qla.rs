//! Experiment 3b (`cdc qla`): the uniform and quality-aware allocators on random dataflow
//! graphs (the QLA-RTS setting).

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use tessera_core::deadline::{optimize, uniform, Graph, LinkDelay};
use tessera_core::rng::SplitMix64;

use super::write_csv;

/// A random layered dataflow graph of `actors` actors (QLA-RTS-style), about 3 actors per
/// layer: the first layer are sources, the last sinks, every other actor fed by 1–3 actors of earlier layers with gains in
/// `[0.5, 1.5]`; WCETs 0.5–2 ms; links shape 2–3, scale 1–1.5 ms, 1 % loss.
pub fn random_graph(actors: usize, seed: u64) -> Result<Graph, Box<dyn Error>> {
    use tessera_core::deadline::{Actor, Channel};
    let mut rng = SplitMix64::new(seed);
    let mut g = Graph::new();
    let layers = (actors / 3).max(2);
    let layer_of = |a: usize| a * layers / actors;
    for a in 0..actors {
        let source = layer_of(a) == 0;
        let sink = layer_of(a) == layers - 1;
        g.add_actor(Actor {
            wcet: 0.5 + 1.5 * rng.uniform(),
            input_weight: if source { 1.0 } else { 0.0 },
            sink_weight: if sink { 1.0 } else { 0.0 },
        })?;
        if source {
            continue;
        }
        let first_of_layer = (0..a).find(|&b| layer_of(b) == layer_of(a)).unwrap_or(a);
        let fan_in = 1 + (rng.next_u64() % 3) as usize;
        let mut used = 0u64;
        for _ in 0..fan_in {
            let from = (rng.next_u64() % first_of_layer as u64) as usize;
            if used >> from & 1 == 1 {
                continue;
            }
            used |= 1 << from;
            let link = LinkDelay {
                loc: 0.0,
                shape: 2.0 + rng.uniform(),
                scale: 1.0 + 0.5 * rng.uniform(),
                loss: 0.01,
            };
            g.add_channel(Channel {
                from,
                to: a,
                weight: 0.5 + rng.uniform(),
                link,
            })?;
        }
    }
    Ok(g)
}

/// Row of experiment 3b: mean SNR of the two allocators over random graphs.
#[derive(Clone, Debug, PartialEq)]
pub struct QlaRow {
    /// Actors per graph.
    pub actors: usize,
    /// Tightness.
    pub rho: f64,
    /// Graphs.
    pub graphs: usize,
    /// Mean SNR (dB) of the uniform baseline.
    pub uniform_db: f64,
    /// Mean SNR (dB) of the quality-aware allocator.
    pub aware_db: f64,
    /// Mean relative gain in linear SNR.
    pub gain: f64,
}

/// Experiment 3b over `sizes × rhos`, `graphs` seeded graphs each.
pub fn qla_rows(
    sizes: &[usize],
    rhos: &[f64],
    graphs: usize,
) -> Result<Vec<QlaRow>, Box<dyn Error>> {
    let mut rows = Vec::new();
    for &actors in sizes {
        for &rho in rhos {
            let (mut u_db, mut a_db, mut gain) = (0.0, 0.0, 0.0);
            for seed in 0..graphs as u64 {
                let g = random_graph(actors, 1000 * actors as u64 + seed)?;
                let l = g.deadline_at(rho);
                let base = uniform(&g, l)?;
                let opt = optimize(&g, l, &base, |g, t| g.snr(t).unwrap_or(0.0));
                let (b, o) = (g.snr(base.starts())?, g.snr(opt.starts())?);
                u_db += 10.0 * b.log10();
                a_db += 10.0 * o.log10();
                gain += o / b - 1.0;
            }
            let n = graphs as f64;
            rows.push(QlaRow {
                actors,
                rho,
                graphs,
                uniform_db: u_db / n,
                aware_db: a_db / n,
                gain: gain / n,
            });
        }
    }
    Ok(rows)
}

/// `tessera-sim cdc qla`: the allocators on random graphs.
pub fn qla(out: &Path) -> Result<String, Box<dyn Error>> {
    let rows = qla_rows(&[10, 30], &[0.1, 0.3, 0.5], 20)?;
    let mut s = String::new();
    let mut csv = String::from("actors,rho,graphs,uniform_snr_db,aware_snr_db,mean_gain\n");
    writeln!(
        s,
        "## Experiment 3b: uniform vs quality-aware budgets on random dataflow graphs"
    )?;
    writeln!(s, "layered random DAGs (~3 actors per layer, first layer sources, last layer sinks, fan-in 1-3, gains 0.5-1.5, WCET 0.5-2 ms, links Gamma(2-3, 1-1.5 ms), 1 % loss), deadline L(rho); QLA-RTS SNR model; 20 seeded graphs per row")?;
    writeln!(
        s,
        "| actors | rho | uniform SNR dB | aware SNR dB | mean SNR gain |"
    )?;
    writeln!(s, "|---|---|---|---|---|")?;
    for r in &rows {
        writeln!(
            s,
            "| {} | {} | {:.2} | {:.2} | {:+.1} % |",
            r.actors,
            r.rho,
            r.uniform_db,
            r.aware_db,
            100.0 * r.gain
        )?;
        writeln!(
            csv,
            "{},{},{},{:.4},{:.4},{:.4}",
            r.actors, r.rho, r.graphs, r.uniform_db, r.aware_db, r.gain
        )?;
    }
    writeln!(
        s,
        "(CSV: {})\n",
        write_csv(out, "cdc_qla.csv", &csv)?.display()
    )?;
    Ok(s)
}
