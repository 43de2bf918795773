//! A network input from an image: the float CHW [`Image`] (Darknet's `image`), Darknet's
//! bilinear `resize_image` and `letterbox_image`, and [`letterbox_of`] straight from decoded
//! 8-bit pixels ([`Rgb8`]) without a float copy of the whole picture. Decoding files is the
//! platform's business; what a data source feeds its node is made here.

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

/// Largest side accepted (bounds memory on a 1 GB device).
pub const MAX_SIDE: usize = 8192;

/// A float image, CHW, values in `[0, 1]` (Darknet's `image`).
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Columns.
    pub w: usize,
    /// Rows.
    pub h: usize,
    /// Channels (3 for RGB).
    pub c: usize,
    /// `c × h × w` values, channel-major.
    pub data: Vec<f32>,
}

/// Pixels that do not make an image: zero or absurd sides, or a length that does not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{w}x{h}x{channels}, {bytes} bytes (sides 1..={}, one byte per sample)",
    MAX_SIDE
)]
pub struct PixelsError {
    /// Columns given.
    pub w: usize,
    /// Rows given.
    pub h: usize,
    /// Channels given.
    pub channels: usize,
    /// Bytes given.
    pub bytes: usize,
}

/// Checks `w × h × channels` pixels in `bytes` bytes.
fn check(w: usize, h: usize, channels: usize, bytes: usize) -> Result<(), PixelsError> {
    let fits = (1..=MAX_SIDE).contains(&w) && (1..=MAX_SIDE).contains(&h);
    if !fits || bytes != w * h * channels {
        return Err(PixelsError {
            w,
            h,
            channels,
            bytes,
        });
    }
    Ok(())
}

impl Image {
    /// A `w × h × c` image filled with `value`.
    pub fn filled(w: usize, h: usize, c: usize, value: f32) -> Self {
        Image {
            w,
            h,
            c,
            data: vec![value; w * h * c],
        }
    }

    /// The value at column `x`, row `y` of channel `c` (panics outside the image).
    pub fn at(&self, x: usize, y: usize, c: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }

    /// Sets the value at column `x`, row `y` of channel `c` (panics outside the image).
    pub fn set(&mut self, x: usize, y: usize, c: usize, v: f32) {
        self.data[(c * self.h + y) * self.w + x] = v;
    }

    /// Builds an image from interleaved 8-bit pixels (`channels` per pixel), scaled to `[0, 1]`.
    pub fn from_interleaved(
        w: usize,
        h: usize,
        channels: usize,
        px: &[u8],
    ) -> Result<Self, PixelsError> {
        check(w, h, channels, px.len())?;
        let mut img = Image::filled(w, h, channels, 0.0);
        for (i, p) in px.chunks_exact(channels).enumerate() {
            let (x, y) = (i % w, i / w);
            for (c, &v) in p.iter().enumerate() {
                img.set(x, y, c, v as f32 / 255.0);
            }
        }
        Ok(img)
    }

    /// Darknet's `resize_image`: separable bilinear, columns first, with its float steps (the
    /// last row excepted, see `Image::rows_into`).
    pub fn resize(&self, w: usize, h: usize) -> Image {
        let part = self.columns(w);
        let mut out = Image::filled(w, h, self.c, 0.0);
        part.rows_into(h, &mut out, 0, 0);
        out
    }

    /// The column pass of [`Image::resize`]: every row resampled to `w` columns.
    fn columns(&self, w: usize) -> Image {
        let mut part = Image::filled(w, self.h, self.c, 0.0);
        for k in 0..self.c {
            for r in 0..self.h {
                let at = (k * self.h + r) * w;
                column_row(self, r, k, &mut part.data[at..at + w]);
            }
        }
        part
    }

    /// The row pass of [`Image::resize`] on this column-resampled image: `h` rows, written to
    /// `out` at column `dx`, row `dy`.
    fn rows_into(&self, h: usize, out: &mut Image, dx: usize, dy: usize) {
        let h_scale = scale(self.h, h);
        for k in 0..self.c {
            for r in 0..h {
                // Darknet weights the last row by (1 − dy) of row ⌊sy⌋ and skips the rest; when
                // `sy` rounds just below `h − 1` that darkens the row. Take the last source row
                // instead, as Darknet already does for the last column.
                if r == h - 1 || self.h == 1 {
                    for c in 0..self.w {
                        out.set(c + dx, r + dy, k, self.at(c, self.h - 1, k));
                    }
                    continue;
                }
                let sy = r as f32 * h_scale;
                let iy = sy as usize;
                let fy = sy - iy as f32;
                for c in 0..self.w {
                    out.set(c + dx, r + dy, k, (1.0 - fy) * self.at(c, iy, k));
                }
                for c in 0..self.w {
                    let v = out.at(c + dx, r + dy, k) + fy * self.at(c, iy + 1, k);
                    out.set(c + dx, r + dy, k, v);
                }
            }
        }
    }

