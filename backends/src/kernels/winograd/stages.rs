//! The two stages of a chunk, written once over lane arrays and compiled per instruction set
//! (`isa`): the input stage (phase copy and input transforms of a range of channels) and the
//! product stage (the batched element-wise products as small GEMMs, then output transforms,
//! batch norm and activation, for a range of output channel blocks).
//!
//! Every value is computed by the same operations in the same order whatever the chunk,
//! thread, region or instruction set (no reassociation: Rust never contracts or reorders
//! float operations), so all paths agree bit for bit and tiles equal the full frame.

use tessera_core::region::Region;
use tessera_core::tensor::FeatureView;

use super::form::{at, bt, AMAX, V, W};
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

/// The input stage of channels `c0..c0 + n` of a chunk.
pub(super) struct InputJob<'a> {
    pub geo: &'a Geo,
    pub chunk: Chunk,
    pub input: &'a FeatureView<'a>,
    pub c0: usize,
    /// `n` phase planes.
    pub phase: &'a mut [f32],
    /// `V` of the `n` channels: `n · α² · pp`.
    pub v: &'a mut [f32],
}

/// Copies the channels' input rows into phase planes (zeros outside the map and the view),
/// then writes every block's `Bᵀ d B` to `V`.
#[inline(always)]
pub(super) fn input(job: InputJob<'_>) {
    let g = job.geo;
    let (m, a, e) = (g.m, g.a, g.e);
    let plane = g.plane(job.chunk.n);
    let pp = g.pp(job.chunk.n);
    let vr = job.input.region();
    let x_first = (g.bx0 * m) as i64 - g.pad;
    let y_first = (job.chunk.by * m) as i64 - g.pad;
    let n = job.phase.len() / plane;
    for ci in 0..n {
        let c = job.c0 + ci;
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
            for j in 0..g.ncp {
                for q in 0..m {
                    let x = x_first + (j * m + q) as i64;
                    dst[q * g.ncp + j] = if x >= xs && x < xe {
                        row[(x - xs) as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
        let v = &mut job.v[ci * e * pp..][..e * pp];
        for br in 0..job.chunk.n {
            for grp in 0..g.groups() {
                let valid = W.min(g.nbx - grp * W);
                let mut d = [[[0.0f32; W]; AMAX]; AMAX];
                for (sr, drow) in d.iter_mut().enumerate().take(a) {
                    let row = br * m + sr;
                    for (sc, dv) in drow.iter_mut().enumerate().take(a) {
                        let at = (row * m + sc % m) * g.ncp + grp * W + sc / m;
                        dv.copy_from_slice(&ph[at..][..W]);
                    }
                }
                let mut t = [[[0.0f32; W]; AMAX]; AMAX];
                for sr in 0..a {
                    t[sr] = bt(g.form, &d[sr]);
                }
                let p = br * g.nbx + grp * W;
                for xc in 0..a {
                    let col: [V; AMAX] = core::array::from_fn(|sr| t[sr][xc]);
                    let vv = bt(g.form, &col);
                    for (xr, vx) in vv.iter().enumerate().take(a) {
                        v[(xr * a + xc) * pp + p..][..valid].copy_from_slice(&vx[..valid]);
                    }
                }
            }
        }
    }
}

/// The product stage of output channel blocks `kb0..kb0 + n` of a chunk.
pub(super) struct ProductJob<'a> {
    pub geo: &'a Geo,
    pub chunk: Chunk,
    /// All transformed filters of the layer.
    pub u: &'a [f32],
    /// `V` of all channels.
    pub v: &'a [f32],
    pub kb0: usize,
    /// Products of the blocks' channels: `n · MR · α² · pp`.
    pub m: &'a mut [f32],
    /// Folded batch norm `(a, b)` of every output channel of the layer.
    pub post: &'a [(f32, f32)],
    pub leaky: bool,
    /// The output region, and the output values of the blocks' channels (`[k][y][x]` over it).
    pub region: Region,
    pub out: &'a mut [f32],
}

/// One `MR × NR` tile of products over all input channels: `Σ_c u[c][r] · v[c][j]`, summed
/// in channel order with one fused multiply-add per term.
#[inline(always)]
fn tile<const NR: usize>(u: &[f32], v: &[f32], vstride: usize, c: usize) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for ci in 0..c {
        let uu: &[f32; MR] = u[ci * MR..][..MR].try_into().expect("MR weights");
        let vv: &[f32; NR] = v[ci * vstride..][..NR].try_into().expect("NR blocks");
        for r in 0..MR {
            for j in 0..NR {
                acc[r][j] = fma(uu[r], vv[j], acc[r][j]);
            }
        }
    }
    acc
}

/// Products (`NR` blocks per GEMM tile), then output transforms into `out`.
#[inline(always)]
pub(super) fn product<const NR: usize>(mut job: ProductJob<'_>) {
    let g = job.geo;
    let (e, c) = (g.e, g.c);
    let pp = g.pp(job.chunk.n);
    let nkb = job.m.len() / (MR * e * pp);
    // Columns of `V` per panel: a panel of one ξ stays in L2 while every channel block runs.
    let panel = ((64 << 10) / (4 * c.max(1)) / NR * NR).max(NR);
    for xi in 0..e {
        let mut ps = 0;
        while ps < pp {
            let pe = (ps + panel).min(pp);
            for kb in 0..nkb {
                let u = &job.u[((job.kb0 + kb) * e + xi) * c * MR..][..c * MR];
                let mut pv = ps;
                while pv < pe {
                    let acc = tile::<NR>(u, &job.v[xi * pp + pv..], e * pp, c);
                    for (r, row) in acc.iter().enumerate() {
                        job.m[((kb * MR + r) * e + xi) * pp + pv..][..NR].copy_from_slice(row);
                    }
                    pv += NR;
                }
            }
            ps = pe;
        }
    }
    output(&mut job, nkb);
}

/// Output transforms, batch norm and activation of the job's channels, stored where they
/// fall inside the region.
// Index loops: `y[j][i][lane]` is read across two dimensions at once.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn output(job: &mut ProductJob<'_>, nkb: usize) {
    let g = job.geo;
    let (m, a, e) = (g.m, g.a, g.e);
    let pp = g.pp(job.chunk.n);
    let r = job.region;
    let (rw, rh) = (r.width() as usize, r.height() as usize);
    let k0 = job.kb0 * MR;
    let kn = (nkb * MR).min(g.k - k0);
    for kl in 0..kn {
        let (pa, pb) = job.post[k0 + kl];
        let mk = &job.m[kl * e * pp..][..e * pp];
        let out = &mut job.out[kl * rw * rh..][..rw * rh];
        for br in 0..job.chunk.n {
            let by = job.chunk.by + br;
            for grp in 0..g.groups() {
                let valid = W.min(g.nbx - grp * W);
                let p = br * g.nbx + grp * W;
                let mut t = [[[0.0f32; W]; 4]; AMAX];
                for (xr, tr) in t.iter_mut().enumerate().take(a) {
                    let mm: [V; AMAX] = core::array::from_fn(|xc| {
                        let mut v = [0.0; W];
                        if xc < a {
                            v.copy_from_slice(&mk[(xr * a + xc) * pp + p..][..W]);
                        }
                        v
                    });
                    *tr = at(g.form, &mm);
                }
                // y[j][i]: output row i, column j of each lane's block.
                let mut y = [[[0.0f32; W]; 4]; 4];
                for (j, yj) in y.iter_mut().enumerate().take(m) {
                    let col: [V; AMAX] = core::array::from_fn(|xr| t[xr][j]);
                    *yj = at(g.form, &col);
                }
                let x_abs = (g.bx0 + grp * W) * m;
                let (xa, xb) = (
                    (r.x.start as usize).max(x_abs),
                    (r.x.end as usize).min(x_abs + valid * m),
                );
                for i in 0..m {
                    let oy = by * m + i;
                    if oy < r.y.start as usize || oy >= r.y.end as usize || xa >= xb {
                        continue;
                    }
                    let mut line = [0.0f32; W * 4];
                    for lane in 0..W {
                        for j in 0..m {
                            let mut v = fma(y[j][i][lane], pa, pb);
                            if job.leaky && v <= 0.0 {
                                v *= 0.1;
                            }
                            line[lane * m + j] = v;
                        }
                    }
                    let row = (oy - r.y.start as usize) * rw;
                    out[row + xa - r.x.start as usize..][..xb - xa]
                        .copy_from_slice(&line[xa - x_abs..xb - x_abs]);
                }
            }
        }
    }
}
