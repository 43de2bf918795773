//! Transformed filters `U[ξ][kb][c][r]` (output channel `kb·MR + r`, zero past the layer's
//! filters; one transform element's filters are contiguous, so a GEMM streams them in order): computed once per layer when the kernel is prepared for a model
//! ([`Prepared`]), or per call for weights it was not prepared for.

extern crate alloc;

use alloc::vec::Vec;

use tessera_core::model::weights::ConvParams;

use super::form::{filter, Form, AMAX};
use super::MR;

/// Elements of the transformed filters of `k` filters over `c` channels.
pub(super) fn len(form: Form, c: usize, k: usize) -> usize {
    k.div_ceil(MR) * MR * form.elems() * c
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
            for (xi, &val) in one[..e].iter().enumerate() {
                u[((xi * nkb + kb) * c + ci) * MR + r] = val;
            }
        }
    }
}

/// One layer's transformed filters, found again by the address and length of the weights
/// they came from (the prepared kernel borrows those weights, so the address cannot be
/// reused for other values while it lives).
#[derive(Debug)]
pub(super) struct Prepared {
    addr: usize,
    len: usize,
    form: Form,
    pub u: Vec<f32>,
}

impl Prepared {
    /// Transforms `params`' filters (`c` input channels).
    pub fn new(form: Form, params: &ConvParams<'_>, c: usize) -> Prepared {
        let k = params.biases.len();
        let mut u = alloc::vec![0.0; len(form, c, k)];
        transform(form, params.weights, c, k, &mut u);
        Prepared {
            addr: params.weights.as_ptr() as usize,
            len: params.weights.len(),
            form,
            u,
        }
    }

    /// True when these are `params`' filters in `form`.
    pub fn is_for(&self, form: Form, params: &ConvParams<'_>) -> bool {
        self.form == form
            && self.addr == params.weights.as_ptr() as usize
            && self.len == params.weights.len()
    }
}
