//! One frame through the network on one machine: the fused stack tile by tile
//! ([`run_frame`]), the tail on full maps ([`run_tail`]), region decoding and NMS ([`boxes`]),
//! what boxes are called and where they sit in the image ([`class_name`], [`PixelBox`]), the
//! network input made from an image ([`Image`], Darknet's letterbox), and
//! the kernel set chosen at run time ([`AnyKernel`], [`DetectKernel`], feature `simd`), and
//! what a run on one machine reports ([`layers_report`], [`detect_report`], feature `std`);
//! the fused layers with any kernel set ([`run_layers`], features `std` + `simd`).
//!
//! The cluster runs the same pieces split over nodes (tiles on the edges, the tail on the
//! gateway); these are the single-machine runs the cluster's results are checked against, and
//! what the simulator's reference and `tessera detect`/`layers` run.

mod aligned;
mod decode;
#[cfg(feature = "std")]
mod detect_frame;
mod frame;
#[cfg(feature = "simd")]
mod kernel;
#[cfg(feature = "simd")]
mod kernel_pick;
mod labels;
#[cfg(all(feature = "std", feature = "simd"))]
mod layers_run;
mod letterbox;
mod picture;
#[cfg(feature = "std")]
mod run_report;
mod tail;

pub use aligned::AlignedBuf;
pub use decode::{boxes, DecodeError};
#[cfg(feature = "std")]
pub use detect_frame::{detect_frame, DetectError, DetectSetup, FrameDetections};
pub use frame::{run_frame, run_frame_in, FrameBuffers, FrameError, FrameStats};
#[cfg(feature = "simd")]
pub use kernel::{AnyKernel, KernelChoice, UnknownKernel};
#[cfg(all(feature = "std", feature = "simd"))]
pub use kernel_pick::detect_with;
#[cfg(feature = "simd")]
pub use kernel_pick::{kernel_name, winograd_name, DetectKernel};
pub use labels::{class_color, class_count, class_name, PixelBox, COCO_NAMES};
#[cfg(all(feature = "std", feature = "simd"))]
pub use layers_run::{run_layers, LayersError, LayersKernel, LayersRun, LayersSetup};
pub use letterbox::{
    letterbox_of, letterbox_window, letterbox_window_into, Image, PixelsError, Rgb8, RgbView,
    Samples, MAX_SIDE,
};
pub use picture::{
    check_bounds, decode_pixels, sniff, Picture, PictureError, MAX_PICTURE_BYTES,
    MAX_PICTURE_PIXELS,
};
#[cfg(feature = "std")]
pub use run_report::{detect_report, layers_report, DetectRun};
pub use tail::{run_tail, Tail, TailError, TailRun};
