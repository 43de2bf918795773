//! How one Winograd call is split over its kernel's threads ([`split`]).
//!
//! Two ways, both computing every value with the same operations as one thread:
//! - **By rows**: the `block rows × output channel blocks` work is cut into equal shares in
//!   row-major order ([`shares`]); each thread transforms the input of its own rows and
//!   multiplies them, with its own scratch, one dispatch and no barrier. Each thread's chunks
//!   round their blocks up to whole lane vectors, though: a 10×10-block map (YOLOv2's 38×38
//!   layers in F4) is 112 lanes on one thread but 2 × 64 on two, 14 % more products.
//! - **Shared**: per chunk, the threads first transform their own input channel ranges into
//!   one `V` (the caller's), then each multiplies its own output channel blocks over all the
//!   chunk's blocks: the same lanes as one thread, each input transformed once, two
//!   dispatches per chunk.
//!
//! [`split`] takes the shared way when the rows split would pad notably more lanes (the cost
//! model counts padded lanes × channel blocks per thread), and for the calls where a rows
//! split leaves threads too few blocks (small calls of deep layers, fewer block rows than
//! threads).

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use super::super::threads::Team;
use super::columns::used_by;
use super::geo::{Chunk, Geo};
use super::isa::lane_step;
use super::{grow, with_scratch, with_v, xi_rows, Rows};

/// Output channels per thread from which a small call ([`SPLIT_BLOCKS`]) is shared rather than
/// split by rows: split by rows, each thread would read all of the large transformed filters
/// for a few blocks and leave its last lane vectors part empty.
const SPLIT_CHANNELS: usize = 256;

/// Blocks below which a deep call ([`SPLIT_CHANNELS`]) is shared: tiles of the deep layers (a
/// 13×13 tile is 16 F4 blocks).
const SPLIT_BLOCKS: usize = 64;

/// Runs the call over `threads` threads (the caller's thread takes the last part): shared or
/// by rows (see the module docs). `out` is the output over the region, `[k][y][x]`.
pub(super) fn split(team: &Team, job: &Rows<'_>, out: &mut [f32], threads: usize) {
    let geo = job.geo;
    let nkb = geo.kp / geo.kr;
    let threads = threads.clamp(1, geo.nby * nkb);
    let pieces = row_pieces(geo, nkb, threads);
    let shared = threads.min(nkb).min(geo.c);
    // Channel major, a chunk's products pad no block lanes.
    let step = if geo.is_channel_major() {
        1
    } else {
        lane_step(job.path)
    };
    if shared > 1 && shared_pays(geo, nkb, threads, shared, step, &pieces) {
        split_shared(team, job, out, shared);
    } else {
        split_rows(team, job, out, pieces);
    }
}

/// Block lanes the products of a chunk of `n` block rows run over (padded lanes included),
/// its blocks rounded up to `step` lanes (the instruction set's, `isa::lane_step`).
fn lanes(geo: &Geo, n: usize, step: usize) -> usize {
    used_by(n * geo.nbx, step)
}

