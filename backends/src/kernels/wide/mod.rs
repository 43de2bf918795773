//! The conv micro-kernel of every intrinsic path, written once over a vector trait
//! ([`Vector`]) and instantiated per instruction set: AVX2 + FMA (`x86::Ymm`, 8 lanes),
//! AVX-512F (`avx512::Zmm`, 16 lanes), aarch64 NEON (`neon::Q`, 4 lanes) and [`Soft`], a
//! portable software vector that does one scalar fused multiply-add per lane.
//!
//! Its tiling, partial last vectors, pointer arithmetic and chunk/[`Post`] logic all live here;
//! an instruction set adds a one-line-per-operation trait impl, a `#[target_feature]` entry
//! function into which this code is inlined (`#[inline(always)]` down to the operations), and
//! a safe `row` that checks every index first. Every operation of [`Vector`] is lane-wise and
//! rounds like its scalar counterpart (one rounding for `fma`), so every instantiation
//! computes the same bits.
//!
//! Why a software vector: not every machine has AVX-512 (the project's first ones did not, and
//! there is no emulator for it here). `Soft<16, 4>` runs exactly the AVX-512 instantiation's code (16 lanes, 4-vector
//! tiles) on any target ([`super::Isa::Soft16`]), so the property tests compare it with the
//! scalar path bit for bit and thereby test everything of the AVX-512 path but the intrinsics
//! themselves; the unit tests (`wide/tests.rs`) run the AVX2 and NEON geometries ([`Soft`] with
//! 8 and 4 lanes) the same way, and, for Miri, the same generic kernel with the stack-copy
//! partial vectors of `Ymm` and `Q` on buffers exactly as long as [`Row::check`] demands.
//! These checking geometries run through [`Outlined`] (each operation a call, which keeps
//! their many instances small); `Soft<16, 1>`, inlined, is also the Winograd stages' portable
//! lane vector (`winograd::lanes`).
//!
//! Tiles: `N ≤ 6` output channels × `NV ≤ V::TILE` vectors of one output row (AVX2 6 × 2 ymm,
//! 16 columns; NEON 6 × 4 q, 16 columns; AVX-512 and Soft16 6 × 4, 64 columns): full tiles,
//! then one narrower tile (`NV = ceil(rest / LANES)`) whose last vector is loaded and stored
//! partially (`Vector::load_part`/`Vector::store_part`: masked on AVX-512, through a stack
//! copy on AVX2 and NEON). Input vectors are always read whole (the padded rows cover them,
//! see [`Row::check`]). Per output the chain is the one of the module docs of [`super`]:
//! `acc = fma(w, x, acc)` over channels, kernel rows and taps in order.
//!
//! `rows` adds tiles over several output rows for narrow 3×3 row segments (1–2 vectors).
//!
//! The tile width is a const generic (the accumulators are `[[V; NV]; N]`), and array lengths
//! cannot come from an associated const on stable Rust, so [`tile`] picks `NV` with a `match`
//! whose arms beyond `V::TILE` are guarded off.
#![allow(clippy::needless_range_loop)]

use super::row::{Post, Row};

mod rows;

pub(super) use rows::{checked_rows, rows_for, rows_generic};

/// The most lanes of a [`Vector`] (AVX-512's 16): the size of the stack copies of
/// [`Vector::load_part`] and [`Vector::store_part`].
const MAX_LANES: usize = 16;

