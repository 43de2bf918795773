//! A coded worker's model holds only its own shards ([`CodedModel::for_worker`],
//! [`worker_model`]) and they are the full model's, bit for bit: for every worker of small
//! models (int8 and float, coded with one or two parity shards, replicated, convolutions),
//! the worker's model equals the full model cut to that worker, holds the bytes the full
//! model says it should, computes its shards exactly as the full model does, and refuses
//! the others with a typed error. The layers are consumed one at a time, and a layer that
//! cannot be read stops the build there.
#![cfg(all(feature = "std", feature = "simd"))]

use crate::common;

use std::cell::Cell;

use common::values;
use tessera_backends::coded::tail::{worker_model, CodedTail, CodedTailError, WorkerTailError};
use tessera_backends::coded::{
    Activation, CodedModel, CodedModelError, ConvGeom, LayerScheme, LinearLayer, Numeric,
};
use tessera_backends::gen_weights;
use tessera_core::model::weights::{layer_param_count, param_count, Weights};
use tessera_core::model::{cfg, Network};
use tessera_core::runtime::coded::{Protection, ShardWork};
use tessera_core::wire::{FrameKey, NodeId};

const WORKERS: [NodeId; 4] = [1, 2, 3, 4];

fn schemes() -> [LayerScheme; 4] {
    let coded = |k, r| LayerScheme {
        k,
        r,
        protection: Protection::Coded,
    };
    [
        coded(3, 1),
        coded(2, 2),
        coded(4, 0),
        LayerScheme {
            k: 2,
            r: 0,
            protection: Protection::Replicated,
        },
    ]
}

/// Three layers (`8 → 10 → 7 → 5`), the middle one a 3x3 convolution on a 2x3 map when
/// `conv` (float only), int8 unless `float`.
fn layers(float: bool, conv: bool) -> Vec<(LinearLayer, Option<ConvGeom>)> {
    let geom = ConvGeom {
        size: 3,
        width: 2,
        height: 3,
    };
    [(8, 10, false), (10, 7, conv), (7, 5, false)]
        .into_iter()
        .enumerate()
        .map(|(i, (in_len, rows, conv))| {
            let taps = if conv { 9 } else { 1 };
            let layer = LinearLayer {
                in_len,
                rows,
                weights: values(rows * in_len * taps, 10 + i as u32),
                bias: values(rows, 20 + i as u32),
                activation: Activation::Leaky,
                numeric: if float {
                    Numeric::Float
                } else {
                    Numeric::Int8 {
                        in_scale: 1.0 / 64.0,
                        w_scale: 1.0 / 127.0,
                    }
                },
            };
            (layer, conv.then_some(geom))
        })
        .collect()
}

/// Every worker's model against the full one; returns the shards held over all workers.
fn check_workers(layers: &[(LinearLayer, Option<ConvGeom>)], scheme: LayerScheme) -> usize {
    let schemes = vec![scheme; layers.len()];
    let full = CodedModel::with_geometry(layers.to_vec(), &schemes, &WORKERS).unwrap();
    let mut held = 0;
    for &node in &WORKERS {
        let alive = Cell::new(0usize);
        // Last layer first: any order builds the same model.
        let lazy = layers.iter().enumerate().rev().map(|(i, l)| {
            alive.set(alive.get() + 1);
            (i, Ok::<_, CodedModelError>(l.clone()))
        });
        let worker = CodedModel::for_worker(lazy, &schemes, &WORKERS, node).unwrap();
        assert_eq!(alive.get(), layers.len());
        assert_eq!(worker.worker(), Some(node));
        assert_eq!(worker, full.clone().retain_worker(node), "worker {node}");
        assert_eq!(
            worker.worker_param_bytes(node),
            full.worker_param_bytes(node)
        );
        for l in 0..worker.len() {
            assert!(worker.layer(l).unwrap().weights.is_empty());
            let spec = &worker.plan().layers()[l];
            let cols = full.layer_cols(l, 3);
            let x: Vec<f32> = values(full.layer(l).unwrap().in_len * cols, 40 + l as u32);
            let words = full.input_words(l, &x);
            for s in 0..spec.shards() {
                let work = ShardWork {
                    frame: FrameKey::new(0, 1),
                    layer: l as u8,
                    shard: s as u8,
                };
                let mine = worker.compute_shard(work, cols, &words);
                if spec.workers()[s] == node {
                    held += 1;
                    assert_eq!(
                        mine.unwrap(),
                        full.compute_shard(work, cols, &words).unwrap()
                    );
                } else {
                    assert_eq!(
                        mine.unwrap_err(),
                        CodedModelError::NotHeld { layer: l, shard: s }
                    );
                }
            }
        }
    }
    held
}

