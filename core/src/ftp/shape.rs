//! A grid's shape, `NxM` (rows x columns): its one spelling in files and flags.

use core::fmt;
use core::str::FromStr;

use super::Grid;

/// `rows × cols` tiles, written `3x3` (rows first) in cluster files, scenarios and flags.
///
/// Parsing accepts `x` or `X` and spaces around each number; it does not check the range
/// ([`Grid::new`] does, against [`MAX_GRID`](super::MAX_GRID)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GridShape {
    /// Tile rows `N`.
    pub rows: u32,
    /// Tile columns `M`.
    pub cols: u32,
}

impl GridShape {
    /// `rows × cols` tiles.
    pub const fn new(rows: u32, cols: u32) -> Self {
        GridShape { rows, cols }
    }
}

impl From<(u32, u32)> for GridShape {
    fn from((rows, cols): (u32, u32)) -> Self {
        GridShape { rows, cols }
    }
}

impl From<GridShape> for (u32, u32) {
    fn from(g: GridShape) -> Self {
        (g.rows, g.cols)
    }
}

impl fmt::Display for GridShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.rows, self.cols)
    }
}

/// Why a string is not a [`GridShape`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseGridError {
    /// No `x` between the two numbers.
    NoSeparator,
    /// The row count is not a `u32`.
    Rows,
    /// The column count is not a `u32`.
    Cols,
}

impl fmt::Display for ParseGridError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseGridError::NoSeparator => "expected NxM (rows x columns), e.g. 3x3",
            ParseGridError::Rows => "grid rows are not a number (expected NxM, e.g. 3x3)",
            ParseGridError::Cols => "grid columns are not a number (expected NxM, e.g. 3x3)",
        })
    }
}

impl core::error::Error for ParseGridError {}

impl FromStr for GridShape {
    type Err = ParseGridError;

    fn from_str(s: &str) -> Result<GridShape, ParseGridError> {
        let (rows, cols) = s
            .split_once(['x', 'X'])
            .ok_or(ParseGridError::NoSeparator)?;
        Ok(GridShape {
            rows: rows.trim().parse().map_err(|_| ParseGridError::Rows)?,
            cols: cols.trim().parse().map_err(|_| ParseGridError::Cols)?,
        })
    }
}

impl Grid {
    /// The grid's rows and columns.
    pub const fn shape(&self) -> GridShape {
        GridShape::new(self.rows(), self.cols())
    }
}

/// Written as its shape, `NxM`.
impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shape().fmt(f)
    }
}
