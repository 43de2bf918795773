//! The network and sample frames built into the binaries: YOLOv2-608's Darknet cfg (the
//! default network) and two 640×480 JPEG frames (the default inputs).

/// The YOLOv2 608 cfg the original system runs, built in as the default network.
pub const DEFAULT_CFG: &str = include_str!("../../data/yolov2-608.cfg");

/// A sample frame (640×480 JPEG) built in as the default input.
pub const DEFAULT_IMAGE: &[u8] = include_bytes!("../../data/images/0.jpg");

/// The second bundled sample frame (640×480 JPEG).
pub const SECOND_IMAGE: &[u8] = include_bytes!("../../data/images/1.jpg");
