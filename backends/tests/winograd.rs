//! The Winograd kernels: against an exact (f64) sum within the stated error bound, bit for bit
//! across instruction sets, regions, threads and tiles (with block-aligned plans).
#![cfg(feature = "simd")]

use std::sync::Arc;

use proptest::prelude::*;
use tessera_backends::kernels::{Form, Isa, Layout, Winograd};
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::kernel::{aligned_input_region, KernelError, Kernels};
use tessera_core::model::weights::Weights;
use tessera_core::model::Network;
use tessera_core::region::{Region, Span};
use tessera_core::rng::SplitMix64;
use tessera_testkit::conv_layer::{window_holds, ConvSpec, RandomConv};
use tessera_testkit::tiles::{build, net_params, same_bits, tiled, Spec};

/// Stated bound on the error of a Winograd conv sum, relative to `Σ|w·x|` of the output:
/// about 4× the worst measured over 3000 random layers (`measure_worst_relative_error`:
/// F2 5.5e-7, F4 2.2e-5; proptest has found 2.4e-5 for F4), see docs/kernels.md.
const TOL_F2: f64 = 2e-6;
const TOL_F4: f64 = 1e-4;

fn tol(form: Form) -> f64 {
    match form {
        Form::F2 => TOL_F2,
        Form::F4 => TOL_F4,
    }
}

/// Every instruction set this machine runs, the generic code (`Scalar`) first, each with
/// blocks and with output channels in the lanes ([`Layout`]); every Winograd layer whatever
/// its channel count.
fn kernels(form: Form) -> Vec<Winograd<'static>> {
    Isa::available()
        .filter_map(|isa| Winograd::new().with_isa(isa))
        .map(|k| k.with_form(form).with_min_channels(1))
        .flat_map(|k| {
            [
                k.clone().with_layout(Layout::Blocks),
                k.with_layout(Layout::Channels),
            ]
        })
        .collect()
}

/// Whether the tests run under instruction-set emulation (the qemu-user runners in
/// `.cargo/config.toml` set `TESSERA_EMULATED`), where the generic lanes run some 50× slower:
/// the three heaviest checks below then run the first of their configurations only (each test
/// says which), as the property tests run fewer cases there (`ci/run`).
fn emulated() -> bool {
    std::env::var_os("TESSERA_EMULATED").is_some()
}

/// One 3×3 stride-1 conv layer with random parameters (biases only with batch norm, leaky
/// exactly then).
#[derive(Debug)]
struct Layer(RandomConv);

impl std::ops::Deref for Layer {
    type Target = RandomConv;
    fn deref(&self) -> &RandomConv {
        &self.0
    }
}

impl Layer {
    fn new(w: u32, h: u32, c: u32, filters: u32, bn: bool, rng: &mut SplitMix64) -> Self {
        let spec = ConvSpec {
            w,
            h,
            c,
            filters,
            size: 3,
            stride: 1,
            pad: 1,
            bn,
            leaky: bn,
            bias_without_bn: false,
        };
        Layer(RandomConv::new(&spec, rng))
    }

    /// Runs `k` on `region` from an input view holding exactly what its blocks read.
    fn run<K: Kernels>(&self, k: &K, region: Region) -> Vec<f32> {
        let m = k.conv_alignment(&self.conv, self.map);
        let needed = aligned_input_region(&self.conv, self.map, m, region).unwrap();
        self.run_from(k, region, needed).unwrap()
    }

    /// [`Layer::run`] through a window of a buffer laid out as `layout`.
    fn run_window<K: Kernels>(&self, k: &K, region: Region, layout: Region) -> Vec<f32> {
        let m = k.conv_alignment(&self.conv, self.map);
        let needed = aligned_input_region(&self.conv, self.map, m, region).unwrap();
        self.run_within(k, region, needed, layout).unwrap()
    }

