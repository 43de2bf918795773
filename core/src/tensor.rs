//! CHW views of a feature map region over caller-owned slices.
//!
//! A view holds the values of `channels × region` of some map, channel-major, then row, then
//! column, with rows `region.width()` long. Coordinates passed to views are absolute map
//! coordinates, so a kernel never needs to know where a tile starts.

use crate::region::Region;

/// Why a slice cannot be viewed as a region tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewError {
    /// The slice is shorter than `channels × area`.
    TooShort {
        /// Elements needed.
        needed: usize,
        /// Elements available.
        available: usize,
    },
    /// `channels × area` overflows `usize`.
    Overflow,
}

impl core::fmt::Display for ViewError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ViewError::TooShort { needed, available } => {
                write!(f, "buffer holds {available} values, region needs {needed}")
            }
            ViewError::Overflow => f.write_str("region size overflows"),
        }
    }
}

impl core::error::Error for ViewError {}

/// Number of values in `channels × region`, checked.
pub fn region_len(region: &Region, channels: u32) -> Result<usize, ViewError> {
    (region.width() as usize)
        .checked_mul(region.height() as usize)
        .and_then(|a| a.checked_mul(channels as usize))
        .ok_or(ViewError::Overflow)
}

/// A read-only CHW view of `channels × region`.
#[derive(Clone, Copy, Debug)]
pub struct FeatureView<'a> {
    data: &'a [f32],
    region: Region,
    channels: u32,
}

impl<'a> FeatureView<'a> {
    /// Views the first `channels × region.area()` values of `data`.
    pub fn new(data: &'a [f32], region: Region, channels: u32) -> Result<Self, ViewError> {
        let needed = region_len(&region, channels)?;
        let data = data.get(..needed).ok_or(ViewError::TooShort {
            needed,
            available: data.len(),
        })?;
        Ok(FeatureView {
            data,
            region,
            channels,
        })
    }

    /// The region this view covers.
    pub const fn region(&self) -> Region {
        self.region
    }

    /// Number of channels.
    pub const fn channels(&self) -> u32 {
        self.channels
    }

    /// All values, CHW.
    pub const fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Values of channel `c`, row `y` (absolute), all columns of the region.
    /// Panics if `c` or `y` is outside the view; callers check regions first.
    pub fn row(&self, c: u32, y: u32) -> &'a [f32] {
        let w = self.region.width() as usize;
        let h = self.region.height() as usize;
        let start = (c as usize * h + (y - self.region.y.start) as usize) * w;
        &self.data[start..start + w]
    }

    /// The value at channel `c`, absolute position `(x, y)`.
    /// Panics if outside the view; callers check regions first.
    pub fn at(&self, c: u32, x: u32, y: u32) -> f32 {
        self.row(c, y)[(x - self.region.x.start) as usize]
    }
}

/// A mutable CHW view of `channels × region`.
#[derive(Debug)]
pub struct FeatureViewMut<'a> {
    data: &'a mut [f32],
    region: Region,
    channels: u32,
}

impl<'a> FeatureViewMut<'a> {
    /// Views the first `channels × region.area()` values of `data`.
    pub fn new(data: &'a mut [f32], region: Region, channels: u32) -> Result<Self, ViewError> {
        let needed = region_len(&region, channels)?;
        let available = data.len();
        let data = data
            .get_mut(..needed)
            .ok_or(ViewError::TooShort { needed, available })?;
        Ok(FeatureViewMut {
            data,
            region,
            channels,
        })
    }

    /// The region this view covers.
    pub const fn region(&self) -> Region {
        self.region
    }

    /// Number of channels.
    pub const fn channels(&self) -> u32 {
        self.channels
    }

    /// All values, CHW.
    pub fn data(&mut self) -> &mut [f32] {
        self.data
    }

    /// A read-only view of the same values.
    pub fn as_view(&self) -> FeatureView<'_> {
        FeatureView {
            data: self.data,
            region: self.region,
            channels: self.channels,
        }
    }

    /// Mutable values of channel `c`, row `y` (absolute), all columns of the region.
    /// Panics if `c` or `y` is outside the view; callers check regions first.
    pub fn row_mut(&mut self, c: u32, y: u32) -> &mut [f32] {
        let w = self.region.width() as usize;
        let h = self.region.height() as usize;
        let start = (c as usize * h + (y - self.region.y.start) as usize) * w;
        &mut self.data[start..start + w]
    }
}

/// Copies the part of `src` that lies in `dst`'s region into `dst` (channels must match;
/// returns the copied sub-region, empty if they do not meet).
pub fn copy_overlap(src: &FeatureView<'_>, dst: &mut FeatureViewMut<'_>) -> Region {
    let common = src.region().intersect(&dst.region());
    if common.is_empty() || src.channels() != dst.channels() {
        return Region::default();
    }
    let (x0, x1) = (common.x.start, common.x.end);
    for c in 0..src.channels() {
        for y in common.y.start..common.y.end {
            let s = src.row(c, y);
            let sx = (x0 - src.region().x.start) as usize;
            let dx = (x0 - dst.region().x.start) as usize;
            let n = (x1 - x0) as usize;
            dst.row_mut(c, y)[dx..dx + n].copy_from_slice(&s[sx..sx + n]);
        }
    }
    common
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Span;

    #[test]
    fn views_check_lengths_and_index_absolutely() {
        let r = Region::new(Span::new(10, 13), Span::new(5, 7));
        let data: [f32; 12] = core::array::from_fn(|i| i as f32);
        assert!(FeatureView::new(&data[..11], r, 2).is_err());
        let v = FeatureView::new(&data, r, 2).unwrap();
        assert_eq!(v.at(0, 10, 5), 0.0);
        assert_eq!(v.at(1, 12, 6), 11.0);
        let mut out = [0.0f32; 2];
        let mut d =
            FeatureViewMut::new(&mut out, Region::new(Span::new(12, 13), Span::new(5, 7)), 1)
                .unwrap();
        let one = FeatureView::new(&data[..6], r, 1).unwrap();
        assert_eq!(
            copy_overlap(&one, &mut d),
            Region::new(Span::new(12, 13), Span::new(5, 7))
        );
        assert_eq!(out, [2.0, 5.0]);
    }
}
