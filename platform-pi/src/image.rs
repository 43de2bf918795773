//! Images in: JPEG/PNG decoding and Darknet's letterbox preparation of a network input.

use std::fmt;
use std::path::Path;

use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// Largest side accepted when decoding (bounds memory on a 1 GB device).
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

/// Why an image could not be loaded.
#[derive(Debug)]
pub enum ImageError {
    /// The file could not be read.
    Io(std::io::Error),
    /// Neither a JPEG nor a PNG signature.
    UnknownFormat,
    /// The JPEG decoder rejected the data.
    Jpeg(String),
    /// The PNG decoder rejected the data.
    Png(String),
    /// Zero or absurd dimensions, or an unsupported pixel layout.
    Unsupported(String),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Io(e) => write!(f, "cannot read image: {e}"),
            ImageError::UnknownFormat => f.write_str("not a JPEG or PNG file"),
            ImageError::Jpeg(e) => write!(f, "bad JPEG: {e}"),
            ImageError::Png(e) => write!(f, "bad PNG: {e}"),
            ImageError::Unsupported(e) => write!(f, "unsupported image: {e}"),
        }
    }
}

impl std::error::Error for ImageError {}

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

    fn at(&self, x: usize, y: usize, c: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }

    fn set(&mut self, x: usize, y: usize, c: usize, v: f32) {
        self.data[(c * self.h + y) * self.w + x] = v;
    }

    /// Builds an image from interleaved 8-bit pixels (`channels` per pixel), scaled to `[0, 1]`.
    pub fn from_interleaved(
        w: usize,
        h: usize,
        channels: usize,
        px: &[u8],
    ) -> Result<Self, ImageError> {
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || px.len() != w * h * channels {
            return Err(ImageError::Unsupported(format!(
                "{w}x{h}x{channels}, {} bytes",
                px.len()
            )));
        }
        let mut img = Image::filled(w, h, channels, 0.0);
        for (i, p) in px.chunks_exact(channels).enumerate() {
            let (x, y) = (i % w, i / w);
            for (c, &v) in p.iter().enumerate() {
                img.set(x, y, c, v as f32 / 255.0);
            }
        }
        Ok(img)
    }

    /// Decodes a JPEG or PNG file into an RGB image.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let bytes = std::fs::read(path).map_err(ImageError::Io)?;
        Self::decode(&bytes)
    }

    /// Decodes JPEG or PNG bytes into an RGB image (grey and alpha are converted).
    pub fn decode(bytes: &[u8]) -> Result<Self, ImageError> {
        let rgb = decode_rgb(bytes)?;
        Image::from_interleaved(rgb.w, rgb.h, 3, &rgb.px)
    }

    /// [`Image::decode`] then [`Image::into_letterbox`], the same values, without the float
    /// copy of the decoded image: the 8-bit pixels are resampled directly (a data source
    /// holds them, a quarter of the float image, while it builds the canvas).
    pub fn decode_letterboxed(bytes: &[u8], w: usize, h: usize) -> Result<Self, ImageError> {
        Ok(letterbox_of(&decode_rgb(bytes)?, w, h))
    }

    /// [`Image::decode_letterboxed`] of a file.
    pub fn load_letterboxed(path: &Path, w: usize, h: usize) -> Result<Self, ImageError> {
        let rgb = decode_rgb(&std::fs::read(path).map_err(ImageError::Io)?)?;
        Ok(letterbox_of(&rgb, w, h))
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

/// JPEG or PNG bytes as 8-bit RGB pixels.
fn decode_rgb(bytes: &[u8]) -> Result<Rgb8, ImageError> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        decode_jpeg(bytes)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes)
    } else {
        Err(ImageError::UnknownFormat)
    }
}

fn decode_jpeg(bytes: &[u8]) -> Result<Rgb8, ImageError> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(MAX_SIDE)
        .set_max_height(MAX_SIDE);
    let mut decoder = JpegDecoder::new_with_options(bytes, options);
    let px = decoder
        .decode()
        .map_err(|e| ImageError::Jpeg(format!("{e:?}")))?;
    let info = decoder
        .info()
        .ok_or_else(|| ImageError::Jpeg("no header".into()))?;
    Rgb8::new(info.width as usize, info.height as usize, px)
}

fn decode_png(bytes: &[u8]) -> Result<Rgb8, ImageError> {
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| ImageError::Png(e.to_string()))?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(ImageError::Unsupported(format!("{w}x{h}")));
    }
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| ImageError::Png(e.to_string()))?;
    let px = &buf[..frame.buffer_size()];
    let rgb: Vec<u8> = match frame.color_type {
        png::ColorType::Rgb => px.to_vec(),
        png::ColorType::Rgba => px
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => px.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => px
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        other => return Err(ImageError::Unsupported(format!("{other:?}"))),
    };
    Rgb8::new(w, h, rgb)
}

/// Decoded 8-bit RGB pixels, interleaved; read as `[0, 1]` values on the fly.
struct Rgb8 {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Rgb8 {
    fn new(w: usize, h: usize, px: Vec<u8>) -> Result<Self, ImageError> {
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || px.len() != w * h * 3 {
            return Err(ImageError::Unsupported(format!(
                "{w}x{h}x3, {} bytes",
                px.len()
            )));
        }
        Ok(Rgb8 { w, h, px })
    }
}

/// An image the resampling reads value by value.
trait Samples {
    /// Width, height, channels.
    fn dims(&self) -> (usize, usize, usize);
    /// The value at column `x`, row `y` of channel `c`.
    fn at(&self, x: usize, y: usize, c: usize) -> f32;
}

impl Samples for Image {
    fn dims(&self) -> (usize, usize, usize) {
        (self.w, self.h, self.c)
    }

