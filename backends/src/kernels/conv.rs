//! The conv proper on one of two input layouts: the zero-padded copy ([`PadGeo`]), or a 1×1
//! stride-1 conv's own planes read in place; in both, each thread runs its output channels in
//! groups whose weights it packs just before they run, or reads packed once ([`Prepacked`])
//! ([`split`]).

extern crate alloc;

use alloc::borrow::Cow;
use alloc::vec::Vec;

use tessera_core::kernel::batch_norm;
use tessera_core::model::weights::ConvParams;
use tessera_core::model::{Activation, Conv, Shape};
use tessera_core::region::{Region, Span};
use tessera_core::tensor::{FeatureView, FeatureViewMut};

use super::blocking::Ctx;
use super::pack::Prepacked;
use super::pad::PadGeo;
use super::scratch::with_pad;
use super::threads::split;
use super::{Fma, LANES};

impl Fma {
    /// A 1×1 stride-1 conv whose input view is its output region: each channel plane is one
    /// contiguous row, read in place (no padded copy); the plane's last `area mod 16` columns
    /// run on a small zero-padded copy, so whole-vector reads stay inside the buffers. Each
    /// output is the same chain as on the padded path. The output's region must be one run of
    /// each plane of its buffer (full-width rows).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_flat(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        pre: Option<&Prepacked>,
        input: &FeatureView<'_>,
        threads: usize,
        out: &mut FeatureViewMut<'_>,
    ) {
        let n = conv.filters as usize;
        let c = map.c as usize;
        let area = out.region().area() as usize;
        let main = area - area % LANES;
        let src = input.data();
        let strides = out.strides();
        with_pad(c * LANES, |tail| {
            for (ci, dst) in tail.chunks_exact_mut(LANES).enumerate() {
                let part = &src[ci * area + main..(ci + 1) * area];
                dst[..part.len()].copy_from_slice(part);
                dst[part.len()..].fill(0.0);
            }
            let tail: &[f32] = tail;
            let ab = folded(params, n, pre);
            let row = |cols: usize| Region::new(Span::new(0, cols as u32), Span::new(0, 1));
            let base = Ctx {
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
                packed: &[],
                ab: &ab,
                leaky: conv.activation == Activation::Leaky,
                region: row(main),
                oplane: strides.plane,
                orow: area,
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
            split(
                &self.team,
                &[base, rest],
                params.weights,
                pre.map(|p| &p.packed[..]),
                threads,
                &mut out.data()[strides.offset..],
            );
        });
    }

    /// The conv proper, on the padded input `pad` laid out as `geo`, into `out` through its
    /// strides (dense or a window).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_padded(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        pre: Option<&Prepacked>,
        geo: &PadGeo,
        pad: &[f32],
        threads: usize,
        out: &mut FeatureViewMut<'_>,
    ) {
        let region = out.region();
        let strides = out.strides();
        let ab = folded(params, conv.filters as usize, pre);
        let ctx = Ctx {
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
            packed: &[],
            ab: &ab,
            leaky: conv.activation == Activation::Leaky,
            region,
            oplane: strides.plane,
            orow: strides.row,
            ocol0: 0,
        };
        split(
            &self.team,
            &[ctx],
            params.weights,
            pre.map(|p| &p.packed[..]),
            threads,
            &mut out.data()[strides.offset..],
        );
    }
}

/// Batch norm and bias of output channels `0..n` folded into `(a, b)` each (see the module
/// docs): what the direct and the Winograd kernels apply to their sums.
pub(super) fn fold_all(params: &ConvParams<'_>, n: usize) -> Vec<(f32, f32)> {
    (0..n)
        .map(|o| {
            let f = batch_norm::fold(params, o);
            (f.scale as f32, f.shift)
        })
        .collect()
}

/// The folded `(a, b)` of output channels `0..n`: `pre`'s, or folded now.
fn folded<'p>(
    params: &ConvParams<'_>,
    n: usize,
    pre: Option<&'p Prepacked>,
) -> Cow<'p, [(f32, f32)]> {
    match pre {
        Some(p) => Cow::Borrowed(&p.ab),
        None => Cow::Owned(fold_all(params, n)),
    }
}
