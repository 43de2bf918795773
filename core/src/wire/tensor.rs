//! Tensors on the wire: regions, tensor descriptors and little-endian `f32` values.

use crate::region::{Region, Span};
use crate::tensor::FeatureView;

use super::cursor::{get_u32, put, Field, Reader, Writer};
use super::precision::Precision;
use super::{Limits, WireError};

/// Size in bytes of one tensor value on the wire.
pub const VALUE_LEN: usize = 4;

/// A region on the wire.
mod field {
    use core::ops::Range;

    pub const X0: Range<usize> = 0..4;
    pub const X1: Range<usize> = 4..8;
    pub const Y0: Range<usize> = 8..12;
    pub const Y1: Range<usize> = 12..16;
    pub const REGION_LEN: usize = Y1.end;
}

/// Bytes of a tensor's descriptor on the wire (region `x0 x1 y0 y1`, channels), before its data.
pub const TENSOR_DESC_LEN: usize = <TensorDesc as Field>::LEN;

/// A CHW tensor over `channels × region`, as bytes borrowed from a buffer: little-endian
/// `f32`, or packed in a smaller [`Precision`].
///
/// `data.len()` must be `precision.data_len(channels × region.area(), channels)` (for `f32`,
/// `4 × channels × area`); [`Tensor::new`] and the parser check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tensor<'a> {
    /// The region of the feature map the values cover (absolute coordinates).
    pub region: Region,
    /// Number of channels.
    pub channels: u32,
    /// `channels × height × width` values, channel-major, then row, then column, encoded as
    /// `precision` says.
    pub data: &'a [u8],
    /// How `data` encodes the values.
    pub precision: Precision,
}

/// Bytes needed for `channels × region` values, or `None` if it overflows `usize`.
pub fn tensor_byte_len(region: &Region, channels: u32) -> Option<usize> {
    (region.width() as usize)
        .checked_mul(region.height() as usize)?
        .checked_mul(channels as usize)?
        .checked_mul(VALUE_LEN)
}

impl<'a> Tensor<'a> {
    /// A tensor over `data`, which must hold exactly `4 × channels × area` bytes.
    pub fn new(region: Region, channels: u32, data: &'a [u8]) -> Result<Self, WireError> {
        Tensor::packed(region, channels, Precision::F32, data)
    }

    /// The descriptor of an `f32` tensor over `channels × region` without its values: those a
    /// send streams from elsewhere (`Body::Values`, `Body::Region`), or none at all (an empty
    /// region).
    pub const fn streamed(region: Region, channels: u32) -> Self {
        Tensor {
            region,
            channels,
            data: &[],
            precision: Precision::F32,
        }
    }

    /// A tensor over `data` packed in `precision` (its length is checked).
    pub fn packed(
        region: Region,
        channels: u32,
        precision: Precision,
        data: &'a [u8],
    ) -> Result<Self, WireError> {
        let t = Tensor {
            region,
            channels,
            data,
            precision,
        };
        t.check()?;
        Ok(t)
    }

    /// Checks the data length against the shape.
    pub fn check(&self) -> Result<(), WireError> {
        let n = (self.region.area() as usize).checked_mul(self.channels as usize);
        match n.and_then(|n| self.precision.data_len(n, self.channels as usize)) {
            Some(n) if n == self.data.len() => Ok(()),
            _ => Err(WireError::TensorSize),
        }
    }

    /// Number of values (`channels × area`, as far as `data` holds them).
    pub fn len(&self) -> usize {
        match self.precision {
            Precision::F32 => self.data.len() / VALUE_LEN,
            Precision::F16 => self.data.len() / 2,
            Precision::I8 => self.data.len().saturating_sub(4 * self.channels as usize),
        }
    }

    /// True when the tensor holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values, decoded one by one.
    pub fn values(&self) -> impl Iterator<Item = f32> + 'a {
        let (data, p, channels) = (self.data, self.precision, self.channels as usize);
        let n = self.len();
        (0..n).map(move |i| p.value(data, i, n, channels))
    }

    /// Decodes the values into the first `self.len()` elements of `out`; returns that count.
    pub fn read_f32(&self, out: &mut [f32]) -> Result<usize, WireError> {
        let n = self.len();
        let out = out.get_mut(..n).ok_or(WireError::BufferTooSmall)?;
        match self.precision {
            Precision::F32 => decode_f32(self.data, out),
            _ => out.iter_mut().zip(self.values()).for_each(|(o, v)| *o = v),
        }
        Ok(n)
    }

    /// Encodes `values` (CHW over `channels × region`) into `buf` and views the result.
    pub fn from_f32(
        region: Region,
        channels: u32,
        values: &[f32],
        buf: &'a mut [u8],
    ) -> Result<Tensor<'a>, WireError> {
        let n = tensor_byte_len(&region, channels).ok_or(WireError::TensorSize)?;
        if values.len() * VALUE_LEN != n {
            return Err(WireError::TensorSize);
        }
        let buf = buf.get_mut(..n).ok_or(WireError::BufferTooSmall)?;
        encode_f32(values, buf);
        Ok(Tensor {
            region,
            channels,
            data: buf,
            precision: Precision::F32,
        })
    }

    /// Encodes a feature view into `buf` and views the result.
    pub fn from_view(view: &FeatureView<'_>, buf: &'a mut [u8]) -> Result<Tensor<'a>, WireError> {
        Tensor::from_f32(view.region(), view.channels(), view.data(), buf)
    }
}