    /// Darknet's `letterbox_image`: resize keeping the aspect ratio, centre on grey (0.5).
    pub fn letterbox(&self, w: usize, h: usize) -> Image {
        let (new_w, new_h) = fitted(self.w, self.h, w, h);
        let part = self.columns(new_w);
        let mut boxed = Image::filled(w, h, self.c, 0.5);
        part.rows_into(new_h, &mut boxed, (w - new_w) / 2, (h - new_h) / 2);
        boxed
    }

    /// [`Image::letterbox`], consuming the image, without the column-resampled copy (each
    /// canvas row is made from the two source rows it reads, resampled on the fly: the same
    /// values). A data source decodes while it computes; this holds the image and the canvas.
    pub fn into_letterbox(self, w: usize, h: usize) -> Image {
        letterbox_of(&self, w, h)
    }
}

/// Darknet's resampling step from `from` to `to` samples; 0 for a 1-sample target (Darknet
/// divides by zero there, and every sample is then at 0).
fn scale(from: usize, to: usize) -> f32 {
    if to > 1 {
        (from as f32 - 1.0) / (to as f32 - 1.0)
    } else {
        0.0
    }
}

/// Decoded 8-bit RGB pixels, interleaved; read as `[0, 1]` values on the fly (a quarter of
/// the float image's bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Rgb8 {
    /// `w × h` pixels, 3 bytes each.
    pub fn new(w: usize, h: usize, px: Vec<u8>) -> Result<Self, PixelsError> {
        check(w, h, 3, px.len())?;
        Ok(Rgb8 { w, h, px })
    }

    /// Width and height.
    pub fn size(&self) -> (usize, usize) {
        (self.w, self.h)
    }

    /// The interleaved pixels.
    pub fn bytes(&self) -> &[u8] {
        &self.px
    }

    /// The float image ([`Image::from_interleaved`]).
    pub fn to_image(&self) -> Image {
        Image::from_interleaved(self.w, self.h, 3, &self.px)
            .expect("checked when the pixels were made")
    }

    /// The interleaved pixels, given up.
    pub fn into_bytes(self) -> Vec<u8> {
        self.px
    }

    /// The pixels seen as an [`RgbView`].
    pub fn view(&self) -> RgbView<'_> {
        RgbView {
            w: self.w,
            h: self.h,
            px: &self.px,
        }
    }
}

/// 8-bit RGB pixels, interleaved, in memory someone else owns (a picture's own bytes, or a
/// node's scratch buffer it was decoded into): the same samples as [`Rgb8`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RgbView<'a> {
    w: usize,
    h: usize,
    px: &'a [u8],
}

impl<'a> RgbView<'a> {
    /// `w × h` pixels, 3 bytes each.
    pub fn new(w: usize, h: usize, px: &'a [u8]) -> Result<Self, PixelsError> {
        check(w, h, 3, px.len())?;
        Ok(RgbView { w, h, px })
    }

    /// Width and height.
    pub fn size(&self) -> (usize, usize) {
        (self.w, self.h)
    }
}

impl Samples for RgbView<'_> {
    fn dims(&self) -> (usize, usize, usize) {
        (self.w, self.h, 3)
    }

    /// The value [`Image::from_interleaved`] stores for this pixel.
    fn sample(&self, x: usize, y: usize, c: usize) -> f32 {
        self.px[(y * self.w + x) * 3 + c] as f32 / 255.0
    }
}

/// An image the resampling reads value by value.
pub trait Samples {
    /// Width, height, channels.
    fn dims(&self) -> (usize, usize, usize);
    /// The value at column `x`, row `y` of channel `c`.
    fn sample(&self, x: usize, y: usize, c: usize) -> f32;
}

impl Samples for Image {
    fn dims(&self) -> (usize, usize, usize) {
        (self.w, self.h, self.c)
    }

    fn sample(&self, x: usize, y: usize, c: usize) -> f32 {
        self.at(x, y, c)
    }
}

impl Samples for Rgb8 {
    fn dims(&self) -> (usize, usize, usize) {
        (self.w, self.h, 3)
    }

    /// The value [`Image::from_interleaved`] stores for this pixel.
    fn sample(&self, x: usize, y: usize, c: usize) -> f32 {
        self.px[(y * self.w + x) * 3 + c] as f32 / 255.0
    }
}

/// Row `r` of channel `k` of `src` resampled to `dst.len()` columns (one row of
/// [`Image::resize`]'s column pass).
fn column_row<S: Samples>(src: &S, r: usize, k: usize, dst: &mut [f32]) {
    let w = dst.len();
    column_span(src, r, k, w, 0, dst);
}

