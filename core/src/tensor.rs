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
    /// A windowed view's region is not inside the buffer's layout.
    Outside {
        /// The region to view.
        region: Region,
        /// The region the buffer is laid out as.
        layout: Region,
    },
}

impl core::fmt::Display for ViewError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ViewError::TooShort { needed, available } => {
                write!(f, "buffer holds {available} values, region needs {needed}")
            }
            ViewError::Overflow => f.write_str("region size overflows"),
            ViewError::Outside { region, layout } => {
                write!(
                    f,
                    "region {region:?} lies outside the buffer's layout {layout:?}"
                )
            }
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

    /// [`ViewError::Outside`] unless the view covers `part`.
    pub fn check_covers(&self, part: Region) -> Result<(), ViewError> {
        if self.region.covers(&part) {
            Ok(())
        } else {
            Err(ViewError::Outside {
                region: part,
                layout: self.region,
            })
        }
    }

    /// Copies `channels × part` into `out`, laid out as `layout` (CHW over `layout`, which
    /// covers `part`; `layout = part` makes a dense copy). [`ViewError::Outside`] unless the
    /// view covers `part` and `layout` covers it, [`ViewError::TooShort`] when `out` is
    /// shorter than `layout`'s values; `out`'s other values are left alone.
    pub fn copy_part(
        &self,
        part: Region,
        out: &mut [f32],
        layout: Region,
    ) -> Result<(), ViewError> {
        self.check_covers(part)?;
        copy_overlap(
            self,
            &mut FeatureViewMut::within(out, layout, part, self.channels)?,
        );
        Ok(())
    }

    /// The values of `channels × part` in CHW order, one row of `part` at a time: what a
    /// dense view of `part` would hold, read in place. [`ViewError::Outside`] unless the
    /// view covers `part`.
    pub fn rows_in(
        &self,
        part: Region,
    ) -> Result<impl Iterator<Item = &'a [f32]> + use<'a>, ViewError> {
        self.check_covers(part)?;
        let view = *self;
        // An empty `part` is covered wherever it lies: it has no rows.
        let rows = if part.is_empty() {
            0..0
        } else {
            part.y.start..part.y.end
        };
        let x0 = part.x.start.saturating_sub(self.region.x.start) as usize;
        let n = part.width() as usize;
        Ok((0..self.channels)
            .flat_map(move |c| rows.clone().map(move |y| &view.row(c, y)[x0..x0 + n])))
    }
}

/// Where a region lies in a CHW buffer laid out as a region covering it (a
/// [`FeatureViewMut`]'s, or part of a dense view; [`Strides::of`]): the region's first value
/// (channel 0, its top-left pixel) at `offset`, rows `row` values apart, channels `plane`
/// values apart. A dense view has `offset = 0`, `row = width`, `plane = area`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    /// Index of the region's first value in the buffer ([`FeatureViewMut::data`]).
    pub offset: usize,
    /// Values between vertically adjacent pixels.
    pub row: usize,
    /// Values between channels.
    pub plane: usize,
}

impl Strides {
    /// Where `region` lies in a buffer laid out as `layout` (which covers it).
    pub fn of(layout: Region, region: Region) -> Strides {
        let row = layout.width() as usize;
        Strides {
            offset: (region.y.start.saturating_sub(layout.y.start)) as usize * row
                + region.x.start.saturating_sub(layout.x.start) as usize,
            row,
            plane: row * layout.height() as usize,
        }
    }
}

/// A mutable CHW view of `channels × region`, over a buffer laid out as `channels × layout`
/// for some `layout` covering `region` (usually `layout = region`: a dense view).
///
/// A windowed view ([`FeatureViewMut::within`]) lets a layer write its output straight into
/// the buffer its next layer reads, laid out as that layer's larger input region, whose other
/// pixels are filled from elsewhere (a tile's received strips). Kernels write the region only.
#[derive(Debug)]
pub struct FeatureViewMut<'a> {
    data: &'a mut [f32],
    layout: Region,
    region: Region,
    channels: u32,
}