/// A vector of `LANES` f32 lanes. Every operation is lane-wise with the rounding of the scalar
/// operation (IEEE round to nearest even; `fma` rounds once).
///
/// # Safety
///
/// The methods are `unsafe` because an implementation may need CPU features (AVX2 + FMA for
/// `Ymm`, AVX-512F for `Zmm`, NEON for `Q`): callers guarantee them. Pointer methods
/// additionally require the addressed lanes (`n` for the `_part` methods, one for `broadcast`,
/// all `LANES` otherwise) to be valid for reads or writes; lanes at and above `n` are neither
/// read nor written.
pub(super) trait Vector: Copy {
    /// f32 lanes per vector (at most [`MAX_LANES`]).
    const LANES: usize;
    /// Vectors of columns per full tile (1 to 4): as many as keep `6·TILE` accumulators, the
    /// input vectors and a broadcast weight in registers.
    const TILE: usize;
    /// All lanes 0.0.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// All lanes `*p` (a broadcast load).
    unsafe fn broadcast(p: *const f32) -> Self;
    /// `LANES` values at `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self;
    /// Stores all lanes at `p` (unaligned).
    unsafe fn store(self, p: *mut f32);
    /// The first `n ≤ LANES` values at `p`; lanes `n..` are 0 and their addresses not read.
    /// By default through a zeroed stack copy (AVX2, NEON); AVX-512 loads under a mask.
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self {
        if n >= Self::LANES {
            // SAFETY: `n ≥ LANES` values at `p` are readable (this method's contract) and the
            // caller guarantees `Self`'s CPU features.
            return unsafe { Self::load(p) };
        }
        let mut t = [0.0f32; MAX_LANES];
        // SAFETY: the `n < LANES` values at `p` are readable (the contract) and cannot overlap
        // the local `t`, which holds `MAX_LANES ≥ LANES` values for `load`; CPU features as
        // the caller guarantees.
        unsafe {
            core::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), n);
            Self::load(t.as_ptr())
        }
    }
    /// Stores lanes `0..n` (`n ≤ LANES`) at `p`; nothing at and above `p + n` is written. By
    /// default through a stack copy (AVX2, NEON); AVX-512 stores under a mask.
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        if n >= Self::LANES {
            // SAFETY: `n ≥ LANES` values at `p` are writable (this method's contract); CPU
            // features as the caller guarantees.
            return unsafe { self.store(p) };
        }
        let mut t = [0.0f32; MAX_LANES];
        // SAFETY: `t` holds `MAX_LANES ≥ LANES` values for `store`; the `n < LANES` values at
        // `p` are writable (the contract) and cannot overlap the local `t`.
        unsafe {
            self.store(t.as_mut_ptr());
            core::ptr::copy_nonoverlapping(t.as_ptr(), p, n);
        }
    }
    /// `a·b + c` with one rounding.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// The leaky activation of an `fma` result, `tenth` being `splat(0.1)`: per lane the scalar
    /// `y ≤ 0 ? 0.1·y : y` of [`Post::apply`], bit for bit (zeros keep their sign; a NaN stays
    /// the same quiet NaN).
    unsafe fn leaky(self, tenth: Self) -> Self;
}

/// A software vector of `L` lanes with `T`-vector tiles: every operation is a loop of the
/// scalar one over the lanes (`fma` is [`super::fma`], the scalar path's). Slow; it exists to
/// run the generic kernel, with the geometry of a hardware vector, on any machine.
#[derive(Clone, Copy)]
pub(super) struct Soft<const L: usize, const T: usize>(pub(super) [f32; L]);

impl<const L: usize, const T: usize> Vector for Soft<L, T> {
    const LANES: usize = L;
    const TILE: usize = T;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Soft([0.0; L])
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Soft([x; L])
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: `*p` is readable (the trait's contract).
        Soft([unsafe { *p }; L])
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the `L` values at `p` are readable (the trait's contract).
        Soft(core::array::from_fn(|i| unsafe { *p.add(i) }))
    }

    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self {
        Soft(core::array::from_fn(|i| {
            if i < n {
                // SAFETY: the first `n` values at `p` are readable (the trait's contract).
                unsafe { *p.add(i) }
            } else {
                0.0
            }
        }))
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        for i in 0..L {
            // SAFETY: the `L` values at `p` are writable (the trait's contract).
            unsafe { *p.add(i) = self.0[i] };
        }
    }

    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        for i in 0..n.min(L) {
            // SAFETY: the first `n` values at `p` are writable (the trait's contract).
            unsafe { *p.add(i) = self.0[i] };
        }
    }

    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Soft(core::array::from_fn(|i| super::fma(a.0[i], b.0[i], c.0[i])))
    }

    #[inline(always)]
    unsafe fn leaky(self, tenth: Self) -> Self {
        // Exactly the x86 `max(y, 0.1·y)` (MAXPS: the second operand unless the first is
        // greater), the expression of `Ymm` and `Zmm`.
        Soft(core::array::from_fn(|i| {
            let (y, t) = (self.0[i], self.0[i] * tenth.0[i]);
            if y > t {
                y
            } else {
                t
            }
        }))
    }
}

