//! Weight packing: a conv's weights are copied per output channel block as `[c][ky][kx][o]`
//! (one weight stream per micro-kernel call), in groups of output channels bounded by
//! [`PACK_ELEMS`].
//!
//! A kernel prepared for a model ([`Prepacked`], through `Winograd::prepare`) packs each
//! direct layer once; otherwise each call packs its layer's weights again, so the copy is
//! written in order: each packed element `[t][o]` is stored once, sequentially,
//! from `n` source streams read in order. Scattered stores (filter by filter, every `n`-th
//! element of a 256 KiB group that does not fit L1) took about 9 % of a 3x3-tiled frame's
//! CPU time on AVX-512 (`perf record`), and the tiles of the 3×3 256→512 layers 1.67–1.77×
//! the whole frame's time instead of 1.51–1.53× (`tessera bench kernels --tiled-only`).

extern crate alloc;

use alloc::vec::Vec;

use tessera_core::model::weights::ConvParams;

use super::channels::{blocks, thread_range};
use super::param_key::ParamKey;
use super::R;

/// Most packed weights a conv holds at once, in f32 (256 KiB): a conv with more is run in groups
/// of output channels, each packed just before it runs, so a 3×3 256→512 layer keeps 256 KiB of
/// packed weights instead of a 4.5 MiB copy of its whole layer.
const PACK_ELEMS: usize = 1 << 16;

/// Output channels per packing group of a conv with `filters` outputs of `per` weights each:
/// all of them when they fit [`PACK_ELEMS`], else whole blocks of [`R`] (at least one) that
/// fit. Which group an output falls in does not change its sum.
pub(super) fn group_len(filters: usize, per: usize) -> usize {
    if filters * per <= PACK_ELEMS {
        return filters.max(1);
    }
    (PACK_ELEMS / per.max(1) / R).max(1) * R
}

/// The packing groups `(o0, n)` of each of `threads` threads of a conv with `filters` outputs
/// of `per` weights each: the thread's [`thread_range`] cut into groups of [`group_len`].
pub(super) fn groups(filters: usize, per: usize, threads: usize) -> Vec<Vec<(usize, usize)>> {
    (0..threads)
        .map(|t| {
            let (oa, ob) = thread_range(filters, threads, t);
            let group = group_len(ob - oa, per);
            (oa..ob)
                .step_by(group)
                .map(|g0| (g0, group.min(ob - g0)))
                .collect()
        })
        .collect()
}

/// A direct conv's weights packed once for a call on `threads` threads: every group of
/// [`groups`] packed at its own channels' place, exactly as a call packs it, so the call reads
/// its groups' slices instead (the same values: the same outputs). Also the folded batch norm.
#[derive(Debug)]
pub(super) struct Prepacked {
    key: ParamKey,
    threads: usize,
    /// `[o][t]` weights packed group by group.
    pub packed: Vec<f32>,
    /// Folded `(a, b)` per output channel.
    pub ab: Vec<(f32, f32)>,
}

impl Prepacked {
    /// Packs `params`' weights for a call on `threads` threads, with `ab` their folded batch
    /// norm.
    pub fn new(params: &ConvParams<'_>, ab: Vec<(f32, f32)>, threads: usize) -> Prepacked {
        let w = params.weights;
        let n = ab.len();
        let per = w.len() / n.max(1);
        let mut packed = alloc::vec![0.0; n * per];
        for (g0, gn) in groups(n, per, threads).into_iter().flatten() {
            let at = g0 * per..(g0 + gn) * per;
            pack(&w[at.clone()], gn, per, &mut packed[at]);
        }
        Prepacked {
            key: ParamKey::of(params),
            threads,
            packed,
            ab,
        }
    }

    /// True when these are `params`' weights packed for a call on `threads` threads.
    pub fn is_for(&self, params: &ConvParams<'_>, threads: usize) -> bool {
        self.threads == threads && self.key == ParamKey::of(params)
    }
}

/// Packs `[o][t]` weights (`per` taps each) block by block ([`blocks`]) as
/// `[block][t][o - o0]`.
pub(super) fn pack(weights: &[f32], filters: usize, per: usize, packed: &mut [f32]) {
    for (o0, n) in blocks(filters) {
        let src = &weights[o0 * per..(o0 + n) * per];
        let dst = &mut packed[o0 * per..(o0 + n) * per];
        match n {
            6 => interleave::<6>(src, dst),
            5 => interleave::<5>(src, dst),
            4 => interleave::<4>(src, dst),
            3 => interleave::<3>(src, dst),
            2 => interleave::<2>(src, dst),
            _ => interleave::<1>(src, dst),
        }
    }
}

/// `dst[t·N + r] = src[r·per + t]` for the `N` filters of `src` (`per = src.len() / N`
/// weights each), written in order.
fn interleave<const N: usize>(src: &[f32], dst: &mut [f32]) {
    let per = src.len() / N;
    let rows: [&[f32]; N] = core::array::from_fn(|r| &src[r * per..(r + 1) * per]);
    for (t, d) in dst[..N * per].chunks_exact_mut(N).enumerate() {
        for (x, row) in d.iter_mut().zip(&rows) {
            *x = row[t];
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use alloc::vec::Vec;

    use super::{groups, pack, thread_range, PACK_ELEMS, R};

    /// Each thread's groups cover its range in order, each within the packing bound (or one
    /// block of [`R`] where a block alone exceeds it).
    #[test]
    fn groups_cover_each_threads_range_within_the_bound() {
        for filters in 1..300usize {
            for per in [1usize, 9, 27, 530, 4608] {
                for threads in 1..=3 {
                    for (t, list) in groups(filters, per, threads).iter().enumerate() {
                        let (a, b) = thread_range(filters, threads, t);
                        let mut next = a;
                        for &(g0, gn) in list {
                            assert_eq!(g0, next, "{filters} × {per} on {threads}");
                            assert!(gn * per <= PACK_ELEMS.max(R * per));
                            next += gn;
                        }
                        assert_eq!(next, b);
                    }
                }
            }
        }
    }

    /// Every packed weight is the source weight of its filter and tap, for block counts with
    /// every block width (1 to 6, and the split tails).
    #[test]
    fn pack_is_the_blockwise_transpose() {
        for filters in 1..20usize {
            for per in [1usize, 9, 27] {
                let w: Vec<f32> = (0..filters * per).map(|i| i as f32).collect();
                let mut p = alloc::vec![-1.0f32; filters * per];
                pack(&w, filters, per, &mut p);
                for (o0, n) in super::blocks(filters) {
                    for r in 0..n {
                        for t in 0..per {
                            assert_eq!(p[o0 * per + t * n + r], w[(o0 + r) * per + t]);
                        }
                    }
                }
            }
        }
    }
}
