//! A frame's picture as the camera captured it ([`Picture`]: JPEG or PNG bytes, or 8-bit RGB
//! pixels) and its decoding to [`Rgb8`]. A data source ships the picture to the nodes that
//! compute its tiles; each decodes it here and cuts its tiles' inputs with
//! [`letterbox_window`](super::letterbox_window), the same code and so the same values as the
//! source's whole canvas. JPEG and PNG need the `codecs` feature; raw pixels decode anywhere.

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use tessera_core::wire::PictureFormat;

use super::letterbox::{PixelsError, Rgb8, RgbView, MAX_SIDE};

/// Largest picture a node accepts, in bytes as shipped (a raw 1080p frame is 6.2 MB).
pub const MAX_PICTURE_BYTES: usize = 16 << 20;

/// Largest decoded picture a node makes, in pixels (a 4K frame is 8.3 Mpx; its 8-bit pixels
/// take three bytes each).
pub const MAX_PICTURE_PIXELS: usize = 3840 * 2160;

/// A frame's picture as captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    /// How `bytes` encode the pixels.
    pub format: PictureFormat,
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
    /// The file's bytes, or the interleaved pixels for [`PictureFormat::Rgb8`].
    pub bytes: Vec<u8>,
}

/// Why a picture could not be made or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PictureError {
    /// Neither a JPEG nor a PNG signature.
    #[error("not a JPEG or PNG file")]
    UnknownFormat,
    /// The JPEG decoder rejected the data.
    #[error("bad JPEG: {0}")]
    Jpeg(String),
    /// The PNG decoder rejected the data.
    #[error("bad PNG: {0}")]
    Png(String),
    /// Zero or absurd dimensions, or an unsupported pixel layout.
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// This build decodes no pictures of this format (the `codecs` feature is off).
    #[error("no decoder for {0:?} pictures in this build")]
    NoCodec(PictureFormat),
    /// The picture is larger than [`MAX_PICTURE_BYTES`] or [`MAX_PICTURE_PIXELS`].
    #[error("picture too large: {width}x{height}, {bytes} bytes")]
    TooLarge {
        /// Columns declared.
        width: usize,
        /// Rows declared.
        height: usize,
        /// Bytes.
        bytes: usize,
    },
    /// The decoded pixels are not the size the sender declared.
    #[error("picture declared {declared:?}, decodes to {decoded:?}")]
    SizeMismatch {
        /// Width and height declared.
        declared: (usize, usize),
        /// Width and height decoded.
        decoded: (usize, usize),
    },
}

impl From<PixelsError> for PictureError {
    fn from(e: PixelsError) -> Self {
        PictureError::Unsupported(alloc::format!("{e}"))
    }
}

/// Refuses pictures past the node's bounds before anything is allocated for them.
pub fn check_bounds(width: usize, height: usize, bytes: usize) -> Result<(), PictureError> {
    let sides = (1..=MAX_SIDE).contains(&width) && (1..=MAX_SIDE).contains(&height);
    if !sides || width * height > MAX_PICTURE_PIXELS || bytes > MAX_PICTURE_BYTES {
        return Err(PictureError::TooLarge {
            width,
            height,
            bytes,
        });
    }
    Ok(())
}

impl Picture {
    /// Raw 8-bit pixels as a picture (shipped as they are).
    pub fn from_pixels(px: &Rgb8) -> Result<Picture, PictureError> {
        let (w, h) = px.size();
        check_bounds(w, h, px.bytes().len())?;
        Ok(Picture {
            format: PictureFormat::Rgb8,
            width: w as u16,
            height: h as u16,
            bytes: px.bytes().to_vec(),
        })
    }

    /// A captured JPEG or PNG file, decoded once to learn (and hand back) its pixels.
    pub fn captured(bytes: Vec<u8>) -> Result<(Picture, Rgb8), PictureError> {
        let format = sniff(&bytes)?;
        let px = decode_file(format, &bytes, MAX_SIDE, MAX_SIDE)?;
        let (w, h) = px.size();
        check_bounds(w, h, bytes.len())?;
        let picture = Picture {
            format,
            width: w as u16,
            height: h as u16,
            bytes,
        };
        Ok((picture, px))
    }

