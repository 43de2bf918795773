//! The two stages of a chunk, written once over lane arrays and compiled per instruction set
//! (`isa`): the input stage (phase copy and input transforms of a range of channels) and the
//! product stage (the batched element-wise products as small GEMMs, then output transforms,
//! batch norm and activation, for a range of output channel blocks).
//!
//! Every value is computed by the same operations in the same order whatever the chunk,
//! thread, region or instruction set (no reassociation: Rust never contracts or reorders
//! float operations), so all paths agree bit for bit and tiles equal the full frame.
// Index loops: the transforms read their arrays across two dimensions at once.
#![allow(clippy::needless_range_loop)]

use tessera_core::region::Region;
use tessera_core::tensor::FeatureView;

use super::form::{at, bt, Form, AMAX, W};
use super::geo::{Chunk, Geo};
use super::MR;

/// `a·b + c` with one rounding.
#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(feature = "std"))]
    {
        libm::fmaf(a, b, c)
    }
}

/// The input stage of a chunk (all input channels).
pub(super) struct InputJob<'a> {
    pub geo: &'a Geo,
    pub chunk: Chunk,
    pub input: &'a FeatureView<'a>,
    /// One phase plane per channel.
    pub phase: &'a mut [f32],
    /// `V[ξ][c][pp]`.
    pub v: &'a mut [f32],
}

/// Copies the channels' input rows into phase planes (zeros outside the map and the view),
/// then writes every block's `Bᵀ d B` to `V`.
#[inline(always)]
pub(super) fn input(job: InputJob<'_>) {
    match job.geo.form {
        Form::F2 => input_form::<2, 4>(job),
        Form::F4 => input_form::<4, 6>(job),
    }
}

/// The form of output block side `M` (constant after monomorphisation).
#[inline(always)]
const fn form_of<const M: usize>() -> Form {
    if M == 2 {
        Form::F2
    } else {
        Form::F4
    }
}

/// [`input`] for block side `M`, `α = A` (loops of constant length, unrolled).
#[inline(always)]
fn input_form<const M: usize, const A: usize>(job: InputJob<'_>) {
    let g = job.geo;
    let (m, a) = (M, A);
    let form = form_of::<M>();
    let plane = g.plane(job.chunk.n);
    let vr = job.input.region();
    let x_first = (g.bx0 * m) as i64 - g.pad;
    let y_first = (job.chunk.by * m) as i64 - g.pad;
    let (n, pp) = (g.c, g.pp(job.chunk.n));
    for ci in 0..n {
        let c = ci;
        let ph = &mut job.phase[ci * plane..][..plane];
        for r in 0..g.prow(job.chunk.n) {
            let y = y_first + r as i64;
            let dst = &mut ph[r * m * g.ncp..][..m * g.ncp];
            let inside = y >= 0 && y < g.in_h && vr.y.contains(y as u32);
            if !inside {
                dst.fill(0.0);
                continue;
            }
            let row = job.input.row(c as u32, y as u32);
            let (xs, xe) = (vr.x.start as i64, vr.x.end.min(g.in_w as u32) as i64);
            for q in 0..m {
                // Phase q holds columns x = x_first + j·m + q: those in [xs, xe) come from the
                // row (j in [lo, hi)), the rest are zeros.
                let first = |bound: i64| {
                    let d = bound - x_first - q as i64;
                    (if d <= 0 {
                        0
                    } else {
                        (d + m as i64 - 1) / m as i64
                    })
                    .min(g.ncp as i64) as usize
                };
                let (lo, hi) = (first(xs), first(xe).max(first(xs)));
                let ph = &mut dst[q * g.ncp..][..g.ncp];
                ph[..lo].fill(0.0);
                ph[hi..].fill(0.0);
                // x of j = lo, at or right of xs.
                let start = (x_first + (q + lo * m) as i64 - xs).max(0) as usize;
                for (j, v) in ph[lo..hi].iter_mut().enumerate() {
                    *v = row[start + j * m];
                }
            }
        }
        let blocks = job.chunk.n * g.nbx;
        for p in (0..blocks).step_by(W) {
            let valid = W.min(blocks - p);
            let mut d = [[[0.0f32; W]; AMAX]; AMAX];
            for seg in segments(p, valid, g.nbx) {
                for (sr, drow) in d.iter_mut().enumerate().take(a) {
                    let row = seg.br * m + sr;
                    for (sc, dv) in drow.iter_mut().enumerate().take(a) {
                        let at = (row * m + sc % m) * g.ncp + seg.bx + sc / m;
                        dv[seg.lane..][..seg.len].copy_from_slice(&ph[at..][..seg.len]);
                    }
                }
            }
            let mut t = [[[0.0f32; W]; AMAX]; AMAX];
            for sr in 0..a {
                t[sr] = bt(form, &d[sr]);
            }
            for xc in 0..a {
                let mut col = [[0.0f32; W]; AMAX];
                for sr in 0..a {
                    col[sr] = t[sr][xc];
                }
                let vv = bt(form, &col);
                for (xr, vx) in vv.iter().enumerate().take(a) {
                    let row = ((xr * a + xc) * n + ci) * pp;
                    job.v[row + p..][..valid].copy_from_slice(&vx[..valid]);
                }
            }
        }
    }
}

