//! Replication (2MR), the comparison mode: every data shard runs on two devices; shard `i` of
//! the `2k` computes data shard `i mod k`. The layer survives any loss that leaves one copy of
//! each data shard, so one failure always, two only if they hit different data shards.

use super::{Buffer, Code, CodeError};

/// Devices 2MR needs for `k` data shards.
pub const fn devices(k: usize) -> usize {
    2 * k
}

/// Data shard computed by replica device `i`.
pub const fn replica_of(code: &Code, i: usize) -> usize {
    i % code.k()
}

/// Whether the replicas flagged in `mask` (bit `i` = device `i` of `2k`) cover every data shard.
pub fn decodable(code: &Code, mask: u64) -> bool {
    let k = code.k();
    (0..k).all(|d| mask >> d & 1 == 1 || mask >> (d + k) & 1 == 1)
}

/// Assembles the output (`m × cols`) from the first copy of each data shard that arrived;
/// `results` has `2k` entries.
pub fn assemble<T: Copy>(
    code: &Code,
    results: &[Option<&[T]>],
    cols: usize,
    out: &mut [T],
) -> Result<(), CodeError> {
    let k = code.k();
    if results.len() != 2 * k {
        return Err(CodeError::Length {
            buffer: Buffer::Result,
            need: 2 * k,
            have: results.len(),
        });
    }
    let need = code.rows().saturating_mul(cols);
    if out.len() != need {
        return Err(CodeError::Length {
            buffer: Buffer::Output,
            need,
            have: out.len(),
        });
    }
    for d in 0..k {
        let rows = code.data_rows(d)?;
        let res = results[d]
            .or(results[d + k])
            .ok_or(CodeError::MissingShard { shard: d })?;
        let need = rows.len() * cols;
        if res.len() != need {
            return Err(CodeError::Length {
                buffer: Buffer::Result,
                need,
                have: res.len(),
            });
        }
        if let Some(dst) = out.get_mut(rows.start * cols..rows.end * cols) {
            dst.copy_from_slice(res);
        }
    }
    Ok(())
}
