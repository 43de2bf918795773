//! Several output rows per tile, for rows narrower than a tile: a 3×3 stride-1 row segment of
//! `NV < V::TILE` vectors leaves most of the accumulator registers idle, and each broadcast
//! weight then feeds only `NV` FMAs per channel block (on AVX-512, one 16-lane vector for a
//! 13-column tile row: 7 loads per 6 FMAs, so loads bound it). [`rows_generic`] computes
//! `RR ≤ TILE / NV` consecutive output rows at once, `N × RR × NV` accumulators, so each
//! broadcast weight feeds `RR·NV` FMAs (24 accumulators, 4 input vectors and the weight: 29
//! of AVX-512's 32 registers).
//!
//! Per output the chain is unchanged: tap `(c, ky, kx)` of output row `i` reads input row
//! `i + ky` of the job, and every output still takes its taps in the order of the module docs
//! of [`super::super`] (channels, kernel rows, taps); the rows only share the weight loads.
//! The caller groups only rows whose kernel rows in the map (`ky0`, `nky`) are the same.
#![allow(clippy::needless_range_loop)]

use super::super::row::{Post, Row};
use super::{finish, start, Vector};

/// Most output rows of one tile.
const MAX_ROWS: usize = 4;

/// Output rows one tile of `tile` vectors of `lanes` takes for row segments of `cols`
/// columns: `tile / ceil(cols / lanes)` (at most [`MAX_ROWS`]), 1 when a row fills a tile.
pub(in super::super) fn rows_for(lanes: usize, tile: usize, cols: usize) -> usize {
    let nv = cols.div_ceil(lanes).max(1);
    if nv >= tile {
        1
    } else {
        (tile / nv).min(MAX_ROWS)
    }
}

/// The checks of a safe multi-row entry before [`rows_generic`] on `V`: panics unless the
/// kernel is 3×3 stride 1, `2 ≤ rows`, the segment's `ceil((j1 − j0) / LANES)` vectors times
/// `rows` fit a tile, and job `i` of the rows (`base + i·row`, outputs at `orow + i·ostep`)
/// passes [`Row::check`] for `i = rows − 1` (every index the kernel forms grows with `i`, so
/// the last row's bound covers the others); true when the rows have columns to compute.
pub(in super::super) fn checked_rows<V: Vector, const N: usize>(
    job: &Row<'_>,
    out: &[f32],
    oplane: usize,
    orow: usize,
    rows: usize,
    ostep: usize,
) -> bool {
    assert!(job.stride == 1 && job.k == 3);
    assert!(rows >= 2 && rows * (job.j1.saturating_sub(job.j0)).div_ceil(V::LANES) <= V::TILE);
    let last = Row {
        base: job.base + (rows - 1) * job.row,
        ..*job
    };
    last.check(N, V::LANES, out.len(), oplane, orow + (rows - 1) * ostep);
    job.j1 > job.j0
}

/// `rows` consecutive output rows of `job` (row `i`: input from `base + i·row`, outputs at
/// `out[r·oplane + orow + i·ostep + j]`), `N` channels, in one tile per channel block.
///
/// # Safety
///
/// `V`'s operations are usable on this CPU, and [`checked_rows`] returned true for these
/// arguments and a buffer of `len` elements at `out`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(in super::super) unsafe fn rows_generic<V: Vector, const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
    rows: usize,
    ostep: usize,
) {
    let n = job.j1 - job.j0;
    // Arms beyond the tile are guarded off (their accumulators would not fit the registers);
    // `checked_rows` bounded `rows · NV` by `V::TILE`.
    // SAFETY: each arm's `NV = ceil(n / LANES)` and `RR = rows`; the rest is this function's
    // contract, which is `block_rows`'s.
    unsafe {
        match (n.div_ceil(V::LANES), rows) {
            (1, 2) => block_rows::<V, N, 1, 2>(job, post, out, oplane, orow, ostep),
            (1, 3) if V::TILE >= 3 => block_rows::<V, N, 1, 3>(job, post, out, oplane, orow, ostep),
            (1, 4) if V::TILE >= 4 => block_rows::<V, N, 1, 4>(job, post, out, oplane, orow, ostep),
            (2, 2) if V::TILE >= 4 => block_rows::<V, N, 2, 2>(job, post, out, oplane, orow, ostep),
            _ => unreachable!("rows × vectors fit a tile"),
        }
    }
}

/// `RR` rows × `N` channels × `NV` vectors at columns `j0..j1` (`LANES·(NV − 1) < j1 − j0 ≤
/// LANES·NV`), 3×3 taps.
///
/// # Safety
///
/// As [`rows_generic`], with `NV` and `RR` its arm's.
#[inline(always)]
unsafe fn block_rows<V: Vector, const N: usize, const NV: usize, const RR: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
    ostep: usize,
) {
    const K: usize = 3;
    let (j, n) = (job.j0, job.j1 - job.j0);
    // SAFETY: row `i`'s accumulators are those of the single-row job at `orow + i·ostep`,
    // which `checked_rows` bounded (its bound covers every `i < RR`).
    let mut acc: [[[V; NV]; N]; RR] = core::array::from_fn(|i| unsafe {
        start::<V, N, NV>(job, out, oplane, orow + i * ostep, j, n)
    });
    if job.nky > 0 && job.channels > 0 {
        // SAFETY: `V`'s CPU features are the caller's. Row `i` reads what the single-row job
        // with `base + i·row` reads (`block` of `super` states those bounds), the largest
        // at `i = RR − 1`, which `checked_rows` bounded; weights as in `block`.
        unsafe {
            let inp = job.input.as_ptr().add(job.base + j);
            let wp = job.weights.as_ptr().add(job.ky0 * K * N);
            for c in 0..job.channels {
                let ic = inp.add(c * job.plane);
                let wc = wp.add(c * K * K * N);
                for ky in 0..job.nky {
                    let wr = wc.add(ky * K * N);
                    for kx in 0..K {
                        // x[i][v]: the inputs of output row i at column j + kx + LANES·v
                        // (input row i + ky); every (i, r, v) takes tap (c, ky, kx).
                        let mut x = [[V::zero(); NV]; RR];
                        for i in 0..RR {
                            let ir = ic.add((ky + i) * job.row + kx);
                            for v in 0..NV {
                                x[i][v] = V::load(ir.add(V::LANES * v));
                            }
                        }
                        for r in 0..N {
                            let w = V::broadcast(wr.add(kx * N + r));
                            for i in 0..RR {
                                for v in 0..NV {
                                    acc[i][r][v] = V::fma(w, x[i][v], acc[i][r][v]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for (i, acc) in acc.into_iter().enumerate() {
        // SAFETY: as `start` above, for row `i`'s outputs.
        unsafe { finish::<V, N, NV>(job, post, acc, out, oplane, orow + i * ostep, j, n) };
    }
}
