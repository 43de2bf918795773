//! The network description: layer kinds and parameters, shape inference, the Darknet cfg parser
//! and the Darknet weights reader.

pub mod cfg;
mod footprint;
mod layer;
mod network;
pub mod weights;

pub use cfg::{CfgError, CfgErrorKind};
pub use footprint::{Footprint, FootprintError};
pub use layer::{Activation, Conv, Layer, LayerKind, MaxPool, RegionParams, Reorg, Route, Shape};
pub use network::{Network, ShapeError, MAX_LAYERS, MAX_ROUTE_INPUTS};
pub use weights::WeightsError;
