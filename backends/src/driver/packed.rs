//! Tile results and strips packed in a smaller wire [`Precision`] than `f32` before they are
//! sent (`f32` ones stream straight from their stores instead).

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use tessera_core::wire::{Precision, StripSource, StripsView, WireError, STRIP_DESC_LEN};

/// `values` (CHW over `channels` planes) packed in `precision`.
pub fn values(values: &[f32], channels: u32, precision: Precision) -> Result<Vec<u8>, WireError> {
    let n = precision
        .data_len(values.len(), channels as usize)
        .ok_or(WireError::TensorSize)?;
    let mut out = vec![0u8; n];
    precision.pack(values, channels as usize, &mut out)?;
    Ok(out)
}

/// The encoded entries of a `Strips` payload with every strip of `sources` packed in
/// `precision`, and their count.
pub fn strips(
    sources: &[StripSource<'_>],
    precision: Precision,
) -> Result<(Vec<u8>, u16), WireError> {
    let mut len = 0usize;
    for s in sources {
        let n = precision
            .data_len(s.view.data().len(), s.view.channels() as usize)
            .ok_or(WireError::TensorSize)?;
        len = len
            .checked_add(STRIP_DESC_LEN + n)
            .ok_or(WireError::Oversized)?;
    }
    let mut buf = vec![0u8; len];
    let mut w = StripsView::writer(&mut buf);
    for s in sources {
        w.push_packed(s.layer, s.side, &s.view, precision)?;
    }
    let count = w.count();
    Ok((buf, count))
}
