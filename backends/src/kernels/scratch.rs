//! Each thread's conv buffers (the padded input and the packed weights), kept between calls.

#[cfg(feature = "std")]
extern crate std;

extern crate alloc;

use alloc::vec::Vec;

#[cfg(feature = "std")]
std::thread_local! {
    /// Each thread's padded-input buffer, kept between calls (no page faults per call).
    static SCRATCH: core::cell::RefCell<Scratch> = const {
        core::cell::RefCell::new(Scratch { pad: Vec::new(), packed: Vec::new() })
    };
}

/// Buffers of one conv call: the padded input and the packed weights.
#[derive(Default)]
pub(super) struct Scratch {
    /// The padded input ([`PadGeo`](super::pad::PadGeo)), or the 1×1 flat path's tail copy.
    pub(super) pad: Vec<f32>,
    /// Packed weights of one group of output channels.
    pub(super) packed: Vec<f32>,
}

impl Scratch {
    /// Grows the buffers to at least `pad` and `packed` elements (never shrinks them: they are
    /// kept between calls).
    pub(super) fn reserve(&mut self, pad: usize, packed: usize) {
        for (v, len) in [(&mut self.pad, pad), (&mut self.packed, packed)] {
            if v.len() < len {
                // Exactly: a doubled capacity would stay resident for good.
                v.reserve_exact(len - v.len());
                v.resize(len, 0.0);
            }
        }
    }
}

/// Runs `f` with this thread's scratch buffers (fresh ones without `std`).
pub(super) fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    #[cfg(feature = "std")]
    {
        SCRATCH.with(|s| {
            let mut v = s.take();
            let r = f(&mut v);
            s.replace(v);
            r
        })
    }
    #[cfg(not(feature = "std"))]
    {
        f(&mut Scratch::default())
    }
}