/// `V` with every operation a call: the software geometries that only check the generic
/// kernel ([`row_soft`], [`rows_soft`] and the unit tests' other geometries) instantiate it on
/// `Outlined<Soft<L, T>>`. Inlined, each of their `N × NV × K` tiles unrolls `L` scalar lanes
/// per operation, and those instances were most of this crate's machine code (a lib test
/// binary's 8.6 MB, 3.6 of them these checks) and of its build time. The kernel's code and
/// every operation's rounding are the same. [`Soft`] itself stays inlined: `Soft<16, 1>` is
/// the Winograd stages' portable vector, the one armhf runs.
#[derive(Clone, Copy)]
pub(super) struct Outlined<V>(pub(super) V);

impl<V: Vector> Vector for Outlined<V> {
    const LANES: usize = V::LANES;
    const TILE: usize = V::TILE;

    #[inline(never)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Outlined(unsafe { V::zero() })
    }

    #[inline(never)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Outlined(unsafe { V::splat(x) })
    }

    #[inline(never)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Outlined(unsafe { V::broadcast(p) })
    }

    #[inline(never)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Outlined(unsafe { V::load(p) })
    }

    #[inline(never)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Outlined(unsafe { V::load_part(p, n) })
    }

    #[inline(never)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller's contract is `V`'s.
        unsafe { self.0.store(p) }
    }

    #[inline(never)]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        // SAFETY: the caller's contract is `V`'s.
        unsafe { self.0.store_part(p, n) }
    }

    #[inline(never)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Outlined(unsafe { V::fma(a.0, b.0, c.0) })
    }

    #[inline(never)]
    unsafe fn leaky(self, tenth: Self) -> Self {
        // SAFETY: the caller's contract is `V`'s.
        Outlined(unsafe { self.0.leaky(tenth.0) })
    }
}

/// Computes `N` output channels of one row segment (stride 1) into `out[r·oplane + orow + j]`
/// with the generic kernel on `Soft<16, 4>`, the AVX-512 geometry (see [`super::Isa::Soft16`]).
pub(super) fn row_soft<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    row_soft_as::<16, 4, N>(job, post, out, oplane, orow)
}

/// `rows` output rows of a narrow 3×3 row segment (see [`rows_generic`]) on `Soft<16, 4>`,
/// the AVX-512 geometry.
pub(super) fn rows_soft<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
    rows: usize,
    ostep: usize,
) {
    rows_soft_as::<16, 4, N>(job, post, out, oplane, orow, rows, ostep)
}

/// [`rows_soft`] on `Soft<L, T>` ([`Outlined`]).
fn rows_soft_as<const L: usize, const T: usize, const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
    rows: usize,
    ostep: usize,
) {
    type V<const L: usize, const T: usize> = Outlined<Soft<L, T>>;
    if checked_rows::<V<L, T>, N>(job, out, oplane, orow, rows, ostep) {
        // SAFETY: Soft needs no CPU feature; `checked_rows` did what `rows_generic` asks.
        unsafe {
            rows_generic::<V<L, T>, N>(job, post, out.as_mut_ptr(), oplane, orow, rows, ostep)
        }
    }
}

/// [`row_soft`] on `Soft<L, T>` ([`Outlined`]): the generic kernel with any lane count and
/// tile width.
fn row_soft_as<const L: usize, const T: usize, const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    if checked::<Outlined<Soft<L, T>>, N>(job, out, oplane, orow) {
        // SAFETY: Soft needs no CPU feature; `checked` did what `row_generic` asks.
        unsafe { row_generic::<Outlined<Soft<L, T>>, N>(job, post, out.as_mut_ptr(), oplane, orow) }
    }
}

