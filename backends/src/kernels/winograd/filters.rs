//! Transformed filters `U[ξ][pass][kb][c][r]` (output channel `kb·MR + r`, zero past the
//! layer's filters; input channels in passes of [`CB`], the last one shorter) and the folded
//! batch norm. A GEMM pass over one transform element and [`CB`] input channels reads its
//! filters as one contiguous run, in order (with the channels of all passes side by side, a
//! deep layer's pass read 3 KiB runs 6 KiB apart, which the hardware prefetchers follow badly
//! across pages). The filters are computed once per layer when the kernel is prepared for a model
//! ([`Prepared`]), or per call for parameters it was not prepared for.
//!
//! Channel major (`U[ξ][g][c][W]`, output channel `g·W + l`, [`transform_cm`]): for layers
//! whose products run with output channels in the lanes. Each group of [`W`] output channels
//! is one contiguous run over the input channels per transform element.

extern crate alloc;

use alloc::vec::Vec;

use tessera_core::model::weights::ConvParams;

use super::form::{filter, Form, AMAX};
use super::lanes::W;
use super::MR;
use crate::kernels::conv::fold_all;
use crate::kernels::param_key::ParamKey;

/// Input channels per GEMM pass: a run of tiles' `V` rows (`CB` × the run's columns) stay in
/// L1 while every output channel block runs over them; later passes continue the sums stored
/// in `M` (an f32 stored and reloaded is exact, so each sum is the same chain as in one pass).
pub(super) const CB: usize = 128;

/// Where the filters of transform element `xi`, output channel block `kb` and input channels
/// `c0..` of the pass starting at `c0` (a multiple of [`CB`]) start in `U`, for `c` input
/// channels and `kp` output channels (padded to [`MR`]); the pass's channels follow at
/// [`MR`] values each.
pub(super) fn offset(xi: usize, kb: usize, c0: usize, c: usize, kp: usize) -> usize {
    let cn = CB.min(c - c0);
    (xi * c + c0) * kp + kb * cn * MR
}

/// Elements of the transformed filters of `k` filters over `c` channels.
pub(super) fn len(form: Form, c: usize, k: usize) -> usize {
    k.div_ceil(MR) * MR * form.elems() * c
}

/// Output channel groups of [`W`] per tile of channel-major filters: a GEMM tile of up to
/// `KT` groups reads its pass's filters as one contiguous run.
pub(super) const KT: usize = 4;

/// Input channels per channel-major GEMM pass: a pass's filter tile (`CBM × KT·W` values,
/// 16 KiB) and the `V` lines its block groups share stay in a 32 KiB L1.
pub(super) const CBM: usize = 64;

/// Channel-major `U[ξ][pass][t][c][j][l]`: transform element `xi`, the input channel pass
/// starting at `c0` (a multiple of [`CBM`]), tile `t` of [`KT`] output channel groups (the
/// last one shorter), input channel `c0 + ci`, group `t·KT + j`, channel `l` of the group.
/// Returns where group `g` starts (at `ci = 0`), the stride from one input channel to the
/// next (the tile's groups × [`W`]) and where `g`'s tile starts, for `c` input channels and
/// `ng` groups.
pub(super) fn at_cm(xi: usize, c0: usize, g: usize, c: usize, ng: usize) -> (usize, usize, usize) {
    let cn = CBM.min(c - c0);
    let t = g / KT;
    let nt = KT.min(ng - t * KT);
    let tile = (xi * c + c0) * ng * W + t * KT * W * cn;
    (tile + (g - t * KT) * W, nt * W, tile)
}

/// Elements of the channel-major transformed filters of `k` filters over `c` channels.
pub(super) fn len_cm(form: Form, c: usize, k: usize) -> usize {
    k.div_ceil(W) * W * form.elems() * c
}

/// Transforms `weights` (`[k][c][3][3]`) into channel-major `u` (at least [`len_cm`]
/// elements, [`at_cm`]): the same values as [`transform`], in another order.
pub(super) fn transform_cm(form: Form, weights: &[f32], c: usize, k: usize, u: &mut [f32]) {
    let e = form.elems();
    let ng = k.div_ceil(W);
    let mut one = [0.0f32; AMAX * AMAX];
    for o in 0..ng * W {
        for ci in 0..c {
            if o < k {
                filter(form, &weights[(o * c + ci) * 9..][..9], &mut one);
            } else {
                one = [0.0; AMAX * AMAX];
            }
            let c0 = ci / CBM * CBM;
            for (xi, &val) in one[..e].iter().enumerate() {
                let (at, cs, _) = at_cm(xi, c0, o / W, c, ng);
                u[at + (ci - c0) * cs + o % W] = val;
            }
        }
    }
}

/// Transforms `weights` (`[k][c][3][3]`) into `u` (at least [`len`] elements).
pub(super) fn transform(form: Form, weights: &[f32], c: usize, k: usize, u: &mut [f32]) {
    let e = form.elems();
    let nkb = k.div_ceil(MR);
    let kp = nkb * MR;
    let mut one = [0.0f32; AMAX * AMAX];
    for o in 0..kp {
        let (kb, r) = (o / MR, o % MR);
        for ci in 0..c {
            if o < k {
                let w = &weights[(o * c + ci) * 9..][..9];
                filter(form, w, &mut one);
            } else {
                one = [0.0; AMAX * AMAX];
            }
            let c0 = ci / CB * CB;
            for (xi, &val) in one[..e].iter().enumerate() {
                u[offset(xi, kb, c0, c, kp) + (ci - c0) * MR + r] = val;
            }
        }
    }
}

/// One layer's transformed filters and folded batch norm, found again by its parameters'
/// addresses ([`ParamKey`]).
#[derive(Debug)]
pub(super) struct Prepared {
    key: ParamKey,
    form: Form,
    /// Whether `u` is channel major ([`transform_cm`]).
    pub cm: bool,
    pub u: Vec<f32>,
    /// `(a, b)` of every output channel: the folded batch norm and bias.
    pub post: Vec<(f32, f32)>,
}

impl Prepared {
    /// Transforms `params`' filters (`c` input channels; channel major when `cm`) and folds
    /// their batch norm.
    pub fn new(form: Form, params: &ConvParams<'_>, c: usize, cm: bool) -> Prepared {
        let k = params.biases.len();
        let u = filters_of(form, params.weights, c, k, cm);
        Prepared {
            key: ParamKey::of(params),
            form,
            cm,
            u,
            post: fold_all(params, k),
        }
    }

    /// True when these are `params`' filters in `form` (channel major when `cm`).
    pub fn is_for(&self, form: Form, params: &ConvParams<'_>, cm: bool) -> bool {
        self.form == form && self.cm == cm && self.key == ParamKey::of(params)
    }
}

/// The transformed filters of `weights`, channel major when `cm`.
pub(super) fn filters_of(form: Form, weights: &[f32], c: usize, k: usize, cm: bool) -> Vec<f32> {
    if cm {
        let mut u = alloc::vec![0.0; len_cm(form, c, k)];
        transform_cm(form, weights, c, k, &mut u);
        u
    } else {
        let mut u = alloc::vec![0.0; len(form, c, k)];
        transform(form, weights, c, k, &mut u);
        u
    }
}