    /// The exact sum of output `(o, x, y)` and `Σ|w·x|` over its taps, in f64.
    fn exact(&self, o: usize, x: u32, y: u32) -> (f64, f64) {
        let c = self.map.c as usize;
        let (w, h) = (self.map.w as i64, self.map.h as i64);
        let (mut s, mut a) = (0.0f64, 0.0f64);
        for ci in 0..c {
            for ky in 0..3i64 {
                for kx in 0..3i64 {
                    let (iy, ix) = (y as i64 - 1 + ky, x as i64 - 1 + kx);
                    if iy < 0 || iy >= h || ix < 0 || ix >= w {
                        continue;
                    }
                    let wv = self.weights[((o * c + ci) * 3 + ky as usize) * 3 + kx as usize];
                    let xv = self.input[(ci * h as usize + iy as usize) * w as usize + ix as usize];
                    s += wv as f64 * xv as f64;
                    a += (wv as f64 * xv as f64).abs();
                }
            }
        }
        (s, a)
    }

    /// The worst `|out − exact| / Σ|w·x|` over `region` (linear layers without batch norm,
    /// whose output is the sum itself).
    fn worst_relative(&self, out: &[f32], region: Region) -> f64 {
        let mut worst = 0.0f64;
        let mut i = 0;
        for o in 0..self.conv.filters as usize {
            for y in region.y.start..region.y.end {
                for x in region.x.start..region.x.end {
                    let (s, a) = self.exact(o, x, y);
                    let err = (out[i] as f64 - s).abs() / a.max(f64::MIN_POSITIVE);
                    worst = worst.max(if a == 0.0 { out[i].abs() as f64 } else { err });
                    i += 1;
                }
            }
        }
        worst
    }
}

/// The checks of `matches_exact_sum_and_itself` on one layer.
fn check_layer(form: Form, layer: &Layer, rng: &mut SplitMix64) -> Result<(), TestCaseError> {
    let (w, h, filters) = (layer.map.w, layer.map.h, layer.conv.filters);
    let full = Region::full(w, h);
    let ks = kernels(form);
    let base = layer.run(&ks[0], full);
    let worst = layer.worst_relative(&base, full);
    prop_assert!(worst <= tol(form), "{form:?}: relative error {worst:e}");
    let sub = sub_region(rng, w, h);
    for k in &ks {
        prop_assert!(same_bits(&layer.run(k, full), &base), "{k:?}");
        let got = layer.run(k, sub);
        let mut want = Vec::new();
        for o in 0..filters {
            for y in sub.y.start..sub.y.end {
                for x in sub.x.start..sub.x.end {
                    want.push(base[((o * h + y) * w + x) as usize]);
                }
            }
        }
        prop_assert!(same_bits(&got, &want), "{k:?} region {sub:?}");
        // Threads split the block rows: 2 and 3 (uneven ranges), whole map and sub-region.
        for t in [2, 3] {
            let kt = k.clone().with_threads(t);
            prop_assert!(same_bits(&layer.run(&kt, full), &base), "{k:?} {t} threads");
            let got = layer.run(&kt, sub);
            prop_assert!(same_bits(&got, &want), "{k:?} {t} threads {sub:?}");
        }
        // Through a window of a larger buffer (1 and 2 threads): the region alone written.
        let layout = around(rng, sub);
        for t in [1, 2] {
            let got = layer.run_window(&k.clone().with_threads(t), sub, layout);
            let holds = window_holds(&got, layout, sub, filters, &want);
            prop_assert!(holds.is_ok(), "{k:?} {t} threads: {}", holds.unwrap_err());
        }
    }
    Ok(())
}

/// Layers of more input channels than one GEMM pass takes (sums carried between passes),
/// and wide enough for several lane groups and GEMM tiles per block row.
#[test]
fn many_channels_and_wide_maps() {
    let mut rng = SplitMix64::new(3);
    // The third is deep enough for two threads to split its output channels (530 filters,
    // not a multiple of the 6-channel blocks); three split its block rows.
    for (w, h, c, filters) in [(9, 7, 200, 13), (150, 6, 20, 7), (10, 9, 20, 530)] {
        let layer = Layer::new(w, h, c, filters, false, &mut rng);
        for form in [Form::F2, Form::F4] {
            check_layer(form, &layer, &mut rng).unwrap();
        }
    }
}

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![Just(Form::F2), Just(Form::F4)]
}