impl<'a> FeatureViewMut<'a> {
    /// Views the first `channels × region.area()` values of `data`.
    pub fn new(data: &'a mut [f32], region: Region, channels: u32) -> Result<Self, ViewError> {
        Self::within(data, region, region, channels)
    }

    /// Views `region` of the first `channels × layout.area()` values of `data`, laid out as
    /// `layout` ([`ViewError::Outside`] unless `layout` covers `region`).
    pub fn within(
        data: &'a mut [f32],
        layout: Region,
        region: Region,
        channels: u32,
    ) -> Result<Self, ViewError> {
        if !layout.covers(&region) {
            return Err(ViewError::Outside { region, layout });
        }
        let needed = region_len(&layout, channels)?;
        let available = data.len();
        let data = data
            .get_mut(..needed)
            .ok_or(ViewError::TooShort { needed, available })?;
        Ok(FeatureViewMut {
            data,
            layout,
            region,
            channels,
        })
    }

    /// The region this view covers (the values a kernel computes).
    pub const fn region(&self) -> Region {
        self.region
    }

    /// The region the buffer is laid out as (the view's region for a dense view).
    pub const fn layout(&self) -> Region {
        self.layout
    }

    /// True when the buffer holds the region alone (`layout == region`): its values are
    /// [`data`](Self::data), CHW, rows `region.width()` long.
    pub fn is_dense(&self) -> bool {
        self.layout == self.region
    }

    /// Number of channels.
    pub const fn channels(&self) -> u32 {
        self.channels
    }

    /// The whole buffer, CHW over [`layout`](Self::layout) (see [`strides`](Self::strides)).
    pub fn data(&mut self) -> &mut [f32] {
        self.data
    }

    /// Where the region lies in [`data`](Self::data).
    pub fn strides(&self) -> Strides {
        Strides::of(self.layout, self.region)
    }

    /// A view of `region` (inside this view's region) of the same buffer, for a call that
    /// computes part of this view ([`ViewError::Outside`] if it is not inside).
    pub fn window(&mut self, region: Region) -> Result<FeatureViewMut<'_>, ViewError> {
        if !self.region.covers(&region) {
            return Err(ViewError::Outside {
                region,
                layout: self.region,
            });
        }
        FeatureViewMut::within(self.data, self.layout, region, self.channels)
    }

    /// A read-only view of the whole buffer (its [`layout`](Self::layout)).
    pub fn as_view(&self) -> FeatureView<'_> {
        FeatureView {
            data: self.data,
            region: self.layout,
            channels: self.channels,
        }
    }

    /// Mutable values of channel `c`, row `y` (absolute), all columns of the region.
    /// Panics if `c` or `y` is outside the view; callers check regions first.
    pub fn row_mut(&mut self, c: u32, y: u32) -> &mut [f32] {
        let s = self.strides();
        assert!(c < self.channels && self.region.y.contains(y));
        let start = s.offset + c as usize * s.plane + (y - self.region.y.start) as usize * s.row;
        &mut self.data[start..start + self.region.width() as usize]
    }
}

/// Re-lays `buf`, which holds `from` (dense, `channels` planes), out as `to` in place, keeping
/// the rows the two share: what a band moving down a map carries into the next band instead of
/// computing again. Both must span the same columns (else nothing is kept); returns the rows
/// kept, where `to` now holds their values (its other rows hold stale values to overwrite).
/// `buf` must hold both layouts.
pub fn slide_rows(
    buf: &mut [f32],
    from: Region,
    to: Region,
    channels: u32,
) -> Result<Region, ViewError> {
    for r in [&from, &to] {
        let needed = region_len(r, channels)?;
        if buf.len() < needed {
            return Err(ViewError::TooShort {
                needed,
                available: buf.len(),
            });
        }
    }
    let kept = from.intersect(&to);
    if kept.is_empty() || from.x != to.x {
        return Ok(Region::default());
    }
    let w = to.width() as usize;
    let len = kept.height() as usize * w;
    let (pf, pt) = (from.area() as usize, to.area() as usize);
    let (of, ot) = (
        (kept.y.start - from.y.start) as usize * w,
        (kept.y.start - to.y.start) as usize * w,
    );
    let at = |c: usize| (c * pf + of, c * pt + ot);
    // Plane `c` moves by `c·(pt − pf) + ot − of`, linear in `c`: the planes moving to higher
    // offsets go first, last plane first, then the others, first plane first, so no plane
    // overwrites one not yet moved (each lands inside its own plane of `to`).
    let n = channels as usize;
    for c in (0..n).rev() {
        let (f, t) = at(c);
        if t > f {
            buf.copy_within(f..f + len, t);
        }
    }
    for c in 0..n {
        let (f, t) = at(c);
        if t < f {
            buf.copy_within(f..f + len, t);
        }
    }
    Ok(kept)
}