/// Columns `from..from + dst.len()` of [`column_row`] to `w` columns: each column is computed
/// on its own, so a span has the values of the whole row's.
fn column_span<S: Samples>(src: &S, r: usize, k: usize, w: usize, from: usize, dst: &mut [f32]) {
    let (sw, _, _) = src.dims();
    let w_scale = scale(sw, w);
    for (c, d) in (from..).zip(dst.iter_mut()) {
        *d = if c == w - 1 || sw == 1 {
            src.sample(sw - 1, r, k)
        } else {
            let sx = c as f32 * w_scale;
            let ix = sx as usize;
            let dx = sx - ix as f32;
            (1.0 - dx) * src.sample(ix, r, k) + dx * src.sample(ix + 1, r, k)
        };
    }
}

/// [`Image::letterbox`] of `src` without the column-resampled copy: each canvas row is made
/// from the two source rows it reads, resampled on the fly (the same operations in the same
/// order, so the same values).
pub fn letterbox_of<S: Samples>(src: &S, w: usize, h: usize) -> Image {
    let (_, _, ch) = src.dims();
    Image {
        w,
        h,
        c: ch,
        data: letterbox_window(src, w, h, 0..w, 0..h),
    }
}

/// The window `xs × ys` of [`letterbox_of`]`(src, w, h)`, CHW over the window (every channel of
/// `src`), computed alone: a node that holds only a frame's 8-bit pixels makes each tile's
/// input with this, and never the whole float canvas. The values are those of the whole
/// canvas bit for bit (each canvas value depends only on its own row and column). The window
/// is clipped to the canvas.
pub fn letterbox_window<S: Samples>(
    src: &S,
    w: usize,
    h: usize,
    xs: Range<usize>,
    ys: Range<usize>,
) -> Vec<f32> {
    let (xs, ys) = clip(w, h, xs, ys);
    let mut out = vec![0.0f32; xs.len() * ys.len() * src.dims().2];
    letterbox_window_into(src, w, h, xs, ys, &mut out);
    out
}

/// The window clipped to a `w × h` canvas.
fn clip(w: usize, h: usize, xs: Range<usize>, ys: Range<usize>) -> (Range<usize>, Range<usize>) {
    (
        xs.start.min(w)..xs.end.min(w).max(xs.start.min(w)),
        ys.start.min(h)..ys.end.min(h).max(ys.start.min(h)),
    )
}

/// [`letterbox_window`] into `out` (a tile's input cut straight into its buffer): false, and
/// `out` untouched, unless `out` holds exactly the clipped window's values.
pub fn letterbox_window_into<S: Samples>(
    src: &S,
    w: usize,
    h: usize,
    xs: Range<usize>,
    ys: Range<usize>,
    out: &mut [f32],
) -> bool {
    let (sw, sh, ch) = src.dims();
    let (xs, ys) = clip(w, h, xs, ys);
    let (ww, wh) = (xs.len(), ys.len());
    if out.len() != ww * wh * ch {
        return false;
    }
    out.fill(0.5);
    let (new_w, new_h) = fitted(sw, sh, w, h);
    let (dx, dy) = ((w - new_w) / 2, (h - new_h) / 2);
    // The picture's columns and rows inside the window (canvas coordinates).
    let cx = xs.start.max(dx)..xs.end.min(dx + new_w);
    let cy = ys.start.max(dy)..ys.end.min(dy + new_h);
    if cx.is_empty() || cy.is_empty() {
        return true;
    }
    let h_scale = scale(sh, new_h);
    let (mut upper, mut lower) = (vec![0.0f32; cx.len()], vec![0.0f32; cx.len()]);
    for k in 0..ch {
        for y in cy.clone() {
            let r = y - dy;
            let at = (k * wh + y - ys.start) * ww + cx.start - xs.start;
            let row = &mut out[at..at + cx.len()];
            // As in `rows_into`: the last row is the last source row.
            if r == new_h - 1 || sh == 1 {
                column_span(src, sh - 1, k, new_w, cx.start - dx, row);
                continue;
            }
            let sy = r as f32 * h_scale;
            let iy = sy as usize;
            let fy = sy - iy as f32;
            column_span(src, iy, k, new_w, cx.start - dx, &mut upper);
            column_span(src, iy + 1, k, new_w, cx.start - dx, &mut lower);
            for ((o, &a), &b) in row.iter_mut().zip(&upper).zip(&lower) {
                let top = (1.0 - fy) * a;
                *o = top + fy * b;
            }
        }
    }
    true
}