/// `r` grown by 0–3 on each side (not past 0): a buffer an output window of `r` lies in.
fn around(rng: &mut SplitMix64, r: Region) -> Region {
    let mut more = || rng.below(4) as u32;
    Region::new(
        Span::new(r.x.start.saturating_sub(more()), r.x.end + more()),
        Span::new(r.y.start.saturating_sub(more()), r.y.end + more()),
    )
}

/// A random sub-region of a `w × h` map.
fn sub_region(rng: &mut SplitMix64, w: u32, h: u32) -> Region {
    let x0 = rng.below(w as usize) as u32;
    let y0 = rng.below(h as usize) as u32;
    let x1 = x0 + 1 + rng.below((w - x0) as usize) as u32;
    let y1 = y0 + 1 + rng.below((h - y0) as usize) as u32;
    Region::new(Span::new(x0, x1), Span::new(y0, y1))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Every output is within the stated bound of the exact sum; every instruction set
    /// agrees with the generic code bit for bit; a sub-region equals the full map there.
    #[test]
    fn matches_exact_sum_and_itself(
        form in form(),
        w in 1u32..=40,
        h in 1u32..=24,
        c in 1u32..=40,
        filters in 1u32..=14,
        seed in any::<u64>(),
    ) {
        let mut rng = SplitMix64::new(seed);
        let layer = Layer::new(w, h, c, filters, false, &mut rng);
        check_layer(form, &layer, &mut rng)?;
    }

    /// With batch norm and leaky activation, within the bound of the reference's output.
    #[test]
    fn batch_norm_and_activation_match_direct(
        form in form(),
        w in 1u32..=20,
        h in 1u32..=20,
        c in 1u32..=24,
        filters in 1u32..=8,
        seed in any::<u64>(),
    ) {
        let mut rng = SplitMix64::new(seed);
        let layer = Layer::new(w, h, c, filters, true, &mut rng);
        let full = Region::full(w, h);
        let got = layer.run(&kernels(form)[0], full);
        let params = layer.params();
        let mut i = 0;
        for o in 0..filters as usize {
            let f = tessera_core::kernel::batch_norm::fold(&params, o);
            for y in 0..h {
                for x in 0..w {
                    let (s, a) = layer.exact(o, x, y);
                    let mut want = s * f.scale + f.shift as f64;
                    if want <= 0.0 {
                        want *= 0.1;
                    }
                    let bound = tol(form) * (f.scale.abs() * a + f.shift.abs() as f64 + 1e-30) * 1.5;
                    prop_assert!((got[i] as f64 - want).abs() <= bound, "{o} {x} {y}: {} vs {want}", got[i]);
                    i += 1;
                }
            }
        }
    }
}

/// A deep layer with batch norm and leaky activation, whose output channels two threads split
/// between them (each with its own channels' filters and batch norm): equal to one thread bit
/// for bit on every instruction set, full map and sub-region.
#[test]
fn threads_splitting_output_channels_equal_one() {
    let mut rng = SplitMix64::new(5);
    let layer = Layer::new(11, 9, 12, 530, true, &mut rng);
    let full = Region::full(11, 9);
    let sub = Region::new(Span::new(3, 10), Span::new(2, 7));
    for form in [Form::F2, Form::F4] {
        for k in kernels(form) {
            let two = k.clone().with_threads(2);
            for r in [full, sub] {
                assert!(
                    same_bits(&layer.run(&two, r), &layer.run(&k, r)),
                    "{form:?} {:?} {r:?}",
                    k.isa()
                );
            }
        }
    }
}

