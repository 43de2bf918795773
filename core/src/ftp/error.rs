//! Why a fused stack, grid, tile plan or memory plan could not be built.

use core::fmt;

use super::Side;

/// Why planning failed. Every planning entry point returns this instead of panicking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The fused stack length is 0, above [`MAX_FUSED`](super::MAX_FUSED), or past the network.
    StackLength {
        /// Layers asked for.
        layers: usize,
        /// Most layers allowed for this network.
        max: usize,
    },
    /// Layer `layer` is neither a convolution nor a max pool, so it cannot be fused.
    NotFusable {
        /// Index of the offending layer.
        layer: usize,
    },
    /// A grid dimension is 0 or above [`MAX_GRID`](super::MAX_GRID).
    GridSize {
        /// Tile rows asked for.
        rows: u32,
        /// Tile columns asked for.
        cols: u32,
    },
    /// The partition rule leaves a tile empty or inverted along one axis (docs/design.md §2.2).
    DegenerateGrid {
        /// Extent of the last fused layer's output along that axis.
        extent: u32,
        /// Tiles asked for along that axis.
        tiles: u32,
    },
    /// The grid was built over a different output shape than the stack's.
    GridMismatch,
    /// The tile index is not below the grid's tile count.
    TileOutOfRange {
        /// Tile asked for.
        tile: usize,
        /// Tiles in the grid.
        tiles: usize,
    },
    /// A reduced (reuse) region plus the received strips does not cover the next layer's
    /// input; reuse is impossible for this tile.
    Uncovered {
        /// The level-1 tile.
        tile: usize,
        /// Layer whose output fails to cover the next layer's input.
        layer: usize,
    },
    /// A strip would come from a neighbour that does not exist.
    NoNeighbour {
        /// The tile.
        tile: usize,
        /// The side without a neighbour.
        side: Side,
    },
    /// A size or count overflowed.
    Overflow,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::StackLength { layers, max } => {
                write!(f, "cannot fuse {layers} layers (1..={max} allowed)")
            }
            PlanError::NotFusable { layer } => {
                write!(f, "layer {layer} is neither conv nor maxpool")
            }
            PlanError::GridSize { rows, cols } => write!(f, "grid {rows}x{cols} out of range"),
            PlanError::DegenerateGrid { extent, tiles } => {
                write!(f, "{tiles} tiles over {extent} pixels leave an empty tile")
            }
            PlanError::GridMismatch => f.write_str("grid built for another output shape"),
            PlanError::TileOutOfRange { tile, tiles } => {
                write!(f, "tile {tile} out of range ({tiles} tiles)")
            }
            PlanError::Uncovered { tile, layer } => write!(
                f,
                "tile {tile}: layer {layer} output plus strips does not cover the next input"
            ),
            PlanError::NoNeighbour { tile, side } => {
                write!(f, "tile {tile} has no neighbour {side:?}")
            }
            PlanError::Overflow => f.write_str("size overflow"),
        }
    }
}

impl core::error::Error for PlanError {}
