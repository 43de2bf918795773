//! Rectangular regions of a feature map.
//!
//! Spans are half-open (`start..end`), unlike the inclusive `[a..b]` of docs/design.md: an empty
//! span (`start >= end`) is an ordinary value, which makes reuse strips and clamping total.

/// A half-open interval `start..end` of pixel indices along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First index in the span.
    pub start: u32,
    /// One past the last index.
    pub end: u32,
}

impl Span {
    /// The span `start..end`.
    pub const fn new(start: u32, end: u32) -> Self {
        Span { start, end }
    }

    /// The inclusive interval `[first..=last]` of docs/design.md.
    pub const fn inclusive(first: u32, last: u32) -> Self {
        Span {
            start: first,
            end: last + 1,
        }
    }

    /// Number of indices in the span (0 when empty).
    pub const fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    /// True when the span holds no index.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True when `i` lies in the span.
    pub const fn contains(&self, i: u32) -> bool {
        self.start <= i && i < self.end
    }

    /// True when every index of `other` lies in `self` (an empty `other` always does).
    pub const fn covers(&self, other: &Span) -> bool {
        other.is_empty() || (self.start <= other.start && other.end <= self.end)
    }

    /// The common part of both spans (possibly empty).
    pub fn intersect(&self, other: &Span) -> Span {
        let s = Span::new(self.start.max(other.start), self.end.min(other.end));
        if s.is_empty() {
            Span::default()
        } else {
            s
        }
    }
}

/// A rectangle `x × y` of a feature map; channels are implied by the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Region {
    /// Columns (width axis).
    pub x: Span,
    /// Rows (height axis).
    pub y: Span,
}

impl Region {
    /// The region `x × y`.
    pub const fn new(x: Span, y: Span) -> Self {
        Region { x, y }
    }

    /// The whole `w × h` map.
    pub const fn full(w: u32, h: u32) -> Self {
        Region {
            x: Span::new(0, w),
            y: Span::new(0, h),
        }
    }

    /// Width in pixels.
    pub const fn width(&self) -> u32 {
        self.x.len()
    }

    /// Height in pixels.
    pub const fn height(&self) -> u32 {
        self.y.len()
    }

    /// Number of pixels (`width × height`), widened so it cannot overflow.
    pub const fn area(&self) -> u64 {
        self.x.len() as u64 * self.y.len() as u64
    }

    /// True when the region holds no pixel.
    pub const fn is_empty(&self) -> bool {
        self.x.is_empty() || self.y.is_empty()
    }

    /// True when `other` lies inside `self` (an empty `other` always does).
    pub const fn covers(&self, other: &Region) -> bool {
        other.is_empty() || (self.x.covers(&other.x) && self.y.covers(&other.y))
    }

    /// The common part of both regions (the default, empty region when they do not meet).
    pub fn intersect(&self, other: &Region) -> Region {
        let r = Region::new(self.x.intersect(&other.x), self.y.intersect(&other.y));
        if r.is_empty() {
            Region::default()
        } else {
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_half_open() {
        let s = Span::inclusive(3, 5);
        assert_eq!(s, Span::new(3, 6));
        assert_eq!(s.len(), 3);
        assert!(s.contains(5) && !s.contains(6));
        assert!(Span::new(4, 4).is_empty());
        assert_eq!(Span::new(7, 2).len(), 0);
    }

    #[test]
    fn intersection_and_cover() {
        let a = Region::new(Span::new(0, 10), Span::new(0, 10));
        let b = Region::new(Span::new(5, 15), Span::new(2, 3));
        assert_eq!(
            a.intersect(&b),
            Region::new(Span::new(5, 10), Span::new(2, 3))
        );
        assert!(a
            .intersect(&Region::new(Span::new(10, 12), Span::new(0, 1)))
            .is_empty());
        assert!(a.covers(&Region::default()));
        assert!(!a.covers(&b));
        assert_eq!(a.area(), 100);
    }
}
