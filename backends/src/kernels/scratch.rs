//! Each thread's conv buffers (the padded input, and the packed weights of the output channels
//! it computes), kept between calls: with persistent workers they stay warm for good.

#[cfg(feature = "std")]
extern crate std;

extern crate alloc;

use alloc::vec::Vec;

#[cfg(feature = "std")]
std::thread_local! {
    /// The padded input of the calling thread (no page faults per call).
    static PAD: core::cell::RefCell<Vec<f32>> = const { core::cell::RefCell::new(Vec::new()) };
    /// The packed weights of each thread's output channels.
    static PACKED: core::cell::RefCell<Vec<f32>> = const { core::cell::RefCell::new(Vec::new()) };
    /// A dense output computed before it is copied into a window (see [`with_out`]).
    static OUT: core::cell::RefCell<Vec<f32>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// Grows `v` to at least `len` elements (never shrinks it: it is kept between calls).
fn reserve(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        // Exactly: a doubled capacity would stay resident for good.
        v.reserve_exact(len - v.len());
        v.resize(len, 0.0);
    }
}

/// A per-thread buffer kept between calls; without `std`, a marker (each call allocates).
#[cfg(feature = "std")]
type Slot = std::thread::LocalKey<core::cell::RefCell<Vec<f32>>>;
#[cfg(not(feature = "std"))]
struct Slot;
#[cfg(not(feature = "std"))]
static PAD: Slot = Slot;
#[cfg(not(feature = "std"))]
static PACKED: Slot = Slot;
#[cfg(not(feature = "std"))]
static OUT: Slot = Slot;

/// Runs `f` with this thread's buffer of `slot`, at least `len` long (a fresh one without
/// `std`).
fn with<T>(slot: &'static Slot, len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    #[cfg(feature = "std")]
    {
        slot.with(|s| {
            let mut v = s.take();
            reserve(&mut v, len);
            let r = f(&mut v[..len]);
            s.replace(v);
            r
        })
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = slot;
        let mut v = Vec::new();
        reserve(&mut v, len);
        f(&mut v)
    }
}

/// Runs `f` with this thread's padded-input buffer, `len` elements (the padded input
/// ([`PadGeo`](super::pad::PadGeo)), or the 1×1 flat path's tail copy).
pub(super) fn with_pad<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    with(&PAD, len, f)
}

/// Runs `f` with `buf` as this thread's padded-input buffer (the thread's own is kept aside and
/// put back after): a job of another kind lends memory it holds idle meanwhile (a coded
/// worker's tile buffers, during a shard), so the kernels' padded input of the shard's bands
/// does not grow the thread's own buffer for good. Grown by the kernels if short (`buf` keeps
/// the growth).
#[cfg(feature = "std")]
pub(crate) fn with_pad_lent<T>(buf: &mut Vec<f32>, f: impl FnOnce() -> T) -> T {
    /// Puts the thread's own buffer back, and the lent one to its owner, even if `f` panics.
    struct Back<'b>(&'b mut Vec<f32>, Vec<f32>);
    impl Drop for Back<'_> {
        fn drop(&mut self) {
            let own = core::mem::take(&mut self.1);
            *self.0 = PAD.with(|s| s.replace(own));
        }
    }
    let lent = core::mem::take(buf);
    let own = PAD.with(|s| s.replace(lent));
    let _back = Back(buf, own);
    f()
}

/// Runs `f` with this thread's packed-weights buffer, `len` elements.
pub(super) fn with_packed<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    with(&PACKED, len, f)
}

/// Runs `f` with this thread's dense-output buffer, `len` elements: a 1×1 conv's output for a
/// window of part rows, computed on the flat path and then copied in.
pub(super) fn with_out<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    with(&OUT, len, f)
}
