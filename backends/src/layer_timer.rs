//! Per-layer time and work of a frame's kernel calls (std), for the tiled check's breakdown
//! ([`crate::bench::tiled_check`]).
//!
//! [`LayerTimer`] wraps a set of kernels: it finds each call's layer (a conv by its weights,
//! a pool by its input shape: YOLOv2's pools all see different maps), times the call (wall
//! clock, or on-CPU time with [`LayerTimer::on_cpu`]: on a loaded machine nearly every
//! millisecond-long call waits for a core at some point, which wall-clock time counts) and
//! keeps its output region. [`per_layer`] then sums the calls of each layer with the work the
//! kernels did for them ([`KernelWork`]): the planned outputs, the outputs rounded out to
//! whole Winograd blocks, and the products with padded lanes. A tiled frame's time over the
//! full frame's, layer by layer, set beside those work ratios shows which part of the gap is
//! extra work and which is cost per call.

extern crate alloc;
extern crate std;

use alloc::vec::Vec;
use core::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use tessera_core::ftp::FusedStack;
use tessera_core::kernel::{KernelError, Kernels};
use tessera_core::model::weights::{ConvParams, Weights};
use tessera_core::model::{Conv, LayerKind, MaxPool, Shape};
use tessera_core::region::Region;
use tessera_core::tensor::{FeatureView, FeatureViewMut};

use crate::kernels::{Fma, Winograd};

/// One kernel call: its layer, output region and seconds (wall clock or on-CPU).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Call {
    /// The layer (index into the stack).
    pub layer: usize,
    /// The output region it computed.
    pub region: Region,
    /// Seconds: wall clock, or on-CPU ([`LayerTimer::on_cpu`]).
    pub seconds: f64,
}

/// Kernels `K` that record every call ([`Call`]); results are `K`'s, bit for bit.
#[derive(Debug)]
pub struct LayerTimer<'k, K> {
    inner: &'k K,
    /// Per conv layer, the address of its weights.
    convs: Vec<(usize, usize)>,
    /// Per pool layer, its input shape.
    pools: Vec<(Shape, usize)>,
    calls: RefCell<Vec<Call>>,
    /// Time calls on the CPU instead of the wall clock.
    cpu: Option<CpuClock>,
}

/// This thread's on-CPU seconds from its open `/proc/thread-self/schedstat`: a yield (the
/// kernel then adds the running slice, see [`crate::bench::thread_cpu_seconds`]) and one
/// `pread`.
#[derive(Debug)]
struct CpuClock {
    file: File,
    /// The least on-CPU time of an empty interval (the readings' own cost), taken off every
    /// call.
    overhead: f64,
}

impl CpuClock {
    /// The clock of the calling thread, `None` where the OS does not provide it.
    fn open() -> Option<CpuClock> {
        let mut clock = CpuClock {
            file: File::open("/proc/thread-self/schedstat").ok()?,
            overhead: 0.0,
        };
        let mut least = f64::INFINITY;
        for _ in 0..32 {
            let a = clock.now()?;
            least = least.min(clock.now()? - a);
        }
        clock.overhead = least;
        Some(clock)
    }

    fn now(&self) -> Option<f64> {
        std::thread::yield_now();
        let mut buf = [0u8; 96];
        let n = self.file.read_at(&mut buf, 0).ok()?;
        let text = core::str::from_utf8(&buf[..n]).ok()?;
        let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
        Some(ns as f64 / 1e9)
    }
}

impl<'k, K: Kernels> LayerTimer<'k, K> {
    /// Wraps `inner` for frames of `stack` with `weights`.
    pub fn new(inner: &'k K, stack: &FusedStack<'_>, weights: &Weights<'_>) -> Self {
        let (mut convs, mut pools) = (Vec::new(), Vec::new());
        for (l, layer) in stack.layers().iter().enumerate() {
            match &layer.kind {
                LayerKind::Conv(_) => {
                    if let Some(p) = weights.conv(l) {
                        convs.push((p.weights.as_ptr() as usize, l));
                    }
                }
                LayerKind::MaxPool(_) => pools.push((layer.input, l)),
                _ => {}
            }
        }
        LayerTimer {
            inner,
            convs,
            pools,
            calls: RefCell::new(Vec::new()),
            cpu: None,
        }
    }

    /// Times calls by the calling thread's on-CPU time (less the readings' own cost), or
    /// `None` where the OS does not report it. Only for calls on the thread that calls this
    /// (one-thread kernels); each reading yields, so wall-clock times of such runs mean little.
    pub fn on_cpu(self) -> Option<Self> {
        Some(LayerTimer {
            cpu: Some(CpuClock::open()?),
            ..self
        })
    }

    /// The calls recorded since the last `take`, in order.
    pub fn take(&self) -> Vec<Call> {
        self.calls.take()
    }

