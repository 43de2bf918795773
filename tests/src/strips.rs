//! Reuse strips kept in memory, for tests that run tiles through `exec::run_tile`.

use std::collections::HashMap;

use tessera_core::exec::{ExecError, StripStore};
use tessera_core::ftp::{Side, MAX_FUSED};
use tessera_core::region::Region;
use tessera_core::tensor::{region_len, FeatureView};

/// A strip's values, region and channel count.
type Stored = (Vec<f32>, Region, u32);

/// Strips in a hash map, keyed as [`StripStore`] documents (sender tile, layer, sender side),
/// counting the strips put whole and those sent in parts at each layer.
#[derive(Default)]
pub struct MapStore {
    strips: HashMap<(usize, usize, Side), Stored>,
    puts: [usize; MAX_FUSED],
    parted: [usize; MAX_FUSED],
}

impl MapStore {
    /// Strips put whole so far, per layer (index = layer).
    pub fn puts(&self) -> &[usize; MAX_FUSED] {
        &self.puts
    }

    /// Strips begun in parts ([`StripStore::put_part`]) so far, per layer.
    pub fn parted(&self) -> &[usize; MAX_FUSED] {
        &self.parted
    }
}

impl StripStore for MapStore {
    fn put(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        from: &FeatureView<'_>,
        region: Region,
    ) -> Result<(), ExecError> {
        let data = from.rows_in(region)?.flatten().copied().collect();
        let v = (data, region, from.channels());
        self.strips.insert((tile, layer, side), v);
        if let Some(n) = self.puts.get_mut(layer) {
            *n += 1;
        }
        Ok(())
    }

    fn put_part(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        from: &FeatureView<'_>,
        region: Region,
        part: Region,
    ) -> Result<(), ExecError> {
        // Checked value by value, without the core's copy: `rows_in` reads the part.
        let rows = from.rows_in(part)?;
        let c = from.channels();
        let (data, r, ch) = self
            .strips
            .entry((tile, layer, side))
            .or_insert_with(|| (Vec::new(), region, c));
        if (*r, *ch) != (region, c) || data.is_empty() {
            *data = vec![0.0; region_len(&region, c)?];
            (*r, *ch) = (region, c);
            if let Some(n) = self.parted.get_mut(layer) {
                *n += 1;
            }
        }
        let (w, h) = (region.width() as usize, region.height() as usize);
        let (x0, y0) = (
            (part.x.start - region.x.start) as usize,
            (part.y.start - region.y.start) as usize,
        );
        let rows_per_channel = part.height() as usize;
        for (i, row) in rows.enumerate() {
            let (ci, y) = (i / rows_per_channel, y0 + i % rows_per_channel);
            let at = (ci * h + y) * w + x0;
            data[at..at + row.len()].copy_from_slice(row);
        }
        Ok(())
    }

    fn get(&self, tile: usize, layer: usize, side: Side) -> Option<FeatureView<'_>> {
        let (d, r, c) = self.strips.get(&(tile, layer, side))?;
        FeatureView::new(d, *r, *c).ok()
    }
}