/// Calls whose threads share each chunk's input transforms (fewer block rows than threads),
/// over several chunks (block rows wide enough for one row per chunk): each thread transforms
/// its input channels into one `V`, then multiplies its output channels over every block;
/// equal to one thread bit for bit, full map and a sub-region starting mid-block.
#[test]
fn threads_sharing_input_transforms_over_chunks_equal_one() {
    let mut rng = SplitMix64::new(11);
    // Three block rows each; one row of blocks per chunk (over the chunk's scratch bound).
    for (form, w, h) in [(Form::F2, 244, 6), (Form::F4, 244, 10)] {
        let layer = Layer::new(w, h, 16, 530, true, &mut rng);
        let full = Region::full(w, h);
        let sub = Region::new(Span::new(5, 200), Span::new(3, h));
        let k = Winograd::new().with_form(form).with_min_channels(1);
        let cm = k.clone().with_layout(Layout::Channels);
        for r in [full, sub] {
            let want = layer.run(&k, r);
            // The region as a window of a buffer 3 wider and 2 taller.
            let layout = Region::new(
                Span::new(r.x.start.saturating_sub(1), r.x.end + 2),
                Span::new(r.y.start.saturating_sub(1), r.y.end + 1),
            );
            // 4 threads only under emulation.
            let threads: &[usize] = if emulated() { &[4] } else { &[4, 5] };
            for &t in threads {
                let got = layer.run(&k.clone().with_threads(t), r);
                assert!(same_bits(&got, &want), "{form:?} {t} threads {r:?}");
                let got = layer.run(&cm.clone().with_threads(t), r);
                assert!(
                    same_bits(&got, &want),
                    "{form:?} {t} threads {r:?} channels"
                );
                for kt in [&k, &cm] {
                    let got = layer.run_window(&kt.clone().with_threads(t), r, layout);
                    if let Err(e) = window_holds(&got, layout, r, 530, &want) {
                        panic!("{form:?} {t} threads {kt:?}: {e}");
                    }
                }
            }
        }
    }
}

/// An input view covering only the direct conv's dependencies, not the whole blocks', is
/// refused with the region the blocks need.
#[test]
fn input_short_of_whole_blocks_is_refused() {
    let mut rng = SplitMix64::new(7);
    let layer = Layer::new(20, 20, 4, 3, false, &mut rng);
    let k = Winograd::new().with_min_channels(1);
    let region = Region::new(Span::new(5, 9), Span::new(5, 9));
    let direct = Region::new(Span::new(4, 10), Span::new(4, 10));
    let err = layer.run_from(&k, region, direct).unwrap_err();
    let blocks = Region::new(Span::new(3, 13), Span::new(3, 13));
    assert_eq!(
        err,
        KernelError::InputTooSmall {
            needed: blocks,
            have: direct
        }
    );
    assert!(layer.run_from(&k, region, blocks).is_ok());
    // F2 reads only each output's receptive field: the direct dependencies suffice.
    let f2 = k.with_form(Form::F2);
    assert_eq!(f2.conv_alignment(&layer.conv, layer.map), 1);
    assert!(layer.run_from(&f2, region, direct).is_ok());
}

// ---- tiles == full frame through the executor ----------------------------------------------

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        4 => (prop::sample::select(vec![1u32, 3, 3, 3]), 1u32..=6).prop_map(|(k, f)| Some((k, 1, f))),
        1 => (1u32..=6).prop_map(|f| Some((3, 2, f))),
        1 => Just(None),
    ]
}

/// Checks tiled == full frame for `grid` (plain and reuse), 2 threads == 1, and the kernel
/// prepared for the weights == the one transforming per call, with blocks and with output
/// channels in the lanes.
fn check_grid(
    net: &Network,
    form: Form,
    rows: u32,
    cols: u32,
    seed: u64,
) -> Result<(), TestCaseError> {
    for layout in [Layout::Blocks, Layout::Channels] {
        let k = Winograd::new()
            .with_form(form)
            .with_min_channels(1)
            .with_layout(layout);
        check_grid_with(net, |_, _| k.clone(), rows, cols, seed)?;
    }
    Ok(())
}

