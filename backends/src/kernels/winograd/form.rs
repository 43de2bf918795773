//! The two Winograd forms, F(2×2,3×3) and F(4×4,3×3), and their filter transform (the input
//! and output transforms are in `transform`).
//!
//! Matrices (Lavin & Gray's interpolation points 0, ±1, ±2, ∞ for F4), with `ξ = (ξr, ξc)`:
//! `V = Bᵀ d B` (input, `α × α`), `U = G g Gᵀ` (filter), `Y = Aᵀ (Σ_c U ⊙ V) A` (output,
//! `m × m`). The filter transform runs in f64 and is rounded once.

/// Largest `α = m + 2` (F4's 6).
pub(super) const AMAX: usize = 6;

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
