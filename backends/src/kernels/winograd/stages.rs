//! The two stages of a chunk, written once over a lane vector ([`Lanes`]) and compiled per
//! instruction set (`isa`): the input stage (input transforms of every channel) and the
//! product stage (the batched element-wise products as small GEMMs, then output transforms,
//! batch norm and activation).
//!
//! Input: each input row of the chunk is copied once into a zero-padded row, its blocks'
//! taps are deinterleaved into lane vectors ([`Lanes::taps`]: 16 blocks per vector, one
//! block per lane) and transformed along the row (`Bᵀ` on the row's taps); the results of
//! `α` consecutive rows are then transformed down the columns into `V[ξ][c][p]`. A block
//! row is transformed along its rows in vectors of 16 blocks from its first block; the last
//! vector of a row is written whole and its lanes past the row's end are overwritten by the
//! next row's first vector (rows are written in order), so `V` holds the chunk's blocks
//! densely. The column transforms run per block row, or, where that saves an eighth of their
//! vectors, over the chunk's blocks in a row (`Geo::h_flat`: narrow calls, whose rows fill
//! little of their last vector).
//!
//! Products: per transform element `ξ`, `M[k][ξ][p] = Σ_c U[k][ξ][c] · V[ξ][c][p]` in register
//! tiles of [`MR`] output channels × `NV` vectors of 16 blocks (AVX-512 up to 4, AVX2 and the
//! portable vector 1), the chunk's last, half-filled group in a half vector where that is
//! cheaper (`columns`); each
//! output is one chain of fused multiply-adds over the channels in order, whatever the tile.
//! Lanes of `M` past the chunk's products keep stale values; the output transform computes
//! them along but stores only blocks of the chunk.
//!
//! Every value is computed by the same operations in the same order whatever the chunk,
//! thread, region or instruction set (no reassociation: Rust never contracts or reorders
//! float operations), so all paths agree bit for bit and tiles equal the full frame.
//!
//! Pointer arithmetic: each stage checks its buffers' lengths against the largest index it
//! forms once, at its start; the loops then use unchecked lane loads and stores.
// Index loops: the transforms read their arrays across two dimensions at once.
#![allow(clippy::needless_range_loop)]

extern crate alloc;

use alloc::vec::Vec;
use core::ops::Range;

use tessera_core::tensor::FeatureView;

use super::super::wide::Vector;
use super::columns;
use super::filters::{self, CB, CBM, KT};
use super::form::Form;
use super::geo::{Chunk, Geo};
use super::lanes::{Lanes, HALF, W};
use super::transform::{at, bt};
use super::MR;

/// The input stage of a chunk, for a range of its input channels (threads of one call may
/// share a chunk's `V`, each transforming its own channels).
pub(super) struct InputJob<'a, 'v> {
    pub geo: &'a Geo,
    pub chunk: Chunk,
    pub input: &'a FeatureView<'a>,
    /// One zero-padded input row ([`Geo::row_len`]).
    pub row: &'a mut [f32],
    /// One channel's row transforms ([`Geo::h_len`]).
    pub h: &'a mut [f32],
    /// The input channels to transform.
    pub channels: Range<usize>,
    /// Per transform element `ξ` (`α²` of them), the rows `V[ξ][channels][pp]`.
    pub v: &'a mut [&'v mut [f32]],
}

/// Writes every block's `Bᵀ d B` to `V`.
///
/// # Safety
///
/// The CPU runs `L` (the caller checks it).
#[inline(always)]
pub(super) unsafe fn input<L: Lanes>(job: InputJob<'_, '_>) {
    // SAFETY: `L`'s CPU features, as the caller guarantees.
    unsafe {
        match job.geo.form {
            Form::F2 => input_form::<L, 2, 4>(job),
            Form::F4 => input_form::<L, 4, 6>(job),
        }
    }
}

