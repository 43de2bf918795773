//! The test network, its pseudo-random parameters and input, and the checks.

use tessera_core::kernel::{input_span, KernelError, Kernels, Portable, Reference};
use tessera_core::model::weights::{layer_param_count, param_count, Weights, WeightsError};
use tessera_core::model::{Activation, Conv, Layer, LayerKind, MaxPool, Network, Shape};
use tessera_core::tensor::{copy_overlap, FeatureView, FeatureViewMut, ViewError};
use tessera_core::{Region, Span};

/// Input shape: 16×16×3.
pub const INPUT: Shape = Shape::new(16, 16, 3);
/// Layers in the stack (all fused: conv, maxpool, conv, conv).
pub const LAYERS: usize = 4;
/// Largest feature map of the stack (the first conv's output), in values.
pub const MAP_CAP: usize = 16 * 16 * 4;
/// Input values.
pub const INPUT_LEN: usize = 16 * 16 * 3;
/// Output values (8×8×4).
pub const OUTPUT_LEN: usize = 8 * 8 * 4;
/// Room for the parameters of all layers.
pub const PARAMS_CAP: usize = 512;

/// Why a check failed.
#[derive(Debug)]
#[allow(dead_code)] // fields are read through Debug
pub enum Failure {
    /// Building the network failed.
    Shape(tessera_core::model::ShapeError),
    /// Viewing parameters failed.
    Weights(WeightsError),
    /// A buffer could not be viewed.
    View(ViewError),
    /// A kernel refused to run.
    Kernel(KernelError),
    /// A layer is neither conv nor maxpool.
    NotFusable(usize),
    /// A tiled value differs from the full frame.
    Mismatch {
        /// Output channel.
        c: u32,
        /// Column.
        x: u32,
        /// Row.
        y: u32,
        /// Bits of the tiled value.
        tiled: u32,
        /// Bits of the full-frame value.
        full: u32,
    },
    /// The output is all zeros or all one sign: the comparison would prove little.
    Degenerate,
    /// An FTP plan could not be made.
    Plan(tessera_core::ftp::PlanError),
    /// `run_tile` failed.
    Exec(tessera_core::exec::ExecError),
    /// The memory plan asks for more than the fixture's buffers hold.
    Capacity,
    /// An FTP invariant did not hold.
    Ftp(&'static str),
}

impl From<WeightsError> for Failure {
    fn from(e: WeightsError) -> Self {
        Failure::Weights(e)
    }
}
impl From<ViewError> for Failure {
    fn from(e: ViewError) -> Self {
        Failure::View(e)
    }
}
impl From<KernelError> for Failure {
    fn from(e: KernelError) -> Self {
        Failure::Kernel(e)
    }
}

/// Xorshift32: deterministic values without an RNG crate.
pub struct XorShift(u32);

impl XorShift {
    pub const fn new(seed: u32) -> Self {
        XorShift(seed)
    }

    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// Uniform in `[-1, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
}

fn conv(filters: u32, size: u32, batch_norm: bool, activation: Activation) -> LayerKind {
    LayerKind::Conv(Conv {
        filters,
        size,
        stride: 1,
        pad: size / 2,
        batch_norm,
        activation,
    })
}

/// The test network: 16×16×3 → conv 3×3/4 BN leaky → maxpool 2/2 → conv 3×3/4 BN leaky →
/// conv 1×1/4 linear.
pub fn network() -> Result<Network, Failure> {
    let mut net = Network::new(INPUT).map_err(Failure::Shape)?;
    let layers = [
        conv(4, 3, true, Activation::Leaky),
        LayerKind::MaxPool(MaxPool {
            size: 2,
            stride: 2,
            pad: 1,
        }),
        conv(4, 3, true, Activation::Leaky),
        conv(4, 1, false, Activation::Linear),
    ];
    for kind in layers {
        net.push(kind).map_err(Failure::Shape)?;
    }
    Ok(net)
}

/// A one-line description of the network for the log.
pub fn describe() -> &'static str {
    "16x16x3 -> conv3x3/4 bn leaky -> maxpool 2/2 -> conv3x3/4 bn leaky -> conv1x1/4 linear"
}

