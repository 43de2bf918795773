//! Overlap strips on the wire: a count, then entries (layer, side, tensor), viewed without
//! copying ([`StripsView`], [`StripsIter`]) and appended in place ([`StripsWriter`]).

use crate::ftp::Side;
use crate::region::Region;
use crate::tensor::FeatureView;

use super::cursor::{Field, Reader, Writer};
use super::precision::Precision;
use super::tensor::{encode_f32, Tensor, TensorDesc};
use super::{Limits, WireError};

/// One overlap strip of a level-0 tile: the output of fused layer `layer` along `side`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripEntry<'a> {
    /// Fused layer whose output the strip holds.
    pub layer: u8,
    /// The tile side (towards the neighbour that needs it).
    pub side: Side,
    /// The strip values.
    pub tensor: Tensor<'a>,
}

/// Bytes of a strip entry's descriptor (layer, side, tensor descriptor), before its data.
pub const STRIP_DESC_LEN: usize = <StripDesc as Field>::LEN;

/// A side on the wire: its one-byte [`Side::index`].
impl Field<'_> for Side {
    type Value = Side;
    const LEN: usize = 1;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<Side, WireError> {
        Side::ALL
            .get(r.field::<u8>(limits)? as usize)
            .copied()
            .ok_or(WireError::BadValue)
    }
    fn write(v: &Side, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.field::<u8>(&(v.index() as u8))
    }
}

/// The descriptor of a strip entry, before its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StripDesc {
    pub(crate) layer: u8,
    pub(crate) side: Side,
    pub(crate) tensor: TensorDesc,
}

/// A strip descriptor: layer, side, tensor descriptor.
impl Field<'_> for StripDesc {
    type Value = StripDesc;
    const LEN: usize = <u8 as Field>::LEN + <Side as Field>::LEN + <TensorDesc as Field>::LEN;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<StripDesc, WireError> {
        Ok(StripDesc {
            layer: r.field::<u8>(limits)?,
            side: r.field::<Side>(limits)?,
            tensor: r.field::<TensorDesc>(limits)?,
        })
    }
    fn write(v: &StripDesc, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.field::<u8>(&v.layer)?;
        w.field::<Side>(&v.side)?;
        w.field::<TensorDesc>(&v.tensor)
    }
}

/// A strip entry: its descriptor, then its values.
impl<'a> Field<'a> for StripEntry<'a> {
    type Value = StripEntry<'a>;
    const LEN: usize = STRIP_DESC_LEN;
    fn read(r: &mut Reader<'a>, limits: &Limits) -> Result<StripEntry<'a>, WireError> {
        let d = r.field::<StripDesc>(limits)?;
        Ok(StripEntry {
            layer: d.layer,
            side: d.side,
            tensor: d.tensor.read_data(r, limits)?,
        })
    }
    fn write(v: &StripEntry<'a>, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.field::<StripDesc>(&StripDesc {
            layer: v.layer,
            side: v.side,
            tensor: TensorDesc {
                region: v.tensor.region,
                channels: v.tensor.channels,
                precision: v.tensor.precision,
            },
        })
    }
}

/// The strip entries of a [`Message::Strips`](super::Message::Strips) payload, validated,
/// iterated without copying.
///
/// Build one for sending with [`StripsView::writer`]; a received one comes from
/// [`Message::parse`](super::Message::parse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripsView<'a> {
    pub(crate) count: u16,
    pub(crate) bytes: &'a [u8],
}

impl<'a> StripsView<'a> {
    /// No strips.
    pub const EMPTY: StripsView<'static> = StripsView {
        count: 0,
        bytes: &[],
    };

    /// Views `bytes` as exactly `count` encoded entries (as kept by a strip cache), checking
    /// each against `limits`.
    pub fn new_checked(count: u16, bytes: &'a [u8], limits: &Limits) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let view = read_entries(&mut r, count, limits)?;
        if !r.rest().is_empty() {
            return Err(WireError::TrailingBytes);
        }
        Ok(view)
    }

    /// Number of entries.
    pub const fn count(&self) -> u16 {
        self.count
    }

    /// The encoded entries (without the leading count).
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The entries in wire order.
    pub fn iter(&self) -> StripsIter<'a> {
        StripsIter {
            rest: self.bytes,
            left: self.count,
        }
    }
}

/// Reads and checks `count` entries; the view holds exactly their bytes.
fn read_entries<'a>(
    r: &mut Reader<'a>,
    count: u16,
    limits: &Limits,
) -> Result<StripsView<'a>, WireError> {
    let bytes = r.rest();
    for _ in 0..count {
        r.field::<StripEntry<'a>>(limits)?;
    }
    let used = bytes.len() - r.rest().len();
    Ok(StripsView {
        count,
        bytes: &bytes[..used],
    })
}

