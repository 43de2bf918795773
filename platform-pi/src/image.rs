//! Images in and out: JPEG/PNG files decoded to the backends' [`Image`] (letterboxed for the
//! network by `tessera_backends::pipeline`), and PNGs written.

use std::path::Path;

use tessera_backends::annotate::draw;
use tessera_backends::pipeline::{decode_pixels, letterbox_of, PictureError, PixelsError, Rgb8};
use tessera_core::detect::Detection;

pub use tessera_backends::pipeline::{Image, MAX_SIDE};

/// Why an image could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read.
    #[error("cannot read image: {0}")]
    Io(std::io::Error),
    /// The bytes are not a picture this build decodes (format, decoder, size).
    #[error(transparent)]
    Picture(#[from] PictureError),
    /// The PNG encoder failed.
    #[error("writing PNG: {0}")]
    PngOut(String),
}

impl From<PixelsError> for ImageError {
    fn from(e: PixelsError) -> Self {
        ImageError::Picture(e.into())
    }
}

/// [`Image`]s from JPEG/PNG files and bytes.
pub trait ImageFiles: Sized {
    /// Decodes a JPEG or PNG file into an RGB image.
    fn load(path: &Path) -> Result<Self, ImageError>;
    /// Decodes JPEG or PNG bytes into an RGB image (grey and alpha are converted).
    fn decode(bytes: &[u8]) -> Result<Self, ImageError>;
    /// [`ImageFiles::decode`] then `Image::into_letterbox`, the same values, without the float
    /// copy of the decoded image: the 8-bit pixels are resampled directly (a data source
    /// holds them, a quarter of the float image, while it builds the canvas).
    fn decode_letterboxed(bytes: &[u8], w: usize, h: usize) -> Result<Self, ImageError>;
    /// [`ImageFiles::decode_letterboxed`] of a file.
    fn load_letterboxed(path: &Path, w: usize, h: usize) -> Result<Self, ImageError>;
}

impl ImageFiles for Image {
    fn load(path: &Path) -> Result<Self, ImageError> {
        Self::decode(&std::fs::read(path).map_err(ImageError::Io)?)
    }

    fn decode(bytes: &[u8]) -> Result<Self, ImageError> {
        Ok(decode_rgb(bytes)?.to_image())
    }

    fn decode_letterboxed(bytes: &[u8], w: usize, h: usize) -> Result<Self, ImageError> {
        Ok(letterbox_of(&decode_rgb(bytes)?, w, h))
    }

    fn load_letterboxed(path: &Path, w: usize, h: usize) -> Result<Self, ImageError> {
        Self::decode_letterboxed(&std::fs::read(path).map_err(ImageError::Io)?, w, h)
    }
}

/// JPEG or PNG bytes as 8-bit RGB pixels (the decoder every node of a cluster runs on the
/// pictures data sources ship).
fn decode_rgb(bytes: &[u8]) -> Result<Rgb8, ImageError> {
    Ok(decode_pixels(bytes)?)
}

/// Writes `img` (values clamped to `[0, 1]`) as an 8-bit RGB PNG.
pub fn write_png(img: &Image, path: &Path) -> Result<(), ImageError> {
    let file = std::fs::File::create(path).map_err(ImageError::Io)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), img.w as u32, img.h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| ImageError::PngOut(e.to_string()))?;
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
        .map_err(|e| ImageError::PngOut(e.to_string()))
}

/// Writes `img` with the detections drawn (`classes`: the network's class count, for colours)
/// to `path` as PNG.
pub fn write_annotated(
    img: &Image,
    dets: &[Detection],
    classes: u32,
    path: &Path,
) -> Result<(), ImageError> {
    let mut annotated = img.clone();
    draw(&mut annotated, dets, classes);
    write_png(&annotated, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterboxing_the_decoded_pixels_equals_letterboxing_the_float_image() {
        let bytes = crate::files::DEFAULT_IMAGE;
        for (w, h) in [(608, 608), (416, 320), (31, 57)] {
            let direct = Image::decode_letterboxed(bytes, w, h).unwrap();
            let via = Image::decode(bytes).unwrap().into_letterbox(w, h);
            // Values in [0, 1], never NaN: equal values are equal bits.
            assert_eq!((direct.w, direct.h), (w, h));
            assert_eq!(direct, via);
        }
        assert!(matches!(
            Image::decode_letterboxed(b"nope", 8, 8),
            Err(ImageError::Picture(PictureError::UnknownFormat))
        ));
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
            Err(ImageError::Picture(PictureError::UnknownFormat))
        ));
        assert!(matches!(
            Image::decode(&[0xFF, 0xD8, 0xFF, 0x00, 1, 2]),
            Err(ImageError::Picture(PictureError::Jpeg(_)))
        ));
        assert!(Image::decode(b"\x89PNG\r\n\x1a\nxxxx").is_err());
    }
}
