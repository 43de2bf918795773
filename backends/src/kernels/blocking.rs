//! The loop nest of one group of output channels ([`conv_range`]): output rows, column blocks
//! and input-channel chunks sized for L1, each step one [`Row`] job per output channel block.

use tessera_core::region::Region;

#[cfg(target_arch = "x86_64")]
use super::avx512;
use super::channels::blocks;
use super::row::{Post, Row};
use super::{run_row, wide, Isa, LANES, R};

/// One group of output channels of a conv (`ab`, weights in `packed`) and its input.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub(super) isa: Isa,
    pub(super) pad: &'a [f32],
    /// Padded row length; elements between channels of the padded input (see
    /// [`PadGeo::plane`](super::pad::PadGeo::plane)); first padded row's map row.
    pub(super) wp: usize,
    pub(super) plane: usize,
    pub(super) iy0: i64,
    pub(super) k: usize,
    pub(super) s: usize,
    pub(super) p: i64,
    pub(super) h: i64,
    pub(super) c: usize,
    /// The group's weights packed per output channel block (see [`blocks`]): `[block][c][ky][kx][o - o0]`.
    pub(super) packed: &'a [f32],
    /// Folded (a, b) per output channel.
    pub(super) ab: &'a [(f32, f32)],
    pub(super) leaky: bool,
    pub(super) region: Region,
    /// Elements between output planes and between output rows, and the output column of the
    /// region's column 0 (the flat 1×1 path computes a plane as one row, its last columns
    /// apart).
    pub(super) oplane: usize,
    pub(super) orow: usize,
    pub(super) ocol0: usize,
}

/// Kernel taps `t0..t1` of a `k`-wide window starting at `start` inside `0..extent`.
fn taps(start: i64, k: usize, extent: i64) -> (usize, usize) {
    let t0 = (-start).clamp(0, k as i64);
    let t1 = (extent - start).clamp(t0, k as i64);
    (t0 as usize, t1 as usize)
}

/// Bytes of input one row or column block may occupy in L1 across all output channel blocks.
const L1_BUDGET: usize = 24 * 1024;
/// Output columns of one block when the input is blocked for L1 (a multiple of the AVX2 and
/// NEON micro-kernels' widths).
const XBLOCK: usize = 48;
/// The same for the 16-lane kernel (AVX-512 and its software twin): one full 6 × 64 tile, for
/// 1×1 convs too (a multiple of [`LANES`], so every block starts on a whole vector).
const XBLOCK_WIDE: usize = 64;

/// Computes the group's output channels (`ctx.ab`) over the region into `out` (their planes,
/// CHW).
///
/// When one output row's input (all channels × kernel rows × row width) fits in L1, rows are
/// computed whole, channel block by channel block. Otherwise the input channels are cut into
/// chunks whose column block (48 columns, 16 for 1×1; 64 for the 16-lane kernel) fits in L1;
/// for each row and column block, chunk after chunk, all output channel blocks run on that
/// L1-resident block. The column block's outputs (the sums carried between chunks) stay in
/// L1/L2 meanwhile: with chunks outermost, every chunk re-read and re-wrote the whole output
/// from L3 or memory, which two threads contend for (1×1 512→256 on 38×38: 2 threads 1.46×
/// one before, 1.73× after).
///
/// On the 16-lane kernel, rows that end in a narrow tile go in groups ([`group_rows`],
/// [`run_group`]): the narrow rest of up to 4 rows is one multi-row tile, so narrow FTP tile
/// rows (13–15 columns on the deep layers) reuse each broadcast weight like a wide row.
pub(super) fn conv_range(ctx: &Ctx<'_>, out: &mut [f32]) {
    let ncols = ctx.region.width() as usize;
    let oplane = ctx.oplane;
    let kk = ctx.k * ctx.k;
    // A row of several tiles whose input fits L1 runs whole, one call per row and channel
    // block: a row group's input would not fit, and chunking it for L1 would make each call
    // one 64-column tile (layer 0, 3 channels: 10 % slower).
    let fits = ctx.c * ctx.k * ctx.wp * 4 <= L1_BUDGET;
    let rr = if fits && ncols > XBLOCK_WIDE {
        1
    } else {
        group_rows(ctx.isa, ctx.k, ctx.s, ncols)
    };
    // A group of `rr` rows reads `k + rr − 1` input rows per channel.
    let row_bytes = ctx.c * (ctx.k + rr - 1) * ctx.wp * 4;
    let (chunk, xblock) = if row_bytes <= L1_BUDGET || ctx.s != 1 {
        (ctx.c, ncols.max(1))
    } else {
        let xb = match ctx.isa {
            // Narrower rows (13, 19, 38 columns) are sized by the whole vectors they read, so
            // their chunks hold as many channels as fit.
            Isa::Avx512 | Isa::Soft16 => XBLOCK_WIDE.min(ncols.div_ceil(LANES) * LANES),
            _ if ctx.k == 1 => 16,
            _ => XBLOCK,
        };
        let per_channel = (ctx.k + rr - 1) * (xb + ctx.k - 1) * 4;
        ((L1_BUDGET / per_channel).clamp(1, ctx.c), xb)
    };
    let (y0, y1) = (ctx.region.y.start, ctx.region.y.end);
    let rows_of = |y: u32| {
        let ys = y as i64 * ctx.s as i64 - ctx.p;
        taps(ys, ctx.k, ctx.h)
    };
    let mut y = y0;
    while y < y1 {
        let ys = y as i64 * ctx.s as i64 - ctx.p;
        let (ky0, ky1) = rows_of(y);
        // Rows sharing these kernel rows form one group (`rr` at most).
        let mut rows = 1;
        while rows < rr && y + (rows as u32) < y1 && rows_of(y + rows as u32) == (ky0, ky1) {
            rows += 1;
        }
        let prow = if ky1 > ky0 {
            (ys + ky0 as i64 - ctx.iy0) as usize
        } else {
            0
        };
        let orow = (y - y0) as usize * ctx.orow + ctx.ocol0;
        let mut j0 = 0;
        while j0 < ncols {
            let j1 = (j0 + xblock).min(ncols);
            // Chunks innermost: the column block's outputs stay in L1/L2 while every chunk
            // adds to them, in channel order as before.
            let mut c0 = 0;
            while c0 < ctx.c {
                let c1 = (c0 + chunk).min(ctx.c);
                for (o, n) in blocks(ctx.ab.len()) {
                    let mut post = Post {
                        a: [1.0; R],
                        b: [0.0; R],
                        leaky: ctx.leaky,
                    };
                    for r in 0..n {
                        (post.a[r], post.b[r]) = ctx.ab[o + r];
                    }
                    let job = Row {
                        input: ctx.pad,
                        base: c0 * ctx.plane + prow * ctx.wp,
                        plane: ctx.plane,
                        row: ctx.wp,
                        channels: c1 - c0,
                        ky0,
                        nky: ky1 - ky0,
                        k: ctx.k,
                        stride: ctx.s,
                        weights: &ctx.packed[(o * ctx.c + c0 * n) * kk..],
                        j0,
                        j1,
                        first: c0 == 0,
                        last: c1 == ctx.c,
                    };
                    let out = &mut out[o * oplane..];
                    if rows > 1 {
                        run_group(ctx.isa, &job, n, &post, out, oplane, orow, rows, ctx.orow);
                    } else {
                        run_row(ctx.isa, &job, n, &post, out, oplane, orow);
                    }
                }
                c0 = c1;
            }
            j0 = j1;
        }
        y += rows as u32;
    }
}

