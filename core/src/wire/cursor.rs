//! Bounds-checked little-endian cursors over a payload, and the [`Field`] trait that every
//! value on the wire implements once for both directions.
//!
//! A message's payload is a sequence of fields; each field type states its length
//! ([`Field::LEN`]), how it is read and how it is written, so a message layout is just the list
//! of its field types (see [`Message`](super::Message)) and parse, emit and length all follow
//! from that list.

use core::ops::Range;

use super::{Limits, WireError};

/// A value with a fixed-size wire form, read from a [`Reader`] and written to a [`Writer`].
///
/// A field may end its message with trailing bytes that are not part of [`Field::LEN`] (a
/// tensor's values, encoded strip entries): `read` consumes them, `write` leaves them to the
/// caller (who may stream them, see [`FrameEncoder`](super::FrameEncoder)).
pub(crate) trait Field<'a> {
    /// The value as it appears in a [`Message`](super::Message).
    type Value;
    /// Bytes of the fixed part.
    const LEN: usize;
    /// Reads the value (and its trailing bytes, if any), checking it against `limits`.
    fn read(r: &mut Reader<'a>, limits: &Limits) -> Result<Self::Value, WireError>;
    /// Writes the fixed part of `v`: exactly [`Field::LEN`] bytes.
    fn write(v: &Self::Value, w: &mut Writer<'_>) -> Result<(), WireError>;
    /// Checks what [`Field::read`] would reject in `v` (sizes, ranges).
    fn check(_v: &Self::Value) -> Result<(), WireError> {
        Ok(())
    }
}

/// A bounds-checked cursor over a payload.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// The bytes not read yet.
    pub(crate) const fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// The next `n` bytes ([`WireError::Truncated`] when fewer are left).
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// Reads one field.
    pub(crate) fn field<F: Field<'a>>(&mut self, limits: &Limits) -> Result<F::Value, WireError> {
        F::read(self, limits)
    }
}

/// A bounds-checked writer into a caller's buffer.
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub(crate) const fn pos(&self) -> usize {
        self.pos
    }

    /// Reserves the next `n` bytes and returns them for the caller to fill.
    pub(crate) fn slot(&mut self, n: usize) -> Result<&mut [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::BufferTooSmall)?;
        let s = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(WireError::BufferTooSmall)?;
        self.pos = end;
        Ok(s)
    }

    /// Writes one field.
    pub(crate) fn field<'a, F: Field<'a>>(&mut self, v: &F::Value) -> Result<(), WireError> {
        F::write(v, self)
    }
}

/// Reads the little-endian `u16` at `at` of a fixed-size structure (`at` is in bounds: the
/// caller took the structure's whole length first).
pub(crate) fn get_u16(b: &[u8], at: Range<usize>) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at]);
    u16::from_le_bytes(a)
}

/// Reads the little-endian `u32` at `at` (in bounds, as for [`get_u16`]).
pub(crate) fn get_u32(b: &[u8], at: Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at]);
    u32::from_le_bytes(a)
}

/// Writes `v` little-endian at `at` of a fixed-size structure (in bounds, as for [`get_u16`]).
pub(crate) fn put(b: &mut [u8], at: Range<usize>, v: &[u8]) {
    b[at].copy_from_slice(v);
}

/// Little-endian unsigned integers.
macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field<'_> for $t {
            type Value = $t;
            const LEN: usize = core::mem::size_of::<$t>();
            fn read(r: &mut Reader<'_>, _: &Limits) -> Result<$t, WireError> {
                let mut a = [0u8; core::mem::size_of::<$t>()];
                a.copy_from_slice(r.take(Self::LEN)?);
                Ok(<$t>::from_le_bytes(a))
            }
            fn write(v: &$t, w: &mut Writer<'_>) -> Result<(), WireError> {
                w.slot(Self::LEN)?.copy_from_slice(&v.to_le_bytes());
                Ok(())
            }
        }
    )*};
}

int_field!(u8, u16, u32, u64);

/// A flag: one byte, 0 or 1 (anything else is [`WireError::BadValue`]).
impl Field<'_> for bool {
    type Value = bool;
    const LEN: usize = 1;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<bool, WireError> {
        match r.field::<u8>(limits)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::BadValue),
        }
    }
    fn write(v: &bool, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.field::<u8>(&(*v as u8))
    }
}