/// [`input`] for block side `M`, `α = A`.
#[inline(always)]
unsafe fn input_form<L: Lanes, const M: usize, const A: usize>(job: InputJob<'_, '_>) {
    let g = job.geo;
    let n = job.chunk.n;
    let (c, nbx, ng, pp) = (g.c, g.nbx, g.ng, g.pp(n));
    let prow = g.prow(n);
    let (rl, hq, flat) = (g.row_len(), g.h_plane(n), g.h_flat(n));
    // Elements between sub-rows and between row-transform outputs `xc` in `h` (see
    // `Geo::h_flat`): flat, plane `(sr, xc)` at `(sr·A + xc)·hq`; by rows, input row `r`'s
    // output `xc` at `r·A·ng·W + xc·ng·W`.
    let (s_sr, s_xc) = if flat {
        (A * hq, hq)
    } else {
        (A * ng * W, ng * W)
    };
    let vr = job.input.region();
    let x_first = (g.bx0 * M) as i64 - g.pad;
    let y_first = (job.chunk.by * M) as i64 - g.pad;
    // The padded row's values taken from the input: [lo, hi).
    let (xs, xe) = (i64::from(vr.x.start), i64::from(vr.x.end).min(g.in_w));
    let lo = (xs - x_first).clamp(0, rl as i64) as usize;
    let hi = (xe - x_first).clamp(lo as i64, rl as i64) as usize;
    // Every index below: taps of group `ng − 1` read `[(ng − 1)·W·M, … + TAPS_READ)` of the
    // row (`row_len` covers it). Flat, the `A²` planes of `h` take vectors from column `br·nbx
    // + gi·W` of block row `br < n` (the last group starts below `nbx`) and give them from
    // `q < P`, so each ends below `P + W ≤ hq`; by rows, `h` has `prow` rows of `A·ng·W`.
    // `V` columns end below `P + W ≤ pp` either way.
    let cs = job.channels.clone();
    assert!(job.row.len() >= rl && job.h.len() >= g.h_len(n) && cs.end <= c);
    assert!(g.h_len(n) >= if flat { A * A * hq } else { prow * A * ng * W });
    assert!(job.v.len() == A * A && job.v.iter().all(|r| r.len() >= cs.len() * pp));
    assert!((n - 1) * nbx + (ng - 1) * W + W <= hq && n * nbx + W <= hq.min(pp));
    let row = &mut job.row[..rl];
    // `α² ≤ 36` (F4).
    let mut vrow = [core::ptr::null_mut::<f32>(); 36];
    for (d, r) in vrow.iter_mut().zip(job.v.iter_mut()) {
        *d = r.as_mut_ptr();
    }
    for ci in cs.clone() {
        for r in 0..prow {
            let y = y_first + r as i64;
            if y >= 0 && y < g.in_h && vr.y.contains(y as u32) && lo < hi {
                let src = job.input.row(ci as u32, y as u32);
                row[..lo].fill(0.0);
                let from = (x_first + lo as i64 - xs) as usize;
                row[lo..hi].copy_from_slice(&src[from..from + hi - lo]);
                row[hi..].fill(0.0);
            } else {
                row.fill(0.0);
            }
            // Flat, row `r` is sub-row `sr = r − br·M` of block rows `br` (one or, in the
            // `A − M` rows two blocks overlap, two); by rows it is stored once.
            let brs = if flat {
                r.saturating_sub(A - 1).div_ceil(M)..(r / M + 1).min(n)
            } else {
                0..1
            };
            let h = job.h.as_mut_ptr();
            for gi in 0..ng {
                // SAFETY: `L`'s CPU features (the caller); the taps stay inside `row` and the
                // stores inside `h`, see the checks above.
                unsafe {
                    let taps = L::taps::<M, A>(row.as_ptr().add(gi * W * M));
                    let t = bt::<L, M, A>(&taps);
                    for br in brs.clone() {
                        let at = if flat {
                            (r - br * M) * s_sr + br * nbx + gi * W
                        } else {
                            r * s_sr + gi * W
                        };
                        for xc in 0..A {
                            t[xc].store(h.add(at + xc * s_xc));
                        }
                    }
                }
            }
        }
        let h = job.h.as_ptr();
        let cl = ci - cs.start;
        // The vectors of blocks the column transforms run over: their first `V` column `q`,
        // and where their sub-row 0 is in `h`. (Index arithmetic only: a closure does not
        // take its function's target features, so the lane operations stay in the loop.)
        let vectors = if flat { n * nbx } else { n * ng * W }.div_ceil(W);
        let vector = |i: usize| {
            if flat {
                (i * W, i * W)
            } else {
                let (br, gi) = (i / ng, i % ng);
                (br * nbx + gi * W, br * M * s_sr + gi * W)
            }
        };
        for (q, at) in (0..vectors).map(vector) {
            for xc in 0..A {
                // SAFETY: `L`'s CPU features; `h` and columns `q..q + W ≤ pp` of row `cl` of
                // `V[ξ]` as the checks above bound them.
                unsafe {
                    let mut col = [L::zero(); A];
                    for sr in 0..A {
                        col[sr] = L::load(h.add(at + sr * s_sr + xc * s_xc));
                    }
                    let t = bt::<L, M, A>(&col);
                    for xr in 0..A {
                        t[xr].store(vrow[xr * A + xc].add(cl * pp + q));
                    }
                }
            }
        }
    }
}