/// The checks of every safe `row` entry before the generic kernel on `V` runs: panics unless
/// the stride is 1 and `job.check(N, V::LANES, out.len(), oplane, orow)` passes (it bounds
/// every input, weight and output index the kernel forms: input reads up to the segment
/// rounded to whole vectors, outputs below `j1`); true when the row has columns to compute
/// (`j1 > j0`). Then [`row_generic`] on `out` needs only `V`'s CPU features.
pub(super) fn checked<V: Vector, const N: usize>(
    job: &Row<'_>,
    out: &[f32],
    oplane: usize,
    orow: usize,
) -> bool {
    assert!(job.stride == 1);
    job.check(N, V::LANES, out.len(), oplane, orow);
    job.j1 > job.j0
}

/// The generic kernel: `N` output channels of `job` into `out[r·oplane + orow + j]`.
///
/// # Safety
///
/// `V`'s operations are usable on this CPU; `job.stride == 1`, `job.j1 > job.j0`, and
/// `job.check(N, V::LANES, len, oplane, orow)` passed for a buffer of `len` elements at `out`.
#[inline(always)]
pub(super) unsafe fn row_generic<V: Vector, const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
) {
    // k = 3 and k = 1 are the hot cases: a constant kernel side unrolls their tap loops.
    // SAFETY: this function's contract is `row_from`'s from `j = j0` (an offset of 0 vectors),
    // with `K` equal to `job.k` or 0.
    unsafe {
        match job.k {
            1 => row_from::<V, N, 1>(job, post, out, oplane, orow, job.j0),
            3 => row_from::<V, N, 3>(job, post, out, oplane, orow, job.j0),
            _ => row_from::<V, N, 0>(job, post, out, oplane, orow, job.j0),
        }
    }
}

/// Columns `j..job.j1` of the row: full tiles of `V::TILE` vectors, then one tile of
/// `ceil(rest / LANES)` vectors. `K` is the kernel side, or 0 for "read it from `job`".
///
/// # Safety
///
/// As [`row_generic`], with `job.k == K` unless `K == 0`, and `j0 ≤ j ≤ j1` with `j − j0` a
/// multiple of `V::LANES` (so the whole vectors read stay inside what `check` allowed).
#[inline(always)]
pub(super) unsafe fn row_from<V: Vector, const N: usize, const K: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
    mut j: usize,
) {
    let full = V::TILE * V::LANES;
    while j + full <= job.j1 {
        // SAFETY: the tile `j..j + full` lies inside `j0..j1`, and `j − j0` stays a multiple of
        // `LANES` (`full` is one); the rest is this function's contract.
        unsafe { tile::<V, N, K>(job, post, out, oplane, orow, j, full) };
        j += full;
    }
    if j < job.j1 {
        // SAFETY: as above, for the last `j1 − j < full` columns.
        unsafe { tile::<V, N, K>(job, post, out, oplane, orow, j, job.j1 - j) };
    }
}

/// One tile of `ceil(n / LANES)` vectors (`1 ≤ n ≤ TILE·LANES`) at column `j`: [`block`] with
/// that width as its const parameter. A constant `n` (full tiles) leaves one arm.
///
/// # Safety
///
/// As [`block`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<V: Vector, const N: usize, const K: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
    j: usize,
    n: usize,
) {
    const { assert!(1 <= V::TILE && V::TILE <= 4 && V::LANES <= MAX_LANES) };
    // Arms wider than `V::TILE` are guarded off: they would not fit in the registers, and
    // `n ≤ TILE·LANES` never selects them.
    // SAFETY: each arm's `NV = ceil(n / LANES)` gives `block`'s `LANES·(NV − 1) < n ≤
    // LANES·NV`; the rest is this function's contract, which is `block`'s.
    unsafe {
        match n.div_ceil(V::LANES) {
            1 => block::<V, N, 1, K>(job, post, out, oplane, orow, j, n),
            2 if V::TILE >= 2 => block::<V, N, 2, K>(job, post, out, oplane, orow, j, n),
            3 if V::TILE >= 3 => block::<V, N, 3, K>(job, post, out, oplane, orow, j, n),
            4 if V::TILE >= 4 => block::<V, N, 4, K>(job, post, out, oplane, orow, j, n),
            _ => unreachable!("a tile is 1..=TILE vectors"),
        }
    }
}

