//! Darknet `.weights`: the parameter layout of a network and views of decoded parameters.
//!
//! Layout, per conv layer in cfg order: `biases[n]`, then when `batch_normalize=1`
//! `scales[n]`, `rolling_mean[n]`, `rolling_variance[n]`, then `weights[n·c·k·k]`
//! (`[filters][c_in][k][k]`); all little-endian f32 after the file header.
//!
//! File header ([`Header`]): `major`, `minor`, `revision` as little-endian i32, then `seen` as
//! i32 (4 bytes) or u64 (8 bytes) following Darknet's condition
//! `(major*10 + minor) >= 2 && major < 1000 && minor < 1000` for the 8-byte form. A file is the
//! header followed by the parameters of **all** layers ([`file_len`]); [`decode`] reads a prefix
//! of the layers, [`encode_file`] writes a whole file.

use core::fmt;

use super::network::{Network, MAX_LAYERS};
use super::LayerKind;

/// Batch-norm parameters of one conv layer, one value per output channel.
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm<'a> {
    /// γ.
    pub scales: &'a [f32],
    /// Rolling mean μ.
    pub mean: &'a [f32],
    /// Rolling variance σ².
    pub variance: &'a [f32],
}

/// Parameters of one conv layer, borrowed from a decoded weights buffer.
#[derive(Clone, Copy, Debug)]
pub struct ConvParams<'a> {
    /// One bias per output channel (β when batch norm is on).
    pub biases: &'a [f32],
    /// Batch norm, when the layer has it.
    pub bn: Option<BatchNorm<'a>>,
    /// Weights laid out `[filters][c_in][k][k]`.
    pub weights: &'a [f32],
}

/// Why parameters could not be read or viewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightsError {
    /// `upto` is past the last layer.
    LayerOutOfRange,
    /// A parameter count overflows `usize`.
    Overflow,
    /// The buffer holds fewer values than the layers need.
    Truncated {
        /// Values (or bytes, when reading a file) needed.
        needed: usize,
        /// Values (or bytes) available.
        available: usize,
    },
    /// A weights file is longer than the header plus the parameters of all layers.
    TrailingBytes {
        /// Bytes past the expected end.
        extra: usize,
    },
    /// A header field is negative, or `seen` does not fit the header's 4-byte form.
    BadHeader,
    /// The destination buffer is smaller than the data to write.
    OutputTooSmall {
        /// Values (or bytes) needed.
        needed: usize,
        /// Values (or bytes) available.
        available: usize,
    },
    /// A parameter buffer does not hold exactly the network's parameter count.
    WrongParamCount {
        /// Values the network has.
        expected: usize,
        /// Values given.
        actual: usize,
    },
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightsError::LayerOutOfRange => f.write_str("layer index past the last layer"),
            WeightsError::Overflow => f.write_str("parameter count overflows"),
            WeightsError::Truncated { needed, available } => {
                write!(f, "truncated: need {needed}, have {available}")
            }
            WeightsError::TrailingBytes { extra } => {
                write!(f, "{extra} bytes past the end of the weights")
            }
            WeightsError::BadHeader => f.write_str("bad weights header"),
            WeightsError::OutputTooSmall { needed, available } => {
                write!(f, "output too small: need {needed}, have {available}")
            }
            WeightsError::WrongParamCount { expected, actual } => {
                write!(f, "expected {expected} parameters, got {actual}")
            }
        }
    }
}

impl core::error::Error for WeightsError {}

/// Number of f32 parameters a layer stores (0 for layers without parameters).
pub fn layer_param_count(net: &Network, layer: usize) -> Result<usize, WeightsError> {
    let l = net
        .layers()
        .get(layer)
        .ok_or(WeightsError::LayerOutOfRange)?;
    match &l.kind {
        LayerKind::Conv(c) => {
            let n = c.filters as usize;
            let per_channel = if c.batch_norm { 4 * n } else { n };
            c.weight_count(l.input.c)
                .and_then(|w| w.checked_add(per_channel))
                .ok_or(WeightsError::Overflow)
        }
        _ => Ok(0),
    }
}