    fn at(&self, x: usize, y: usize, c: usize) -> f32 {
        Image::at(self, x, y, c)
    }
}

impl Samples for Rgb8 {
    fn dims(&self) -> (usize, usize, usize) {
        (self.w, self.h, 3)
    }

    /// The value [`Image::from_interleaved`] stores for this pixel.
    fn at(&self, x: usize, y: usize, c: usize) -> f32 {
        self.px[(y * self.w + x) * 3 + c] as f32 / 255.0
    }
}

/// Row `r` of channel `k` of `src` resampled to `dst.len()` columns (one row of
/// [`Image::resize`]'s column pass).
fn column_row<S: Samples>(src: &S, r: usize, k: usize, dst: &mut [f32]) {
    let (sw, _, _) = src.dims();
    let w = dst.len();
    let w_scale = scale(sw, w);
    for (c, d) in dst.iter_mut().enumerate() {
        *d = if c == w - 1 || sw == 1 {
            src.at(sw - 1, r, k)
        } else {
            let sx = c as f32 * w_scale;
            let ix = sx as usize;
            let dx = sx - ix as f32;
            (1.0 - dx) * src.at(ix, r, k) + dx * src.at(ix + 1, r, k)
        };
    }
}

/// [`Image::letterbox`] of `src` without the column-resampled copy: each canvas row is made
/// from the two source rows it reads, resampled on the fly (the same operations in the same
/// order, so the same values).
fn letterbox_of<S: Samples>(src: &S, w: usize, h: usize) -> Image {
    let (sw, sh, ch) = src.dims();
    let (new_w, new_h) = fitted(sw, sh, w, h);
    let (dx, dy) = ((w - new_w) / 2, (h - new_h) / 2);
    let mut boxed = Image::filled(w, h, ch, 0.5);
    let h_scale = scale(sh, new_h);
    let (mut upper, mut lower) = (vec![0.0f32; new_w], vec![0.0f32; new_w]);
    for k in 0..ch {
        for r in 0..new_h {
            let at = (k * h + r + dy) * w + dx;
            let row = &mut boxed.data[at..at + new_w];
            // As in `rows_into`: the last row is the last source row.
            if r == new_h - 1 || sh == 1 {
                column_row(src, sh - 1, k, row);
                continue;
            }
            let sy = r as f32 * h_scale;
            let iy = sy as usize;
            let fy = sy - iy as f32;
            column_row(src, iy, k, &mut upper);
            column_row(src, iy + 1, k, &mut lower);
            for ((o, &a), &b) in row.iter_mut().zip(&upper).zip(&lower) {
                let top = (1.0 - fy) * a;
                *o = top + fy * b;
            }
        }
    }
    boxed
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

/// Writes `img` (values clamped to `[0, 1]`) as an 8-bit RGB PNG.
pub fn write_png(img: &Image, path: &Path) -> Result<(), ImageError> {
    let file = std::fs::File::create(path).map_err(ImageError::Io)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), img.w as u32, img.h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| ImageError::Png(e.to_string()))?;
    let mut px = Vec::with_capacity(img.w * img.h * 3);
    for y in 0..img.h {
        for x in 0..img.w {
            for c in 0..3 {
                let v = img.at(x, y, c.min(img.c - 1));
                px.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
    }
    writer
        .write_image_data(&px)
        .map_err(|e| ImageError::Png(e.to_string()))
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
        let bytes = crate::files::DEFAULT_IMAGE;
        for (w, h) in [(608, 608), (416, 320), (31, 57)] {
            let direct = Image::decode_letterboxed(bytes, w, h).unwrap();
            let via = Image::decode(bytes).unwrap().into_letterbox(w, h);
            assert_eq!((direct.w, direct.h, direct.c), (w, h, 3));
            assert!(direct
                .data
                .iter()
                .zip(&via.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        assert!(matches!(
            Image::decode_letterboxed(b"nope", 8, 8),
            Err(ImageError::UnknownFormat)
        ));
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
    fn decodes_the_sample_jpeg_and_png_round_trip() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/images/0.jpg");
        let img = Image::load(&root).unwrap();
        assert_eq!((img.w, img.h, img.c), (640, 480, 3));
        let mean = img.data.iter().sum::<f32>() / img.data.len() as f32;
        assert!(mean > 0.05 && mean < 0.95, "mean {mean}");
        let dir = std::env::temp_dir().join(format!("tessera-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = img.resize(40, 30);
        write_png(&small, &dir.join("a.png")).unwrap();
        let back = Image::load(&dir.join("a.png")).unwrap();
        assert_eq!((back.w, back.h), (40, 30));
        for (a, b) in small.data.iter().zip(&back.data) {
            assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            Image::decode(b"hello"),
            Err(ImageError::UnknownFormat)
        ));
        assert!(matches!(
            Image::decode(&[0xFF, 0xD8, 0xFF, 0x00, 1, 2]),
            Err(ImageError::Jpeg(_))
        ));
        assert!(Image::decode(b"\x89PNG\r\n\x1a\nxxxx").is_err());
    }
}