/// The accumulators of an `N` × `NV` tile at output column `j` of which the first `n` columns
/// are valid: zero on the first chunk, else the sums the previous chunk stored (reloaded
/// exactly; the last vector partially).
///
/// # Safety
///
/// As [`block`].
#[inline(always)]
pub(super) unsafe fn start<V: Vector, const N: usize, const NV: usize>(
    job: &Row<'_>,
    out: *mut f32,
    oplane: usize,
    orow: usize,
    j: usize,
    n: usize,
) -> [[V; NV]; N] {
    // SAFETY: `V`'s CPU features are the caller's. Channel `r`'s accumulators are
    // `out[r·oplane + orow + j..][..n]`, below `(N − 1)·oplane + orow + j1`, which `check`
    // bounded by the buffer's length (`j + n ≤ j1`); whole vectors are read below `n` and the
    // last one only up to `n`.
    unsafe {
        let mut acc = [[V::zero(); NV]; N];
        if !job.first {
            for r in 0..N {
                let o = out.add(r * oplane + orow + j);
                for v in 0..NV {
                    let at = o.add(V::LANES * v);
                    acc[r][v] = if v + 1 < NV {
                        V::load(at)
                    } else {
                        V::load_part(at, n - V::LANES * v)
                    };
                }
            }
        }
        acc
    }
}

/// Stores an `N` × `NV` tile at output column `j`, its first `n` columns only, with [`Post`]
/// on the last chunk.
///
/// # Safety
///
/// As [`block`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn finish<V: Vector, const N: usize, const NV: usize>(
    job: &Row<'_>,
    post: &Post,
    acc: [[V; NV]; N],
    out: *mut f32,
    oplane: usize,
    orow: usize,
    j: usize,
    n: usize,
) {
    // SAFETY: `V`'s CPU features are the caller's. Channel `r`'s stores go to
    // `out[r·oplane + orow + j..][..n]`, inside the buffer as in `start`: whole vectors below
    // `n`, the last one only up to `n`.
    unsafe {
        let tenth = V::splat(0.1);
        if n == NV * V::LANES {
            // A full tile (`n` is a constant there): Post and stores interleaved, as the AVX2 tiles
            // want (the split order below costs them ~3% on thin layers).
            for r in 0..N {
                let a = V::splat(post.a[r]);
                let b = V::splat(post.b[r]);
                let o = out.add(r * oplane + orow + j);
                for v in 0..NV {
                    let mut y = acc[r][v];
                    if job.last {
                        y = V::fma(y, a, b);
                        if post.leaky {
                            y = y.leaky(tenth);
                        }
                    }
                    y.store(o.add(V::LANES * v));
                }
            }
            return;
        }
        // A partial tile: Post first, then the stores. With the partial store's stack copy inside
        // one loop over `r`, LLVM does not unroll it and keeps `acc` on the stack through the FMA
        // loop (seen on NEON).
        let mut acc = acc;
        if job.last {
            for r in 0..N {
                let a = V::splat(post.a[r]);
                let b = V::splat(post.b[r]);
                for v in 0..NV {
                    acc[r][v] = V::fma(acc[r][v], a, b);
                    if post.leaky {
                        acc[r][v] = acc[r][v].leaky(tenth);
                    }
                }
            }
        }
        for r in 0..N {
            let o = out.add(r * oplane + orow + j);
            for v in 0..NV {
                let at = o.add(V::LANES * v);
                if v + 1 < NV {
                    acc[r][v].store(at);
                } else {
                    acc[r][v].store_part(at, n - V::LANES * v);
                }
            }
        }
    }
}