/// Lanes `[lane, lane + len)` of a lane vector: blocks `bx..bx + len` of chunk block row `br`.
#[derive(Clone, Copy)]
struct Segment {
    lane: usize,
    br: usize,
    bx: usize,
    len: usize,
}

/// The block-row pieces of the lane vector of chunk blocks `p..p + valid` (blocks numbered
/// row by row, `nbx` per row): lane vectors run over the chunk's blocks in order, across
/// block rows, so narrow maps and tiles fill every lane.
#[inline(always)]
fn segments(p: usize, valid: usize, nbx: usize) -> impl Iterator<Item = Segment> {
    let mut q = p;
    core::iter::from_fn(move || {
        (q < p + valid).then(|| {
            let (br, bx) = (q / nbx, q % nbx);
            let len = (nbx - bx).min(p + valid - q);
            let seg = Segment {
                lane: q - p,
                br,
                bx,
                len,
            };
            q += len;
            seg
        })
    })
}

/// The product stage of a chunk (all output channels).
pub(super) struct ProductJob<'a, 'o> {
    pub geo: &'a Geo,
    pub chunk: Chunk,
    /// All transformed filters of the layer.
    pub u: &'a [f32],
    /// `V[ξ][c][pp]` of all channels.
    pub v: &'a [f32],
    /// Products `M[k][ξ][pp]` (`kp` channels).
    pub m: &'a mut [f32],
    /// Folded batch norm `(a, b)` of every output channel of the layer.
    pub post: &'a [(f32, f32)],
    pub leaky: bool,
    /// The output region.
    pub region: Region,
    /// Per output channel, its rows of the region from map row `y0` on (`[y][x]`): the rows
    /// this thread's blocks cover.
    pub out: &'a mut [&'o mut [f32]],
    pub y0: usize,
}

/// One `MR × NR` tile of products (blocks `pv..pv + NR` of rows `vstride` apart) over input
/// channels `0..c` of `u`/`v`, continuing the sums `acc` (zeros for the first channel block):
/// `Σ_c u[c][r] · v[c][j]` in channel order, one fused multiply-add per term.
#[inline(always)]
fn tile<const NR: usize>(
    mut acc: [[f32; NR]; MR],
    u: &[f32],
    v: &[f32],
    vstride: usize,
    pv: usize,
    c: usize,
) -> [[f32; NR]; MR] {
    // Whole rows and whole weight groups: the slice checks left are loop-invariant, so the
    // hottest loop carries none.
    let rows = v[..c * vstride].chunks_exact(vstride);
    for (uu, vrow) in u[..c * MR].chunks_exact(MR).zip(rows) {
        let vv = &vrow[pv..pv + NR];
        for r in 0..MR {
            for j in 0..NR {
                acc[r][j] = fma(uu[r], vv[j], acc[r][j]);
            }
        }
    }
    acc
}

/// Input channels per GEMM pass: a tile's `V` rows (`CB × NR` values) stay in L1 while every
/// output channel block runs over them; later passes continue the sums stored in `M` (an f32
/// stored and reloaded is exact, so each sum is the same chain as in one pass).
const CB: usize = 128;

/// One `MR × NR` tile at blocks `pv..pv + NR` of output channel block `kb` (job-relative),
/// element `xi`, input channels `c0..c0 + cn`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm_tile<const NR: usize>(
    job: &mut ProductJob<'_, '_>,
    pp: usize,
    xi: usize,
    kb: usize,
    pv: usize,
    c0: usize,
    cn: usize,
) {
    let (e, c) = (job.geo.e, job.geo.c);
    let u = &job.u[((kb * e + xi) * c + c0) * MR..][..cn * MR];
    let at = |r: usize| ((kb * MR + r) * e + xi) * pp + pv;
    let mut acc = [[0.0; NR]; MR];
    if c0 > 0 {
        for (r, row) in acc.iter_mut().enumerate() {
            row.copy_from_slice(&job.m[at(r)..][..NR]);
        }
    }
    let acc = tile::<NR>(acc, u, &job.v[(xi * c + c0) * pp..], pp, pv, cn);
    for (r, row) in acc.iter().enumerate() {
        job.m[at(r)..][..NR].copy_from_slice(row);
    }
}

