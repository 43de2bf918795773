//! The conv proper on one of two input layouts: the zero-padded copy ([`PadGeo`]), or a 1×1
//! stride-1 conv's own planes read in place; in both, output channels run in groups whose
//! weights are packed just before they run.

extern crate alloc;

use alloc::vec::Vec;

use tessera_core::kernel::batch_norm;
use tessera_core::model::weights::ConvParams;
use tessera_core::model::{Activation, Conv, Shape};
use tessera_core::region::{Region, Span};
use tessera_core::tensor::{FeatureView, FeatureViewMut};

use super::blocking::Ctx;
use super::channels::blocks;
use super::pack::{group_len, pack};
use super::pad::PadGeo;
use super::scratch::Scratch;
use super::threads::split;
use super::{Fma, LANES};

impl Fma {
    /// A 1×1 stride-1 conv whose input view is its output region: each channel plane is one
    /// contiguous row, read in place (no padded copy); the plane's last `area mod 16` columns
    /// run on a small zero-padded copy, so whole-vector reads stay inside the buffers. Each
    /// output is the same chain as on the padded path.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_flat(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        threads: usize,
        scratch: &mut Scratch,
        out: &mut FeatureViewMut<'_>,
    ) {
        let n = conv.filters as usize;
        let c = map.c as usize;
        let area = out.region().area() as usize;
        let main = area - area % LANES;
        let tail_len = c * LANES;
        let group = group_len(n, c);
        scratch.reserve(tail_len, group.min(n) * c);
        let tail = &mut scratch.pad[..tail_len];
        let src = input.data();
        for (ci, dst) in tail.chunks_exact_mut(LANES).enumerate() {
            let part = &src[ci * area + main..(ci + 1) * area];
            dst[..part.len()].copy_from_slice(part);
            dst[part.len()..].fill(0.0);
        }
        let tail: &[f32] = tail;
        let ab: Vec<(f32, f32)> = (0..n).map(|o| fold(params, o)).collect();
        let row = |cols: usize| Region::new(Span::new(0, cols as u32), Span::new(0, 1));
        let data = out.data();
        // Output channels in groups of `group_len`, each group's weights packed just before
        // it runs (as on the padded path): a 1×1 512→256 layer packs 1 MiB at most, not 2.
        let mut g0 = 0;
        while g0 < n {
            let gn = group.min(n - g0);
            let threads = threads.min(blocks(gn).count());
            let packed = &mut scratch.packed[..gn * c];
            pack(
                &params.weights[g0 * c..(g0 + gn) * c],
                gn,
                c,
                threads,
                packed,
            );
            let base = Ctx {
                threads,
                isa: self.isa,
                pad: src,
                wp: area,
                plane: area,
                iy0: 0,
                k: 1,
                s: 1,
                p: 0,
                h: 1,
                c,
                packed,
                ab: &ab[g0..g0 + gn],
                leaky: conv.activation == Activation::Leaky,
                region: row(main),
                oplane: area,
                ocol0: 0,
            };
            let rest = Ctx {
                pad: tail,
                wp: LANES,
                plane: LANES,
                region: row(area - main),
                ocol0: main,
                ..base
            };
            let data = &mut data[g0 * area..(g0 + gn) * area];
            for ctx in [base, rest] {
                if ctx.region.is_empty() {
                    continue;
                }
                split(&ctx, gn, threads, data);
            }
            g0 += gn;
        }
    }

    /// The conv proper, on the padded input: output channels in groups of [`group_len`], each
    /// group's weights packed into `packed` just before it runs.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_padded(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        geo: &PadGeo,
        pad: &[f32],
        packed: &mut [f32],
        out: &mut FeatureViewMut<'_>,
    ) {
        let region = out.region();
        let n = conv.filters as usize;
        let per = params.weights.len() / n;
        let group = group_len(n, per);
        let ab: Vec<(f32, f32)> = (0..n).map(|o| fold(params, o)).collect();
        let oplane = region.area() as usize;
        let data = out.data();
        let mut g0 = 0;
        while g0 < n {
            let gn = group.min(n - g0);
            let threads = self.threads.min(blocks(gn).count());
            let packed = &mut packed[..gn * per];
            pack(
                &params.weights[g0 * per..(g0 + gn) * per],
                gn,
                per,
                threads,
                packed,
            );
            let ab = &ab[g0..g0 + gn];
            let data = &mut data[g0 * oplane..(g0 + gn) * oplane];
            self.conv_group(conv, map, geo, pad, packed, ab, threads, data, region);
            g0 += gn;
        }
    }

    /// Output channels of one group (`ab.len()` of them, weights in `packed`) into `data`.
    #[allow(clippy::too_many_arguments)]
    fn conv_group(
        &self,
        conv: &Conv,
        map: Shape,
        geo: &PadGeo,
        pad: &[f32],
        packed: &[f32],
        ab: &[(f32, f32)],
        threads: usize,
        data: &mut [f32],
        region: Region,
    ) {
        let ctx = Ctx {
            threads,
            isa: self.isa,
            pad,
            wp: geo.wp,
            plane: geo.plane,
            iy0: geo.iy0 as i64,
            k: conv.size as usize,
            s: conv.stride as usize,
            p: conv.pad as i64,
            h: map.h as i64,
            c: map.c as usize,
            packed,
            ab,
            leaky: conv.activation == Activation::Leaky,
            region,
            oplane: region.area() as usize,
            ocol0: 0,
        };
        split(&ctx, ab.len(), threads, data);
    }
}

/// Batch norm and bias of output channel `o` folded into `(a, b)` (see the module docs).
fn fold(params: &ConvParams<'_>, o: usize) -> (f32, f32) {
    let f = batch_norm::fold(params, o);
    (f.scale as f32, f.shift)
}
