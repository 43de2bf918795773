//! Region chains: plain FTP (docs/design.md §2.3) and the reduced regions of a level-1 tile (§3.2).

use super::{FusedStack, Grid, PlanError, Side, MAX_FUSED};
use crate::region::Region;

/// Per-layer regions of one tile: what it holds of each layer's input, what it computes of
/// each layer's output, and (reduced chains only) the strips of each layer's output it takes
/// from each neighbour, indexed by [`Side::index`] of the receiver.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chain {
    pub input: [Region; MAX_FUSED],
    pub output: [Region; MAX_FUSED],
    pub receive: [[Region; 4]; MAX_FUSED],
}

/// Plain FTP: `O_{L−1}` = `last`, `I_ℓ = back_ℓ(O_ℓ)`, `O_{ℓ−1} = I_ℓ`.
pub(crate) fn plain(stack: &FusedStack<'_>, last: Region) -> Chain {
    let mut c = Chain {
        input: [Region::default(); MAX_FUSED],
        output: [Region::default(); MAX_FUSED],
        receive: [[Region::default(); 4]; MAX_FUSED],
    };
    let mut out = last;
    for l in (0..stack.len()).rev() {
        c.output[l] = out;
        c.input[l] = stack.back(l, out);
        out = c.input[l];
    }
    c
}

/// Reduced chain of level-1 `tile`: each layer's computed output is the next layer's input
/// minus what the (plain, level-0) neighbours already computed; the difference arrives as
/// strips `Î_{ℓ+1} ∩ F_ℓ(neighbour)`.
pub(crate) fn reduced(
    stack: &FusedStack<'_>,
    grid: &Grid,
    tile: usize,
) -> Result<Chain, PlanError> {
    let mut theirs = [None; 4];
    for side in Side::ALL {
        if let Some(n) = grid.neighbour(tile, side) {
            theirs[side.index()] = Some(plain(stack, grid.tile_region(n)).output);
        }
    }
    let mut c = plain(stack, Region::default());
    let mut out = grid.tile_region(tile);
    for l in (0..stack.len()).rev() {
        c.output[l] = out;
        c.input[l] = stack.back(l, out);
        if l == 0 {
            break;
        }
        let need = c.input[l];
        let mut shrunk = need;
        for side in Side::ALL {
            let Some(f) = theirs[side.index()].map(|o| o[l - 1]) else {
                continue;
            };
            c.receive[l - 1][side.index()] = need.intersect(&f);
            // max/min so the computed region only ever shrinks.
            match side {
                Side::Left => shrunk.x.start = shrunk.x.start.max(f.x.end),
                Side::Right => shrunk.x.end = shrunk.x.end.min(f.x.start),
                Side::Above => shrunk.y.start = shrunk.y.start.max(f.y.end),
                Side::Below => shrunk.y.end = shrunk.y.end.min(f.y.start),
            }
        }
        if shrunk.is_empty() {
            shrunk = Region::default();
        }
        let strips = &c.receive[l - 1];
        let parts = [shrunk, strips[0], strips[1], strips[2], strips[3]];
        if !covered(&need, &parts) {
            return Err(PlanError::Uncovered { tile, layer: l - 1 });
        }
        out = shrunk;
    }
    Ok(c)
}

/// True when the union of `parts` covers `target`. Cuts the plane at every rectangle edge;
/// each resulting cell is either wholly inside a rectangle or wholly outside, so testing one
/// corner per cell decides it.
pub(crate) fn covered(target: &Region, parts: &[Region; 5]) -> bool {
    if target.is_empty() {
        return true;
    }
    let mut xs = [0u32; 12];
    let mut ys = [0u32; 12];
    let (mut nx, mut ny) = (0, 0);
    for r in core::iter::once(target).chain(parts.iter()) {
        for v in [r.x.start, r.x.end] {
            if target.x.contains(v) {
                xs[nx] = v;
                nx += 1;
            }
        }
        for v in [r.y.start, r.y.end] {
            if target.y.contains(v) {
                ys[ny] = v;
                ny += 1;
            }
        }
    }
    let (xs, ys) = (&mut xs[..nx], &mut ys[..ny]);
    xs.sort_unstable();
    ys.sort_unstable();
    ys.iter().all(|&y| {
        xs.iter()
            .all(|&x| parts.iter().any(|p| p.x.contains(x) && p.y.contains(y)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Span;

    #[test]
    fn coverage_detects_holes() {
        let t = Region::new(Span::new(0, 10), Span::new(0, 10));
        let e = Region::default();
        let left = Region::new(Span::new(0, 3), Span::new(0, 10));
        let mid = Region::new(Span::new(3, 8), Span::new(0, 10));
        let right = Region::new(Span::new(8, 10), Span::new(0, 10));
        assert!(covered(&t, &[mid, left, right, e, e]));
        assert!(!covered(&t, &[mid, left, e, e, e]));
        let notch = Region::new(Span::new(8, 10), Span::new(0, 9));
        assert!(!covered(&t, &[mid, left, notch, e, e]));
        assert!(covered(&e, &[e, e, e, e, e]));
    }
}