/// Products (`NR` blocks per GEMM tile, a 16-block tile at the end), then output transforms
/// into `out`.
#[inline(always)]
pub(super) fn product<const NR: usize>(mut job: ProductJob<'_, '_>) {
    let g = job.geo;
    let (e, c) = (g.e, g.c);
    let pp = g.pp(job.chunk.n);
    let nkb = job.m.len() / (MR * e * pp);
    // Blocks with products: the chunk's, rounded up to whole 16-block tiles.
    let used = (job.chunk.n * g.nbx).div_ceil(16) * 16;
    for xi in 0..e {
        let mut c0 = 0;
        while c0 < c {
            let cn = CB.min(c - c0);
            let mut pv = 0;
            while pv < used {
                let wide = pv + NR <= used;
                for kb in 0..nkb {
                    if wide {
                        gemm_tile::<NR>(&mut job, pp, xi, kb, pv, c0, cn);
                    } else {
                        gemm_tile::<16>(&mut job, pp, xi, kb, pv, c0, cn);
                    }
                }
                pv += if wide { NR } else { 16 };
            }
            c0 += cn;
        }
    }
    match g.form {
        Form::F2 => output::<2, 4>(&mut job, nkb),
        Form::F4 => output::<4, 6>(&mut job, nkb),
    }
}

/// Output transforms, batch norm and activation of the job's channels, stored where they
/// fall inside the region.
#[inline(always)]
fn output<const M: usize, const A: usize>(job: &mut ProductJob<'_, '_>, nkb: usize) {
    let g = job.geo;
    let (m, a, e) = (M, A, g.e);
    let form = form_of::<M>();
    let pp = g.pp(job.chunk.n);
    let r = job.region;
    let rw = r.width() as usize;
    let kn = (nkb * MR).min(g.k);
    for kl in 0..kn {
        let (pa, pb) = job.post[kl];
        let mk = &job.m[kl * e * pp..][..e * pp];
        let out = &mut *job.out[kl];
        let blocks = job.chunk.n * g.nbx;
        for p in (0..blocks).step_by(W) {
            let valid = W.min(blocks - p);
            {
                let mut t = [[[0.0f32; W]; 4]; AMAX];
                for (xr, tr) in t.iter_mut().enumerate().take(a) {
                    let mut mm = [[0.0f32; W]; AMAX];
                    for (xc, v) in mm.iter_mut().enumerate().take(a) {
                        v.copy_from_slice(&mk[(xr * a + xc) * pp + p..][..W]);
                    }
                    *tr = at(form, &mm);
                }
                // y[j][i]: output row i, column j of each lane's block.
                let mut y = [[[0.0f32; W]; 4]; 4];
                for (j, yj) in y.iter_mut().enumerate().take(m) {
                    let mut col = [[0.0f32; W]; AMAX];
                    for xr in 0..a {
                        col[xr] = t[xr][j];
                    }
                    *yj = at(form, &col);
                }
                for seg in segments(p, valid, g.nbx) {
                    // Lanes [lane, lane + len) are blocks bx.. of block row br.
                    let x_abs = (g.bx0 + seg.bx) * m;
                    let (xa, xb) = (
                        (r.x.start as usize).max(x_abs),
                        (r.x.end as usize).min(x_abs + seg.len * m),
                    );
                    for i in 0..m {
                        let oy = (job.chunk.by + seg.br) * m + i;
                        if oy < r.y.start as usize || oy >= r.y.end as usize || xa >= xb {
                            continue;
                        }
                        let mut line = [0.0f32; W * 4];
                        for lane in 0..seg.len {
                            for j in 0..m {
                                let mut v = fma(y[j][i][seg.lane + lane], pa, pb);
                                if job.leaky && v <= 0.0 {
                                    v *= 0.1;
                                }
                                line[lane * m + j] = v;
                            }
                        }
                        let row = (oy - job.y0) * rw;
                        out[row + xa - r.x.start as usize..][..xb - xa]
                            .copy_from_slice(&line[xa - x_abs..xb - x_abs]);
                    }
                }
            }
        }
    }
}