/// The product stage of a chunk (all output channels).
pub(super) struct ProductJob<'a, 'o> {
    pub geo: &'a Geo,
    pub chunk: Chunk,
    /// The job's first output channel block and how many (channels `kb0·kr..`, `kr` =
    /// [`MR`], or [`W`] channel major).
    pub kb0: usize,
    pub nkb: usize,
    /// All transformed filters of the layer.
    pub u: &'a [f32],
    /// `V[ξ][c][pp]` of all channels.
    pub v: &'a [f32],
    /// Products `M[k][ξ][pp]` of the job's channel blocks.
    pub m: &'a mut [f32],
    /// Folded batch norm `(a, b)` of every output channel of the layer.
    pub post: &'a [(f32, f32)],
    pub leaky: bool,
    /// Per output channel of the job, its rows of the region from map row `y0` on (`[y][x]`):
    /// the rows this thread's blocks cover.
    pub out: &'a mut [&'o mut [f32]],
    pub y0: usize,
}

/// How far ahead of its reads a GEMM tile prefetches the filters (values): about 1000 cycles
/// of products, longer than a miss to memory. A small tile's call reads the deep layers'
/// transformed filters (8 MiB for 256→512 as F2) once, from memory: without the hint the
/// products wait for them.
const PREFETCH: usize = 1024;

/// Bytes of `V` (a pass's rows of a run of column tiles) the product stage keeps in L1 while
/// every output channel block runs over them: half a 32 KiB L1, beside the block's filters.
const PANEL_BYTES: usize = 16 << 10;

/// One `MR × (NV·W + H·HALF)` tile of products: `m[r·ms + j] (+)= Σ_c u[c·MR + r] ·
/// v[c·vs + j]` over `c < cn`, in channel order, one fused multiply-add per term, continuing
/// the sums stored in `m` when `more`; the last `H ≤ 1` column group is a half vector.
///
/// # Safety
///
/// `L`'s CPU features; `u[..cn·MR]`, `v[c·vs..c·vs + NV·W + H·HALF]` (`c < cn`) readable and
/// `m[r·ms..r·ms + NV·W + H·HALF]` (`r < MR`) readable and writable.
#[inline(always)]
unsafe fn tile<L: Lanes, const NV: usize, const H: usize>(
    u: *const f32,
    v: *const f32,
    vs: usize,
    m: *mut f32,
    ms: usize,
    cn: usize,
    more: bool,
) {
    // SAFETY: as the function's contract states.
    unsafe {
        let mut acc = [[L::zero(); NV]; MR];
        let mut acch = [[<L::Half as Vector>::zero(); H]; MR];
        if more {
            for r in 0..MR {
                for j in 0..NV {
                    acc[r][j] = L::load(m.add(r * ms + j * W));
                }
                for j in 0..H {
                    acch[r][j] = L::Half::load(m.add(r * ms + NV * W + j * HALF));
                }
            }
        }
        for ci in 0..cn {
            let vp = v.add(ci * vs);
            let mut x = [L::zero(); NV];
            for j in 0..NV {
                x[j] = L::load(vp.add(j * W));
            }
            let mut xh = [<L::Half as Vector>::zero(); H];
            for j in 0..H {
                xh[j] = L::Half::load(vp.add(NV * W + j * HALF));
            }
            let up = u.add(ci * MR);
            // The filters stream in order (one run per pass, `filters`): hint the line ahead.
            L::prefetch(up.wrapping_add(PREFETCH));
            for r in 0..MR {
                if NV > 0 {
                    let w = L::broadcast(up.add(r));
                    for j in 0..NV {
                        acc[r][j] = L::fma(w, x[j], acc[r][j]);
                    }
                }
                if H > 0 {
                    let w = L::Half::broadcast(up.add(r));
                    for j in 0..H {
                        acch[r][j] = L::Half::fma(w, xh[j], acch[r][j]);
                    }
                }
            }
        }
        for r in 0..MR {
            for j in 0..NV {
                acc[r][j].store(m.add(r * ms + j * W));
            }
            for j in 0..H {
                acch[r][j].store(m.add(r * ms + NV * W + j * HALF));
            }
        }
    }
}