/// Number of f32 parameters of layers `[0, upto)`.
pub fn param_count(net: &Network, upto: usize) -> Result<usize, WeightsError> {
    if upto > net.layers().len() {
        return Err(WeightsError::LayerOutOfRange);
    }
    (0..upto).try_fold(0usize, |acc, i| {
        acc.checked_add(layer_param_count(net, i)?)
            .ok_or(WeightsError::Overflow)
    })
}

/// Decoded parameters of layers `[0, upto)` of a network, viewed per layer.
#[derive(Clone, Debug)]
pub struct Weights<'a> {
    data: &'a [f32],
    offsets: [usize; MAX_LAYERS],
    upto: usize,
    net: &'a Network,
}

impl<'a> Weights<'a> {
    /// Views `data` (at least [`param_count`]`(net, upto)` values) as the parameters of layers
    /// `[0, upto)` in Darknet order.
    pub fn new(net: &'a Network, upto: usize, data: &'a [f32]) -> Result<Self, WeightsError> {
        let mut offsets = [0usize; MAX_LAYERS];
        let mut at = 0usize;
        for (i, slot) in offsets.iter_mut().enumerate().take(upto) {
            *slot = at;
            at = at
                .checked_add(layer_param_count(net, i)?)
                .ok_or(WeightsError::Overflow)?;
        }
        if upto > net.layers().len() {
            return Err(WeightsError::LayerOutOfRange);
        }
        if data.len() < at {
            return Err(WeightsError::Truncated {
                needed: at,
                available: data.len(),
            });
        }
        Ok(Weights {
            data: &data[..at],
            offsets,
            upto,
            net,
        })
    }

    /// The network these parameters belong to.
    pub fn network(&self) -> &'a Network {
        self.net
    }

    /// Number of layers covered.
    pub fn layers(&self) -> usize {
        self.upto
    }

    /// Parameters of conv layer `layer`, or `None` if it is not a conv layer or not covered.
    pub fn conv(&self, layer: usize) -> Option<ConvParams<'a>> {
        if layer >= self.upto {
            return None;
        }
        ConvParams::of(&self.net.layers()[layer], &self.data[self.offsets[layer]..])
    }
}

impl<'a> ConvParams<'a> {
    /// Views `data`, starting with conv layer `layer`'s parameters in Darknet order, as that
    /// layer's parameters; `None` if `layer` is not a convolution or `data` is too short.
    pub fn of(layer: &super::Layer, data: &'a [f32]) -> Option<ConvParams<'a>> {
        let c = layer.conv()?;
        let n = c.filters as usize;
        let mut rest = data;
        let mut take = |len: usize| {
            let head = rest.get(..len)?;
            rest = &rest[len..];
            Some(head)
        };
        let biases = take(n)?;
        let bn = if c.batch_norm {
            Some(BatchNorm {
                scales: take(n)?,
                mean: take(n)?,
                variance: take(n)?,
            })
        } else {
            None
        };
        let weights = take(c.weight_count(layer.input.c)?)?;
        Some(ConvParams {
            biases,
            bn,
            weights,
        })
    }
}

/// Header of a Darknet `.weights` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Format major version.
    pub major: i32,
    /// Format minor version.
    pub minor: i32,
    /// Format revision.
    pub revision: i32,
    /// Images seen in training (stored as i32 or u64, see [`Header::len`]).
    pub seen: u64,
}

/// Bytes of the three version fields.
const VERSION_LEN: usize = 12;

fn i32_at(bytes: &[u8], at: usize) -> Option<i32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(i32::from_le_bytes(b))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

fn truncated(needed: usize, available: usize) -> WeightsError {
    WeightsError::Truncated { needed, available }
}