/// True if sharing the call between `shared` threads beats splitting it by rows (`pieces`,
/// over `threads`): the rows split would leave each thread a few blocks of a deep layer, or
/// fewer block rows than threads, or its busiest thread more than 1/32 more padded lanes ×
/// channel blocks than a shared thread (which also pays a second dispatch per chunk).
fn shared_pays(
    geo: &Geo,
    nkb: usize,
    threads: usize,
    shared: usize,
    step: usize,
    pieces: &[Vec<(Range<usize>, Range<usize>)>],
) -> bool {
    let deep_and_small = geo.k >= SPLIT_CHANNELS * threads && geo.nbx * geo.nby < SPLIT_BLOCKS;
    if deep_and_small || geo.nby < threads {
        return true;
    }
    let by_rows = pieces
        .iter()
        .map(|mine| {
            mine.iter()
                .map(|(rows, kb)| lanes(geo, rows.len(), step) * kb.len())
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    let by_chunks = cut(0..geo.nby, geo.rows)
        .map(|rows| lanes(geo, rows.len(), step))
        .sum::<usize>()
        * nkb.div_ceil(shared);
    by_rows * 32 > by_chunks * 33
}

/// `rows` cut into chunks of nearly equal rows, at most `max` each (9 rows in chunks of 7
/// would leave a chunk of 2: its own pass over the transformed filters for little work).
fn cut(rows: Range<usize>, max: usize) -> impl Iterator<Item = Range<usize>> {
    let n = rows.len().div_ceil(max.max(1));
    let at = move |i: usize| rows.start + rows.len() * i / n;
    (0..n).map(move |i| at(i)..at(i + 1))
}

/// Each thread's pieces of a rows split (block rows, channel blocks): its [`shares`], each
/// cut into chunks ([`cut`]).
fn row_pieces(geo: &Geo, nkb: usize, threads: usize) -> Vec<Vec<(Range<usize>, Range<usize>)>> {
    (0..threads)
        .map(|t| {
            shares(geo.nby, nkb, threads, t)
                .into_iter()
                .flat_map(|(rows, kb)| cut(rows, geo.rows).map(move |r| (r, kb.clone())))
                .collect()
        })
        .collect()
}

/// First region row of block row `b` (call-relative), clamped to the region.
fn row_of(geo: &Geo, b: usize) -> usize {
    let r = geo.region;
    ((geo.by0 + b) * geo.m).clamp(r.y.start as usize, r.y.end as usize)
}

/// The rows split: each thread runs its `pieces` (input and products) with its own scratch,
/// writing only its own outputs, one dispatch and no barrier.
fn split_rows(
    team: &Team,
    job: &Rows<'_>,
    out: &mut [f32],
    pieces: Vec<Vec<(Range<usize>, Range<usize>)>>,
) {
    let geo = job.geo;
    let mut parts: Vec<Vec<Part<'_>>> = pieces
        .into_iter()
        .map(|mine| {
            mine.into_iter()
                .map(|(rows, kb)| Part {
                    y0: row_of(geo, rows.start),
                    out: Vec::with_capacity((kb.len() * geo.kr).min(geo.k)),
                    rows,
                    kb,
                })
                .collect()
        })
        .collect();
    // Each plane's rows go, in order, to the pieces holding its channel block: for any one
    // channel block, those pieces come in row order and cover every block row once.
    for (k, plane) in geo.planes(out).into_iter().enumerate() {
        let mut rest = plane;
        for part in parts.iter_mut().flatten() {
            if !part.kb.contains(&(k / geo.kr)) {
                continue;
            }
            let len = (row_of(geo, part.rows.end) - row_of(geo, part.rows.start)) * geo.orow;
            let (mine, tail) = rest.split_at_mut(len.min(rest.len()));
            part.out.push(mine);
            rest = tail;
        }
    }
    team.steal(parts, |mut p| {
        job.run(p.rows.clone(), p.kb.clone(), &mut p.out, p.y0)
    });
}

/// `n` units cut into `threads` nearly equal ranges, in order: one piece per thread of each
/// stage of the shared split. A thread done with its own takes a thread's piece not yet
/// started (`Team::steal`: a thread not yet running when the stage is posted has its share
/// taken). Four pieces per thread, cutting each thread's channel ranges finer, measured slower
/// on two threads (2 t / 1 t median 1.57 against 1.71, 14 alternating runs each on a busy
/// machine).
fn shared_ranges(n: usize, threads: usize) -> Vec<Range<usize>> {
    (0..threads)
        .map(|t| n * t / threads..n * (t + 1) / threads)
        .collect()
}

/// Each thread's one piece, as the lists [`Team::steal`] takes (an empty piece: no list).
fn one_each<P>(pieces: impl IntoIterator<Item = P>, empty: impl Fn(&P) -> bool) -> Vec<Vec<P>> {
    pieces
        .into_iter()
        .map(|p| if empty(&p) { Vec::new() } else { vec![p] })
        .collect()
}

/// The shared split over `threads` threads (at most the input channels and the channel
/// blocks): per chunk, each thread transforms its input channels ([`shared_ranges`]) into the
/// caller's `V`, then, after every thread's are done, multiplies its output channel blocks
/// over all the chunk's blocks.
fn split_shared(team: &Team, job: &Rows<'_>, out: &mut [f32], threads: usize) {
    let geo = job.geo;
    let nkb = geo.kp / geo.kr;
    let kbs = shared_ranges(nkb, threads);
    let cs = shared_ranges(geo.c, threads);
    let chunks: Vec<Range<usize>> = cut(0..geo.nby, geo.rows).collect();
    // outs[i][t]: the output planes of thread t's channel blocks, the rows of chunk i.
    let mut outs: Vec<Vec<Vec<&mut [f32]>>> = chunks
        .iter()
        .map(|_| kbs.iter().map(|_| Vec::new()).collect())
        .collect();
    for (k, plane) in geo.planes(out).into_iter().enumerate() {
        let t = kbs
            .iter()
            .position(|kb| kb.contains(&(k / geo.kr)))
            .expect("the ranges cover every channel block");
        let mut rest = plane;
        for (i, rows) in chunks.iter().enumerate() {
            let len = (row_of(geo, rows.end) - row_of(geo, rows.start)) * geo.orow;
            let (mine, tail) = rest.split_at_mut(len.min(rest.len()));
            outs[i][t].push(mine);
            rest = tail;
        }
    }
    with_v(|v| {
        for (rows, outs) in chunks.into_iter().zip(outs) {
            let chunk = Chunk {
                by: geo.by0 + rows.start,
                n: rows.len(),
            };
            let per = geo.c * geo.pp(chunk.n);
            grow(v, geo.e * per);
            // inputs[t]: thread t's input channels and their rows of each of `V`'s planes.
            let mut inputs: Vec<(Range<usize>, Vec<&mut [f32]>)> = cs
                .iter()
                .map(|c| (c.clone(), Vec::with_capacity(geo.e)))
                .collect();
            for xi in xi_rows(&mut v[..geo.e * per], per) {
                let mut rest = xi;
                for (cs, mine) in inputs.iter_mut() {
                    let (a, b) = rest.split_at_mut(cs.len() * geo.pp(chunk.n));
                    mine.push(a);
                    rest = b;
                }
            }
            team.steal(
                one_each(inputs, |(cs, _)| cs.is_empty()),
                |(cs, mut mine)| with_scratch(|s| job.input(chunk, cs, &mut mine, s)),
            );
            let v: &[f32] = &v[..geo.e * per];
            let y0 = row_of(geo, rows.start);
            let products = one_each(kbs.iter().cloned().zip(outs), |(kb, _)| kb.is_empty());
            team.steal(products, |(kb, mut o)| {
                with_scratch(|s| job.product(chunk, kb, v, &mut s.m, &mut o, y0))
            });
        }
    });
}

/// Thread `t`'s share of `nby` block rows × `nkb` channel blocks split over `threads` in
/// row-major order: pieces `(block rows, channel blocks)` — a partial first row, whole rows, a
/// partial last row — that together hold `nby·nkb·t/threads..nby·nkb·(t+1)/threads`.
fn shares(nby: usize, nkb: usize, threads: usize, t: usize) -> Vec<(Range<usize>, Range<usize>)> {
    let total = nby * nkb;
    let (mut u, end) = (total * t / threads, total * (t + 1) / threads);
    let mut pieces = Vec::new();
    while u < end {
        let (b, j) = (u / nkb, u % nkb);
        if j != 0 || end < (b + 1) * nkb {
            let j1 = nkb.min(j + (end - u));
            pieces.push((b..b + 1, j..j1));
            u += j1 - j;
        } else {
            let b1 = end / nkb;
            pieces.push((b..b1, 0..nkb));
            u = b1 * nkb;
        }
    }
    pieces
}

/// One thread's piece of a rows split: block rows, output channel blocks, and its output
/// planes' rows from map row `y0` on.
struct Part<'o> {
    rows: Range<usize>,
    kb: Range<usize>,
    out: Vec<&'o mut [f32]>,
    y0: usize,
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use alloc::vec::Vec;

    use tessera_core::model::{Activation, Conv, Shape};
    use tessera_core::region::Region;

    use super::super::lanes::W;
    use super::super::{Form, Geo, MR};
    use super::{cut, row_pieces, shared_pays, shares};

    /// Whether a whole-map call of YOLOv2 layer `(w, c → k)` in `form` on 2 threads is shared,
    /// products in whole 16-block vectors (AVX-512).
    fn shared_on_two(form: Form, w: u32, c: u32, k: u32) -> bool {
        let conv = Conv {
            filters: k,
            size: 3,
            stride: 1,
            pad: 1,
            batch_norm: true,
            activation: Activation::Leaky,
        };
        let geo = Geo::new(form, &conv, Shape::new(w, w, c), Region::full(w, w));
        let nkb = geo.kp / MR;
        shared_pays(&geo, nkb, 2, 2, W, &row_pieces(&geo, nkb, 2))
    }

    /// The 38×38 layers (10×10 F4 blocks: 2 × 64 padded lanes by rows, 112 shared) and F2
    /// tiles of the deep layers are shared; the wide maps, whose chunks pad little, split rows.
    #[test]
    fn padded_lanes_choose_the_split() {
        assert!(shared_on_two(Form::F4, 38, 256, 512));
        assert!(shared_on_two(Form::F2, 13, 256, 512));
        assert!(!shared_on_two(Form::F4, 76, 128, 256));
        assert!(!shared_on_two(Form::F4, 152, 64, 128));
        assert!(!shared_on_two(Form::F4, 304, 32, 64));
    }

    /// The shares tile `rows × channel blocks` in row-major order, thread after thread, each
    /// within one unit of the others, and a share of whole rows is one piece.
    #[test]
    fn shares_split_the_work_evenly_in_order() {
        for nby in 1..24 {
            for nkb in 1..12 {
                for threads in 1..=4.min(nby * nkb) {
                    let mut next = 0;
                    let mut sizes = Vec::new();
                    for t in 0..threads {
                        let mut size = 0;
                        for (rows, kb) in shares(nby, nkb, threads, t) {
                            assert!(!rows.is_empty() && !kb.is_empty() && rows.end <= nby);
                            assert!(kb.end <= nkb);
                            assert!(rows.len() == 1 || kb == (0..nkb), "{rows:?} {kb:?}");
                            assert_eq!(rows.start * nkb + kb.start, next);
                            next = (rows.end - 1) * nkb + kb.end;
                            size += rows.len() * kb.len();
                        }
                        sizes.push(size);
                    }
                    assert_eq!(next, nby * nkb);
                    let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                    assert!(hi - lo <= 1, "{nby}×{nkb} on {threads}: {sizes:?}");
                }
            }
        }
        // YOLOv2's layer 8 in F4 on two threads: 19 block rows of 43 channel blocks.
        assert_eq!(shares(19, 43, 2, 0), [(0..9, 0..43), (9..10, 0..21)]);
        assert_eq!(shares(19, 43, 2, 1), [(9..10, 21..43), (10..19, 0..43)]);
    }

    /// Chunks cover the rows in order, none over `max`, within one row of each other.
    #[test]
    fn cut_covers_rows_in_nearly_equal_chunks() {
        for start in [0, 3] {
            for len in 1..40 {
                for max in 1..12 {
                    let chunks: Vec<_> = cut(start..start + len, max).collect();
                    assert_eq!(chunks.first().unwrap().start, start);
                    assert_eq!(chunks.last().unwrap().end, start + len);
                    assert!(chunks.windows(2).all(|w| w[0].end == w[1].start));
                    let sizes: Vec<_> = chunks.iter().map(|c| c.len()).collect();
                    let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                    assert!(
                        *hi <= max && hi - lo <= 1 && *lo >= 1,
                        "{len}/{max}: {sizes:?}"
                    );
                }
            }
        }
    }
}
