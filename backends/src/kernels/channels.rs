//! How a conv's output channels are cut: into micro-kernel blocks of up to [`R`] channels
//! ([`blocks`]) and into per-thread ranges ([`thread_range`]), each thread's range cut into
//! its own blocks (32 filters on 2 threads: 6+6+4 | 6+6+4, where splitting whole blocks gives
//! 18 | 14). Which block an output channel falls in does not change its sum.

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

#[cfg(test)]
mod tests {
    extern crate alloc;

    use alloc::vec::Vec;

    use super::{blocks, thread_range, R};

    /// The blocks of each thread's range tile it in order with blocks of at most `R`, and the
    /// threads' ranges tile `0..filters` with sizes within one of each other.
    #[test]
    fn thread_ranges_partition_the_filters_evenly() {
        for filters in 1..200 {
            for threads in 1..=8usize.min(filters) {
                let mut next = 0;
                let mut sizes = Vec::new();
                for t in 0..threads {
                    let (a, b) = thread_range(filters, threads, t);
                    assert_eq!(a, next, "{filters} filters, {threads} threads");
                    let mut o = 0;
                    for (o0, n) in blocks(b - a) {
                        assert_eq!(o0, o);
                        assert!((1..=R).contains(&n));
                        o += n;
                    }
                    assert_eq!(o, b - a);
                    sizes.push(b - a);
                    next = b;
                }
                assert_eq!(next, filters);
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{filters} on {threads}: {sizes:?}");
            }
        }
        // YOLOv2's layer 0 on 2 threads: 16 channels each, as 6+6+4.
        assert_eq!(thread_range(32, 2, 0), (0, 16));
        assert_eq!(blocks(16).collect::<Vec<_>>(), [(0, 6), (6, 6), (12, 4)]);
    }
}