/// One tile: `N` channels × `NV` vectors of columns from output column `j`, of which the first
/// `n` are valid (`LANES·(NV − 1) < n ≤ LANES·NV`). Input vectors are read whole (the padded
/// row covers them, see [`Row::check`]); outputs only below `j + n`.
///
/// # Safety
///
/// As [`row_from`], and `j..j + n` lies inside `job.j0..job.j1` with `j − j0` a multiple of
/// `V::LANES`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<V: Vector, const N: usize, const NV: usize, const K: usize>(
    job: &Row<'_>,
    post: &Post,
    out: *mut f32,
    oplane: usize,
    orow: usize,
    j: usize,
    n: usize,
) {
    debug_assert!(V::LANES * (NV - 1) < n && n <= V::LANES * NV);
    let k = if K == 0 { job.k } else { K };
    let kk = k * k;
    // SAFETY: this function's contract is `start`'s.
    let mut acc = unsafe { start::<V, N, NV>(job, out, oplane, orow, j, n) };
    // Without kernel rows in the map or input channels there are no taps, and `check` bounds
    // neither `base` nor the weights: no pointer is formed from them.
    if job.nky > 0 && job.channels > 0 {
        // SAFETY: `V`'s CPU features are the caller's. Input: channel `c < channels`, kernel
        // row `ky < nky`, tap `kx < k` and vector `v < NV` read `LANES` values from
        // `base + c·plane + ky·row + j + kx + LANES·v`, the last at most
        // `base + (channels − 1)·plane + (nky − 1)·row + (j + LANES·NV) + k − 2`; with `j − j0`
        // a multiple of `LANES` and `j + n ≤ j1`, `j + LANES·NV` is at most `j0 + (j1 − j0)`
        // rounded up to whole vectors, the bound `check` proved below `input.len()`. Weights:
        // `ky0·k·N + c·k²·N + ky·k·N + kx·N + r < channels·k²·N ≤ weights.len()` (`check`;
        // `ky0 + nky ≤ k`). 1×1 has `k = 1`, so `nky = 1` and `ky = kx = 0`.
        unsafe {
            let inp = job.input.as_ptr().add(job.base + j);
            let wp = job.weights.as_ptr().add(job.ky0 * k * N);
            if K == 1 {
                // 1×1: one tap per channel, a flat channel loop.
                for c in 0..job.channels {
                    let ir = inp.add(c * job.plane);
                    let wr = wp.add(c * N);
                    let mut x = [V::zero(); NV];
                    for v in 0..NV {
                        x[v] = V::load(ir.add(V::LANES * v));
                    }
                    for r in 0..N {
                        let w = V::broadcast(wr.add(r));
                        for v in 0..NV {
                            acc[r][v] = V::fma(w, x[v], acc[r][v]);
                        }
                    }
                }
            } else {
                for c in 0..job.channels {
                    let ic = inp.add(c * job.plane);
                    let wc = wp.add(c * kk * N);
                    for ky in 0..job.nky {
                        let ir = ic.add(ky * job.row);
                        let wr = wc.add(ky * k * N);
                        for kx in 0..k {
                            // x[v] = the inputs at column j + kx + LANES·v; then every (r, v)
                            // takes its tap (c, ky, kx), in the order of the module docs.
                            let mut x = [V::zero(); NV];
                            for v in 0..NV {
                                x[v] = V::load(ir.add(kx + V::LANES * v));
                            }
                            for r in 0..N {
                                let w = V::broadcast(wr.add(kx * N + r));
                                for v in 0..NV {
                                    acc[r][v] = V::fma(w, x[v], acc[r][v]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // SAFETY: this function's contract is `finish`'s.
    unsafe { finish::<V, N, NV>(job, post, acc, out, oplane, orow, j, n) };
}

#[cfg(all(test, feature = "std"))]
mod tests;