#[test]
fn a_worker_holds_exactly_its_shards_of_the_full_model() {
    for scheme in schemes() {
        for (float, conv) in [(false, false), (true, false), (true, true)] {
            let layers = layers(float, conv);
            let total: usize = schemes_shards(&layers, scheme);
            assert_eq!(
                check_workers(&layers, scheme),
                total,
                "{scheme:?} float {float} conv {conv}: every shard held by exactly one worker"
            );
        }
    }
}

fn schemes_shards(layers: &[(LinearLayer, Option<ConvGeom>)], scheme: LayerScheme) -> usize {
    let schemes = vec![scheme; layers.len()];
    let full = CodedModel::with_geometry(layers.to_vec(), &schemes, &WORKERS).unwrap();
    full.plan().layers().iter().map(|s| s.shards()).sum()
}

#[test]
fn a_layer_that_cannot_be_read_stops_the_build_there() {
    let layers = layers(true, false);
    let schemes = vec![schemes()[0]; layers.len()];
    let asked = Cell::new(0usize);
    let lazy = layers.iter().enumerate().map(|(i, l)| {
        asked.set(asked.get() + 1);
        let item = if i == 1 {
            Err(CodedModelError::Shape { layer: 99 })
        } else {
            Ok(l.clone())
        };
        (i, item)
    });
    let e = CodedModel::for_worker(lazy, &schemes, &WORKERS, 2).unwrap_err();
    assert_eq!(e, CodedModelError::Shape { layer: 99 });
    assert_eq!(asked.get(), 2, "nothing read past the failed layer");
    // Fewer layers than schemes, one twice, one past the end, or a layer whose weights do
    // not fit: refused, typed.
    let given = |idx: &[usize]| -> Vec<(usize, Result<_, CodedModelError>)> {
        idx.iter()
            .map(|&i| (i, Ok(layers[i % 3].clone())))
            .collect()
    };
    for idx in [&[0, 1][..], &[0, 1, 1, 2], &[0, 1, 2, 3]] {
        let e = CodedModel::for_worker(given(idx), &schemes, &WORKERS, 2).unwrap_err();
        assert_eq!(e, CodedModelError::Layers, "{idx:?}");
    }
    let mut bad = layers.clone();
    bad[2].0.weights.pop();
    let bad = bad.into_iter().map(Ok::<_, CodedModelError>).enumerate();
    let e = CodedModel::for_worker(bad, &schemes, &WORKERS, 2).unwrap_err();
    assert_eq!(e, CodedModelError::Shape { layer: 2 });
}

/// YOLOv2 at 160x160, its 1024-filter convolutions cut to 64 and 512 to 32: the tail's
/// shape (routes, reorg, region) with a fraction of its arithmetic.
fn small_net() -> Network {
    let text = include_str!("../../data/yolov2-608.cfg")
        .replace("width=608", "width=160")
        .replace("height=608", "height=160")
        .replace("filters=1024", "filters=64")
        .replace("filters=512", "filters=32");
    cfg::parse(&text).unwrap()
}

#[test]
fn the_coded_gateways_tail_is_the_full_tails_plan_without_parameters() {
    let net = small_net();
    let n = net.layers().len();
    let params = gen_weights::params(&net, n, 5);
    let weights = Weights::new(&net, n, &params).unwrap();
    for scheme in schemes() {
        let full = CodedTail::new(&net, &weights, 16, scheme, &WORKERS).unwrap();
        let raw = |j: usize| {
            let at = param_count(&net, j).unwrap();
            Some(params[at..at + layer_param_count(&net, j).unwrap()].to_vec())
        };
        let gateway = CodedTail::for_gateway(&net, 16, scheme, &WORKERS, raw).unwrap();
        // The 1x1 conv on the route (26) has fewer parameters than input values: the gateway
        // runs it, and needs its parameters.
        assert_eq!(CodedTail::gateway_layers(&net, 16).unwrap(), [26]);
        assert!(!full.conv_layers().contains(&26));
        let refused = CodedTail::for_gateway(&net, 16, scheme, &WORKERS, |_| None).unwrap_err();
        assert_eq!(refused, CodedTailError::Weights { layer: 26 });
        assert_eq!(gateway.model().plan(), full.model().plan(), "{scheme:?}");
        assert_eq!(gateway.conv_layers(), full.conv_layers());
        assert_eq!(gateway.cols(), full.cols());
        assert_eq!(gateway.model().worker(), None);
        assert!(full.whole_tail_bytes() > 0);
        assert_eq!(gateway.whole_tail_bytes(), 0, "no layer weights");
        for l in 0..full.model().len() {
            let (g, f) = (
                gateway.model().layer(l).unwrap(),
                full.model().layer(l).unwrap(),
            );
            assert_eq!((g.in_len, g.rows), (f.in_len, f.rows));
            assert_eq!(gateway.model().conv(l), full.model().conv(l));
        }
        for &node in &WORKERS {
            assert!(full.model().worker_param_bytes(node) > 0);
            assert_eq!(gateway.model().worker_param_bytes(node), 0, "no shard");
        }
    }
}