/// The network, its parameters, its input and its full-frame reference output.
pub struct Fixture {
    pub net: Network,
    pub params: [f32; PARAMS_CAP],
    pub input: [f32; INPUT_LEN],
    /// Full-frame output with the reference kernels.
    pub full: [f32; OUTPUT_LEN],
}

impl Fixture {
    /// Builds everything; panics (so the image exits 1) if the fixture itself is broken.
    pub fn new() -> Self {
        let net = network().expect("network");
        assert_eq!(net.output(), Shape::new(8, 8, 4));
        let mut rng = XorShift::new(0x7e55_e7a1);
        let mut params = [0.0f32; PARAMS_CAP];
        let total = param_count(&net, LAYERS).expect("param count");
        assert!(total <= PARAMS_CAP, "PARAMS_CAP too small: {total}");
        // Darknet order per conv: biases, [scales, mean, variance], weights.
        let mut at = 0;
        for (i, l) in net.layers().iter().enumerate() {
            let count = layer_param_count(&net, i).expect("layer params");
            if let Some(c) = l.conv() {
                let n = c.filters as usize;
                for (j, p) in params[at..at + count].iter_mut().enumerate() {
                    let v = rng.next_f32();
                    let is_variance = c.batch_norm && (3 * n..4 * n).contains(&j);
                    let is_scale = c.batch_norm && (n..2 * n).contains(&j);
                    *p = if is_variance {
                        0.25 + v.abs()
                    } else if is_scale {
                        0.5 + 0.5 * v
                    } else {
                        v
                    };
                }
            }
            at += count;
        }
        let mut input = [0.0f32; INPUT_LEN];
        for v in input.iter_mut() {
            *v = rng.next_f32();
        }
        let mut fx = Fixture {
            net,
            params,
            input,
            full: [0.0; OUTPUT_LEN],
        };
        let mut full = [0.0f32; OUTPUT_LEN];
        fx.run_full(&Reference, &mut full).expect("full frame");
        fx.full = full;
        fx
    }

    /// The parameters as Darknet-layout weights of the whole stack.
    pub fn weights(&self) -> Result<Weights<'_>, Failure> {
        Ok(Weights::new(&self.net, LAYERS, &self.params)?)
    }

    /// The whole input as a view.
    pub fn input_view(&self) -> Result<FeatureView<'_>, Failure> {
        Ok(FeatureView::new(
            &self.input,
            Region::full(INPUT.w, INPUT.h),
            INPUT.c,
        )?)
    }

    /// Runs the whole frame with kernels `k` into `out` (8×8×4 CHW).
    pub fn run_full<K: Kernels>(&self, k: &K, out: &mut [f32]) -> Result<(), Failure> {
        let mut regions = [Region::default(); LAYERS];
        for (r, l) in regions.iter_mut().zip(self.net.layers()) {
            *r = Region::full(l.output.w, l.output.h);
        }
        run_regions(
            k,
            &self.net,
            &self.weights()?,
            &self.input_view()?,
            &regions,
            out,
        )
    }

    /// Portable and Reference agree on the full frame, and the output is not degenerate.
    pub fn portable_matches_reference(&self) -> Result<(), Failure> {
        let mut out = [0.0f32; OUTPUT_LEN];
        self.run_full(&Portable, &mut out)?;
        compare(&out, &self.full, Region::full(8, 8))?;
        let pos = self.full.iter().filter(|v| **v > 0.0).count();
        let neg = self.full.iter().filter(|v| **v < 0.0).count();
        if pos == 0 || neg == 0 {
            return Err(Failure::Degenerate);
        }
        Ok(())
    }

    /// Splits the output into a `gx × gy` grid; for each tile, crops the input to what the tile
    /// needs (regions traced back with `input_span`), runs the stack on those regions only with
    /// kernels `k`, stitches, and compares with the full frame bit for bit.
    pub fn tiled_matches_full<K: Kernels>(&self, k: &K, gx: u32, gy: u32) -> Result<(), Failure> {
        let out_shape = self.net.output();
        let weights = self.weights()?;
        let mut stitched = [f32::NAN; OUTPUT_LEN];
        for ty in 0..gy {
            for tx in 0..gx {
                let tile = Region::new(split(out_shape.w, gx, tx), split(out_shape.h, gy, ty));
                // Regions each layer must produce, traced back from the tile.
                let mut regions = [Region::default(); LAYERS];
                let mut need = tile;
                for i in (0..LAYERS).rev() {
                    regions[i] = need;
                    need = needed_input(&self.net.layers()[i], need, i)?;
                }
                // Crop the input to exactly what the tile needs.
                let mut crop = [0.0f32; INPUT_LEN];
                let mut crop_view = FeatureViewMut::new(&mut crop, need, INPUT.c)?;
                copy_overlap(&self.input_view()?, &mut crop_view);
                let crop_view = FeatureView::new(&crop, need, INPUT.c)?;
                let mut out = [0.0f32; OUTPUT_LEN];
                run_regions(k, &self.net, &weights, &crop_view, &regions, &mut out)?;
                let tile_view = FeatureView::new(&out, tile, out_shape.c)?;
                let mut dst = FeatureViewMut::new(
                    &mut stitched,
                    Region::full(out_shape.w, out_shape.h),
                    out_shape.c,
                )?;
                copy_overlap(&tile_view, &mut dst);
            }
        }
        compare(
            &stitched,
            &self.full,
            Region::full(out_shape.w, out_shape.h),
        )
    }
}