#[allow(clippy::len_without_is_empty)] // a header is never empty
impl Header {
    /// Darknet's test for the 8-byte `seen`:
    /// `(major*10 + minor) >= 2 && major < 1000 && minor < 1000` (computed without overflow).
    pub fn wide_seen(&self) -> bool {
        i64::from(self.major) * 10 + i64::from(self.minor) >= 2
            && self.major < 1000
            && self.minor < 1000
    }

    /// Encoded size in bytes: 12 + 8 when `seen` is 8 bytes wide, 12 + 4 otherwise.
    pub fn len(&self) -> usize {
        VERSION_LEN + if self.wide_seen() { 8 } else { 4 }
    }

    /// Reads a header from the start of `bytes`; returns it and its length in bytes.
    ///
    /// Errors: [`WeightsError::Truncated`] when `bytes` is too short,
    /// [`WeightsError::BadHeader`] when a version field (or a 4-byte `seen`) is negative.
    pub fn parse(bytes: &[u8]) -> Result<(Header, usize), WeightsError> {
        let short = || truncated(VERSION_LEN, bytes.len());
        let major = i32_at(bytes, 0).ok_or_else(short)?;
        let minor = i32_at(bytes, 4).ok_or_else(short)?;
        let revision = i32_at(bytes, 8).ok_or_else(short)?;
        if major < 0 || minor < 0 || revision < 0 {
            return Err(WeightsError::BadHeader);
        }
        let mut h = Header {
            major,
            minor,
            revision,
            seen: 0,
        };
        let len = h.len();
        let short = || truncated(len, bytes.len());
        h.seen = if h.wide_seen() {
            u64_at(bytes, VERSION_LEN).ok_or_else(short)?
        } else {
            let s = i32_at(bytes, VERSION_LEN).ok_or_else(short)?;
            u64::try_from(s).map_err(|_| WeightsError::BadHeader)?
        };
        Ok((h, len))
    }

    /// Writes the header at the start of `out`; returns the bytes written ([`Header::len`]).
    ///
    /// Errors: [`WeightsError::BadHeader`] for negative fields or a `seen` above `i32::MAX` in
    /// the 4-byte form, [`WeightsError::OutputTooSmall`] when `out` is shorter than the header.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WeightsError> {
        if self.major < 0 || self.minor < 0 || self.revision < 0 {
            return Err(WeightsError::BadHeader);
        }
        let len = self.len();
        let available = out.len();
        let dst = out.get_mut(..len).ok_or(WeightsError::OutputTooSmall {
            needed: len,
            available,
        })?;
        let (version, seen) = dst.split_at_mut(VERSION_LEN);
        for (chunk, v) in version
            .chunks_exact_mut(4)
            .zip([self.major, self.minor, self.revision])
        {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        if self.wide_seen() {
            seen.copy_from_slice(&self.seen.to_le_bytes());
        } else {
            let s = i32::try_from(self.seen).map_err(|_| WeightsError::BadHeader)?;
            seen.copy_from_slice(&s.to_le_bytes());
        }
        Ok(len)
    }
}

/// Size in bytes of a weights file for `net` with `header`: the header plus 4 bytes per
/// parameter of **all** layers.
pub fn file_len(net: &Network, header: &Header) -> Result<usize, WeightsError> {
    param_count(net, net.layers().len())?
        .checked_mul(4)
        .and_then(|b| b.checked_add(header.len()))
        .ok_or(WeightsError::Overflow)
}

/// Checks that a weights file of `len` bytes starting with `header` is exactly [`file_len`] long,
/// before any parameter is read (a reader that streams a prefix still validates the whole
/// file's size, from its metadata).
///
/// Errors: [`WeightsError::Truncated`] (bytes) when the file is short,
/// [`WeightsError::TrailingBytes`] when it is long, and those of [`file_len`].
pub fn check_file_len(net: &Network, header: &Header, len: u64) -> Result<(), WeightsError> {
    let total = file_len(net, header)?;
    let len = usize::try_from(len).map_err(|_| WeightsError::Overflow)?;
    if len < total {
        return Err(truncated(total, len));
    }
    if len > total {
        return Err(WeightsError::TrailingBytes { extra: len - total });
    }
    Ok(())
}