    /// Runs `f` (the call of `layer` over `region`) and records its time.
    fn timed<T>(&self, layer: Option<usize>, region: Region, f: impl FnOnce() -> T) -> T {
        let (start, c0) = (Instant::now(), self.cpu.as_ref().and_then(CpuClock::now));
        let r = f();
        let seconds = match (&self.cpu, c0) {
            (Some(clock), Some(c0)) => clock
                .now()
                .map_or(f64::NAN, |c| (c - c0 - clock.overhead).max(0.0)),
            _ => start.elapsed().as_secs_f64(),
        };
        if let Some(layer) = layer {
            self.calls.borrow_mut().push(Call {
                layer,
                region,
                seconds,
            });
        }
        r
    }
}

impl<K: Kernels> Kernels for LayerTimer<'_, K> {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        let key = params.weights.as_ptr() as usize;
        let layer = self.convs.iter().find(|c| c.0 == key).map(|c| c.1);
        let region = out.region();
        self.timed(layer, region, || {
            self.inner.conv(conv, map, params, input, out)
        })
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        let layer = self.pools.iter().find(|p| p.0 == map).map(|p| p.1);
        let region = out.region();
        self.timed(layer, region, || self.inner.maxpool(pool, map, input, out))
    }

    fn conv_alignment(&self, conv: &Conv, map: Shape) -> u32 {
        self.inner.conv_alignment(conv, map)
    }
}

/// What one conv call computes, in multiply-accumulates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallWork {
    /// Direct convolution over the call's region.
    pub macs: u64,
    /// Direct convolution over the region rounded out to the kernel's whole blocks.
    pub block_macs: u64,
    /// Products the kernel runs, padded lanes included (Winograd: lanes × `α²` × channels in
    /// and out; direct: `macs`). Only ratios between calls of one layer are meaningful.
    pub products: u64,
}

/// Kernels that can count a call's work ([`CallWork`]).
pub trait KernelWork {
    /// The work of `conv` on input map `map` over output `region`.
    fn call_work(&self, conv: &Conv, map: Shape, region: Region) -> CallWork;
}

/// Direct convolution's multiply-accumulates over `region`.
fn direct_macs(conv: &Conv, map: Shape, region: Region) -> u64 {
    region.area() * u64::from(conv.filters) * u64::from(map.c) * u64::from(conv.size).pow(2)
}

impl KernelWork for Fma {
    fn call_work(&self, conv: &Conv, map: Shape, region: Region) -> CallWork {
        let macs = direct_macs(conv, map, region);
        CallWork {
            macs,
            block_macs: macs,
            products: macs,
        }
    }
}

impl KernelWork for Winograd<'_> {
    fn call_work(&self, conv: &Conv, map: Shape, region: Region) -> CallWork {
        let macs = direct_macs(conv, map, region);
        let Some(w) = self.work(conv, map, region) else {
            return CallWork {
                macs,
                block_macs: macs,
                products: macs,
            };
        };
        let per_output = u64::from(conv.filters) * u64::from(map.c) * 9;
        let m = w.form.m() as u64;
        CallWork {
            macs,
            block_macs: w.blocks * m * m * per_output,
            products: w.lanes * w.form.elems() as u64 * u64::from(map.c) * u64::from(conv.filters),
        }
    }
}

/// One layer's calls of one frame, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerCalls {
    /// Calls.
    pub calls: usize,
    /// Wall-clock seconds of the calls.
    pub seconds: f64,
    /// On-CPU seconds of the calls (`None`: not measured).
    pub cpu_seconds: Option<f64>,
    /// Their work (zero for pools).
    pub work: CallWork,
}

impl LayerCalls {
    /// On-CPU seconds when `cpu` (NaN when not measured), else wall-clock seconds.
    pub fn time(&self, cpu: bool) -> f64 {
        if cpu {
            self.cpu_seconds.unwrap_or(f64::NAN)
        } else {
            self.seconds
        }
    }
}

/// `calls` summed per layer of `stack` (one entry per layer), work counted by `k`.
pub fn per_layer<K: KernelWork>(k: &K, stack: &FusedStack<'_>, calls: &[Call]) -> Vec<LayerCalls> {
    let layers = stack.layers();
    let mut out = alloc::vec![LayerCalls::default(); layers.len()];
    for call in calls {
        let Some(sum) = out.get_mut(call.layer) else {
            continue;
        };
        sum.calls += 1;
        sum.seconds += call.seconds;
        if let LayerKind::Conv(c) = &layers[call.layer].kind {
            let w = k.call_work(c, layers[call.layer].input, call.region);
            sum.work.macs += w.macs;
            sum.work.block_macs += w.block_macs;
            sum.work.products += w.products;
        }
    }
    out
}