/// Part `i` of `n` equal-ish parts of `0..extent`.
pub fn split(extent: u32, n: u32, i: u32) -> Span {
    Span::new(extent * i / n, extent * (i + 1) / n)
}

/// The input region layer `i` needs for output region `out`.
fn needed_input(layer: &Layer, out: Region, i: usize) -> Result<Region, Failure> {
    let (size, stride, pad) = match &layer.kind {
        LayerKind::Conv(c) => (c.size, c.stride, c.pad),
        LayerKind::MaxPool(p) => (p.size, p.stride, p.offset()),
        _ => return Err(Failure::NotFusable(i)),
    };
    Ok(Region::new(
        input_span(out.x, size, stride, pad, layer.input.w),
        input_span(out.y, size, stride, pad, layer.input.h),
    ))
}

/// Runs layers `0..LAYERS`, layer `i` producing exactly `regions[i]`, from `input`; copies the
/// last layer's `regions[LAYERS-1]` (CHW) into the front of `out`.
fn run_regions<K: Kernels>(
    k: &K,
    net: &Network,
    weights: &Weights<'_>,
    input: &FeatureView<'_>,
    regions: &[Region; LAYERS],
    out: &mut [f32],
) -> Result<(), Failure> {
    let mut bufs = [[0.0f32; MAP_CAP]; 2];
    for (i, layer) in net.layers().iter().enumerate().take(LAYERS) {
        let (lo, hi) = bufs.split_at_mut(1);
        let (prev, cur) = if i % 2 == 0 {
            (&lo[0], &mut hi[0])
        } else {
            (&hi[0], &mut lo[0])
        };
        let in_view = if i == 0 {
            *input
        } else {
            FeatureView::new(&prev[..], regions[i - 1], layer.input.c)?
        };
        let mut out_view = FeatureViewMut::new(&mut cur[..], regions[i], layer.output.c)?;
        match &layer.kind {
            LayerKind::Conv(c) => {
                let p = weights.conv(i).ok_or(Failure::NotFusable(i))?;
                k.conv(c, layer.input, &p, &in_view, &mut out_view)?;
            }
            LayerKind::MaxPool(p) => k.maxpool(p, layer.input, &in_view, &mut out_view)?,
            _ => return Err(Failure::NotFusable(i)),
        }
    }
    let last = &bufs[(LAYERS - 1 + 1) % 2];
    let n = tessera_core::tensor::region_len(&regions[LAYERS - 1], net.output().c)?;
    out[..n].copy_from_slice(&last[..n]);
    Ok(())
}

/// Compares two CHW maps of `region` bit for bit.
pub fn compare(got: &[f32], want: &[f32], region: Region) -> Result<(), Failure> {
    let (w, h) = (region.width() as usize, region.height() as usize);
    for (i, (g, e)) in got.iter().zip(want).enumerate() {
        if g.to_bits() != e.to_bits() {
            return Err(Failure::Mismatch {
                c: (i / (w * h)) as u32,
                x: region.x.start + (i % w) as u32,
                y: region.y.start + ((i / w) % h) as u32,
                tiled: g.to_bits(),
                full: e.to_bits(),
            });
        }
    }
    Ok(())
}
