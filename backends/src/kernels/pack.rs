//! Weight packing: a conv's weights are copied per output channel block as `[c][ky][kx][o]`
//! (one weight stream per micro-kernel call), in groups of output channels bounded by
//! [`PACK_ELEMS`].
//!
//! A tile call packs its layer's weights again (the kernels keep no copy between calls), so
//! the copy is written in order: each packed element `[t][o]` is stored once, sequentially,
//! from `n` source streams read in order. Scattered stores (filter by filter, every `n`-th
//! element of a 256 KiB group that does not fit L1) took about 9 % of a 3x3-tiled frame's
//! CPU time on AVX-512 (`perf record`), and the tiles of the 3×3 256→512 layers 1.67–1.77×
//! the whole frame's time instead of 1.51–1.53× (`tessera bench kernels --tiled-only`).

use super::channels::blocks;
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

    use super::pack;

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
