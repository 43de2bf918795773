//! Work split over a kernel's threads ([`Team`]: the caller plus persistent [`Workers`] with
//! `std`; one thread otherwise): the padding copy and max pools by channel ranges, the conv by
//! each thread's [`thread_range`] of output channels. Each output is computed by exactly one
//! thread with the same operations as on one thread.

extern crate alloc;

#[cfg(feature = "std")]
use alloc::sync::Arc;
use alloc::vec::Vec;

use tessera_core::kernel::KernelError;
use tessera_core::model::{MaxPool, Shape};
use tessera_core::tensor::{FeatureView, FeatureViewMut};

use super::blocking::{conv_range, Ctx};
use super::channels::thread_range;
use super::pack::{groups, pack};
use super::pad::PadGeo;
use super::pool::maxpool;
use super::scratch::with_packed;
#[cfg(feature = "std")]
use super::workers::Workers;

/// A kernel's threads: created once with the kernel (its clones share them), so a call hands
/// its parts to parked workers instead of spawning threads.
#[derive(Clone, Debug, Default)]
pub(crate) struct Team {
    #[cfg(feature = "std")]
    workers: Option<Arc<Workers>>,
}

impl Team {
    /// `threads` threads (the caller and `threads − 1` workers); one without `std`.
    pub(crate) fn new(threads: usize) -> Team {
        #[cfg(feature = "std")]
        {
            Team {
                workers: (threads > 1).then(|| Arc::new(Workers::new(threads))),
            }
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = threads;
            Team {}
        }
    }

    /// Threads of a call.
    pub(crate) fn threads(&self) -> usize {
        #[cfg(feature = "std")]
        if let Some(w) = &self.workers {
            return w.threads();
        }
        1
    }

    /// Runs `f` on each of `parts` (at most [`threads`](Self::threads)), part `t` on thread
    /// `t` (the caller takes the last), and returns the results in order.
    pub(crate) fn map<P: Send, R: Send>(&self, parts: Vec<P>, f: impl Fn(P) -> R + Sync) -> Vec<R> {
        #[cfg(feature = "std")]
        if let (Some(w), true) = (&self.workers, parts.len() > 1) {
            return w.map(parts, f);
        }
        parts.into_iter().map(f).collect()
    }

    /// Runs `f` on every piece of `lists` (list `t` is thread `t`'s share), a thread that
    /// finishes its own taking pieces from the back of the others' (see `Workers::steal`):
    /// each piece runs exactly once, computing the same values on any thread.
    pub(crate) fn steal<P: Send>(&self, lists: Vec<Vec<P>>, f: impl Fn(P) + Sync) {
        #[cfg(feature = "std")]
        if let (Some(w), true) = (&self.workers, lists.len() > 1) {
            return w.steal(lists, f);
        }
        lists.into_iter().flatten().for_each(f);
    }
}

/// Fills the padded buffer on `threads` threads of `team`, each an equal range of its padded
/// rows counted over all channels (a layer of fewer channels than threads, such as YOLOv2's
/// 3-channel layer 0, still splits evenly).
pub(super) fn fill_split(
    team: &Team,
    geo: &PadGeo,
    input: &FeatureView<'_>,
    c: usize,
    threads: usize,
    pad: &mut [f32],
) {
    let rows = c * geo.nrows;
    let threads = threads.min(rows).max(1);
    if threads == 1 {
        return geo.fill(input, 0, pad);
    }
    let mut parts = Vec::with_capacity(threads);
    let mut rest = pad;
    for t in 0..threads {
        let (u0, u1) = (rows * t / threads, rows * (t + 1) / threads);
        let len = if t + 1 == threads {
            rest.len()
        } else {
            geo.row_start(u1) - geo.row_start(u0)
        };
        let (mine, tail) = rest.split_at_mut(len);
        rest = tail;
        parts.push((u0..u1, mine));
    }
    team.map(parts, |(units, mine)| geo.fill_rows(input, units, mine));
}

/// Max pool with channel ranges on `threads` threads of `team` (a pool is exact, so results
/// equal one thread's).
pub(super) fn pool_split(
    team: &Team,
    pool: &MaxPool,
    map: Shape,
    input: &FeatureView<'_>,
    out: &mut FeatureViewMut<'_>,
    threads: usize,
) -> Result<(), KernelError> {
    // Channel ranges of the output's buffer (its layout: the region, or a window's buffer).
    let (ir, or, layout) = (input.region(), out.region(), out.layout());
    let (iplane, oplane) = (ir.area() as usize, layout.area() as usize);
    let c = map.c as usize;
    let src = input.data();
    let mut parts = Vec::with_capacity(threads);
    let mut rest = out.data();
    for t in 0..threads {
        let (c0, c1) = thread_range(c, threads, t);
        let (mine, tail) = rest.split_at_mut((c1 - c0) * oplane);
        rest = tail;
        parts.push((&src[c0 * iplane..c1 * iplane], mine));
    }
    team.map(parts, |(part, mine)| {
        let shape = Shape::new(map.w, map.h, (part.len() / iplane.max(1)) as u32);
        let iv = FeatureView::new(part, ir, shape.c).map_err(|_| KernelError::ChannelMismatch)?;
        let mut ov = FeatureViewMut::within(mine, layout, or, shape.c)
            .map_err(|_| KernelError::ChannelMismatch)?;
        maxpool(pool, shape, &iv, &mut ov)
    })
    .into_iter()
    .collect()
}

/// Runs the conv's output channels (`ctxs[0].ab`; `ctxs` are the parts of its region, all
/// with the same channels, `packed` not yet set): each of `threads` threads of `team` its
/// [`groups`] (the caller's thread takes the last), each group's weights (`[o][tap]`) read
/// from `pre` (the layer packed once for `threads`, [`Prepacked`](super::pack::Prepacked)) or
/// packed by the thread running the group into its own buffer just before they run.
/// A thread done with its groups takes unstarted groups of the others ([`Team::steal`]). One
/// dispatch per conv, nothing serial between threads.
pub(super) fn split(
    team: &Team,
    ctxs: &[Ctx<'_>],
    weights: &[f32],
    pre: Option<&[f32]>,
    threads: usize,
    data: &mut [f32],
) {
    let n = ctxs[0].ab.len();
    let per = weights.len() / n.max(1);
    let oplane = ctxs[0].oplane;
    let mut rest = data;
    let lists = groups(n, per, threads.max(1))
        .into_iter()
        .map(|list| {
            list.into_iter()
                .map(|(g0, gn)| {
                    // A window's last plane ends before the buffer's (at its region's end).
                    let all = core::mem::take(&mut rest);
                    let (mine, tail) = all.split_at_mut((gn * oplane).min(all.len()));
                    rest = tail;
                    (g0, gn, mine)
                })
                .collect()
        })
        .collect();
    let run = |g0: usize, gn: usize, packed: &[f32], out: &mut [f32]| {
        for ctx in ctxs.iter().filter(|c| !c.region.is_empty()) {
            let ctx = Ctx {
                packed,
                ab: &ctx.ab[g0..g0 + gn],
                ..*ctx
            };
            conv_range(&ctx, out);
        }
    };
    team.steal(lists, |(g0, gn, out): (usize, usize, &mut [f32])| {
        let at = g0 * per..(g0 + gn) * per;
        match pre {
            Some(pre) => run(g0, gn, &pre[at], out),
            None => with_packed(gn * per, |buf| {
                pack(&weights[at], gn, per, buf);
                run(g0, gn, buf, out)
            }),
        }
    });
}