/// The resized size Darknet's letterbox uses for a `sw × sh` image on a `w × h` canvas.
fn fitted(sw: usize, sh: usize, w: usize, h: usize) -> (usize, usize) {
    let (new_w, new_h) = if (w as f32 / sw as f32) < (h as f32 / sh as f32) {
        (w, sh * w / sw)
    } else {
        (sw * h / sh, h)
    };
    (new_w.max(1), new_h.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_keeps_aspect_and_fills_grey() {
        let img = Image::filled(64, 32, 3, 0.25);
        let boxed = img.letterbox(16, 16);
        assert_eq!((boxed.w, boxed.h, boxed.c), (16, 16, 3));
        // 64x32 → 16x8 centred at rows 4..12; rows outside are the grey fill.
        assert_eq!(boxed.at(5, 0, 1), 0.5);
        assert_eq!(boxed.at(5, 3, 1), 0.5);
        assert!((boxed.at(5, 4, 1) - 0.25).abs() < 1e-6);
        assert!(
            (boxed.at(0, 11, 2) - 0.25).abs() < 1e-6,
            "{}",
            boxed.at(0, 11, 2)
        );
        assert_eq!(boxed.at(15, 12, 0), 0.5);
    }

    #[test]
    fn consuming_letterbox_equals_letterbox_and_resize_then_centre() {
        for (w, h) in [(37, 23), (19, 41), (30, 30), (1, 9)] {
            let mut img = Image::filled(w, h, 3, 0.0);
            for (i, v) in img.data.iter_mut().enumerate() {
                *v = ((i * 7919) % 1000) as f32 / 999.0;
            }
            let boxed = img.letterbox(24, 16);
            // The resized image centred on grey, as Darknet builds it.
            let (nw, nh) = fitted(img.w, img.h, 24, 16);
            let r = img.resize(nw, nh);
            let (dx, dy) = ((24 - nw) / 2, (16 - nh) / 2);
            for k in 0..3 {
                for y in 0..16 {
                    for x in 0..24 {
                        let inside = (dx..dx + nw).contains(&x) && (dy..dy + nh).contains(&y);
                        let want = if inside { r.at(x - dx, y - dy, k) } else { 0.5 };
                        assert_eq!(boxed.at(x, y, k).to_bits(), want.to_bits());
                    }
                }
            }
            assert_eq!(img.into_letterbox(24, 16), boxed);
        }
    }

    #[test]
    fn letterboxing_the_pixels_equals_letterboxing_the_float_image() {
        let px: Vec<u8> = (0..37 * 23 * 3).map(|i| (i * 7919 % 256) as u8).collect();
        let rgb = Rgb8::new(37, 23, px).unwrap();
        for (w, h) in [(64, 64), (41, 32), (31, 57)] {
            let direct = letterbox_of(&rgb, w, h);
            let via = rgb.to_image().into_letterbox(w, h);
            assert_eq!((direct.w, direct.h, direct.c), (w, h, 3));
            assert!(direct
                .data
                .iter()
                .zip(&via.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn a_window_of_the_letterbox_equals_the_whole_canvas_there() {
        let px: Vec<u8> = (0..37 * 23 * 3).map(|i| (i * 7919 % 256) as u8).collect();
        let rgb = Rgb8::new(37, 23, px).unwrap();
        for (w, h) in [(64, 64), (41, 32), (31, 57)] {
            let whole = letterbox_of(&rgb, w, h);
            for (xs, ys) in [
                (0..w, 0..h),
                (3..20, 0..9),
                (10..w, 25..h),
                (0..1, 5..6),
                (7..7, 0..h),
            ] {
                let win = letterbox_window(&rgb, w, h, xs.clone(), ys.clone());
                assert_eq!(win.len(), xs.len() * ys.len() * 3);
                let mut i = 0;
                for k in 0..3 {
                    for y in ys.clone() {
                        for x in xs.clone() {
                            assert_eq!(
                                win[i].to_bits(),
                                whole.at(x, y, k).to_bits(),
                                "{x},{y},{k}"
                            );
                            i += 1;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn resize_interpolates_linearly() {
        let img = Image {
            w: 2,
            h: 1,
            c: 1,
            data: vec![0.0, 1.0],
        };
        let r = img.resize(5, 1);
        let expect = [0.0, 0.25, 0.5, 0.75, 1.0];
        for (a, b) in r.data.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{:?}", r.data);
        }
    }

    #[test]
    fn absurd_pixels_are_refused() {
        assert!(Rgb8::new(0, 4, Vec::new()).is_err());
        assert!(Rgb8::new(2, 2, vec![0; 11]).is_err());
        let e = Image::from_interleaved(MAX_SIDE + 1, 1, 1, &[0; MAX_SIDE + 1]).unwrap_err();
        assert_eq!(e.w, MAX_SIDE + 1);
    }
}
