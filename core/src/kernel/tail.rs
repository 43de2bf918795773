//! Full-map ops of YOLOv2's tail that FTP does not tile: route, reorg and the region head.
//!
//! They follow Darknet (pjreddie/darknet) element for element, on CHW maps of one frame, into
//! caller-owned buffers:
//!
//! - [`route`] is `forward_route_layer`: the sources' flat CHW buffers one after the other,
//!   which is a channel concatenation of same-sized maps.
//! - [`reorg`] is `reorg_cpu(input, w, h, c, 1, stride, 0, output)`, what `forward_reorg_layer`
//!   runs for `[reorg]` without `reverse` (`w, h, c` being the layer's *input* shape).
//!   Darknet's index arithmetic reads the input as a `(w·s) × (h·s) × (c/s²)` map, so this is
//!   not the textbook space-to-depth; the published YOLOv2 weights were trained with it.
//!   [`reorg_inverse`] is the `forward = 1` direction, the inverse permutation.
//! - [`region`] is `forward_region_layer` at inference: logistic on `x`, `y` and objectness,
//!   softmax over the classes (or logistic when `softmax=0`), `w`, `h` left raw, with
//!   Darknet's layout — entry `e` of anchor `n` at cell `loc` lives at
//!   `n·w·h·(coords + classes + 1) + e·w·h + loc` ([`entry_index`]).
//!
//! Transcendentals are computed as Darknet's C does: `exp` in double precision on the float
//! argument, rounded back to float ([`logistic`], [`softmax`]).

use core::fmt;

use crate::model::{RegionParams, Shape};

/// Why a tail op refused to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailError {
    /// A buffer does not hold exactly the elements its shape has.
    Length {
        /// Elements the shape has.
        expected: usize,
        /// Elements the buffer has.
        found: usize,
    },
    /// Route sources differ in width or height, or there are none.
    RouteMismatch,
    /// Reorg stride is zero, does not divide the width and height, or its square does not
    /// divide the channels (Darknet's `c / s²`).
    ReorgIndivisible,
    /// The region's input channels are not `num·(coords + 1 + classes)`, or a parameter is
    /// zero or inconsistent (fewer anchors than `num`, `coords < 4`).
    RegionMismatch,
    /// A size overflows `usize`.
    Overflow,
}

impl fmt::Display for TailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TailError::Length { expected, found } => {
                write!(f, "buffer holds {found} values, shape needs {expected}")
            }
            TailError::RouteMismatch => f.write_str("route sources differ in width or height"),
            TailError::ReorgIndivisible => f.write_str("reorg stride does not divide the map"),
            TailError::RegionMismatch => f.write_str("region parameters do not match the map"),
            TailError::Overflow => f.write_str("size overflows"),
        }
    }
}

impl core::error::Error for TailError {}

fn check_len(buf: usize, shape: Shape) -> Result<usize, TailError> {
    let expected = shape.elements().ok_or(TailError::Overflow)?;
    if buf != expected {
        return Err(TailError::Length {
            expected,
            found: buf,
        });
    }
    Ok(expected)
}

/// Concatenates full CHW maps along channels into `out` (Darknet `[route]`); returns the
/// output shape. Every source must have the first one's width and height, and `out` exactly
/// the sum of their elements.
pub fn route(sources: &[(&[f32], Shape)], out: &mut [f32]) -> Result<Shape, TailError> {
    let (_, first) = sources.first().ok_or(TailError::RouteMismatch)?;
    let mut c = 0u32;
    for (data, shape) in sources {
        if (shape.w, shape.h) != (first.w, first.h) {
            return Err(TailError::RouteMismatch);
        }
        check_len(data.len(), *shape)?;
        c = c.checked_add(shape.c).ok_or(TailError::Overflow)?;
    }
    let shape = Shape::new(first.w, first.h, c);
    check_len(out.len(), shape)?;
    let mut at = 0;
    for (data, _) in sources {
        out[at..at + data.len()].copy_from_slice(data);
        at += data.len();
    }
    Ok(shape)
}

/// Output shape of a `[reorg] stride=s` layer on an `input`-shaped map, checked as Darknet's
/// arithmetic needs: `w/s × h/s × c·s²`.
pub fn reorg_shape(input: Shape, stride: u32) -> Result<Shape, TailError> {
    let s2 = stride.checked_mul(stride).ok_or(TailError::Overflow)?;
    if stride == 0
        || !input.w.is_multiple_of(stride)
        || !input.h.is_multiple_of(stride)
        || !input.c.is_multiple_of(s2)
    {
        return Err(TailError::ReorgIndivisible);
    }
    let c = input.c.checked_mul(s2).ok_or(TailError::Overflow)?;
    let out = Shape::new(input.w / stride, input.h / stride, c);
    out.elements().ok_or(TailError::Overflow)?;
    Ok(out)
}

/// Darknet's `reorg_cpu` index pair for input position `(i, j, k)` of a `w × h × c` map:
/// `(in_index, out_index)`.
#[inline]
fn reorg_indices(
    i: usize,
    j: usize,
    k: usize,
    w: usize,
    h: usize,
    c: usize,
    s: usize,
) -> (usize, usize) {
    let out_c = c / (s * s);
    let in_index = i + w * (j + h * k);
    let c2 = k % out_c;
    let offset = k / out_c;
    let w2 = i * s + offset % s;
    let h2 = j * s + offset / s;
    let out_index = w2 + w * s * (h2 + h * s * c2);
    (in_index, out_index)
}