/// Reads little-endian f32 values from `bytes` into the start of `out` (the inverse of
/// [`encode_params`]); returns the values written. `bytes` must hold a whole number of values.
///
/// Errors: [`WeightsError::Truncated`] (bytes) for a length not a multiple of 4,
/// [`WeightsError::OutputTooSmall`] (values) when `out` is shorter than `bytes.len() / 4`.
pub fn decode_params(bytes: &[u8], out: &mut [f32]) -> Result<usize, WeightsError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(truncated(bytes.len().next_multiple_of(4), bytes.len()));
    }
    let n = bytes.len() / 4;
    let available = out.len();
    let dst = out.get_mut(..n).ok_or(WeightsError::OutputTooSmall {
        needed: n,
        available,
    })?;
    for (d, chunk) in dst.iter_mut().zip(bytes.chunks_exact(4)) {
        if let Ok(b) = <[u8; 4]>::try_from(chunk) {
            *d = f32::from_le_bytes(b);
        }
    }
    Ok(n)
}

/// Decodes a whole weights file: checks its header and that `bytes` is exactly
/// [`file_len`] long, then writes the parameters of layers `[0, upto)` (little-endian f32, Darknet
/// order) to the start of `out`, which must hold at least [`param_count`]`(net, upto)` values.
///
/// Errors: those of [`Header::parse`] and [`check_file_len`];
/// [`WeightsError::LayerOutOfRange`] for `upto` past the last layer,
/// [`WeightsError::OutputTooSmall`] (values) for a short `out`.
pub fn decode(
    bytes: &[u8],
    net: &Network,
    upto: usize,
    out: &mut [f32],
) -> Result<Header, WeightsError> {
    let (header, header_len) = Header::parse(bytes)?;
    check_file_len(net, &header, bytes.len() as u64)?;
    let n = param_count(net, upto)?;
    if out.len() < n {
        return Err(WeightsError::OutputTooSmall {
            needed: n,
            available: out.len(),
        });
    }
    let body = bytes.get(header_len..).unwrap_or_default();
    let prefix = body
        .get(..4 * n)
        .ok_or(truncated(header_len + 4 * n, bytes.len()))?;
    decode_params(prefix, out)?;
    Ok(header)
}

/// Writes `values` as little-endian f32 at the start of `out`; returns the bytes written
/// (`4 · values.len()`), or [`WeightsError::OutputTooSmall`] (bytes).
pub fn encode_params(values: &[f32], out: &mut [u8]) -> Result<usize, WeightsError> {
    let needed = values.len().checked_mul(4).ok_or(WeightsError::Overflow)?;
    let available = out.len();
    let dst = out
        .get_mut(..needed)
        .ok_or(WeightsError::OutputTooSmall { needed, available })?;
    for (chunk, v) in dst.chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    Ok(needed)
}

/// Writes a whole weights file (`header`, then `values`, which must hold exactly the parameters
/// of all layers of `net`) at the start of `out`; returns the bytes written ([`file_len`]).
///
/// Errors: [`WeightsError::WrongParamCount`], [`WeightsError::OutputTooSmall`] (bytes), and
/// those of [`Header::encode`].
pub fn encode_file(
    header: &Header,
    net: &Network,
    values: &[f32],
    out: &mut [u8],
) -> Result<usize, WeightsError> {
    let expected = param_count(net, net.layers().len())?;
    if values.len() != expected {
        return Err(WeightsError::WrongParamCount {
            expected,
            actual: values.len(),
        });
    }
    let total = file_len(net, header)?;
    if out.len() < total {
        return Err(WeightsError::OutputTooSmall {
            needed: total,
            available: out.len(),
        });
    }
    let h = header.encode(out)?;
    let body = out.get_mut(h..).unwrap_or_default();
    Ok(h + encode_params(values, body)?)
}