/// Products (register tiles cut by [`columns::tiles`]: the chunk's blocks rounded up to whole
/// or half vectors), then output transforms into `out`. Every output channel block runs over
/// a run of tiles ([`columns::panels`], [`PANEL_BYTES`] of `V`) before the next run, so a
/// block's filters are read once per run rather than once per tile (AVX2's tiles are one
/// vector wide: a 3×3 tile's 49 F2 blocks took four reads of the layer's filters, the first
/// from memory where they were not cached, and now two).
///
/// # Safety
///
/// The CPU runs `L` (the caller checks it).
#[inline(always)]
pub(super) unsafe fn product<L: Lanes>(mut job: ProductJob<'_, '_>) {
    let g = job.geo;
    if g.is_channel_major() {
        // SAFETY: `L`'s CPU features (the caller).
        return unsafe { product_cm::<L>(job) };
    }
    let (e, c) = (g.e, g.c);
    let pp = g.pp(job.chunk.n);
    let nkb = job.nkb;
    let (kb0, nkb_all) = (job.kb0, g.kp / MR);
    // Blocks with products: the chunk's, rounded up to (half) vectors (≤ pp).
    let used = columns::used::<L>(job.chunk.n * g.nbx);
    // Every index below: filters `offset(ξ, kb0 + kb, c0) + c·MR + r < e·nkb_all·c·MR`, `V` rows
    // `(ξ·c + c)·pp + p` with `p < used ≤ pp`, `M` rows `(k·e + ξ)·pp + p`, `k < nkb·MR`.
    assert!(kb0 + nkb <= nkb_all && job.u.len() >= nkb_all * e * c * MR);
    assert!(job.v.len() >= e * c * pp && used <= pp && job.m.len() >= nkb * MR * e * pp);
    let (u, v, m) = (job.u.as_ptr(), job.v.as_ptr(), job.m.as_mut_ptr());
    for xi in 0..e {
        let mut c0 = 0;
        while c0 < c {
            let cn = CB.min(c - c0);
            let tiles = columns::tiles(used, L::MAX_NV, L::HALF_NV);
            let panel = (PANEL_BYTES / (size_of::<f32>() * cn)).max(W);
            for run in columns::panels(tiles.clone(), panel) {
                for kb in 0..nkb {
                    for cols in tiles.clone().skip(run.start).take(run.len()) {
                        let pv = cols.first;
                        let uk = filters::offset(xi, kb0 + kb, c0, c, nkb_all * MR);
                        let vk = (xi * c + c0) * pp + pv;
                        let mk = (kb * MR * e + xi) * pp + pv;
                        // SAFETY: `L`'s CPU features (the caller); the tile's reads and writes
                        // stay inside `u`, `v` and `m` (checked above: the tiles end at `used`).
                        unsafe {
                            let a = (u.add(uk), v.add(vk), pp, m.add(mk), e * pp, cn, c0 > 0);
                            match (cols.nv, cols.half) {
                                (4, false) => tile::<L, 4, 0>(a.0, a.1, a.2, a.3, a.4, a.5, a.6),
                                (3, false) => tile::<L, 3, 0>(a.0, a.1, a.2, a.3, a.4, a.5, a.6),
                                (2, false) => tile::<L, 2, 0>(a.0, a.1, a.2, a.3, a.4, a.5, a.6),
                                (1, false) => tile::<L, 1, 0>(a.0, a.1, a.2, a.3, a.4, a.5, a.6),
                                (3, true) => tile::<L, 3, 1>(a.0, a.1, a.2, a.3, a.4, a.5, a.6),
                                (2, true) => tile::<L, 2, 1>(a.0, a.1, a.2, a.3, a.4, a.5, a.6),
                                (1, true) => tile::<L, 1, 1>(a.0, a.1, a.2, a.3, a.4, a.5, a.6),
                                (0, true) => tile::<L, 0, 1>(a.0, a.1, a.2, a.3, a.4, a.5, a.6),
                                _ => unreachable!("tile of {} vectors", cols.nv),
                            }
                        }
                    }
                }
            }
            c0 += cn;
        }
    }
    // SAFETY: `L`'s CPU features (the caller).
    unsafe {
        match g.form {
            Form::F2 => output::<L, 2, 4>(&mut job, nkb),
            Form::F4 => output::<L, 4, 6>(&mut job, nkb),
        }
    }
}

