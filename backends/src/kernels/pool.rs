//! Max pools: a direct path for 2×2 stride-2 windows inside the map, [`Portable`] for the rest.

use tessera_core::kernel::{KernelError, Kernels, Portable};
use tessera_core::model::{MaxPool, Shape};
use tessera_core::tensor::{FeatureView, FeatureViewMut};

/// A 2×2 stride-2 pool whose windows all lie inside the map and the view takes a direct path;
/// anything else goes to [`Portable`]. Both keep the running maximum in tap order with
/// `if v > max`, so they agree bit for bit (with the reference too).
pub(super) fn maxpool(
    pool: &MaxPool,
    map: Shape,
    input: &FeatureView<'_>,
    out: &mut FeatureViewMut<'_>,
) -> Result<(), KernelError> {
    let o = out.region();
    let v = input.region();
    let direct = pool.size == 2
        && pool.stride == 2
        && pool.offset() == 0
        && input.channels() == map.c
        && out.channels() == map.c
        && !o.is_empty()
        && 2 * o.x.end <= map.w
        && 2 * o.y.end <= map.h
        && v.x.start <= 2 * o.x.start
        && v.y.start <= 2 * o.y.start
        && 2 * o.x.end <= v.x.end
        && 2 * o.y.end <= v.y.end
        && pool.out_extent(map.w).is_ok_and(|w| o.x.end <= w)
        && pool.out_extent(map.h).is_ok_and(|h| o.y.end <= h);
    if !direct {
        return Portable.maxpool(pool, map, input, out);
    }
    let x0 = (2 * o.x.start - v.x.start) as usize;
    let n = o.width() as usize;
    for c in 0..map.c {
        for y in o.y.start..o.y.end {
            let r0 = &input.row(c, 2 * y)[x0..x0 + 2 * n];
            let r1 = &input.row(c, 2 * y + 1)[x0..x0 + 2 * n];
            let dst = out.row_mut(c, y);
            for ((d, a), b) in dst
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                let mut m = -f32::MAX;
                for t in [a[0], a[1], b[0], b[1]] {
                    m = if t > m { t } else { m };
                }
                *d = m;
            }
        }
    }
    Ok(())
}
