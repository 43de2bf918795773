//! The two Winograd forms, F(2×2,3×3) and F(4×4,3×3): their 1-D input and output transforms
//! on vectors of [`W`] blocks (one block per lane), and the filter transform.
//!
//! Matrices (Lavin & Gray's interpolation points 0, ±1, ±2, ∞ for F4), with `ξ = (ξr, ξc)`:
//! `V = Bᵀ d B` (input, `α × α`), `U = G g Gᵀ` (filter), `Y = Aᵀ (Σ_c U ⊙ V) A` (output,
//! `m × m`). The transforms below are those products written out with their small integer
//! coefficients; the filter transform runs in f64 and is rounded once.

/// Blocks per transform vector (lanes). 16: one AVX-512 register, two AVX2 ones.
pub(super) const W: usize = 16;

/// Largest `α = m + 2` (F4's 6).
pub(super) const AMAX: usize = 6;

/// One lane vector: `W` blocks' values of one transform element.
pub(super) type V = [f32; W];

/// Which Winograd form a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// F(2×2, 3×3): 2×2 outputs per 4×4 input block, 16 products instead of 36 (2.25×
    /// fewer multiplications).
    F2,
    /// F(4×4, 3×3): 4×4 outputs per 6×6 input block, 36 products instead of 144 (4×).
    F4,
}

impl Form {
    /// Output block side `m`.
    pub const fn m(self) -> usize {
        match self {
            Form::F2 => 2,
            Form::F4 => 4,
        }
    }

    /// Input block side `α = m + 2`.
    pub const fn alpha(self) -> usize {
        self.m() + 2
    }

    /// Transform elements per block, `α²`.
    pub const fn elems(self) -> usize {
        self.alpha() * self.alpha()
    }

    /// The output alignment tiles need ([`Kernels::conv_alignment`]): `m` for F4, whose block
    /// values depend on the whole input window; 1 for F2, whose outputs depend only on their
    /// own receptive fields (see the module docs).
    ///
    /// [`Kernels::conv_alignment`]: tessera_core::kernel::Kernels::conv_alignment
    pub const fn alignment(self) -> u32 {
        match self {
            Form::F2 => 1,
            Form::F4 => 4,
        }
    }

    /// Direct-convolution multiplications per Winograd product: `(m² · 9) / α²` (2.25 for F2,
    /// 4 for F4).
    pub fn mult_saving(self) -> f64 {
        (self.m() * self.m() * 9) as f64 / self.elems() as f64
    }
}

// Plain loops over the lanes (`array::from_fn` is not always inlined, and a call would run
// outside the caller's target features).
#[inline(always)]
fn add(a: &V, b: &V) -> V {
    let mut r = [0.0; W];
    for i in 0..W {
        r[i] = a[i] + b[i];
    }
    r
}

#[inline(always)]
fn sub(a: &V, b: &V) -> V {
    let mut r = [0.0; W];
    for i in 0..W {
        r[i] = a[i] - b[i];
    }
    r
}

/// `a + k·b`.
#[inline(always)]
fn axpy(a: &V, k: f32, b: &V) -> V {
    let mut r = [0.0; W];
    for i in 0..W {
        r[i] = a[i] + k * b[i];
    }
    r
}

/// `Bᵀ d` along one axis: `α` vectors in, `α` out (only the first `α` of each array are used).
#[inline(always)]
pub(super) fn bt(form: Form, d: &[V; AMAX]) -> [V; AMAX] {
    let z = [0.0; W];
    match form {
        Form::F2 => [
            sub(&d[0], &d[2]),
            add(&d[1], &d[2]),
            sub(&d[2], &d[1]),
            sub(&d[1], &d[3]),
            z,
            z,
        ],
        Form::F4 => {
            let s12 = add(&d[1], &d[2]);
            let d12 = sub(&d[1], &d[2]);
            let s34 = add(&d[3], &d[4]);
            let d43 = sub(&d[4], &d[3]);
            let d42 = sub(&d[4], &d[2]);
            let d31 = sub(&d[3], &d[1]);
            [
                axpy(&axpy(&d[4], -5.0, &d[2]), 4.0, &d[0]),
                axpy(&s34, -4.0, &s12),
                axpy(&d43, 4.0, &d12),
                axpy(&d42, 2.0, &d31),
                axpy(&d42, -2.0, &d31),
                axpy(&axpy(&d[5], -5.0, &d[3]), 4.0, &d[1]),
            ]
        }
    }
}

/// `Aᵀ m` along one axis: `α` vectors in, `m` out (only the first `m` are meaningful).
#[inline(always)]
pub(super) fn at(form: Form, m: &[V; AMAX]) -> [V; 4] {
    let z = [0.0; W];
    match form {
        Form::F2 => [
            add(&add(&m[0], &m[1]), &m[2]),
            sub(&sub(&m[1], &m[2]), &m[3]),
            z,
            z,
        ],
        Form::F4 => {
            let s12 = add(&m[1], &m[2]);
            let d12 = sub(&m[1], &m[2]);
            let s34 = add(&m[3], &m[4]);
            let d34 = sub(&m[3], &m[4]);
            [
                add(&add(&m[0], &s12), &s34),
                axpy(&d12, 2.0, &d34),
                axpy(&s12, 4.0, &s34),
                add(&axpy(&d12, 8.0, &d34), &m[5]),
            ]
        }
    }
}

/// `G` of the form (`α × 3`).
fn g(form: Form) -> &'static [[f64; 3]] {
    const G2: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    const G4: [[f64; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    match form {
        Form::F2 => &G2,
        Form::F4 => &G4,
    }
}

/// `U = G g Gᵀ` of one 3×3 filter `g` (row-major, `g[ky·3 + kx]`), computed in f64 (`G g`
/// first) and rounded once; written to `u[ξr·α + ξc]`.
pub(super) fn filter(form: Form, kernel: &[f32], u: &mut [f32]) {
    let g = g(form);
    let a = form.alpha();
    let mut gk = [[0.0f64; 3]; AMAX];
    for (row, gr) in gk.iter_mut().zip(g) {
        for (kx, v) in row.iter_mut().enumerate() {
            *v = (0..3)
                .map(|ky| gr[ky] * f64::from(kernel[ky * 3 + kx]))
                .sum();
        }
    }
    for (xr, row) in gk.iter().enumerate().take(a) {
        for (xc, gc) in g.iter().enumerate() {
            u[xr * a + xc] = (0..3).map(|kx| row[kx] * gc[kx]).sum::<f64>() as f32;
        }
    }
}