/// Output transforms, batch norm and activation of the chunk's blocks, stored where they fall
/// inside the region.
#[inline(always)]
unsafe fn output<L: Lanes, const M: usize, const A: usize>(
    job: &mut ProductJob<'_, '_>,
    nkb: usize,
) {
    let g = job.geo;
    let (e, n, nbx, ng) = (g.e, job.chunk.n, g.nbx, g.ng);
    let pp = g.pp(n);
    let r = g.region;
    let (rx0, rw) = (r.x.start as usize, r.width() as usize);
    let (ry0, ry1) = (r.y.start as usize, r.y.end as usize);
    // The region rows this chunk covers, and the output rows they need.
    let (cy0, cy1) = (
        (job.chunk.by * M).max(ry0),
        ((job.chunk.by + n) * M).min(ry1),
    );
    let kn = (nkb * MR).min(g.k - job.kb0 * MR);
    assert!(job.m.len() >= kn * e * pp && cy0 >= job.y0 && job.out.len() >= kn);
    // SAFETY: `L`'s CPU features (the caller).
    let tenth = unsafe { L::splat(0.1) };
    for kl in 0..kn {
        let (pa, pb) = job.post[job.kb0 * MR + kl];
        // SAFETY: `L`'s CPU features (the caller).
        let (va, vb) = unsafe { (L::splat(pa), L::splat(pb)) };
        let mk = job.m[kl * e * pp..][..e * pp].as_ptr();
        let out = &mut *job.out[kl];
        assert!(out.len() >= g.out_span(cy1.max(cy0) - job.y0));
        for br in 0..n {
            let oy0 = (job.chunk.by + br) * M;
            let (i0, i1) = (ry0.max(oy0), ry1.min(oy0 + M));
            if i0 >= i1 {
                continue;
            }
            for gi in 0..ng {
                let p = br * nbx + gi * W;
                let x_abs = (g.bx0 + gi * W) * M;
                let (xa, xb) = (
                    rx0.max(x_abs),
                    (rx0 + rw).min(x_abs + (nbx - gi * W).min(W) * M),
                );
                if xa >= xb {
                    continue;
                }
                // SAFETY: `L`'s CPU features; `M` columns `p..p + W ≤ pp` of rows `ξ < e`
                // (checked above, as in `product`).
                let y = unsafe {
                    let mut t = [[L::zero(); M]; A];
                    for xr in 0..A {
                        let mut mm = [L::zero(); A];
                        for xc in 0..A {
                            mm[xc] = L::load(mk.add((xr * A + xc) * pp + p));
                        }
                        t[xr] = at::<L, M, A>(&mm);
                    }
                    // y[j][i]: output row i, column j of each lane's block.
                    let mut y = [[L::zero(); M]; M];
                    for j in 0..M {
                        let mut col = [L::zero(); A];
                        for xr in 0..A {
                            col[xr] = t[xr][j];
                        }
                        y[j] = at::<L, M, A>(&col);
                    }
                    y
                };
                for oy in i0..i1 {
                    let i = oy - oy0;
                    // SAFETY: `L`'s CPU features (the caller).
                    let vals: [L; M] = unsafe {
                        let mut vals = [L::zero(); M];
                        for j in 0..M {
                            let z = L::fma(y[j][i], va, vb);
                            vals[j] = if job.leaky { z.leaky(tenth) } else { z };
                        }
                        vals
                    };
                    let at_row = (oy - job.y0) * g.orow;
                    let dst = &mut out[at_row + xa - rx0..at_row + xb - rx0];
                    if xa == x_abs && xb - xa == W * M {
                        // SAFETY: `L`'s CPU features; `dst` holds exactly `M·W` values.
                        unsafe { L::store_interleaved::<M>(&vals, dst.as_mut_ptr()) };
                    } else {
                        let mut line = [0.0f32; 4 * W];
                        // SAFETY: `L`'s CPU features; `line` holds `4·W ≥ M·W` values.
                        unsafe { L::store_interleaved::<M>(&vals, line.as_mut_ptr()) };
                        for (d, s) in dst.iter_mut().zip(&line[xa - x_abs..]) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// Blocks per channel-major register tile: each block's `V` value is broadcast against
/// `NV` vectors of 16 output channels ([`MR`] × `NV` accumulators, as the block-major tiles).
const NB: usize = MR;

/// One channel-major tile of products: `m[b·ms + j·W + l] (+)= Σ_c u[c·us + j·W + l] ·
/// v[c·vs + b]` for blocks `b < B`, channel vectors `j < NV`, over `c < cn` in channel
/// order, one fused multiply-add per term (`fma(u, v, acc)`, the operands of the
/// block-major tile's), continuing the sums stored in `m` when `more`.
///
/// The filters of a tile are read by every block group of the chunk, mostly from cache; the
/// first group of a tile (`i = 0`) hints its own lines ahead, and group `i` hints line
/// `i·cn + c` of `next` (the next filter tile, `lines` of them: one line per channel step,
/// over the tile's first `lines / cn` groups), so the next tile's filters arrive while this
/// one runs rather than in a burst at its start. (Two lines per step, over half as many
/// groups, left a 3×3 tile of YOLOv2's layers 12/14 about 1 ms slower per layer.)
///
/// # Safety
///
/// `L`'s CPU features; `u[c·us..c·us + NV·W]`, `v[c·vs..c·vs + B]` (`c < cn`) readable and
/// `m[b·ms..b·ms + NV·W]` (`b < B`) readable and writable.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile_cm<L: Lanes, const B: usize, const NV: usize>(
    u: *const f32,
    us: usize,
    v: *const f32,
    vs: usize,
    m: *mut f32,
    ms: usize,
    cn: usize,
    more: bool,
    i: usize,
    next: *const f32,
    lines: usize,
) {
    // SAFETY: as the function's contract states.
    unsafe {
        let mut acc = [[L::zero(); NV]; B];
        if more {
            for b in 0..B {
                for j in 0..NV {
                    acc[b][j] = L::load(m.add(b * ms + j * W));
                }
            }
        }
        for ci in 0..cn {
            let up = u.add(ci * us);
            let mut w = [L::zero(); NV];
            for j in 0..NV {
                w[j] = L::load(up.add(j * W));
            }
            if i == 0 {
                for j in 0..NV {
                    L::prefetch(up.wrapping_add(PREFETCH + j * W));
                }
            }
            // One line of the next tile per channel step: spread over its first groups.
            let line = i * cn + ci;
            if line < lines {
                L::prefetch(next.wrapping_add(line * W));
            }
            let vp = v.add(ci * vs);
            for b in 0..B {
                let x = L::broadcast(vp.add(b));
                for j in 0..NV {
                    acc[b][j] = L::fma(w[j], x, acc[b][j]);
                }
            }
        }
        for b in 0..B {
            for j in 0..NV {
                acc[b][j].store(m.add(b * ms + j * W));
            }
        }
    }
}

/// The product stage with output channels in the lanes (channel-major filters,
/// `filters::transform_cm`; `job.kb0` and `job.m`'s channels in groups of [`W`]): products
/// `M[p][ξ][k]` over exactly the chunk's blocks, then output transforms into `out`.
///
/// # Safety
///
/// The CPU runs `L` (the caller checks it).
#[inline(always)]
unsafe fn product_cm<L: Lanes>(mut job: ProductJob<'_, '_>) {
    let g = job.geo;
    let (e, c) = (g.e, g.c);
    let pp = g.pp(job.chunk.n);
    let blocks = job.chunk.n * g.nbx;
    let ng_all = g.kp / W;
    let ng = job.nkb;
    let kn = ng * W;
    let (xs, ms) = g.cm_strides(kn);
    let kg0 = job.kb0;
    // Every index below: filters `at_cm(ξ, c0, g) + c·cs + l < e·ng_all·c·W`, `V`
    // `(ξ·c + c)·pp + p` with `p < blocks ≤ pp`, `M` `p·ms + ξ·xs + k` with `k < kn ≤ xs`
    // and `e·xs ≤ ms`.
    assert!(kg0 + ng <= ng_all && job.u.len() >= ng_all * e * c * W);
    assert!(job.v.len() >= e * c * pp && blocks <= pp && job.m.len() >= blocks * ms);
    let (u, v, m) = (job.u.as_ptr(), job.v.as_ptr(), job.m.as_mut_ptr());
    for xi in 0..e {
        let mut c0 = 0;
        while c0 < c {
            let cn = CBM.min(c - c0);
            let mut kt = 0;
            while kt < ng {
                let ga = kg0 + kt;
                // Within one filter tile (`KT` groups).
                let nv = L::MAX_NV.min(ng - kt).min(KT - ga % KT);
                let (uk, us, tile) = filters::at_cm(xi, c0, ga, c, ng_all);
                let tile_len = us * cn;
                let next = u.wrapping_add(tile + tile_len);
                let lines = tile_len / W;
                let mut p0 = 0;
                let mut i = 0;
                while p0 < blocks {
                    let nb = NB.min(blocks - p0);
                    let vk = (xi * c + c0) * pp + p0;
                    let mk = p0 * ms + xi * xs + kt * W;
                    // SAFETY: `L`'s CPU features (the caller); the tile's reads and writes
                    // stay inside `u`, `v` and `m` (checked above).
                    unsafe {
                        let a = (u.add(uk), us, v.add(vk), pp, m.add(mk), ms);
                        let more = c0 > 0;
                        macro_rules! go {
                            ($b:literal, $nv:literal) => {
                                tile_cm::<L, $b, $nv>(
                                    a.0, a.1, a.2, a.3, a.4, a.5, cn, more, i, next, lines,
                                )
                            };
                        }
                        match (nb, nv) {
                            (6, 4) => go!(6, 4),
                            (6, 3) => go!(6, 3),
                            (6, 2) => go!(6, 2),
                            (6, 1) => go!(6, 1),
                            (5, 4) => go!(5, 4),
                            (5, 3) => go!(5, 3),
                            (5, 2) => go!(5, 2),
                            (5, 1) => go!(5, 1),
                            (4, 4) => go!(4, 4),
                            (4, 3) => go!(4, 3),
                            (4, 2) => go!(4, 2),
                            (4, 1) => go!(4, 1),
                            (3, 4) => go!(3, 4),
                            (3, 3) => go!(3, 3),
                            (3, 2) => go!(3, 2),
                            (3, 1) => go!(3, 1),
                            (2, 4) => go!(2, 4),
                            (2, 3) => go!(2, 3),
                            (2, 2) => go!(2, 2),
                            (2, 1) => go!(2, 1),
                            (1, 4) => go!(1, 4),
                            (1, 3) => go!(1, 3),
                            (1, 2) => go!(1, 2),
                            (1, 1) => go!(1, 1),
                            _ => unreachable!("tile of {nb} blocks × {nv} vectors"),
                        }
                    }
                    p0 += nb;
                    i += 1;
                }
                kt += nv;
            }
            c0 += cn;
        }
    }
    // SAFETY: `L`'s CPU features (the caller).
    unsafe {
        match g.form {
            Form::F2 => output_cm::<L, 2, 4>(&mut job, ng),
            Form::F4 => output_cm::<L, 4, 6>(&mut job, ng),
        }
    }
}

/// [`output`] for channel-major products: per group of [`W`] output channels and block, the
/// same transforms, batch norm and activation on a vector of 16 channels, each value then
/// stored to its channel plane.
#[inline(always)]
unsafe fn output_cm<L: Lanes, const M: usize, const A: usize>(
    job: &mut ProductJob<'_, '_>,
    ng: usize,
) {
    let g = job.geo;
    let (n, nbx) = (job.chunk.n, g.nbx);
    let kn = ng * W;
    let (xs, ms) = g.cm_strides(kn);
    let r = g.region;
    let (rx0, rw) = (r.x.start as usize, r.width() as usize);
    let (ry0, ry1) = (r.y.start as usize, r.y.end as usize);
    let (cy0, cy1) = (
        (job.chunk.by * M).max(ry0),
        ((job.chunk.by + n) * M).min(ry1),
    );
    let k0 = job.kb0 * W;
    let kreal = kn.min(g.k - k0);
    assert!(job.m.len() >= n * nbx * ms && cy0 >= job.y0 && job.out.len() >= kreal);
    let rows = cy1.max(cy0) - job.y0;
    let mut planes = [core::ptr::null_mut::<f32>(); W];
    // SAFETY: `L`'s CPU features (the caller).
    let tenth = unsafe { L::splat(0.1) };
    let mp = job.m.as_ptr();
    // Groups of `W / M` blocks from the call's first block (the last may be short): each
    // group's `W` output columns, of which lanes `lo..hi` lie in the region.
    let per = W / M;
    let groups: Vec<(usize, usize, usize, usize)> = (0..nbx)
        .step_by(per)
        .map(|b0| {
            let x_abs = (g.bx0 + b0) * M;
            let lo = rx0.saturating_sub(x_abs);
            let hi = (rx0 + rw - x_abs).min(W);
            (b0, (b0 + per).min(nbx), lo, hi)
        })
        .collect();
    // SAFETY: `L`'s CPU features (the caller).
    let mut ysr = alloc::vec![[[unsafe { L::zero() }; M]; M]; nbx];
    for gi in 0..ng {
        let live = W.min(kreal.saturating_sub(gi * W));
        if live == 0 {
            break;
        }
        let (mut pa, mut pb) = ([0.0f32; W], [0.0f32; W]);
        for l in 0..live {
            (pa[l], pb[l]) = job.post[k0 + gi * W + l];
            let plane = &mut *job.out[gi * W + l];
            assert!(plane.len() >= g.out_span(rows));
            planes[l] = plane.as_mut_ptr();
        }
        // SAFETY: `L`'s CPU features (the caller); `pa`, `pb` hold `W` values.
        let (va, vb) = unsafe { (L::load(pa.as_ptr()), L::load(pb.as_ptr())) };
        for br in 0..n {
            let oy0 = (job.chunk.by + br) * M;
            let (i0, i1) = (ry0.max(oy0), ry1.min(oy0 + M));
            if i0 >= i1 {
                continue;
            }
            // Each group's rows go out as vectors per plane (transposed), row by row along
            // the block row, so each plane is written in runs; lanes outside the region (and
            // past a short group's blocks) are computed but not stored.
            for &(b0, b1, _, _) in &groups {
                for b in b0..b1 {
                    // SAFETY: `L`'s CPU features; block `br·nbx + b` is the chunk's (above).
                    ysr[b] =
                        unsafe { block_y::<L, M, A>(mp.add((br * nbx + b) * ms + gi * W), xs) };
                }
            }
            for oy in i0..i1 {
                let i = oy - oy0;
                for &(b0, b1, lo, hi) in &groups {
                    // Lane `q` of a plane's vector is column `(bx0 + b0)·M + q`, at `at + q`
                    // of the plane (`at` may lie before the plane: `lo` lanes are skipped).
                    let at = ((oy - job.y0) * g.orow + (g.bx0 + b0) * M).wrapping_sub(rx0);
                    // SAFETY: `L`'s CPU features; plane `l < live` holds `out_span(rows)`
                    // values, of which `at + lo .. at + hi` are this row's columns in the
                    // region.
                    unsafe {
                        let mut zs = [L::zero(); W];
                        for q in 0..(b1 - b0) * M {
                            let z = L::fma(ysr[b0 + q / M][q % M][i], va, vb);
                            zs[q] = if job.leaky { z.leaky(tenth) } else { z };
                        }
                        L::transpose(&mut zs);
                        if lo == 0 && hi == W {
                            for l in 0..live {
                                zs[l].store(planes[l].add(at));
                            }
                        } else {
                            for l in 0..live {
                                zs[l].store_lanes(planes[l].wrapping_add(at), lo, hi);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `Aᵀ M A` of one block on vectors of [`W`] channels: `y[j][i]` is output row `i`, column
/// `j` (`mk`: the block's `M[ξ = 0]` at the group's channels, `ξ` values `xs` apart).
///
/// # Safety
///
/// `L`'s CPU features; `W` values readable at `mk + ξ·xs` for `ξ < A²`.
#[inline(always)]
unsafe fn block_y<L: Lanes, const M: usize, const A: usize>(
    mk: *const f32,
    xs: usize,
) -> [[L; M]; M] {
    // SAFETY: as the function's contract states.
    unsafe {
        let mut t = [[L::zero(); M]; A];
        for xr in 0..A {
            let mut mm = [L::zero(); A];
            for xc in 0..A {
                mm[xc] = L::load(mk.add((xr * A + xc) * xs));
            }
            t[xr] = at::<L, M, A>(&mm);
        }
        let mut y = [[L::zero(); M]; M];
        for j in 0..M {
            let mut col = [L::zero(); A];
            for xr in 0..A {
                col[xr] = t[xr][j];
            }
            y[j] = at::<L, M, A>(&col);
        }
        y
    }
}
