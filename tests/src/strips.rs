//! Reuse strips kept in memory, for tests that run tiles through `exec::run_tile`.

use std::collections::HashMap;

use tessera_core::exec::{ExecError, StripStore};
use tessera_core::ftp::{Side, MAX_FUSED};
use tessera_core::region::Region;
use tessera_core::tensor::FeatureView;

/// A strip's values, region and channel count.
type Stored = (Vec<f32>, Region, u32);

/// Strips in a hash map, keyed as [`StripStore`] documents (sender tile, layer, sender side),
/// counting the strips put at each layer.
#[derive(Default)]
pub struct MapStore {
    strips: HashMap<(usize, usize, Side), Stored>,
    puts: [usize; MAX_FUSED],
}

impl MapStore {
    /// Strips put so far, per layer (index = layer).
    pub fn puts(&self) -> &[usize; MAX_FUSED] {
        &self.puts
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

    fn get(&self, tile: usize, layer: usize, side: Side) -> Option<FeatureView<'_>> {
        let (d, r, c) = self.strips.get(&(tile, layer, side))?;
        FeatureView::new(d, *r, *c).ok()
    }
}