#[test]
fn a_worker_tail_built_layer_by_layer_equals_the_gateway_tail_cut_to_it() {
    let net = small_net();
    let n = net.layers().len();
    let params = gen_weights::params(&net, n, 5);
    let weights = Weights::new(&net, n, &params).unwrap();
    for scheme in [schemes()[0], schemes()[3]] {
        let full = CodedTail::new(&net, &weights, 16, scheme, &WORKERS).unwrap();
        for &node in &WORKERS {
            let mut asked = Vec::new();
            let worker = worker_model(&net, 16, scheme, &WORKERS, node, |j| {
                asked.push(j);
                let at = param_count(&net, j).unwrap();
                let len = layer_param_count(&net, j).unwrap();
                Ok::<_, std::convert::Infallible>(params[at..at + len].to_vec())
            })
            .unwrap();
            let size = |j: &usize| layer_param_count(&net, *j).unwrap();
            assert!(
                asked.windows(2).all(|w| size(&w[0]) >= size(&w[1])),
                "largest first"
            );
            asked.sort();
            assert_eq!(asked, full.conv_layers(), "each tail convolution read once");
            assert_eq!(worker, full.model().as_ref().clone().retain_worker(node));
            assert!(worker.worker_param_bytes(node) > 0);
        }
    }
    // A layer's parameters that do not fit it, or that cannot be read: typed errors.
    let e = worker_model(&net, 16, schemes()[0], &WORKERS, 1, |_| {
        Ok::<_, std::convert::Infallible>(vec![0.0; 3])
    })
    .unwrap_err();
    assert!(matches!(e, WorkerTailError::Tail(_)), "{e}");
    let e = worker_model(&net, 16, schemes()[0], &WORKERS, 1, |j| {
        Err::<Vec<f32>, _>(std::fmt::Error).map_err(|_| format!("no layer {j}"))
    })
    .unwrap_err();
    // The first layer read (29, the largest) fails: the build stops there.
    assert!(
        matches!(e, WorkerTailError::Params { layer: 29, .. }),
        "{e}"
    );
}

/// The convolution the gateway runs itself (26) gives the same bits whatever the gateway's
/// kernels (it runs on the portable one), so a board's gateway and a Linux one decode the same
/// tail from the same workers' results; the glue around it (pools, routes, reorg, region) is
/// exact on any kernel already.
#[test]
fn the_gateways_own_conv_does_not_depend_on_its_kernels() {
    use tessera_backends::coded::Glue;
    let net = small_net();
    let n = net.layers().len();
    let params = gen_weights::params(&net, n, 5);
    let weights = Weights::new(&net, n, &params).unwrap();
    let tail = CodedTail::new(&net, &weights, 16, schemes()[0], &WORKERS).unwrap();
    let run = |glue: &mut dyn Glue| {
        let frame = FrameKey::new(1, 0);
        let convs = tail.conv_layers();
        let last = convs.len() - 1;
        let output = |l: usize| {
            let len = net.layers()[convs[l]].output.elements().unwrap();
            values(len, 40 + l as u32)
        };
        // Every coded layer's input the glue makes (layer 29's reads 26's output), and the
        // tail's output.
        let mut made: Vec<f32> = Vec::new();
        for l in 0..last {
            made.extend(glue.between(frame, l, output(l)));
        }
        made.extend(glue.finish(frame, output(last)));
        made
    };
    let portable = run(&mut tail.glue(tessera_core::kernel::Portable));
    let fma = run(&mut tail.glue(tessera_backends::kernels::Fma::new()));
    assert!(!portable.is_empty());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&portable), bits(&fma));
}
