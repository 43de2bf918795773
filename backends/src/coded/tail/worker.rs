//! A coded worker's share of the tail ([`worker_model`]): the shards assigned to it, built
//! one layer at a time from parameters read (or generated) per layer, so the worker never
//! holds every tail layer at once, only the layer being encoded and its shards so far.

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

use tessera_core::model::weights::layer_param_count;
use tessera_core::model::Network;
use tessera_core::wire::NodeId;

use super::{coded_layer, fold_batch_norm_owned, layout, CodedTailError};
use crate::coded::{CodedModel, CodedModelError, LayerScheme};

/// Why a worker's tail model could not be built.
#[derive(Debug)]
pub enum WorkerTailError<E> {
    /// The tail cannot run coded, or a layer's parameters do not fit it.
    Tail(CodedTailError),
    /// Reading (or generating) a layer's parameters failed.
    Params {
        /// The network layer.
        layer: usize,
        /// Why.
        error: E,
    },
}

impl<E: fmt::Display> fmt::Display for WorkerTailError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerTailError::Tail(e) => write!(f, "{e}"),
            WorkerTailError::Params { layer, error } => {
                write!(f, "parameters of tail layer {layer}: {error}")
            }
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for WorkerTailError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            WorkerTailError::Tail(e) => Some(e),
            WorkerTailError::Params { error, .. } => Some(error),
        }
    }
}

impl<E> From<CodedModelError> for WorkerTailError<E> {
    fn from(e: CodedModelError) -> Self {
        WorkerTailError::Tail(CodedTailError::Model(e))
    }
}

impl<E> From<CodedTailError> for WorkerTailError<E> {
    fn from(e: CodedTailError) -> Self {
        WorkerTailError::Tail(e)
    }
}

/// Worker `node`'s model of the tail `[from, end)` of `net`, every convolution split by
/// `scheme` over `workers` as [`super::CodedTail::new`] splits it: the same shards, bit for
/// bit, holding only `node`'s. `params(j)` returns convolution `j`'s parameters in Darknet
/// order; it is called once per coded tail convolution (not for those the gateway runs), the
/// largest first (so the peak is the shards plus about one large layer), and each layer is
/// dropped once `node`'s shards of it are made.
pub fn worker_model<E, P>(
    net: &Network,
    from: usize,
    scheme: LayerScheme,
    workers: &[NodeId],
    node: NodeId,
    mut params: P,
) -> Result<CodedModel, WorkerTailError<E>>
where
    P: FnMut(usize) -> Result<Vec<f32>, E>,
{
    let convs = layout(net, from)?.coded;
    let schemes = alloc::vec![scheme; convs.len()];
    let mut read = |j: usize| {
        let raw = params(j).map_err(|error| WorkerTailError::Params { layer: j, error })?;
        let missing = WorkerTailError::Tail(CodedTailError::Weights { layer: j });
        let l = &net.layers()[j];
        fold_batch_norm_owned(l, raw)
            .and_then(|(w, b)| coded_layer(l, w, b))
            .ok_or(missing)
    };
    // Largest first: the shards already made are fewest while the largest layer is whole.
    let mut order: Vec<usize> = (0..convs.len()).collect();
    order.sort_by_key(|&l| core::cmp::Reverse(layer_param_count(net, convs[l]).unwrap_or(0)));
    let layers = order.into_iter().map(move |l| (l, read(convs[l])));
    CodedModel::for_worker(layers, &schemes, workers, node)
}