/// Both directions of `reorg_cpu` over the index pairs of a `shape` map.
fn reorg_cpu(
    input: &[f32],
    shape: Shape,
    stride: u32,
    forward: bool,
    out: &mut [f32],
) -> Result<Shape, TailError> {
    let out_shape = reorg_shape(shape, stride)?;
    check_len(input.len(), shape)?;
    check_len(out.len(), out_shape)?;
    let (w, h, c, s) = (
        shape.w as usize,
        shape.h as usize,
        shape.c as usize,
        stride as usize,
    );
    // Both indices stay below w·h·c: out_index addresses a (w·s)×(h·s)×(c/s²) map.
    for k in 0..c {
        for j in 0..h {
            for i in 0..w {
                let (a, b) = reorg_indices(i, j, k, w, h, c, s);
                if forward {
                    out[b] = input[a];
                } else {
                    out[a] = input[b];
                }
            }
        }
    }
    Ok(out_shape)
}

/// YOLOv2's `[reorg] stride=s` on a full `shape` map (`reorg_cpu(…, forward = 0, …)` as
/// `forward_reorg_layer` calls it); returns the output shape `w/s × h/s × c·s²`.
pub fn reorg(
    input: &[f32],
    shape: Shape,
    stride: u32,
    out: &mut [f32],
) -> Result<Shape, TailError> {
    reorg_cpu(input, shape, stride, false, out)
}

/// The inverse of [`reorg`] (`reorg_cpu(…, forward = 1, …)` with the same `shape`, the shape
/// of the original map): `reorg_inverse(reorg(x)) == x`. Returns the shape [`reorg`] gives.
pub fn reorg_inverse(
    input: &[f32],
    shape: Shape,
    stride: u32,
    out: &mut [f32],
) -> Result<Shape, TailError> {
    reorg_cpu(input, shape, stride, true, out)
}

/// Darknet's `logistic_activate`: `1/(1 + e^−x)` in double precision, rounded to float.
#[inline]
pub fn logistic(x: f32) -> f32 {
    (1.0 / (1.0 + libm::exp(-(x as f64)))) as f32
}

/// Darknet's `softmax` over `n` values `stride` apart, from `input` into `output` (same
/// offsets): subtract the largest, `exp` in double, sum and normalise in float.
/// Does nothing if the slices are too short for `n` values.
pub fn softmax(input: &[f32], n: usize, stride: usize, output: &mut [f32]) {
    let last = match n.checked_sub(1).and_then(|m| m.checked_mul(stride)) {
        Some(l) if l < input.len() && l < output.len() => l,
        _ => return,
    };
    let mut largest = -f32::MAX;
    for i in (0..=last).step_by(stride.max(1)) {
        if input[i] > largest {
            largest = input[i];
        }
    }
    let mut sum = 0.0f32;
    for i in (0..=last).step_by(stride.max(1)) {
        let e = libm::exp((input[i] - largest) as f64) as f32;
        sum += e;
        output[i] = e;
    }
    for i in (0..=last).step_by(stride.max(1)) {
        output[i] /= sum;
    }
}

/// Index of entry `entry` (0..4 box, `coords` objectness, `coords + 1 + j` class `j`) of
/// anchor `n` at cell `loc` (`row·w + col`) in a region map of `w·h` cells, as Darknet's
/// `entry_index`.
#[inline]
pub const fn entry_index(
    params_size: usize,
    cells: usize,
    n: usize,
    entry: usize,
    loc: usize,
) -> usize {
    n * cells * params_size + entry * cells + loc
}

/// Checks a region head against its input map; returns `(cells, coords + 1 + classes)`.
pub fn region_geometry(shape: Shape, params: &RegionParams) -> Result<(usize, usize), TailError> {
    let size = params
        .coords
        .checked_add(1)
        .and_then(|s| s.checked_add(params.classes))
        .ok_or(TailError::Overflow)?;
    let channels = size.checked_mul(params.num).ok_or(TailError::Overflow)?;
    if params.num == 0
        || params.classes == 0
        || params.coords < 4
        || params.anchors.len() < params.num as usize
        || shape.c != channels
    {
        return Err(TailError::RegionMismatch);
    }
    shape.elements().ok_or(TailError::Overflow)?;
    Ok((shape.w as usize * shape.h as usize, size as usize))
}

/// The region layer at inference on a full `shape` map (`num·(coords+1+classes)` channels):
/// copies `input` to `out` with logistic on `x`, `y` and objectness and softmax (or logistic)
/// over the classes of every anchor and cell.
pub fn region(
    input: &[f32],
    shape: Shape,
    params: &RegionParams,
    out: &mut [f32],
) -> Result<(), TailError> {
    let (cells, size) = region_geometry(shape, params)?;
    check_len(input.len(), shape)?;
    check_len(out.len(), shape)?;
    out.copy_from_slice(input);
    let coords = params.coords as usize;
    let classes = params.classes as usize;
    for n in 0..params.num as usize {
        let xy = entry_index(size, cells, n, 0, 0);
        for v in &mut out[xy..xy + 2 * cells] {
            *v = logistic(*v);
        }
        let obj = entry_index(size, cells, n, coords, 0);
        for v in &mut out[obj..obj + cells] {
            *v = logistic(*v);
        }
        let cls = entry_index(size, cells, n, coords + 1, 0);
        if !params.softmax {
            for v in &mut out[cls..cls + classes * cells] {
                *v = logistic(*v);
            }
        }
    }
    if params.softmax {
        // Darknet's softmax_cpu reads the layer input (net.input), one group per anchor/cell.
        for n in 0..params.num as usize {
            for loc in 0..cells {
                let at = entry_index(size, cells, n, coords + 1, loc);
                softmax(&input[at..], classes, cells, &mut out[at..]);
            }
        }
    }
    Ok(())
}