/// [`check_grid`] with the kernel `make` returns for the stack and grid.
fn check_grid_with(
    net: &Network,
    make: impl Fn(&FusedStack<'_>, &Grid) -> Winograd<'static>,
    rows: u32,
    cols: u32,
    seed: u64,
) -> Result<(), TestCaseError> {
    let upto = net.layers().len();
    let plain = FusedStack::new(net, upto).unwrap();
    let o = plain.output();
    let (rows, cols) = (rows.min(o.h), cols.min(o.w));
    let grid = Grid::new(rows, cols, Partition::Balanced, &plain).unwrap();
    let k = make(&plain, &grid);
    let form = k.form();
    let stack = plain.aligned(&k);
    let one = Grid::new(1, 1, Partition::Balanced, &stack).unwrap();
    let mut rng = SplitMix64::new(seed);
    let data = net_params(net, upto, &mut rng);
    let weights = Weights::new(net, upto, &data).unwrap();
    let per_call = k.clone();
    let k = k.prepare(&weights);
    let input: Vec<f32> = (0..stack.input().elements().unwrap())
        .map(|_| rng.uniform_f32(-1.0, 1.0))
        .collect();
    let whole = tiled(&k, &stack, &one, Mode::Plain, &weights, &input);
    // Filters and batch norm prepared once per model, or computed per call: the same bits.
    let fresh = tiled(&per_call, &stack, &one, Mode::Plain, &weights, &input);
    prop_assert!(same_bits(&fresh, &whole), "{form:?} prepared vs per call");
    for mode in [Mode::Plain, Mode::Reuse] {
        let got = tiled(&k, &stack, &grid, mode, &weights, &input);
        prop_assert!(same_bits(&got, &whole), "{form:?} {mode:?} {rows}x{cols}");
    }
    // Prepared for two threads: the direct layers' weights packed for their two threads'
    // groups.
    let two = tiled(
        &per_call.with_threads(2).prepare(&weights),
        &stack,
        &grid,
        Mode::Reuse,
        &weights,
        &input,
    );
    prop_assert!(same_bits(&two, &whole), "{form:?} 2 threads");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Stitched tiles (plain and reuse) of random stacks equal the 1×1 grid bit for bit.
    #[test]
    fn tiles_equal_full_frame_bit_for_bit(
        form in form(),
        specs in prop::collection::vec(spec(), 2..=6),
        w in 8u32..=56,
        h in 8u32..=40,
        c in 1u32..=5,
        rows in 1u32..=5,
        cols in 1u32..=5,
        seed in any::<u64>(),
    ) {
        let net = build(w, h, c, &specs);
        prop_assume!(!net.layers().is_empty());
        check_grid(&net, form, rows, cols, seed)?;
    }
}

/// One kernel's persistent threads serve every layer of a stack, frame after frame: direct
/// layer 0 (padded path), pools, a deep F4 layer whose output channels two threads split
/// (odd block rows), a 1×1 conv (flat path) whose threads pack two weight groups each on 2
/// threads (130 × 530 weights each, over the packing bound), and F4 layers whose block rows ×
/// channel blocks are shared unevenly (7 block rows): 2 and 3 threads equal one bit for bit,
/// full frame and a 3×3 grid with reuse, on 2 threads prepared for them (the direct layers'
/// weights packed once, per thread's groups), on 3 prepared for one (packed per call).
#[test]
fn one_pool_serves_every_layer_of_a_stack() {
    let specs = [
        Some((3, 1, 16)),
        None,
        Some((3, 1, 530)),
        Some((1, 1, 260)),
        Some((3, 1, 24)),
        None,
        Some((3, 1, 7)),
    ];
    let net = build(60, 54, 3, &specs);
    let upto = net.layers().len();
    let k1 = Winograd::new();
    let plain = FusedStack::new(&net, upto).unwrap();
    let stack = plain.aligned(&k1);
    let mut rng = SplitMix64::new(23);
    let data = net_params(&net, upto, &mut rng);
    let weights = Weights::new(&net, upto, &data).unwrap();
    let k1 = k1.prepare(&weights);
    let one = Grid::new(1, 1, Partition::Balanced, &stack).unwrap();
    let three = Grid::new(3, 3, Partition::Balanced, &stack).unwrap();
    // Prepared for 2 threads: two packing groups per thread read from the packed copy; on 3
    // threads a kernel prepared for one packs per call.
    for (t, own) in [(2, true), (3, false)] {
        let kt = if own {
            Winograd::new().with_threads(t).prepare(&weights)
        } else {
            k1.clone().with_threads(t)
        };
        assert_eq!(kt.threads(), t);
        // One frame under emulation: the pool across every layer, not again the next frame.
        let frames = if emulated() { 1 } else { 2 };
        for frame in 0..frames {
            let input: Vec<f32> = (0..stack.input().elements().unwrap())
                .map(|_| rng.uniform_f32(-1.0, 1.0))
                .collect();
            for (grid, mode) in [(&one, Mode::Plain), (&three, Mode::Reuse)] {
                let want = tiled(&k1, &stack, grid, mode, &weights, &input);
                let got = tiled(&kt, &stack, grid, mode, &weights, &input);
                assert!(
                    same_bits(&got, &want),
                    "{t} threads (prepared for them: {own}), frame {frame}, {mode:?}"
                );
            }
        }
    }
}

/// A kernel prepared for weights an `Arc` owns (as a node's compute thread prepares for its
/// model) holds them while it lives and computes what one prepared for borrowed weights does,
/// full frame and 3×3 with reuse.
#[test]
fn prepared_owned_holds_its_weights_and_matches_prepared() {
    let specs = [Some((3, 1, 16)), None, Some((3, 1, 24)), Some((1, 1, 20))];
    let net = build(44, 40, 3, &specs);
    let upto = net.layers().len();
    let mut rng = SplitMix64::new(31);
    let data = net_params(&net, upto, &mut rng);
    // The network with its parameters, as a node's model holds them.
    let model = Arc::new((net.clone(), data));
    let owned = Winograd::new()
        .prepare_owned(model.clone(), |(net, data)| Weights::new(net, upto, data))
        .unwrap();
    assert!(owned.is_prepared() && !Winograd::new().is_prepared());
    assert_eq!(Arc::strong_count(&model), 2, "the kernel holds the weights");
    let weights = Weights::new(&model.0, upto, &model.1).unwrap();
    let borrowed = Winograd::new().prepare(&weights);
    let stack = FusedStack::new(&net, upto).unwrap().aligned(&owned);
    let one = Grid::new(1, 1, Partition::Darknet, &stack).unwrap();
    let three = Grid::new(3, 3, Partition::Darknet, &stack).unwrap();
    let input: Vec<f32> = (0..stack.input().elements().unwrap())
        .map(|_| rng.uniform_f32(-1.0, 1.0))
        .collect();
    for (grid, mode) in [(&one, Mode::Plain), (&three, Mode::Reuse)] {
        let want = tiled(&borrowed, &stack, grid, mode, &weights, &input);
        let got = tiled(&owned, &stack, grid, mode, &weights, &input);
        assert!(same_bits(&got, &want), "{mode:?}");
    }
    drop(owned);
    assert_eq!(Arc::strong_count(&model), 1, "dropped with the kernel");
}

/// A YOLOv2-like stack (3×3 convs and pools, 1×1s between) as 3×3 with reuse and 5×5.
#[test]
fn yolo_like_stack_3x3_reuse_and_5x5() {
    let specs = [
        Some((3, 1, 8)),
        None,
        Some((3, 1, 16)),
        None,
        Some((3, 1, 16)),
        Some((1, 1, 8)),
        Some((3, 1, 16)),
        None,
        Some((3, 1, 16)),
    ];
    let net = build(80, 80, 3, &specs);
    for form in [Form::F2, Form::F4] {
        for (rows, cols) in [(3, 3), (5, 5)] {
            check_grid(&net, form, rows, cols, 11).unwrap();
        }
    }
}

/// The cost model's per-layer choice for a 3×3 grid with reuse (F4 on some layers): tiles
/// equal the full frame run with the same choice, as 3×3 (plain and reuse) and 5×5.
#[test]
fn planned_choice_tiles_equal_full_frame() {
    let specs = [
        Some((3, 1, 16)),
        None,
        Some((3, 1, 64)),
        Some((1, 1, 32)),
        Some((3, 1, 64)),
        None,
        Some((3, 1, 128)),
    ];
    let net = build(192, 192, 3, &specs);
    let plan = |stack: &FusedStack<'_>, _: &Grid| {
        let three = Grid::new(3, 3, Partition::Balanced, stack).unwrap();
        let k = Winograd::new().planned(stack, &three, Mode::Reuse).unwrap();
        let forms = k.layer_forms(stack);
        assert!(forms.contains(&Some(Form::F4)), "{forms:?}");
        k
    };
    // Under emulation the 3×3 grid only (the plan's own).
    let grids: &[(u32, u32)] = if emulated() {
        &[(3, 3)]
    } else {
        &[(3, 3), (5, 5)]
    };
    for &(rows, cols) in grids {
        check_grid_with(&net, plan, rows, cols, 5).unwrap();
    }
}