/// Writes `values` as little-endian bytes into `out` (`out.len()` must be `4 × values.len()`;
/// extra bytes of either side are left alone).
pub fn encode_f32(values: &[f32], out: &mut [u8]) {
    for (v, b) in values.iter().zip(out.chunks_exact_mut(VALUE_LEN)) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

/// Reads little-endian `f32` bytes into `out` (pairs up to the shorter of both).
pub fn decode_f32(bytes: &[u8], out: &mut [f32]) {
    for (b, v) in bytes.chunks_exact(VALUE_LEN).zip(out.iter_mut()) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// A region is valid on the wire when no span is inverted and every end is within the limits.
pub(crate) fn check_region(r: &Region, limits: &Limits) -> Result<(), WireError> {
    check_order(r)?;
    if r.x.end > limits.max_side || r.y.end > limits.max_side {
        return Err(WireError::Oversized);
    }
    Ok(())
}

/// An inverted span is [`WireError::BadValue`].
fn check_order(r: &Region) -> Result<(), WireError> {
    if r.x.start > r.x.end || r.y.start > r.y.end {
        return Err(WireError::BadValue);
    }
    Ok(())
}

/// A region: `x0 x1 y0 y1`, checked against the limits when read, refused when inverted.
impl Field<'_> for Region {
    type Value = Region;
    const LEN: usize = field::REGION_LEN;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<Region, WireError> {
        let b = r.take(field::REGION_LEN)?;
        let region = Region::new(
            Span::new(get_u32(b, field::X0), get_u32(b, field::X1)),
            Span::new(get_u32(b, field::Y0), get_u32(b, field::Y1)),
        );
        check_region(&region, limits)?;
        Ok(region)
    }
    fn write(v: &Region, w: &mut Writer<'_>) -> Result<(), WireError> {
        check_order(v)?;
        let b = w.slot(field::REGION_LEN)?;
        put(b, field::X0, &v.x.start.to_le_bytes());
        put(b, field::X1, &v.x.end.to_le_bytes());
        put(b, field::Y0, &v.y.start.to_le_bytes());
        put(b, field::Y1, &v.y.end.to_le_bytes());
        Ok(())
    }
    fn check(v: &Region) -> Result<(), WireError> {
        check_order(v)
    }
}

/// The shape of a tensor and the encoding of its values: its descriptor on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TensorDesc {
    pub(crate) region: Region,
    pub(crate) channels: u32,
    pub(crate) precision: Precision,
}

/// Channel counts take the low 24 bits of a descriptor's channel word, the [`Precision`] tag
/// the top 8 (0 for `f32`, so an `f32` descriptor is just its channel count).
const CHANNEL_BITS: u32 = 24;

impl TensorDesc {
    /// Bytes of the values it describes (`None`: overflows `usize`).
    pub(crate) fn data_len(&self) -> Option<usize> {
        let n = (self.region.area() as usize).checked_mul(self.channels as usize)?;
        self.precision.data_len(n, self.channels as usize)
    }

    /// Reads the values it describes, checked against the limits and the bytes left.
    pub(crate) fn read_data<'a>(
        &self,
        r: &mut Reader<'a>,
        limits: &Limits,
    ) -> Result<Tensor<'a>, WireError> {
        let n = self.data_len().ok_or(WireError::Oversized)?;
        if n > limits.max_payload as usize {
            return Err(WireError::Oversized);
        }
        if n > r.rest().len() {
            return Err(WireError::TensorSize);
        }
        Ok(Tensor {
            region: self.region,
            channels: self.channels,
            data: r.take(n)?,
            precision: self.precision,
        })
    }
}

/// A tensor descriptor: the region, then the channel word (the channel count, checked against
/// the limits, and the precision tag above it).
impl Field<'_> for TensorDesc {
    type Value = TensorDesc;
    const LEN: usize = <Region as Field>::LEN + <u32 as Field>::LEN;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<TensorDesc, WireError> {
        let region = r.field::<Region>(limits)?;
        let word = r.field::<u32>(limits)?;
        let channels = word & ((1 << CHANNEL_BITS) - 1);
        if channels > limits.max_channels {
            return Err(WireError::Oversized);
        }
        let precision = Precision::from_tag((word >> CHANNEL_BITS) as u8)?;
        Ok(TensorDesc {
            region,
            channels,
            precision,
        })
    }
    fn write(v: &TensorDesc, w: &mut Writer<'_>) -> Result<(), WireError> {
        if v.channels >> CHANNEL_BITS != 0 {
            return Err(WireError::Oversized);
        }
        w.field::<Region>(&v.region)?;
        w.field::<u32>(&(v.channels | u32::from(v.precision.tag()) << CHANNEL_BITS))
    }
}

/// A tensor: its descriptor in the fixed part, its values trailing (the last field of a
/// message). Reading checks the values' length against the limits and the bytes left.
impl<'a> Field<'a> for Tensor<'a> {
    type Value = Tensor<'a>;
    const LEN: usize = <TensorDesc as Field>::LEN;
    fn read(r: &mut Reader<'a>, limits: &Limits) -> Result<Tensor<'a>, WireError> {
        let d = r.field::<TensorDesc>(limits)?;
        d.read_data(r, limits)
    }
    fn write(v: &Tensor<'a>, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.field::<TensorDesc>(&TensorDesc {
            region: v.region,
            channels: v.channels,
            precision: v.precision,
        })
    }
    fn check(v: &Tensor<'a>) -> Result<(), WireError> {
        v.check()
    }
}
