//! A frame's picture on the wire, as the camera captured it: its [`PictureFormat`] and the
//! chunks of its bytes ([`PictureBytes`]). A data source ships these once to each node that
//! computes tiles of the frame instead of each tile's `f32` input; the receiver decodes and
//! letterboxes the picture with the same code as the source and cuts its tiles' inputs itself.

use super::cursor::{Field, Reader, Writer};
use super::{Limits, WireError};

/// Most bytes of a picture in one `PictureChunk` message: a large picture goes in several, so
/// no frame of the link is larger than this and a receiver's assembly buffer grows chunk by
/// chunk.
pub const MAX_PICTURE_CHUNK: usize = 64 << 10;

/// How a picture's bytes encode its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PictureFormat {
    /// 8-bit RGB pixels, interleaved, row-major (`3 × width × height` bytes).
    Rgb8,
    /// A JPEG file.
    Jpeg,
    /// A PNG file.
    Png,
}

/// A picture format: one byte, `0` RGB8, `1` JPEG, `2` PNG.
impl Field<'_> for PictureFormat {
    type Value = PictureFormat;
    const LEN: usize = 1;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<PictureFormat, WireError> {
        match r.field::<u8>(limits)? {
            0 => Ok(PictureFormat::Rgb8),
            1 => Ok(PictureFormat::Jpeg),
            2 => Ok(PictureFormat::Png),
            _ => Err(WireError::BadValue),
        }
    }
    fn write(v: &PictureFormat, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.field::<u8>(&match v {
            PictureFormat::Rgb8 => 0,
            PictureFormat::Jpeg => 1,
            PictureFormat::Png => 2,
        })
    }
}

/// Bytes of a picture chunk, borrowed from the payload: a `u32` length in the fixed part, the
/// bytes trailing (the last field of a message), at most [`MAX_PICTURE_CHUNK`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PictureBytes<'a>(pub &'a [u8]);

impl<'a> Field<'a> for PictureBytes<'a> {
    type Value = PictureBytes<'a>;
    const LEN: usize = <u32 as Field>::LEN;
    fn read(r: &mut Reader<'a>, limits: &Limits) -> Result<PictureBytes<'a>, WireError> {
        let n = r.field::<u32>(limits)? as usize;
        if n > MAX_PICTURE_CHUNK || n > limits.max_payload as usize {
            return Err(WireError::Oversized);
        }
        Ok(PictureBytes(r.take(n)?))
    }
    fn write(v: &PictureBytes<'a>, w: &mut Writer<'_>) -> Result<(), WireError> {
        PictureBytes::check(v)?;
        w.field::<u32>(&(v.0.len() as u32))
    }
    fn check(v: &PictureBytes<'a>) -> Result<(), WireError> {
        if v.0.len() > MAX_PICTURE_CHUNK {
            return Err(WireError::Oversized);
        }
        Ok(())
    }
}
