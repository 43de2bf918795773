//! Work split over scoped threads (`std` only; one thread otherwise): the padding copy and
//! max pools by channel ranges, the conv by each thread's [`thread_range`] of output channels.
//! Each output is computed by exactly one thread with the same operations as on one thread.

#[cfg(feature = "std")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
use alloc::vec::Vec;

use tessera_core::kernel::KernelError;
use tessera_core::model::{MaxPool, Shape};
use tessera_core::tensor::{FeatureView, FeatureViewMut};

use super::blocking::{conv_range, Ctx};
#[cfg(feature = "std")]
use super::channels::thread_range;
use super::pad::PadGeo;
use super::pool::maxpool;

/// Fills the padded buffer with channel ranges on `threads` threads.
#[cfg(feature = "std")]
pub(super) fn fill_split(
    geo: &PadGeo,
    input: &FeatureView<'_>,
    c: usize,
    threads: usize,
    pad: &mut [f32],
) {
    let plane = geo.plane;
    let threads = threads.min(c).max(1);
    std::thread::scope(|scope| {
        let mut rest = pad;
        let mut c0 = 0;
        for t in 0..threads {
            let c1 = c * (t + 1) / threads;
            let (mine, tail) = rest.split_at_mut((c1 - c0) * plane);
            rest = tail;
            let start = c0;
            if t + 1 == threads {
                geo.fill(input, start, mine);
            } else {
                scope.spawn(move || geo.fill(input, start, mine));
            }
            c0 = c1;
        }
    });
}

#[cfg(not(feature = "std"))]
pub(super) fn fill_split(
    geo: &PadGeo,
    input: &FeatureView<'_>,
    _: usize,
    _: usize,
    pad: &mut [f32],
) {
    geo.fill(input, 0, pad);
}

/// Max pool with channel ranges on `threads` threads (a pool is exact, so results equal one
/// thread's).
#[cfg(feature = "std")]
pub(super) fn pool_split(
    pool: &MaxPool,
    map: Shape,
    input: &FeatureView<'_>,
    out: &mut FeatureViewMut<'_>,
    threads: usize,
) -> Result<(), KernelError> {
    let (ir, or) = (input.region(), out.region());
    let (iplane, oplane) = (ir.area() as usize, or.area() as usize);
    let c = map.c as usize;
    let src = input.data();
    let dst = out.data();
    std::thread::scope(|scope| {
        let mut rest = dst;
        let mut handles = Vec::new();
        let mut result = Ok(());
        let mut c0 = 0;
        for t in 0..threads {
            let c1 = c * (t + 1) / threads;
            let (mine, tail) = rest.split_at_mut((c1 - c0) * oplane);
            rest = tail;
            let part = &src[c0 * iplane..c1 * iplane];
            let shape = Shape::new(map.w, map.h, (c1 - c0) as u32);
            let mut job = move || -> Result<(), KernelError> {
                let iv = FeatureView::new(part, ir, shape.c)
                    .map_err(|_| KernelError::ChannelMismatch)?;
                let mut ov = FeatureViewMut::new(mine, or, shape.c)
                    .map_err(|_| KernelError::ChannelMismatch)?;
                maxpool(pool, shape, &iv, &mut ov)
            };
            if t + 1 == threads {
                result = job();
            } else {
                handles.push(scope.spawn(job));
            }
            c0 = c1;
        }
        for h in handles {
            let r = h.join().expect("pool thread panicked");
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

#[cfg(not(feature = "std"))]
pub(super) fn pool_split(
    pool: &MaxPool,
    map: Shape,
    input: &FeatureView<'_>,
    out: &mut FeatureViewMut<'_>,
    _: usize,
) -> Result<(), KernelError> {
    maxpool(pool, map, input, out)
}

/// Runs the conv's `n` output channels: on this thread for one thread, else each thread's
/// [`thread_range`] on a scoped thread (the caller's thread takes the last range).
#[cfg(feature = "std")]
pub(super) fn split(ctx: &Ctx<'_>, n: usize, threads: usize, data: &mut [f32]) {
    if threads <= 1 {
        return conv_range(ctx, 0, n, data);
    }
    let oplane = ctx.oplane;
    std::thread::scope(|scope| {
        let mut rest = data;
        let mut o = 0;
        for t in 0..threads {
            let end = thread_range(n, threads, t).1;
            let (mine, tail) = rest.split_at_mut((end - o) * oplane);
            rest = tail;
            let oa = o;
            if t + 1 == threads {
                conv_range(ctx, oa, end, mine);
            } else {
                scope.spawn(move || conv_range(ctx, oa, end, mine));
            }
            o = end;
        }
    });
}

#[cfg(not(feature = "std"))]
pub(super) fn split(ctx: &Ctx<'_>, n: usize, _: usize, data: &mut [f32]) {
    conv_range(ctx, 0, n, data);
}
