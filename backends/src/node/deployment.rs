//! A node's view of its deployed cluster ([`Deployment`]) and the models it builds from it:
//! the fused layers' parameters only on an edge (plus its own coded-tail shards), deferred on a
//! gateway without the tail or with a coded one, every layer on a gateway that runs it.

extern crate alloc;
extern crate std;

use alloc::sync::Arc;
use alloc::vec::Vec;
use std::eprintln;

use tessera_core::ftp::Partition;
use tessera_core::model::weights::WeightsError;
use tessera_core::model::Network;
use tessera_core::runtime::coded::CodedConfig;
use tessera_core::wire::NodeId;

use crate::cluster::{node_model, start_node, ClusterSpec, NodeOptions, StartError};
use crate::coded::tail::{
    worker_model, CodedTail, CodedTailError, SchemeError, TailPlace, TailScheme, WorkerTailError,
};
use crate::coded::{CodedModel, LayerScheme};
use crate::dgram::{DevLoss, DevLossError, TailTransport};
use crate::driver::node_thread::NodeThread;
use crate::driver::{Model, ModelError, ParamSource};
use crate::model_files::{ModelFileError, ModelFiles};
use crate::model_fingerprint::ModelIdentity;

/// Everything a node process knows of its cluster: what the nodes agree on, the model files
/// and where the tail runs (a cluster file, validated).
#[derive(Clone, Debug, PartialEq)]
pub struct Deployment {
    /// Policy, grid, key, kernel, timeouts and every node's address.
    pub spec: ClusterSpec,
    /// Darknet cfg and weights (or the built-in cfg, and weights generated from a seed).
    pub model: ModelFiles,
    /// Where the layers after the fused ones run.
    pub tail: TailPlace,
    /// A coded tail's frame deadline and data grace.
    pub coded: CodedConfig,
    /// How a coded tail's shards and results travel (TCP link or datagrams).
    pub tail_transport: TailTransport,
}

