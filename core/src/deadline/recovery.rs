//! The recovery model of a coded layer: how much of its output arrives in time when each shard's
//! result arrives independently with its own probability (the count of arrivals is
//! Poisson-binomial). Both the budget allocator's objective ([`super::expected_recovery`]) and
//! the coded stage's expected quality use it.

use super::graph::MAX_ACTORS;

/// Most shards the model takes (a fan-out graph's workers; the coded stage's shards).
pub const MAX_DELIVERIES: usize = MAX_ACTORS;

const _: () = assert!(
    crate::code::MAX_SHARDS <= MAX_DELIVERIES,
    "a coded layer's shards fit the model"
);

/// Distribution of the number of arrivals among independent deliveries with probabilities `p`
/// (Poisson binomial), delivery `skip` left out: element `c` is the probability that exactly
/// `c` arrive. Deliveries past [`MAX_DELIVERIES`] are ignored.
pub fn arrivals(p: &[f64], skip: Option<usize>) -> [f64; MAX_DELIVERIES + 1] {
    let mut dist = [0.0f64; MAX_DELIVERIES + 1];
    dist[0] = 1.0;
    let mut len = 0;
    for (i, &q) in p.iter().enumerate().take(MAX_DELIVERIES) {
        if Some(i) == skip {
            continue;
        }
        len += 1;
        for c in (1..=len).rev() {
            dist[c] = dist[c] * (1.0 - q) + dist[c - 1] * q;
        }
        dist[0] *= 1.0 - q;
    }
    dist
}

/// Expected fraction of a `k`-of-`n` coded output recovered (`n = p.len()`): shards `0..k`
/// carry data, `k..n` parity, shard `i` arrives with probability `p[i]`, independently. With
/// at least `k` arrivals the output decodes whole; otherwise it is the data shards that
/// arrived, data shard `d` being worth `share(d)` of the output. `k = n` is the uncoded split.
/// Zero when `k` is 0 or above `n` (or `n` above [`MAX_DELIVERIES`]).
pub fn recovered(p: &[f64], k: usize, share: impl Fn(usize) -> f64) -> f64 {
    let n = p.len();
    if k == 0 || k > n || n > MAX_DELIVERIES {
        return 0.0;
    }
    // P(at least k arrive) + Σ_d share_d · P(d arrives and fewer than k in all).
    let all = arrivals(p, None);
    let decodable: f64 = all[k..=n].iter().sum();
    let partial: f64 = (0..k)
        .map(|d| {
            let others = arrivals(p, Some(d));
            share(d) * p[d] * others[..k - 1].iter().sum::<f64>()
        })
        .sum();
    decodable + partial
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model against enumerating every subset of arrivals.
    #[test]
    fn recovered_matches_enumeration() {
        let p = [0.9, 0.3, 0.75, 0.5, 0.6];
        for k in 1..=p.len() {
            let share = |d: usize| (d + 1) as f64 / (k * (k + 1) / 2) as f64;
            let mut want = 0.0;
            for mask in 0u32..1 << p.len() {
                let prob: f64 = (0..p.len())
                    .map(|i| if mask >> i & 1 == 1 { p[i] } else { 1.0 - p[i] })
                    .product();
                let got = if mask.count_ones() as usize >= k {
                    1.0
                } else {
                    (0..k).filter(|&d| mask >> d & 1 == 1).map(share).sum()
                };
                want += prob * got;
            }
            let have = recovered(&p, k, share);
            assert!((have - want).abs() < 1e-12, "k {k}: {have} vs {want}");
        }
        assert_eq!(recovered(&p, 0, |_| 1.0), 0.0);
        assert_eq!(recovered(&p, 6, |_| 1.0), 0.0);
    }
}
