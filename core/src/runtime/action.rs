//! What the machines ask of the driver ([`Action`], naming the [`Work`] to compute) and what
//! the driver does with a received payload ([`Verdict`]).

use crate::ftp::Mode;
use crate::region::{Region, Span};
use crate::wire::{FrameKey, Message, NodeId};

/// A unit of computation the driver runs and reports back with `on_computed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Work {
    /// Run tile `tile` of `frame` through the fused layers (`ftp::TilePlan` in `mode`).
    Tile {
        /// The frame.
        frame: FrameKey,
        /// Tile id.
        tile: u16,
        /// Plain, or Reuse (level 0: also keep the strips; level 1: reduced input + strips).
        mode: Mode,
    },
    /// BODP: compute rows `output` of fused layer `layer` from the input stripe plus halo
    /// (`FusedStack::back(layer, output)`).
    Layer {
        /// The frame.
        frame: FrameKey,
        /// Fused layer.
        layer: u8,
        /// Stripe index within the layer.
        stripe: u16,
        /// Output region to compute (full width × a band of rows).
        output: Region,
    },
}

impl Work {
    /// The frame the work belongs to.
    pub const fn frame(&self) -> FrameKey {
        match *self {
            Work::Tile { frame, .. } | Work::Layer { frame, .. } => frame,
        }
    }
}

/// What the driver must do. Data is named by ids; the driver moves the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send a data-free message (one that carries no tensor).
    Send {
        /// Destination.
        to: NodeId,
        /// The message.
        msg: Message<'static>,
    },
    /// Source (WSH, BODP): send `FrameSubmit { frame, input }` with the frame's image to the
    /// gateway. Keep the image until [`Action::FrameComplete`]/[`Action::FrameFailed`].
    SubmitFrame {
        /// The frame.
        frame: FrameKey,
    },
    /// Send `Task { frame, tile, mode, input }`: the tile's layer-0 input region from the
    /// frame's image, `TilePlan::new(.., mode).input(0)` (reduced for a level-1 Reuse tile).
    SendTask {
        /// Destination.
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// Tile id.
        tile: u16,
        /// Mode the receiver will compute in.
        mode: Mode,
    },
    /// Send `Result { frame, tile, output }` with the tile's last-layer output.
    SendResult {
        /// Destination (the gateway).
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// Tile id.
        tile: u16,
    },
    /// Send `Strips { frame, tile, strips }`: the strips of level-0 tile `tile` on the sides in
    /// `sides` (bit `Side::index()`), from the strip store (an edge: its own computation; the
    /// gateway: its cache).
    SendStrips {
        /// Destination.
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// The level-0 tile that produced the strips.
        tile: u16,
        /// Sides wanted.
        sides: u8,
    },
    /// BODP gateway: send `LayerTask { frame, layer, stripe, output, input }`, `input` being
    /// `FusedStack::back(layer, output)` of layer `layer`'s input map (the image for layer 0).
    SendLayerTask {
        /// Destination.
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// Fused layer.
        layer: u8,
        /// Stripe index.
        stripe: u16,
        /// Output rows to compute.
        output: Region,
    },
    /// MoDNN gateway, layer `layer` ≥ 1: worker `to` keeps rows `held` of layer `layer − 1`'s
    /// output (its stripe there); send it the other rows of
    /// `FusedStack::back(layer, output)` (at most a band above and one below, cut from the
    /// boundary rows the workers sent) as `Strips { frame, tile: stripe }` entries of layer
    /// `layer − 1`, then `LayerTask { frame, layer, stripe, output }` with no input rows.
    SendHalo {
        /// Destination.
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// Fused layer (≥ 1).
        layer: u8,
        /// Stripe index.
        stripe: u16,
        /// Output rows to compute.
        output: Region,
        /// Rows of the previous layer's output the worker holds.
        held: Span,
    },
    /// BODP edge: send `LayerResult { frame, layer, stripe, output }`. MoDNN edge, before the
    /// last layer: keep the stripe's output, send the rows of it other stripes need next
    /// (`runtime::modnn_boundaries`) as `Strips`, then a `LayerResult` with no values over a
    /// zero-width region of the stripe's rows.
    SendLayerResult {
        /// Destination (the gateway).
        to: NodeId,
        /// The frame.
        frame: FrameKey,
        /// Fused layer.
        layer: u8,
        /// Stripe index.
        stripe: u16,
    },
    /// Run `work`, then call `on_computed(now, work)`. One at a time per node.
    Compute(Work),
    /// BODP gateway: every stripe of `layer` is in; its output map is complete and becomes
    /// the next layer's input.
    LayerComplete {
        /// The frame.
        frame: FrameKey,
        /// Fused layer.
        layer: u8,
    },
    /// MoDNN gateway: `frame` starts again from layer 0 (a worker holding a stripe left or
    /// is late); drop the boundary rows and partial output kept for it.
    RestartLayers {
        /// The frame.
        frame: FrameKey,
    },
    /// Gateway: every tile (BODP: the last layer) is in; stitch, run the tail, free the frame's
    /// storage. Source edge: the gateway finished the frame; drop its image and strips.
    FrameComplete {
        /// The frame.
        frame: FrameKey,
    },
    /// The frame is abandoned (deadline, source gone, gateway lost, no capacity); drop its
    /// storage.
    FrameFailed {
        /// The frame.
        frame: FrameKey,
    },
}

/// What the driver does with the payload of a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Keep it: store the result tensor, cache the strips, take the task input or image.
    /// (For a data-free message: it was processed.)
    Accept,
    /// Drop it: late, duplicate, or about a frame no longer (or never) known.
    Discard,
}

/// `Reject` code: the gateway does not hold the strips asked for.
pub const REJECT_NO_STRIPS: u16 = 1;