/// Copies the part of `src` that lies in `dst`'s region into `dst` (channels must match;
/// returns the copied sub-region, empty if they do not meet).
pub fn copy_overlap(src: &FeatureView<'_>, dst: &mut FeatureViewMut<'_>) -> Region {
    let common = src.region().intersect(&dst.region());
    if common.is_empty() || src.channels() != dst.channels() {
        return Region::default();
    }
    let (n, h) = (common.width() as usize, common.height() as usize);
    // Where `common` lies on each side, once: strips are often a few values wide and
    // thousands of rows tall, so per-row bookkeeping would cost more than the copy.
    let (s, d) = (
        Strides::of(src.region(), common),
        Strides::of(dst.layout(), common),
    );
    let from = src.data();
    let to = dst.data();
    for c in 0..src.channels() as usize {
        let (f, t) = (s.offset + c * s.plane, d.offset + c * d.plane);
        if n == s.row && n == d.row {
            // Whole rows on both sides: the plane's part is one run.
            to[t..t + n * h].copy_from_slice(&from[f..f + n * h]);
            continue;
        }
        copy_rows(&mut to[t..], d.row, &from[f..], s.row, n, h);
    }
    common
}

/// Copies `h` rows of `n` values, `from_row` values apart in `from`, to rows `to_row` apart in
/// `to`. Rows of up to eight values are moved by fixed-size copies: strips are often two
/// values wide and thousands of rows tall, and a `memcpy` call per row costs more than its
/// values.
fn copy_rows(to: &mut [f32], to_row: usize, from: &[f32], from_row: usize, n: usize, h: usize) {
    fn fixed<const N: usize>(
        to: &mut [f32],
        to_row: usize,
        from: &[f32],
        from_row: usize,
        h: usize,
    ) {
        // `N` is a constant, so each row's copy is a few moves, not a call.
        for y in 0..h {
            to[y * to_row..][..N].copy_from_slice(&from[y * from_row..][..N]);
        }
    }
    match n {
        1 => fixed::<1>(to, to_row, from, from_row, h),
        2 => fixed::<2>(to, to_row, from, from_row, h),
        3 => fixed::<3>(to, to_row, from, from_row, h),
        4 => fixed::<4>(to, to_row, from, from_row, h),
        5 => fixed::<5>(to, to_row, from, from_row, h),
        6 => fixed::<6>(to, to_row, from, from_row, h),
        7 => fixed::<7>(to, to_row, from, from_row, h),
        8 => fixed::<8>(to, to_row, from, from_row, h),
        _ => {
            for y in 0..h {
                to[y * to_row..][..n].copy_from_slice(&from[y * from_row..][..n]);
            }
        }
    }
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

    #[test]
    fn windows_write_their_region_inside_the_layout() {
        let layout = Region::new(Span::new(2, 6), Span::new(1, 4));
        let inner = Region::new(Span::new(3, 5), Span::new(2, 4));
        let mut buf = [0.0f32; 24];
        assert_eq!(
            FeatureViewMut::within(&mut buf, inner, layout, 2).unwrap_err(),
            ViewError::Outside {
                region: layout,
                layout: inner
            }
        );
        assert!(FeatureViewMut::within(&mut buf[..23], layout, inner, 2).is_err());
        let mut w = FeatureViewMut::within(&mut buf, layout, inner, 2).unwrap();
        assert!(!w.is_dense());
        assert_eq!(
            w.strides(),
            Strides {
                offset: 5,
                row: 4,
                plane: 12
            }
        );
        w.row_mut(1, 3).copy_from_slice(&[7.0, 8.0]);
        assert_eq!(w.as_view().region(), layout);
        assert_eq!(w.as_view().at(1, 3, 3), 7.0);
        let mut want = [0.0f32; 24];
        want[12 + 2 * 4 + 1] = 7.0;
        want[12 + 2 * 4 + 2] = 8.0;
        assert_eq!(buf, want);
        let mut d = FeatureViewMut::new(&mut want, inner, 2).unwrap();
        assert!(d.is_dense());
        assert_eq!(d.strides().offset, 0);
        let mut w = FeatureViewMut::within(&mut buf, layout, inner, 2).unwrap();
        assert!(w.window(layout).is_err());
        let one = Region::new(Span::new(4, 5), Span::new(3, 4));
        let mut part = w.window(one).unwrap();
        assert_eq!((part.layout(), part.region()), (layout, one));
        part.row_mut(0, 3)[0] = 9.0;
        assert_eq!(buf[2 * 4 + 2], 9.0);
        assert!(d.window(one).is_ok());
    }

    #[test]
    fn slide_rows_keeps_the_shared_rows_in_place() {
        let span = |a, b| Span::new(a, b);
        let cols = span(2, 5);
        let value = |c: u32, x: u32, y: u32| (c * 100 + y * 10 + x) as f32;
        // Every pair of row spans in 0..6 (down, up, shorter, longer, apart), 1–3 channels:
        // plane offsets move both ways, so both loops' orders are exercised.
        for channels in 1..=3u32 {
            for (a, b, c, d) in (0..6u32).flat_map(|a| {
                (a + 1..=6).flat_map(move |b| {
                    (0..6u32).flat_map(move |c| (c + 1..=6).map(move |d| (a, b, c, d)))
                })
            }) {
                let (from, to) = (Region::new(cols, span(a, b)), Region::new(cols, span(c, d)));
                let mut buf = std::vec![f32::NAN; 3 * 6 * 3];
                {
                    let mut v = FeatureViewMut::new(&mut buf, from, channels).unwrap();
                    for ch in 0..channels {
                        for y in a..b {
                            for (x, o) in v.row_mut(ch, y).iter_mut().enumerate() {
                                *o = value(ch, cols.start + x as u32, y);
                            }
                        }
                    }
                }
                let kept = slide_rows(&mut buf, from, to, channels).unwrap();
                assert_eq!(kept, from.intersect(&to), "{from:?} -> {to:?}");
                let v = FeatureView::new(&buf, to, channels).unwrap();
                for ch in 0..channels {
                    for y in kept.y.start..kept.y.end {
                        for x in cols.start..cols.end {
                            assert_eq!(v.at(ch, x, y), value(ch, x, y), "{from:?} -> {to:?}");
                        }
                    }
                }
            }
        }
        // Other columns keep nothing; a buffer short of either layout is refused.
        let (from, to) = (
            Region::new(cols, span(0, 4)),
            Region::new(span(1, 5), span(2, 6)),
        );
        let mut buf = [0.0f32; 16];
        assert_eq!(slide_rows(&mut buf, from, to, 1), Ok(Region::default()));
        assert_eq!(
            slide_rows(&mut buf[..11], from, Region::new(cols, span(2, 6)), 1),
            Err(ViewError::TooShort {
                needed: 12,
                available: 11
            })
        );
    }

    #[test]
    fn copy_overlap_writes_the_common_part_through_windows() {
        let span = |a, b| Span::new(a, b);
        let layout = Region::new(span(1, 7), span(0, 5));
        let srcs = [
            Region::new(span(0, 9), span(0, 6)),
            Region::new(span(2, 4), span(1, 5)),
            Region::new(span(5, 9), span(3, 4)),
            Region::new(span(8, 9), span(0, 6)),
            // As wide as the layout: each plane's part copied as one run.
            Region::new(span(1, 7), span(1, 4)),
        ];
        let windows = [
            layout,
            Region::new(span(2, 6), span(1, 4)),
            Region::new(span(6, 7), span(0, 5)),
        ];
        for src_r in srcs {
            let n = region_len(&src_r, 2).unwrap();
            let data: std::vec::Vec<f32> = (0..n).map(|i| i as f32).collect();
            let src = FeatureView::new(&data, src_r, 2).unwrap();
            for win in windows {
                let mut buf = [-1.0f32; 60];
                let mut dst = FeatureViewMut::within(&mut buf, layout, win, 2).unwrap();
                let common = copy_overlap(&src, &mut dst);
                assert_eq!(common, src_r.intersect(&win));
                let all = FeatureView::new(&buf, layout, 2).unwrap();
                for c in 0..2 {
                    for y in layout.y.start..layout.y.end {
                        for x in layout.x.start..layout.x.end {
                            let inside = common.x.contains(x) && common.y.contains(y);
                            let want = if inside { src.at(c, x, y) } else { -1.0 };
                            assert_eq!(all.at(c, x, y), want, "{src_r:?} {win:?} {c} {x} {y}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn copy_part_copies_every_width_densely() {
        // Widths 1–8 are moved by fixed-size copies, wider ones by slices: both against
        // `rows_in`, and nothing written past the part (copied densely: layout = part).
        let r = Region::new(Span::new(3, 16), Span::new(2, 6));
        let n = region_len(&r, 3).unwrap();
        let data: std::vec::Vec<f32> = (0..n).map(|i| i as f32).collect();
        let v = FeatureView::new(&data, r, 3).unwrap();
        for x0 in 3..16 {
            for x1 in x0 + 1..=16 {
                for (y0, y1) in [(2, 6), (3, 5), (5, 6)] {
                    let part = Region::new(Span::new(x0, x1), Span::new(y0, y1));
                    let len = region_len(&part, 3).unwrap();
                    let mut out = std::vec![-1.0f32; len + 1];
                    v.copy_part(part, &mut out, part).unwrap();
                    let want: std::vec::Vec<f32> =
                        v.rows_in(part).unwrap().flatten().copied().collect();
                    assert_eq!(out[..len], want[..], "{part:?}");
                    assert_eq!(out[len], -1.0, "{part:?}");
                }
            }
        }
        let mut out = [0.0f32; 6];
        let outside = Region::new(Span::new(14, 17), Span::new(2, 3));
        assert!(matches!(
            v.copy_part(outside, &mut out, outside),
            Err(ViewError::Outside { .. })
        ));
        let part = Region::new(Span::new(4, 6), Span::new(2, 3));
        assert_eq!(
            v.copy_part(part, &mut out[..5], part),
            Err(ViewError::TooShort {
                needed: 6,
                available: 5
            })
        );
        assert_eq!(
            v.copy_part(Region::default(), &mut [], Region::default()),
            Ok(())
        );
        // Into a larger layout: the part lands at its place, the rest stays.
        let layout = Region::new(Span::new(4, 7), Span::new(2, 4));
        let mut out = [-1.0f32; 6];
        let one = FeatureView::new(&data[..n / 3], r, 1).unwrap();
        one.copy_part(part, &mut out, layout).unwrap();
        // Row y = 2 of the view starts at x = 3: values 1 and 2 are x = 4 and 5.
        assert_eq!(out, [1.0, 2.0, -1.0, -1.0, -1.0, -1.0]);
        assert!(matches!(
            one.copy_part(layout, &mut out, part),
            Err(ViewError::Outside { .. })
        ));
    }

    #[test]
    fn rows_in_reads_a_part_in_place() {
        let r = Region::new(Span::new(10, 13), Span::new(5, 7));
        let data: [f32; 12] = core::array::from_fn(|i| i as f32);
        let v = FeatureView::new(&data, r, 2).unwrap();
        let part = Region::new(Span::new(11, 13), Span::new(6, 7));
        let got: [&[f32]; 2] = [&[4.0, 5.0], &[10.0, 11.0]];
        assert!(v.rows_in(part).unwrap().eq(got));
        assert_eq!(v.rows_in(r).unwrap().flatten().count(), 12);
        assert_eq!(v.rows_in(Region::default()).unwrap().count(), 0);
        let out = Region::new(Span::new(12, 14), Span::new(6, 7));
        assert!(matches!(v.rows_in(out), Err(ViewError::Outside { .. })));
    }
}