/// Why a node could not set up its model or start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The cfg or weights could not be read (or the weights generated).
    #[error(transparent)]
    Files(#[from] ModelFileError),
    /// The fused stack or grid does not fit the network.
    #[error("model: {0}")]
    Model(ModelError),
    /// The parameters do not fit the network.
    #[error("viewing the weights: {0}")]
    Weights(WeightsError),
    /// The coded tail's scheme does not fit the cluster's edges.
    #[error("the cluster file's tail = \"{scheme}\": {error}")]
    Scheme {
        /// The scheme.
        scheme: TailScheme,
        /// Why.
        error: SchemeError,
    },
    /// The tail cannot run coded.
    #[error("the cluster file's tail = \"{scheme}\": {error}")]
    Tail {
        /// The scheme.
        scheme: TailScheme,
        /// Why.
        error: CodedTailError,
    },
    /// A worker's shards could not be made.
    #[error("the cluster file's tail = \"{scheme}\": {error}")]
    Worker {
        /// The scheme.
        scheme: TailScheme,
        /// Why.
        error: WorkerTailError<ModelFileError>,
    },
    /// The development loss knob is set to something unreadable.
    #[error(transparent)]
    DevLoss(#[from] DevLossError),
    /// The cluster's kernel cannot run this model (e.g. `winograd` with a stripe policy).
    #[error("the cluster's kernel: {0}")]
    Kernel(StartError),
    /// The node did not start.
    #[error("starting node {id}: {error}")]
    Start {
        /// The node.
        id: NodeId,
        /// Why.
        error: StartError,
    },
    /// The thread that sets the node up (loads the model, starts the node) could not be created.
    #[error("creating the set-up thread: {0}")]
    SetUpThread(std::io::Error),
}

impl Deployment {
    /// The model fingerprint of this cluster as this machine runs it (reads the cfg and the
    /// fused layers' part of the weights file).
    pub fn fingerprint(&self) -> Result<u64, ModelFileError> {
        ModelIdentity {
            files: &self.model,
            layers: self.spec.layers,
            grid: self.spec.grid,
            kernel: self.spec.kernel,
            policy: self.spec.policy,
            tail: self.tail,
            tail_transport: self.tail_transport,
        }
        .fingerprint()
    }

    /// The development loss knob ([`DevLoss::from_env`]) for node `id`, said loudly on stderr
    /// when set: it loses the node's coded datagrams on purpose.
    pub fn dev_loss(&self, id: NodeId) -> Result<Option<DevLoss>, SetupError> {
        let Some(l) = DevLoss::from_env()? else {
            return Ok(None);
        };
        let seed = l.seed.unwrap_or(u64::from(id));
        if self.tail_transport == TailTransport::Datagram && self.tail != TailPlace::Gateway {
            eprintln!(
                "node {id}: WARNING: {}: dropping {:.1} % of this node's coded datagrams on \
                 purpose (seed {seed}); a test knob, never for a deployment",
                crate::dgram::DEV_LOSS_VAR,
                l.loss * 100.0
            );
        } else {
            eprintln!(
                "node {id}: WARNING: {} is set but the coded tail is not on datagrams: ignored",
                crate::dgram::DEV_LOSS_VAR
            );
        }
        Ok(Some(l))
    }

    /// The coded workers of a coded tail: every edge, in id order (shard `i` on the `i`-th).
    pub fn workers(&self) -> Vec<NodeId> {
        self.spec
            .nodes
            .iter()
            .filter(|n| n.id != 0)
            .map(|n| n.id)
            .collect()
    }

    /// The model of a node that owns `params` (the fused layers' parameters, or more when the
    /// node also runs layers after them): no copy is made.
    pub fn own_model(&self, net: &Network, params: Vec<f32>) -> Result<Arc<Model>, SetupError> {
        let s = &self.spec;
        let m = Model::new(net.clone(), params, s.layers, s.grid, Partition::Darknet)
            .map_err(SetupError::Model)?;
        self.on_block_grid(m)
    }

    /// `m` planned on the block grid of the cluster's kernel, aligned before the model is
    /// shared, so `start_node` need not copy it (a gateway's tail shares its parameters).
    fn on_block_grid(&self, m: Model) -> Result<Arc<Model>, SetupError> {
        node_model(&self.spec, Arc::new(m)).map_err(SetupError::Kernel)
    }

    /// The fused layers' model of a gateway without the tail: it computes tiles only when no
    /// edge is left, so their parameters are read (or generated) then, not now. A weights file
    /// is still checked now (header, and size from its metadata), so a wrong one is loud at
    /// start.
    pub fn deferred_model(&self) -> Result<Arc<Model>, SetupError> {
        let net = self.model.network()?;
        self.model.check_weights(&net)?;
        let (files, layers) = (self.model.clone(), self.spec.layers);
        let source = ParamSource(Arc::new(move || match files.load(layers) {
            Ok((_, params)) => Some(params),
            Err(e) => {
                eprintln!("gateway: loading the fused layers' parameters: {e}");
                None
            }
        }));
        let m = Model::deferred(net, layers, self.spec.grid, Partition::Darknet, source)
            .map_err(SetupError::Model)?;
        self.on_block_grid(m)
    }

    /// A coded tail's scheme, each layer's split over the workers, and the workers (`None`:
    /// the tail runs on the gateway).
    fn coded_split(&self) -> Result<Option<(TailScheme, LayerScheme, Vec<NodeId>)>, SetupError> {
        let TailPlace::Coded(scheme) = self.tail else {
            return Ok(None);
        };
        let workers = self.workers();
        let split = scheme
            .layer_scheme(workers.len())
            .map_err(|error| SetupError::Scheme { scheme, error })?;
        Ok(Some((scheme, split, workers)))
    }

    /// The coded tail of a cluster with `tail = SCHEME` as its gateway holds it (`None`: the
    /// tail runs on the gateway): every convolution after the fused layers split over every
    /// edge, codes and plan only ([`CodedTail::for_gateway`]: the shards are the workers'),
    /// with the parameters of the few small convolutions the gateway runs itself
    /// ([`CodedTail::gateway_layers`]), read (or generated) one layer at a time.
    pub fn gateway_tail(&self, net: &Network) -> Result<Option<CodedTail>, SetupError> {
        let Some((scheme, split, workers)) = self.coded_split()? else {
            return Ok(None);
        };
        let mut source = self.model.layers(net)?;
        let mut failed = None;
        let tail = CodedTail::for_gateway(net, self.spec.layers, split, &workers, |j| {
            source.layer(j).map_err(|e| failed = Some(e)).ok()
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        tail.map(Some)
            .map_err(|error| SetupError::Tail { scheme, error })
    }

    /// Edge `id`'s share of the coded tail (`None`: the tail runs on the gateway): the shards
    /// assigned to it only, made one tail layer at a time from that layer's parameters.
    pub fn worker_tail(
        &self,
        net: &Network,
        id: NodeId,
    ) -> Result<Option<Arc<CodedModel>>, SetupError> {
        let Some((scheme, split, workers)) = self.coded_split()? else {
            return Ok(None);
        };
        let mut source = self.model.layers(net)?;
        let model = worker_model(net, self.spec.layers, split, &workers, id, |j| {
            source.layer(j)
        })
        .map_err(|error| SetupError::Worker { scheme, error })?;
        Ok(Some(Arc::new(model)))
    }

    /// Starts node `id` on its own threads.
    pub fn start(
        &self,
        id: NodeId,
        model: Arc<Model>,
        options: NodeOptions,
    ) -> Result<NodeThread, SetupError> {
        start_node(&self.spec, id, model, options).map_err(|error| SetupError::Start { id, error })
    }
}
