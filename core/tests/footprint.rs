//! A network's footprint from shapes alone: YOLOv2-608's figures, and networks within the cfg
//! parser's limits but far too large for a device refused before anything is allocated.

use tessera_core::model::cfg::parse;
use tessera_core::model::weights::param_count;
use tessera_core::model::{Footprint, FootprintError};

const YOLO: &str = include_str!("../../data/yolov2-608.cfg");
const GIB: u64 = 1 << 30;

#[test]
fn yolov2_608_needs_its_parameters_and_its_largest_layer() {
    let net = parse(YOLO).unwrap();
    let f = Footprint::of(&net).unwrap();
    let params = param_count(&net, net.layers().len()).unwrap() as u64;
    assert_eq!(f.params_bytes, 4 * params);
    // The largest layer: the first maxpool, 608 × 608 × 32 in, 304 × 304 × 32 out.
    let peak = (608 * 608 + 304 * 304) * 32 * 4;
    // Plus the outputs the routes keep: layer 16 (38 × 38 × 512), layer 24 (19 × 19 × 1024)
    // and the reorg, layer 27 (19 × 19 × 256).
    let kept = (38 * 38 * 512 + 19 * 19 * (1024 + 256)) * 4;
    assert_eq!(f.activation_bytes, peak + kept, "{f:?}");
    assert_eq!(Footprint::check(&net, 2 * GIB), Ok(f));
}

#[test]
fn networks_too_large_for_a_device_are_refused_with_the_size() {
    let huge_input = YOLO
        .replace("width=608", "width=16384")
        .replace("height=608", "height=16384");
    // The first layer's output alone is 16384² × 32 f32 = 32 GiB.
    if let Some(e) = refused(&huge_input) {
        assert!(
            matches!(e, FootprintError::TooLarge { needed, limit } if needed > 32 * GIB && limit == 2 * GIB),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("more than the limit of 2048 MiB"),
            "{e}"
        );
    }
    let wide = "[net]\nwidth=32\nheight=32\nchannels=3\n\n\
                [convolutional]\nfilters=65536\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n\
                [convolutional]\nfilters=65536\nsize=3\nstride=1\npad=1\nactivation=leaky\n";
    // 65536 × 65536 × 9 weights in the second layer alone: 154 GB.
    if let Some(e) = refused(wide) {
        assert!(
            matches!(e, FootprintError::TooLarge { needed, .. } if needed > 154_000_000_000),
            "{e:?}"
        );
    }
}

/// The footprint check's error for `cfg`. These networks hold more than 2³² elements in one
/// layer, so on a 32-bit target the parser already refuses their shapes (and `None` is
/// returned); on a 64-bit one they parse and the footprint check must refuse them.
fn refused(cfg: &str) -> Option<FootprintError> {
    match parse(cfg) {
        Ok(net) => Some(Footprint::check(&net, 2 * GIB).unwrap_err()),
        Err(e) => {
            assert!(
                cfg!(target_pointer_width = "32") && e.to_string().contains("size overflow"),
                "only a 32-bit target may refuse the shapes: {e}"
            );
            None
        }
    }
}
