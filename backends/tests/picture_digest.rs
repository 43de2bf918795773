//! Every node that cuts tile inputs from a shipped picture must make the values the data source
//! made: the same decode and letterbox on every architecture. The digests below were recorded
//! on x86_64; CI runs this file under qemu-user on armv7 and aarch64 too
//! (`cargo test -p tessera-backends --all-features --target ...`).
#![cfg(feature = "codecs")]

use tessera_backends::builtin::{DEFAULT_IMAGE, SECOND_IMAGE};
use tessera_backends::pipeline::{letterbox_of, letterbox_window, Picture};

/// FNV-1a over the values' bits.
fn digest(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325, |h, v| {
        v.to_bits()
            .to_le_bytes()
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    })
}

#[test]
fn the_sample_pictures_decode_and_letterbox_to_the_recorded_bits() {
    let want = [
        (
            DEFAULT_IMAGE,
            (640, 480),
            0x4430_6e36_0ced_4832,
            0x97df_def7_938b_6267,
            0xcb9d_e08b_1e11_b98c,
        ),
        (
            SECOND_IMAGE,
            (640, 425),
            0xd429_f75c_8664_756a,
            0xed7b_563b_b91e_96a0,
            0x3c35_f3d6_6fd4_8e6f,
        ),
    ];
    for (bytes, size, pixels, canvas, window) in want {
        let (picture, px) = Picture::captured(bytes.to_vec()).unwrap();
        assert_eq!((picture.width, picture.height), size);
        let as_floats: Vec<f32> = px.bytes().iter().map(|&b| f32::from(b)).collect();
        let whole = letterbox_of(&px, 608, 608);
        // A tile's input region of a 3x3 grid, cut alone as a helper node cuts it.
        let cut = letterbox_window(&px, 608, 608, 190..420, 0..230);
        println!(
            "pixels {:#018x} canvas {:#018x} window {:#018x}",
            digest(&as_floats),
            digest(&whole.data),
            digest(&cut)
        );
        assert_eq!(digest(&as_floats), pixels, "decoded pixels");
        assert_eq!(digest(&whole.data), canvas, "letterboxed canvas");
        assert_eq!(digest(&cut), window, "a tile's window");
    }
}
