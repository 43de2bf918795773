//! The products of a chunk's last, partly filled lane vector, vectorised over output channels.
//!
//! The product stage's register tiles run 16 blocks per lane vector, so a chunk of `P` blocks
//! pays for `⌈P / 16⌉·16`: a small tile's call (a 13×13 tile of a 38-wide map is 49 F2 blocks,
//! a band of layer 4 as F4 17) wastes up to 15 lanes of every product. Here the last `P mod 16`
//! blocks run with output channels in the lanes instead (the filters' channel-major copy,
//! `filters::k_offset`; YOLOv2's layers have multiples of 16 output channels): tiles of up to
//! [`JB`] blocks × `KV` vectors of 16 output channels, every lane an output. Each product
//! `M[k][ξ][p]` is the same chain of fused multiply-adds over the input channels in order as
//! in the block-vectorised tiles (`fma(u, v, acc)` and `fma(v, u, acc)` round alike, and a
//! sum stored between channel passes there is exact), so results stay bit-identical.
// Index loops: the tiles read their arrays across two dimensions at once.
#![allow(clippy::needless_range_loop)]

use super::filters::{k_offset, KG};
use super::lanes::{Lanes, W};

/// Most blocks per tile: `JB × 4` accumulators (AVX-512: 24 of 32 registers, with 4 filter
/// vectors and a broadcast).
const JB: usize = 6;

/// Filter values the tiles prefetch ahead (each input channel reads `KG` at most).
const PREFETCH: usize = 8 * KG;

/// What the tail of one chunk multiplies.
pub(super) struct TailJob<'a> {
    /// The channel-major filters of the layer (`filters::k_offset`).
    pub uk: &'a [f32],
    /// `V[ξ][c][pp]`.
    pub v: &'a [f32],
    /// `M[k][ξ][pp]` of all output channels.
    pub m: &'a mut [f32],
    /// Transform elements, input channels, output channels (`k`), `k` rounded up to lanes.
    pub e: usize,
    pub c: usize,
    pub k: usize,
    pub kq: usize,
    pub pp: usize,
    /// The tail's blocks: `p0..p0 + r`, `r < W`.
    pub p0: usize,
    pub r: usize,
}

/// Writes `M[k][ξ][p]` for every output channel `k`, element `ξ` and tail block `p`.
///
/// # Safety
///
/// The CPU runs `L` (the caller checks it).
#[inline(always)]
pub(super) unsafe fn products<L: Lanes>(job: TailJob<'_>) {
    let TailJob {
        uk,
        v,
        m,
        e,
        c,
        k,
        kq,
        pp,
        p0,
        r,
    } = job;
    // Every index below: filters `k_offset(ξ, g, ci) + kk < e·c·kq`, `V` at `(ξ·c + ci)·pp + p`
    // with `p < p0 + r ≤ pp`, `M` at `(k·e + ξ)·pp + p` with `k < k`.
    assert!(kq % W == 0 && kq >= k && r < W && p0 + r <= pp);
    assert!(uk.len() >= e * c * kq && v.len() >= e * c * pp && m.len() >= k * e * pp);
    for xi in 0..e {
        for g in 0..kq.div_ceil(KG) {
            let gw = KG.min(kq - g * KG);
            let mut kv0 = 0;
            while kv0 < gw / W {
                let left = gw / W - kv0;
                let kv = if L::MAX_NV >= 4 && left >= 4 {
                    4
                } else if L::MAX_NV >= 2 && left >= 2 {
                    2
                } else {
                    1
                };
                let k0 = g * KG + kv0 * W;
                let mut j0 = 0;
                while j0 < r {
                    let jn = JB.min(r - j0);
                    let at = Tile {
                        u: k_offset(xi, g, 0, c, kq) + kv0 * W,
                        us: gw,
                        v: xi * c * pp + p0 + j0,
                        vs: pp,
                        c,
                        m: xi * pp + p0 + j0,
                        ms: e * pp,
                        k0,
                        kn: k.saturating_sub(k0),
                    };
                    // SAFETY: `L`'s CPU features (the caller); the tile's reads and writes
                    // stay inside `uk`, `v` and `m` (checked above).
                    unsafe { dispatch::<L>(kv, jn, uk, v, m, &at) };
                    j0 += jn;
                }
                kv0 += kv;
            }
        }
    }
}

/// Where one tile reads and writes: filters from `u` (`us` per input channel), `V` from `v`
/// (`vs` per input channel), `M` from `m` (block `j` at `m + j`, channel `k0 + q` at
/// `+ (k0 + q)·ms`, only the first `kn` channels), over `c` input channels.
struct Tile {
    u: usize,
    us: usize,
    v: usize,
    vs: usize,
    c: usize,
    m: usize,
    ms: usize,
    k0: usize,
    kn: usize,
}

/// [`tile`] with `kv` channel vectors and `jn` blocks.
///
/// # Safety
///
/// As for [`tile`].
#[inline(always)]
unsafe fn dispatch<L: Lanes>(
    kv: usize,
    jn: usize,
    uk: &[f32],
    v: &[f32],
    m: &mut [f32],
    at: &Tile,
) {
    macro_rules! by_blocks {
        ($kv:literal) => {
            // SAFETY: as the caller guarantees.
            unsafe {
                match jn {
                    1 => tile::<L, $kv, 1>(uk, v, m, at),
                    2 => tile::<L, $kv, 2>(uk, v, m, at),
                    3 => tile::<L, $kv, 3>(uk, v, m, at),
                    4 => tile::<L, $kv, 4>(uk, v, m, at),
                    5 => tile::<L, $kv, 5>(uk, v, m, at),
                    _ => tile::<L, $kv, 6>(uk, v, m, at),
                }
            }
        };
    }
    match kv {
        4 => by_blocks!(4),
        2 => by_blocks!(2),
        _ => by_blocks!(1),
    }
}

/// One tile: `JN` blocks × `KV` vectors of output channels, each an FMA chain over the input
/// channels in order, then stored lane by lane into `M`.
///
/// # Safety
///
/// `L`'s CPU features; `uk[at.u + ci·us ..][..KV·W]`, `v[at.v + ci·vs + j]` (`ci < c`,
/// `j < JN`) readable, `m[at.m + (k0 + q)·ms + j]` (`q < kn`, `q < KV·W`) writable.
#[inline(always)]
unsafe fn tile<L: Lanes, const KV: usize, const JN: usize>(
    uk: &[f32],
    v: &[f32],
    m: &mut [f32],
    at: &Tile,
) {
    // SAFETY: as the function's contract states.
    unsafe {
        let (u, vp) = (uk.as_ptr().add(at.u), v.as_ptr().add(at.v));
        let mut acc = [[L::zero(); KV]; JN];
        for ci in 0..at.c {
            let up = u.add(ci * at.us);
            L::prefetch(up.wrapping_add(PREFETCH));
            let mut w = [L::zero(); KV];
            for q in 0..KV {
                w[q] = L::load(up.add(q * W));
            }
            let vc = vp.add(ci * at.vs);
            for j in 0..JN {
                let x = L::broadcast(vc.add(j));
                for q in 0..KV {
                    acc[j][q] = L::fma(w[q], x, acc[j][q]);
                }
            }
        }
        let mut lanes = [0.0f32; W];
        for j in 0..JN {
            for q in 0..KV {
                acc[j][q].store(lanes.as_mut_ptr());
                for (l, &val) in lanes.iter().enumerate().take(at.kn.saturating_sub(q * W)) {
                    m[at.m + (at.k0 + q * W + l) * at.ms + j] = val;
                }
            }
        }
    }
}