    /// The picture's pixels, checked against its declared size, decoded into `scratch` (memory
    /// the caller holds anyway, such as a node's idle tile buffers) when they fit there, else
    /// into `spill`; raw pixels are read where they are. A node cutting one tile's input so
    /// holds no decoded frame of its own.
    pub fn pixels_in<'s>(
        &'s self,
        scratch: &'s mut [u8],
        spill: &'s mut Vec<u8>,
    ) -> Result<RgbView<'s>, PictureError> {
        let (w, h) = (self.width as usize, self.height as usize);
        check_bounds(w, h, self.bytes.len())?;
        let decoded = match self.format {
            PictureFormat::Rgb8 => return Ok(RgbView::new(w, h, &self.bytes)?),
            #[cfg(feature = "codecs")]
            PictureFormat::Jpeg => {
                let out = match scratch.get_mut(..w * h * 3) {
                    Some(out) => out,
                    None => {
                        spill.clear();
                        spill.resize(w * h * 3, 0);
                        spill.as_mut_slice()
                    }
                };
                let size = codecs::jpeg_into(&self.bytes, w, h, out)?;
                (size, &*out)
            }
            f => {
                let _ = &scratch; // Without `codecs`, nothing decodes into it.
                let px = decode_file(f, &self.bytes, w, h)?;
                let size = px.size();
                *spill = px.into_bytes();
                (size, spill.as_slice())
            }
        };
        match decoded {
            ((dw, dh), px) if (dw, dh) == (w, h) => Ok(RgbView::new(w, h, px)?),
            (size, _) => Err(PictureError::SizeMismatch {
                declared: (w, h),
                decoded: size,
            }),
        }
    }

    /// The picture's pixels, checked against its declared size.
    pub fn pixels(&self) -> Result<Rgb8, PictureError> {
        let (w, h) = (self.width as usize, self.height as usize);
        check_bounds(w, h, self.bytes.len())?;
        let px = match self.format {
            PictureFormat::Rgb8 => Rgb8::new(w, h, self.bytes.clone())?,
            f => decode_file(f, &self.bytes, w, h)?,
        };
        if px.size() != (w, h) {
            return Err(PictureError::SizeMismatch {
                declared: (w, h),
                decoded: px.size(),
            });
        }
        Ok(px)
    }
}

/// The format of a file's bytes, by its signature.
pub fn sniff(bytes: &[u8]) -> Result<PictureFormat, PictureError> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        Ok(PictureFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(PictureFormat::Png)
    } else {
        Err(PictureError::UnknownFormat)
    }
}

/// JPEG or PNG bytes (by their signature) as 8-bit RGB pixels.
pub fn decode_pixels(bytes: &[u8]) -> Result<Rgb8, PictureError> {
    decode_file(sniff(bytes)?, bytes, MAX_SIDE, MAX_SIDE)
}

/// Decodes a file of `format`, refusing one wider or taller than `max_w × max_h`.
fn decode_file(
    format: PictureFormat,
    bytes: &[u8],
    max_w: usize,
    max_h: usize,
) -> Result<Rgb8, PictureError> {
    match format {
        #[cfg(feature = "codecs")]
        PictureFormat::Jpeg => codecs::jpeg(bytes, max_w, max_h),
        #[cfg(feature = "codecs")]
        PictureFormat::Png => codecs::png(bytes, max_w, max_h),
        f => {
            let _ = (bytes, max_w, max_h);
            Err(PictureError::NoCodec(f))
        }
    }
}

#[cfg(feature = "codecs")]
mod codecs {
    extern crate alloc;

    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;

    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    use zune_jpeg::JpegDecoder;

    use super::{PictureError, Rgb8};