/// With AVX-512 (whole 16-block vectors), [`Layout::Auto`] runs YOLOv2's layers 4–14 with
/// output channels in the lanes, in F2 and F4, and keeps blocks in the lanes on layer 2 (32
/// input channels: too few products per output value for the channel-major output stage to
/// pay on its whole map); the forced layouts hold everywhere.
#[test]
fn auto_layout_puts_channels_in_the_lanes_of_the_deep_layers() {
    let net = tessera_testkit::net::yolo16();
    let Some(k) = Winograd::new().with_isa(Isa::Avx512) else {
        return;
    };
    for form in [Form::F2, Form::F4] {
        let mut deep = Vec::new();
        for (l, layer) in net.layers().iter().enumerate().take(16) {
            let tessera_core::model::LayerKind::Conv(conv) = &layer.kind else {
                continue;
            };
            if !k.eligible(conv, layer.input) {
                continue;
            }
            if k.channel_major(form, conv, layer.input) {
                deep.push(l);
            }
            let blocks = k.clone().with_layout(Layout::Blocks);
            let channels = k.clone().with_layout(Layout::Channels);
            assert!(!blocks.channel_major(form, conv, layer.input));
            assert!(channels.channel_major(form, conv, layer.input));
        }
        assert_eq!(deep, [4, 6, 8, 10, 12, 14], "{form:?}");
    }
}

