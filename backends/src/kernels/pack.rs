//! Weight packing: a conv's weights are copied per output channel block as `[c][ky][kx][o]`
//! (one weight stream per micro-kernel call), in groups of output channels bounded by
//! [`PACK_ELEMS`].

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
        let dst = &mut packed[o0 * per..(o0 + n) * per];
        for r in 0..n {
            let src = &weights[(o0 + r) * per..(o0 + r + 1) * per];
            for (t, &w) in src.iter().enumerate() {
                dst[t * n + r] = w;
            }
        }
    }
}