/// Output rows computed together on `isa` for a `k`×`k` stride-`s` conv whose rows have
/// `ncols` columns: on the 16-lane kernel (AVX-512 and its software twin), when a 3×3
/// stride-1 row ends in a tile of at most 2 vectors (rows of 1–32 columns, as the deep
/// layers' FTP tiles are, or 64-column tiles plus up to 32), as many rows as one tile of that
/// rest holds ([`wide::rows_for`]: 4 for up to 16 columns, 2 for up to 32), which then share
/// their weight loads ([`run_group`]); else 1. The AVX2 and NEON tiles are 16 columns, which
/// such rows fill.
fn group_rows(isa: Isa, k: usize, s: usize, ncols: usize) -> usize {
    match isa {
        Isa::Avx512 | Isa::Soft16 if k == 3 && s == 1 && !ncols.is_multiple_of(XBLOCK_WIDE) => {
            wide::rows_for(LANES, 4, ncols % XBLOCK_WIDE)
        }
        _ => 1,
    }
}

/// Runs `rows` consecutive output rows of `job` (row `i` from `job.base + i·job.row`, into
/// `out` at `orow + i·ostep`), `n` channels on `isa` (one that [`group_rows`] groups): each
/// row's full 64-column tiles one row at a time, then the narrower rest of the rows in
/// multi-row tiles of as many rows as it allows.
#[allow(clippy::too_many_arguments)]
fn run_group(
    isa: Isa,
    job: &Row<'_>,
    n: usize,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
    rows: usize,
    ostep: usize,
) {
    let width = job.j1 - job.j0;
    let main = width / XBLOCK_WIDE * XBLOCK_WIDE;
    let row = |i: usize, j0: usize, j1: usize| Row {
        base: job.base + i * job.row,
        j0,
        j1,
        ..*job
    };
    if main > 0 {
        for i in 0..rows {
            let r = row(i, job.j0, job.j0 + main);
            run_row(isa, &r, n, post, out, oplane, orow + i * ostep);
        }
    }
    if main == width {
        return;
    }
    let per = wide::rows_for(LANES, 4, width - main);
    let mut i = 0;
    while i < rows {
        let m = per.min(rows - i);
        let r = row(i, job.j0 + main, job.j1);
        if m > 1 {
            run_rows(isa, &r, n, post, out, oplane, orow + i * ostep, m, ostep);
        } else {
            run_row(isa, &r, n, post, out, oplane, orow + i * ostep);
        }
        i += m;
    }
}

/// Runs `rows` consecutive output rows of `job` (row `i` from `job.base + i·job.row`, into
/// `out` at `orow + i·ostep`) as one multi-row tile of `n` channels on the 16-lane kernel.
#[allow(clippy::too_many_arguments)]
fn run_rows(
    isa: Isa,
    job: &Row<'_>,
    n: usize,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
    rows: usize,
    ostep: usize,
) {
    macro_rules! by_n {
        ($rows:path) => {{
            use $rows as f;
            match n {
                6 => f::<6>(job, post, out, oplane, orow, rows, ostep),
                5 => f::<5>(job, post, out, oplane, orow, rows, ostep),
                4 => f::<4>(job, post, out, oplane, orow, rows, ostep),
                3 => f::<3>(job, post, out, oplane, orow, rows, ostep),
                2 => f::<2>(job, post, out, oplane, orow, rows, ostep),
                _ => f::<1>(job, post, out, oplane, orow, rows, ostep),
            }
        }};
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => by_n!(avx512::rows),
        Isa::Soft16 => by_n!(wide::rows_soft),
        _ => unreachable!("group_rows gives {isa:?} one row at a time"),
    }
}