    pub(super) fn jpeg(bytes: &[u8], max_w: usize, max_h: usize) -> Result<Rgb8, PictureError> {
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::RGB)
            .set_max_width(max_w)
            .set_max_height(max_h);
        let mut decoder = JpegDecoder::new_with_options(bytes, options);
        let px = decoder
            .decode()
            .map_err(|e| PictureError::Jpeg(format!("{e:?}")))?;
        let info = decoder
            .info()
            .ok_or_else(|| PictureError::Jpeg("no header".into()))?;
        Ok(Rgb8::new(info.width as usize, info.height as usize, px)?)
    }

    /// Decodes a JPEG of declared size `w × h` into `out` (exactly `w·h·3` bytes); the size it
    /// decoded to.
    pub(super) fn jpeg_into(
        bytes: &[u8],
        w: usize,
        h: usize,
        out: &mut [u8],
    ) -> Result<(usize, usize), PictureError> {
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::RGB)
            .set_max_width(w)
            .set_max_height(h);
        let mut decoder = JpegDecoder::new_with_options(bytes, options);
        let bad = |e| PictureError::Jpeg(format!("{e:?}"));
        decoder.decode_headers().map_err(bad)?;
        let (dw, dh) = decoder
            .dimensions()
            .ok_or_else(|| PictureError::Jpeg("no header".into()))?;
        if (dw, dh) != (w, h) || decoder.output_buffer_size() != Some(out.len()) {
            return Err(PictureError::SizeMismatch {
                declared: (w, h),
                decoded: (dw, dh),
            });
        }
        decoder.decode_into(out).map_err(bad)?;
        Ok((dw, dh))
    }

    pub(super) fn png(bytes: &[u8], max_w: usize, max_h: usize) -> Result<Rgb8, PictureError> {
        let mut decoder = png::Decoder::new(bytes);
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder
            .read_info()
            .map_err(|e| PictureError::Png(e.to_string()))?;
        let (w, h) = (reader.info().width as usize, reader.info().height as usize);
        if w == 0 || h == 0 || w > max_w || h > max_h {
            return Err(PictureError::Unsupported(format!("{w}x{h}")));
        }
        let mut buf = vec![0; reader.output_buffer_size()];
        let frame = reader
            .next_frame(&mut buf)
            .map_err(|e| PictureError::Png(e.to_string()))?;
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
            other => return Err(PictureError::Unsupported(format!("{other:?}"))),
        };
        Ok(Rgb8::new(w, h, rgb)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn raw_pixels_round_trip_and_bounds_hold() {
        let px: Vec<u8> = (0..5 * 4 * 3).map(|i| i as u8).collect();
        let rgb = Rgb8::new(5, 4, px).unwrap();
        let p = Picture::from_pixels(&rgb).unwrap();
        assert_eq!((p.format, p.width, p.height), (PictureFormat::Rgb8, 5, 4));
        assert_eq!(p.pixels().unwrap(), rgb);
        let lying = Picture {
            width: 6,
            ..p.clone()
        };
        assert!(lying.pixels().is_err());
        let huge = Picture {
            width: 8000,
            height: 8000,
            bytes: vec![],
            ..p
        };
        assert!(matches!(huge.pixels(), Err(PictureError::TooLarge { .. })));
        assert_eq!(sniff(b"nope"), Err(PictureError::UnknownFormat));
        // Raw pixels are read where they are, whatever the scratch.
        let mut spill = Vec::new();
        let view = p.pixels_in(&mut [], &mut spill).unwrap();
        assert_eq!(view, rgb.view());
        assert!(spill.is_empty());
    }

    #[cfg(feature = "codecs")]
    #[test]
    fn decoding_into_scratch_or_spill_gives_the_decoded_pixels() {
        let (p, px) = Picture::captured(crate::builtin::DEFAULT_IMAGE.to_vec()).unwrap();
        let n = px.bytes().len();
        // Room enough: decoded in the scratch, nothing spilt.
        let mut scratch = vec![7u8; n + 100];
        let mut spill = Vec::new();
        assert_eq!(p.pixels_in(&mut scratch, &mut spill).unwrap(), px.view());
        assert!(spill.is_empty());
        assert_eq!(&scratch[..n], px.bytes());
        // Too little: the spill holds them, the scratch is untouched.
        let mut small = vec![7u8; n - 1];
        assert_eq!(p.pixels_in(&mut small, &mut spill).unwrap(), px.view());
        assert_eq!(spill.len(), n);
        assert!(small.iter().all(|&b| b == 7));
        // A picture whose declared size differs from its file's is refused either way.
        let lying = Picture {
            height: p.height - 1,
            ..p.clone()
        };
        assert!(lying.pixels_in(&mut scratch, &mut spill).is_err());
        assert!(lying.pixels_in(&mut [], &mut spill).is_err());
    }
}