/// On YOLOv2's fused layers the model runs the whole frame's deep layers as F4, and a 3×3
/// grid with reuse (tiles of 13 outputs on the 38-wide maps) avoids F4 where rounding its
/// regions to the 4-grid would cost more than it saves.
#[test]
fn planned_choice_follows_the_plan_on_yolov2() {
    let net = tessera_testkit::net::yolo16();
    let stack = FusedStack::new(&net, 16).unwrap();
    let forms = |rows: u32, mode: Mode| {
        let grid = Grid::new(rows, rows, Partition::Darknet, &stack).unwrap();
        let k = Winograd::new().planned(&stack, &grid, mode).unwrap();
        k.layer_forms(&stack)
    };
    let full = forms(1, Mode::Plain);
    let tiled = forms(3, Mode::Reuse);
    println!("full frame {full:?}\n3x3 reuse {tiled:?}");
    assert_eq!(full[14], Some(Form::F4), "{full:?}");
    assert_ne!(full, tiled);
    let f4 = |forms: &[Option<Form>]| forms.iter().filter(|f| **f == Some(Form::F4)).count();
    assert!(f4(&tiled) < f4(&full), "{tiled:?}");
    // Layer 2 (32 -> 64 at 304²) keeps F4 tiled: as F2 or direct its tiled calls took 8–24 ms
    // more for at most 0.4 ms saved upstream (docs/kernels.md, fourth pass).
    assert_eq!(tiled[2], Some(Form::F4), "{tiled:?}");
}

/// The worst relative error over 3000 random small layers per form, printed (the figures
/// behind `TOL_F2`/`TOL_F4`; slow in debug builds, so on demand:
/// `cargo test -p tessera-backends --features std,simd --test winograd -- --ignored --nocapture`).
#[test]
#[ignore]
fn measure_worst_relative_error() {
    let mut rng = SplitMix64::new(99);
    for form in [Form::F2, Form::F4] {
        let k = Winograd::new().with_form(form).with_min_channels(1);
        let mut worst = 0.0f64;
        for _ in 0..3000 {
            let (w, h) = (1 + rng.below(24) as u32, 1 + rng.below(12) as u32);
            let c = 1 + rng.below(48) as u32;
            let layer = Layer::new(w, h, c, 1 + rng.below(6) as u32, false, &mut rng);
            let full = Region::full(w, h);
            worst = worst.max(layer.worst_relative(&layer.run(&k, full), full));
        }
        println!("{form:?}: worst relative error {worst:e}");
        assert!(worst <= tol(form));
    }
}

