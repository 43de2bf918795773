//! A frame's picture in transit: the data source cuts it into `PictureChunk`s
//! ([`chunks`]); a receiver puts them back together ([`Assembly`]), bounded and in order,
//! before the first `TileTask` of the frame arrives on the same connection.

extern crate alloc;

use alloc::vec::Vec;

use tessera_core::wire::{FrameKey, Message, PictureBytes, PictureFormat, MAX_PICTURE_CHUNK};

use crate::pipeline::{check_bounds, Picture, PictureError};

/// Why a picture chunk was refused (the assembly of that frame's picture is dropped).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Only a frame's data source ships its picture (and, under WSH, BODP and MoDNN, the
    /// gateway it submitted the frame to).
    #[error("node {from} shipped a picture of frame {frame}, which it did not start")]
    NotOrigin {
        /// The sender.
        from: u16,
        /// The frame.
        frame: FrameKey,
    },
    /// A gateway takes pictures only under WSH, BODP and MoDNN (it hands out their work).
    #[error("a gateway takes no pictures under this policy")]
    Gateway,
    /// The gateway holds pictures for as many frames as it may track already.
    #[error("too many pictures held")]
    Busy,
    /// The picture is past this node's bounds.
    #[error("{0}")]
    Bounds(PictureError),
    /// A chunk that does not continue the picture being assembled.
    #[error("chunk at {offset} of a {total}-byte picture, {have} bytes assembled")]
    OutOfOrder {
        /// The chunk's offset.
        offset: u32,
        /// The picture's declared size.
        total: u32,
        /// Bytes assembled so far.
        have: usize,
    },
}

/// The message of one chunk of `picture`: bytes `offset..` (at most [`MAX_PICTURE_CHUNK`]).
fn chunk_at(frame: FrameKey, picture: &Picture, offset: usize) -> Message<'_> {
    let end = (offset + MAX_PICTURE_CHUNK).min(picture.bytes.len());
    Message::PictureChunk {
        frame,
        format: picture.format,
        width: picture.width,
        height: picture.height,
        total: picture.bytes.len() as u32,
        offset: offset as u32,
        data: PictureBytes(&picture.bytes[offset..end]),
    }
}

/// The chunks of `picture` in order (one, empty, for an empty picture).
pub fn chunks(frame: FrameKey, picture: &Picture) -> impl Iterator<Item = Message<'_>> {
    let n = picture.bytes.len().div_ceil(MAX_PICTURE_CHUNK).max(1);
    (0..n).map(move |i| chunk_at(frame, picture, i * MAX_PICTURE_CHUNK))
}

/// A picture being received.
#[derive(Debug)]
pub struct Assembly {
    format: PictureFormat,
    width: u16,
    height: u16,
    total: u32,
    bytes: Vec<u8>,
}

/// What a chunk did to an [`Assembly`].
#[derive(Debug)]
pub enum Progress {
    /// More chunks to come.
    Partial(Assembly),
    /// The whole picture.
    Complete(Picture),
}

impl Assembly {
    /// Bytes held.
    pub fn held(&self) -> usize {
        self.bytes.capacity()
    }

    /// Adds the chunk `msg` (a `PictureChunk`) to `current` (the frame's assembly so far, if
    /// any). A chunk at offset 0 starts the picture over (its source shipped it again after a
    /// reconnection); any other must continue it with the same description.
    pub fn add(current: Option<Assembly>, msg: &Message<'_>) -> Result<Progress, ChunkError> {
        let Message::PictureChunk {
            format,
            width,
            height,
            total,
            offset,
            data,
            ..
        } = *msg
        else {
            return Err(ChunkError::OutOfOrder {
                offset: 0,
                total: 0,
                have: 0,
            });
        };
        let mut a = match current {
            Some(a) if offset != 0 => a,
            _ => {
                check_bounds(width as usize, height as usize, total as usize)
                    .map_err(ChunkError::Bounds)?;
                Assembly {
                    format,
                    width,
                    height,
                    total,
                    bytes: Vec::new(),
                }
            }
        };
        let same = (a.format, a.width, a.height, a.total) == (format, width, height, total);
        let fits = a.bytes.len() + data.0.len() <= total as usize;
        if !same || offset as usize != a.bytes.len() || !fits {
            return Err(ChunkError::OutOfOrder {
                offset,
                total,
                have: a.bytes.len(),
            });
        }
        if a.bytes.is_empty() {
            // Sized once from the checked total: no regrowth while chunks arrive.
            a.bytes.reserve_exact(total as usize);
        }
        a.bytes.extend_from_slice(data.0);
        if a.bytes.len() < total as usize {
            return Ok(Progress::Partial(a));
        }
        Ok(Progress::Complete(Picture {
            format: a.format,
            width: a.width,
            height: a.height,
            bytes: a.bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(n: usize) -> Picture {
        Picture {
            format: PictureFormat::Jpeg,
            width: 640,
            height: 480,
            bytes: (0..n).map(|i| (i * 31) as u8).collect(),
        }
    }

    fn assemble<'a>(msgs: impl Iterator<Item = Message<'a>>) -> Result<Picture, ChunkError> {
        let mut a = None;
        for m in msgs {
            match Assembly::add(a.take(), &m)? {
                Progress::Partial(p) => a = Some(p),
                Progress::Complete(p) => return Ok(p),
            }
        }
        panic!("incomplete");
    }

    #[test]
    fn chunks_put_back_together_are_the_picture() {
        let key = FrameKey::new(2, 9);
        for n in [
            1,
            MAX_PICTURE_CHUNK,
            MAX_PICTURE_CHUNK + 1,
            3 * MAX_PICTURE_CHUNK + 17,
        ] {
            let p = picture(n);
            assert_eq!(chunks(key, &p).count(), n.div_ceil(MAX_PICTURE_CHUNK));
            assert_eq!(assemble(chunks(key, &p)).unwrap(), p);
        }
    }

    #[test]
    fn gaps_lies_and_huge_pictures_are_refused() {
        let key = FrameKey::new(2, 9);
        let p = picture(2 * MAX_PICTURE_CHUNK + 5);
        let all: Vec<Message<'_>> = chunks(key, &p).collect();
        // A chunk missing in the middle.
        assert!(matches!(
            assemble([all[0], all[2]].into_iter()),
            Err(ChunkError::OutOfOrder { .. })
        ));
        // A chunk whose picture is not the one being assembled.
        let mut other = all[1];
        if let Message::PictureChunk { width, .. } = &mut other {
            *width = 641;
        }
        assert!(assemble([all[0], other].into_iter()).is_err());
        // A picture past the bounds is refused before anything is held.
        let huge = Message::PictureChunk {
            frame: key,
            format: PictureFormat::Rgb8,
            width: 8000,
            height: 8000,
            total: 192_000_000,
            offset: 0,
            data: PictureBytes(&[]),
        };
        assert!(matches!(
            Assembly::add(None, &huge),
            Err(ChunkError::Bounds(_))
        ));
        // Offset 0 starts over: a re-shipped picture replaces a half-received one.
        let mut a = match Assembly::add(None, &all[0]).unwrap() {
            Progress::Partial(a) => Some(a),
            Progress::Complete(_) => panic!("complete after one chunk"),
        };
        for m in &all {
            a = match Assembly::add(a.take(), m).unwrap() {
                Progress::Partial(x) => Some(x),
                Progress::Complete(q) => {
                    assert_eq!(q, p);
                    None
                }
            };
        }
        assert!(a.is_none());
    }
}
