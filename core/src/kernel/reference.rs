//! The plain reference kernels: one output at a time, the oracle every faster kernel is
//! checked against.

use super::{check_conv_call, check_pool_call, KernelError, Kernels, Post};
use crate::model::weights::ConvParams;
use crate::model::{Conv, MaxPool, Shape};
use crate::tensor::{FeatureView, FeatureViewMut};

/// Straightforward loops, no blocking.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

impl Kernels for Reference {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        check_conv_call(conv, map, params, input, out)?;
        let (k, s, p) = (conv.size as i64, conv.stride as i64, conv.pad as i64);
        let region = out.region();
        for o in 0..conv.filters {
            let post = Post::new(conv, params, o as usize);
            for y in region.y.start..region.y.end {
                for x in region.x.start..region.x.end {
                    let mut acc = 0.0f32;
                    for c in 0..map.c {
                        for ky in 0..k {
                            let iy = y as i64 * s - p + ky;
                            if iy < 0 || iy >= map.h as i64 {
                                continue;
                            }
                            for kx in 0..k {
                                let ix = x as i64 * s - p + kx;
                                if ix < 0 || ix >= map.w as i64 {
                                    continue;
                                }
                                let wi = ((o as i64 * map.c as i64 + c as i64) * k + ky) * k + kx;
                                acc +=
                                    params.weights[wi as usize] * input.at(c, ix as u32, iy as u32);
                            }
                        }
                    }
                    let row = out.row_mut(o, y);
                    row[(x - region.x.start) as usize] = post.apply(acc);
                }
            }
        }
        Ok(())
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        check_pool_call(pool, map, input, out)?;
        let (z, s, q) = (pool.size as i64, pool.stride as i64, pool.offset() as i64);
        let region = out.region();
        for c in 0..map.c {
            for y in region.y.start..region.y.end {
                for x in region.x.start..region.x.end {
                    let mut max = -f32::MAX;
                    for ky in 0..z {
                        let iy = y as i64 * s - q + ky;
                        if iy < 0 || iy >= map.h as i64 {
                            continue;
                        }
                        for kx in 0..z {
                            let ix = x as i64 * s - q + kx;
                            if ix < 0 || ix >= map.w as i64 {
                                continue;
                            }
                            let v = input.at(c, ix as u32, iy as u32);
                            max = if v > max { v } else { max };
                        }
                    }
                    out.row_mut(c, y)[(x - region.x.start) as usize] = max;
                }
            }
        }
        Ok(())
    }
}
