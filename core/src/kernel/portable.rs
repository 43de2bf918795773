//! The fast portable kernels: blocked loops in safe Rust that the compiler auto-vectorises.
//!
//! A conv computes `OB` output channels × up to `CW` columns of one output row at a time into
//! stack accumulator rows, looping input channel → kernel row → kernel column → channel of the
//! block → columns, the last loop contiguous (for stride 1) so it vectorises. Taps outside the
//! map are skipped by narrowing each kernel row/column to the outputs it reaches, never per
//! element. 1×1 convs (one tap per channel, too little work per tap for that) keep `OB × XB`
//! accumulators in registers instead. Either way every output sums its own taps in the
//! reference order (input channel, kernel row, kernel column, from 0.0, a product then a sum,
//! no FMA), so results match [`Reference`](super::Reference) bit for bit; blocking only
//! interleaves independent sums.

use super::{check_conv_call, check_pool_call, input_span, KernelError, Kernels, Post};
use crate::model::weights::ConvParams;
use crate::model::{Conv, MaxPool, Shape};
use crate::region::Span;
use crate::tensor::{FeatureView, FeatureViewMut};

/// Output channels per block: each input segment is loaded once for `OB` accumulator rows.
const OB: usize = 4;
/// Output columns per chunk: `OB × CW` accumulators (1 KiB) stay in L1 on the stack.
const CW: usize = 64;
/// Output columns per register block of the 1×1 path (two 4-lane vectors per channel).
const XB: usize = 8;

/// Blocked over output channels and columns; same per-output order as
/// [`Reference`](super::Reference).
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

/// Layer and view geometry shared by the conv loops, in signed/usize form.
#[derive(Clone, Copy)]
struct Geo<'v> {
    /// Kernel side.
    k: usize,
    /// Stride.
    s: usize,
    /// Left/top padding.
    p: i64,
    /// Map width and height.
    w: i64,
    h: i64,
    /// Input channels.
    c: usize,
    input: &'v FeatureView<'v>,
}

impl Geo<'_> {
    /// Kernel rows `ky0..ky1` whose input row lies inside the map for output row `y`.
    fn rows(&self, y: u32) -> (usize, usize) {
        taps(y as i64 * self.s as i64 - self.p, self.k, self.h)
    }
}

/// Taps `t0..t1` of a `k`-wide window starting at `start` that fall inside `0..extent`.
fn taps(start: i64, k: usize, extent: i64) -> (usize, usize) {
    let t0 = (-start).clamp(0, k as i64);
    let t1 = (extent - start).clamp(t0, k as i64);
    (t0 as usize, t1 as usize)
}

/// Output columns `x` (relative to `x0`, at most `n`) whose kernel column `kx` lands inside
/// `0..w`: `0 ≤ x·s − p + kx < w`.
fn valid_cols(g: &Geo<'_>, x0: i64, n: usize, kx: usize) -> (usize, usize) {
    let (s, off) = (g.s as i64, kx as i64 - g.p);
    // First x with x·s + off ≥ 0 and one past the last with x·s + off ≤ w − 1.
    let (lo, hi) = if s == 1 {
        // The common case, without the divisions.
        ((-off).max(0), g.w - off)
    } else if g.w - 1 - off < 0 {
        (0, 0)
    } else {
        (((-off).max(0) + s - 1) / s, (g.w - 1 - off) / s + 1)
    };
    let a = (lo - x0).clamp(0, n as i64);
    let b = (hi - x0).clamp(a, n as i64);
    (a as usize, b as usize)
}

/// `acc[j] += w · v[j·s]`: a product then a sum (no FMA), contiguous when `s == 1` so the loop
/// vectorises.
#[inline(always)]
fn madd(acc: &mut [f32], w: f32, v: &[f32], s: usize) {
    if s == 1 {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += w * x;
        }
    } else {
        for (a, &x) in acc.iter_mut().zip(v.iter().step_by(s)) {
            *a += w * x;
        }
    }
}

/// `acc += w · v` lane by lane (product then sum, no FMA), in 4-lane groups for the SLP
/// vectoriser.
#[inline(always)]
fn madd_block(acc: &mut [f32; XB], w: f32, v: &[f32; XB]) {
    for (a, x) in acc.chunks_exact_mut(4).zip(v.chunks_exact(4)) {
        a[0] += w * x[0];
        a[1] += w * x[1];
        a[2] += w * x[2];
        a[3] += w * x[3];
    }
}

/// Sums `B` channels × `XB` columns from `x0` of row `y` of a 1×1 conv (no padding, so every
/// tap is inside the map) in register accumulators: one tap per input channel leaves too
/// little work per tap for the row-chunk path.
#[inline(always)]
fn block1<const B: usize>(
    g: &Geo<'_>,
    wo: &[&[f32]; B],
    y: u32,
    x0: u32,
    s: usize,
) -> [[f32; XB]; B] {
    let view = g.input.region();
    let plane = view.area() as usize;
    let off = (y as usize * s - view.y.start as usize) * view.width() as usize
        + (x0 as usize * s - view.x.start as usize);
    let span = (XB - 1) * s + 1;
    let wc: [&[f32]; B] = core::array::from_fn(|o| &wo[o][..g.c]);
    let mut acc = [[0.0f32; XB]; B];
    for (c, chunk) in g.input.data()[off..].chunks(plane).take(g.c).enumerate() {
        let row = &chunk[..span];
        let v: [f32; XB] = core::array::from_fn(|j| row[j * s]);
        for o in 0..B {
            madd_block(&mut acc[o], wc[o][c], &v);
        }
    }
    acc
}