/// The tiled check's per-layer breakdown (`bench::tiled_check`, F4 and direct layers): every
/// layer's calls are found and counted, the full frame's calls cover each conv's map at least
/// once, whole blocks never count less than the region, and the tiled frame (bit-identical,
/// or the check fails) makes at least as many calls.
#[cfg(feature = "std")]
#[test]
fn tiled_check_breaks_time_and_work_down_per_layer() {
    use tessera_backends::bench::tiled_check;
    let specs = [
        Some((3, 1, 16)),
        None,
        Some((3, 1, 32)),
        Some((1, 1, 16)),
        Some((3, 1, 32)),
    ];
    let net = build(96, 96, 3, &specs);
    let upto = net.layers().len();
    let stack = FusedStack::new(&net, upto).unwrap();
    let mut rng = SplitMix64::new(5);
    let data = net_params(&net, upto, &mut rng);
    let weights = Weights::new(&net, upto, &data).unwrap();
    // F4 on the 16- and 32-channel 3×3 layers (aligned plans), direct on the first.
    let k = Winograd::new().with_form(Form::F4);
    let forms = k.layer_forms(&stack);
    assert!(
        forms.contains(&Some(Form::F4)) && forms[0].is_none(),
        "{forms:?}"
    );
    let k = k.prepare(&weights);
    let input: Vec<f32> = (0..stack.input().elements().unwrap())
        .map(|_| rng.uniform_f32(-1.0, 1.0))
        .collect();
    let t = tiled_check(&k, &stack, &weights, &input, 1).unwrap();
    assert_eq!(t.layers.len(), upto);
    for (l, (layer, r)) in net.layers().iter().zip(&t.layers).enumerate() {
        assert!(
            r.full.calls >= 1 && r.tiled.calls >= r.full.calls,
            "layer {l}: {r:?}"
        );
        let (f, g) = (&r.full.work, &r.tiled.work);
        if layer.conv().is_some() {
            // Chained bands recompute their halo rows: at least the whole map.
            assert!(f.macs >= layer.macs(), "layer {l}: {r:?}");
            assert!(g.macs >= f.macs && f.block_macs >= f.macs && g.block_macs >= g.macs);
            assert!(f.products > 0, "layer {l}: {r:?}");
        } else {
            assert_eq!((f.macs, g.products), (0, 0), "layer {l}");
        }
    }
    let sums = t.kernel_sums();
    assert!(
        sums.full > 0.0 && sums.tiled > 0.0 && sums.by_work > 0.0,
        "{sums:?}"
    );
}

/// The tile buffers of YOLOv2's planned Winograd runs (the stack aligned to the chosen forms,
/// whose bands are `BLOCK_BAND_ROWS` tall) against the direct plan's, printed; they stay
/// within 1.25× (16-row bands would take up to 1.94×; docs/kernels.md lists them).
#[test]
fn planned_plans_buffers_stay_close_to_direct() {
    use tessera_core::ftp::MemoryPlan;
    let net = tessera_testkit::net::yolo16();
    let stack = FusedStack::new(&net, 16).unwrap();
    for (rows, mode) in [
        (1, Mode::Plain),
        (3, Mode::Reuse),
        (5, Mode::Plain),
        (5, Mode::Reuse),
    ] {
        let grid = Grid::new(rows, rows, Partition::Darknet, &stack).unwrap();
        let k = Winograd::new().planned(&stack, &grid, mode).unwrap();
        let aligned = stack.aligned(&k);
        let direct = MemoryPlan::new(&stack, &grid, mode).unwrap();
        let wino = MemoryPlan::new(&aligned, &grid, mode).unwrap();
        let mib = |e: usize| e as f64 * 4.0 / (1 << 20) as f64;
        println!(
            "{rows}x{rows} {mode:?}: buffers 2 x {:.2} MiB direct, 2 x {:.2} MiB winograd; tile peak {:.2} / {:.2} MiB",
            mib(direct.tile_buffer_elems),
            mib(wino.tile_buffer_elems),
            direct.tile_peak_bytes as f64 / (1 << 20) as f64,
            wino.tile_peak_bytes as f64 / (1 << 20) as f64,
        );
        assert!(wino.tile_buffer_elems * 4 <= direct.tile_buffer_elems * 5);
    }
}