/// Strips in a message: the entry count in the fixed part, the entries trailing.
impl<'a> Field<'a> for StripsView<'a> {
    type Value = StripsView<'a>;
    const LEN: usize = <u16 as Field>::LEN;
    fn read(r: &mut Reader<'a>, limits: &Limits) -> Result<StripsView<'a>, WireError> {
        let count = r.field::<u16>(limits)?;
        read_entries(r, count, limits)
    }
    fn write(v: &StripsView<'a>, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.field::<u16>(&v.count)
    }
}

impl<'a> IntoIterator for StripsView<'a> {
    type Item = StripEntry<'a>;
    type IntoIter = StripsIter<'a>;
    fn into_iter(self) -> StripsIter<'a> {
        self.iter()
    }
}

/// Iterator over the entries of a [`StripsView`].
#[derive(Clone, Debug)]
pub struct StripsIter<'a> {
    pub(crate) rest: &'a [u8],
    pub(crate) left: u16,
}

impl<'a> Iterator for StripsIter<'a> {
    type Item = StripEntry<'a>;

    fn next(&mut self) -> Option<StripEntry<'a>> {
        if self.left == 0 {
            return None;
        }
        // The bytes were validated when the view was built, so this cannot fail; stop if it does.
        let mut r = Reader::new(self.rest);
        match r.field::<StripEntry<'a>>(&NO_LIMITS) {
            Ok(e) => {
                self.left -= 1;
                self.rest = r.rest();
                Some(e)
            }
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// Limits used to re-read bytes that were already checked.
const NO_LIMITS: Limits = Limits {
    max_payload: u32::MAX,
    max_channels: u32::MAX,
    max_side: u32::MAX,
};

impl<'b> StripsView<'b> {
    /// Starts writing strip entries into `buf` (for a [`Message::Strips`](super::Message::Strips)
    /// to send).
    pub fn writer(buf: &'b mut [u8]) -> StripsWriter<'b> {
        StripsWriter {
            buf,
            len: 0,
            count: 0,
        }
    }
}

/// Appends strip entries to a caller's buffer; [`StripsWriter::finish`] views them.
#[derive(Debug)]
pub struct StripsWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    count: u16,
}

impl<'b> StripsWriter<'b> {
    /// Writes the descriptor of an entry and returns the room for its values.
    fn entry(
        &mut self,
        layer: u8,
        side: Side,
        region: &Region,
        channels: u32,
        precision: Precision,
    ) -> Result<&mut [u8], WireError> {
        if self.count == u16::MAX {
            return Err(WireError::Oversized);
        }
        let tensor = TensorDesc {
            region: *region,
            channels,
            precision,
        };
        let n = tensor.data_len().ok_or(WireError::TensorSize)?;
        let mut w = Writer::new(&mut self.buf[self.len..]);
        w.field::<StripDesc>(&StripDesc {
            layer,
            side,
            tensor,
        })?;
        w.slot(n)?;
        let start = self.len + STRIP_DESC_LEN;
        self.len = start + n;
        self.count += 1;
        Ok(&mut self.buf[start..self.len])
    }

    /// Appends the strip `view` of fused layer `layer` on `side`, encoding its values.
    pub fn push(&mut self, layer: u8, side: Side, view: &FeatureView<'_>) -> Result<(), WireError> {
        let out = self.entry(layer, side, &view.region(), view.channels(), Precision::F32)?;
        encode_f32(view.data(), out);
        Ok(())
    }

    /// [`StripsWriter::push`] with the values packed in `precision`.
    pub fn push_packed(
        &mut self,
        layer: u8,
        side: Side,
        view: &FeatureView<'_>,
        precision: Precision,
    ) -> Result<(), WireError> {
        let channels = view.channels();
        let out = self.entry(layer, side, &view.region(), channels, precision)?;
        precision.pack(view.data(), channels as usize, out)
    }

    /// Appends a strip already in wire form.
    pub fn push_tensor(&mut self, layer: u8, side: Side, t: &Tensor<'_>) -> Result<(), WireError> {
        t.check()?;
        let out = self.entry(layer, side, &t.region, t.channels, t.precision)?;
        out.copy_from_slice(t.data);
        Ok(())
    }

    /// Number of entries so far.
    pub const fn count(&self) -> u16 {
        self.count
    }

    /// The entries written.
    pub fn finish(self) -> StripsView<'b> {
        let (bytes, _) = self.buf.split_at(self.len);
        StripsView {
            count: self.count,
            bytes,
        }
    }
}
