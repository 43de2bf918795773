//! How a conv's output channels are cut: into micro-kernel blocks of up to [`R`] channels
//! ([`blocks`]) and into per-thread ranges ([`thread_range`], [`thread_blocks`]).

use super::R;

/// Output channel blocks `(o0, n)` of a conv with `filters` outputs: blocks of [`R`]; a
/// remainder of at most `R / 2` is merged with the last full block and the two split evenly
/// (e.g. 32 = 6+6+6+6+4+4), so no block is much narrower than the micro-kernel.
pub(super) fn blocks(filters: usize) -> impl Iterator<Item = (usize, usize)> {
    let (full, rem) = (filters / R, filters % R);
    let split = full >= 1 && rem > 0 && rem <= R / 2;
    let plain = if split { full - 1 } else { full };
    let mut tail = [(0, 0); 2];
    let mut k = 0;
    if split {
        let m = R + rem;
        tail = [
            (plain * R, m.div_ceil(2)),
            (plain * R + m.div_ceil(2), m / 2),
        ];
        k = 2;
    } else if rem > 0 {
        tail[0] = (plain * R, rem);
        k = 1;
    }
    (0..plain)
        .map(|b| (b * R, R))
        .chain(tail.into_iter().take(k))
}

/// Output channels `a..b` of thread `t` of `threads`: contiguous ranges of (nearly) equal
/// size.
pub(super) fn thread_range(filters: usize, threads: usize, t: usize) -> (usize, usize) {
    (filters * t / threads, filters * (t + 1) / threads)
}

/// The output channel blocks of a conv run on `threads` threads: each thread's
/// [`thread_range`] cut into [`blocks`], so the threads get equal work (32 filters on 2
/// threads: 6+6+4 | 6+6+4, where splitting whole blocks gives 18 | 14). Which block an output
/// channel falls in does not change its sum, so results do not depend on it.
pub(super) fn thread_blocks(
    filters: usize,
    threads: usize,
) -> impl Iterator<Item = (usize, usize)> {
    (0..threads).flat_map(move |t| {
        let (a, b) = thread_range(filters, threads, t);
        blocks(b - a).map(move |(o, n)| (a + o, n))
    })
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use alloc::vec::Vec;

    use super::{blocks, thread_blocks, R};

    /// Thread blocks tile `0..filters` in order with blocks of at most `R`, each thread's
    /// channels differ from the others' by at most one, and one thread's blocks are `blocks`.
    #[test]
    fn thread_blocks_partition_the_filters_evenly() {
        for filters in 1..200 {
            assert!(thread_blocks(filters, 1).eq(blocks(filters)));
            for threads in 1..=blocks(filters).count().min(8) {
                let mut next = 0;
                let mut per_thread = [0usize; 8];
                for (o, n) in thread_blocks(filters, threads) {
                    assert_eq!(o, next, "{filters} filters, {threads} threads");
                    assert!((1..=R).contains(&n));
                    let t = (0..threads)
                        .find(|&t| o < filters * (t + 1) / threads)
                        .unwrap();
                    assert!(
                        o + n <= filters * (t + 1) / threads,
                        "a block spans threads"
                    );
                    per_thread[t] += n;
                    next = o + n;
                }
                assert_eq!(next, filters);
                let used = &per_thread[..threads];
                let (lo, hi) = (used.iter().min().unwrap(), used.iter().max().unwrap());
                assert!(hi - lo <= 1, "{filters} on {threads}: {used:?}");
            }
        }
        // YOLOv2's layer 0 on 2 threads: 16 channels each (whole blocks would give 18 | 14).
        assert_eq!(
            thread_blocks(32, 2).collect::<Vec<_>>(),
            [(0, 6), (6, 6), (12, 4), (16, 6), (22, 6), (28, 4)]
        );
    }
}