/// Computes output channels `o0..o0+B` of `out`'s region, `CW` columns of a row at a time.
fn conv_channels<const B: usize>(
    g: &Geo<'_>,
    conv: &Conv,
    params: &ConvParams<'_>,
    o0: usize,
    out: &mut FeatureViewMut<'_>,
) {
    let (k, s) = (g.k, g.s);
    let per = g.c * k * k;
    let wo: [&[f32]; B] =
        core::array::from_fn(|o| &params.weights[(o0 + o) * per..(o0 + o + 1) * per]);
    let posts: [Post; B] = core::array::from_fn(|o| Post::new(conv, params, o0 + o));
    let region = out.region();
    if k == 1 && g.p == 0 && region.width() as usize >= XB {
        conv1_channels(g, &wo, &posts, o0, out);
        return;
    }
    let vx = g.input.region().x.start as i64;
    for y in region.y.start..region.y.end {
        let (ky0, ky1) = g.rows(y);
        let mut x0 = region.x.start;
        while x0 < region.x.end {
            let n = ((region.x.end - x0) as usize).min(CW);
            let mut acc = [[0.0f32; CW]; B];
            // No column tap inside the map: the view need not hold these rows at all.
            let cols = input_span(
                Span::new(x0, x0 + n as u32),
                k as u32,
                s as u32,
                g.p as u32,
                g.w as u32,
            );
            for c in 0..if cols.is_empty() { 0 } else { g.c } {
                for ky in ky0..ky1 {
                    let iy = (y as i64 * s as i64 - g.p + ky as i64) as u32;
                    let row = g.input.row(c as u32, iy);
                    let t = (c * k + ky) * k;
                    for kx in 0..k {
                        // Taps outside the map are skipped by narrowing the columns, not per element.
                        let (a, b) = valid_cols(g, x0 as i64, n, kx);
                        if a == b {
                            continue;
                        }
                        let ix = ((x0 as usize + a) * s) as i64 - g.p + kx as i64 - vx;
                        let v = &row[ix as usize..ix as usize + (b - a - 1) * s + 1];
                        for o in 0..B {
                            madd(&mut acc[o][a..b], wo[o][t + kx], v, s);
                        }
                    }
                }
            }
            for (o, (acc, post)) in acc.iter().zip(&posts).enumerate() {
                let at = (x0 - region.x.start) as usize;
                let dst = &mut out.row_mut((o0 + o) as u32, y)[at..at + n];
                for (d, &a) in dst.iter_mut().zip(&acc[..n]) {
                    *d = post.apply(a);
                }
            }
            x0 += n as u32;
        }
    }
}

/// The 1×1 path of [`conv_channels`] for regions at least `XB` wide: blocks of `XB` columns,
/// the last one shifted left to end at the region's edge (columns it computes twice get
/// identical sums).
fn conv1_channels<const B: usize>(
    g: &Geo<'_>,
    wo: &[&[f32]; B],
    posts: &[Post; B],
    o0: usize,
    out: &mut FeatureViewMut<'_>,
) {
    let region = out.region();
    for y in region.y.start..region.y.end {
        let mut bx = region.x.start;
        while bx < region.x.end {
            let x0 = bx.min(region.x.end - XB as u32);
            let acc = if g.s == 1 {
                block1::<B>(g, wo, y, x0, 1)
            } else {
                block1::<B>(g, wo, y, x0, g.s)
            };
            for (o, (acc, post)) in acc.iter().zip(posts).enumerate() {
                let at = (x0 - region.x.start) as usize;
                let dst = &mut out.row_mut((o0 + o) as u32, y)[at..at + XB];
                for (d, &a) in dst.iter_mut().zip(acc) {
                    *d = post.apply(a);
                }
            }
            bx = x0 + XB as u32;
        }
    }
}

impl Kernels for Portable {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        check_conv_call(conv, map, params, input, out)?;
        if out.region().is_empty() {
            return Ok(());
        }
        let g = Geo {
            k: conv.size as usize,
            s: conv.stride as usize,
            p: conv.pad as i64,
            w: map.w as i64,
            h: map.h as i64,
            c: map.c as usize,
            input,
        };
        let n = conv.filters as usize;
        let mut o = 0;
        while o + OB <= n {
            conv_channels::<OB>(&g, conv, params, o, out);
            o += OB;
        }
        while o < n {
            conv_channels::<1>(&g, conv, params, o, out);
            o += 1;
        }
        Ok(())
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        check_pool_call(pool, map, input, out)?;
        let region = out.region();
        if region.is_empty() {
            return Ok(());
        }
        let (z, s, q) = (pool.size as usize, pool.stride as i64, pool.offset() as i64);
        let vx = input.region().x.start as i64;
        // No column tap inside the map: every output is -f32::MAX and rows may be absent.
        let rows = if input_span(region.x, pool.size, pool.stride, pool.offset(), map.w).is_empty()
        {
            0
        } else {
            z
        };
        for c in 0..map.c {
            for y in region.y.start..region.y.end {
                let ys = y as i64 * s - q;
                let (ky0, ky1) = taps(ys, rows, map.h as i64);
                let dst = out.row_mut(c, y);
                dst.fill(-f32::MAX);
                // Row by row: each output still sees its taps in (ky, kx) order.
                for ky in ky0..ky1 {
                    let row = input.row(c, (ys + ky as i64) as u32);
                    for (d, x) in dst.iter_mut().zip(region.x.start..region.x.end) {
                        let xs = x as i64 * s - q;
                        let (kx0, kx1) = taps(xs, z, map.w as i64);
                        let a = (xs + kx0 as i64 - vx) as usize;
                        let mut max = *d;
                        for &v in &row[a..a + (kx1 - kx0)] {
                            max = if v > max { v } else { max };
                        }
                        *d = max;
                    }
                }
            }
        }
        Ok(())
    }
}
