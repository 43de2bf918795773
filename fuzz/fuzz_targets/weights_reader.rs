//! Darknet weights files: `model::weights::decode` on arbitrary bytes for a fixed small network
//! must never panic. Mode bit 0 of the first byte: 0 = the input is the file; 1 = the input's
//! header is kept and its body repeated to the exact length the header implies (reaches the
//! success path, where the decoded values must match the bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::model::{cfg, weights};

const SMALL: &str = "[net]\nwidth=12\nheight=10\nchannels=3\n\n\
[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n\n\
[maxpool]\nsize=2\nstride=2\n\n\
[convolutional]\nfilters=5\nsize=1\nactivation=linear\n\n\
[route]\nlayers=-1,-2\n\n\
[convolutional]\nbatch_normalize=1\nfilters=2\nsize=3\nstride=2\npad=1\nactivation=leaky\n";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let net = cfg::parse(SMALL).expect("fixed cfg parses");
    let layers = net.layers().len();
    let upto = (mode as usize >> 1) % (layers + 2); // sometimes past the end
    let all = weights::param_count(&net, layers).expect("small network");
    let mut out = vec![0f32; all];
    let file: Vec<u8> = if mode & 1 == 0 {
        bytes.to_vec()
    } else {
        let Ok((header, hlen)) = weights::Header::parse(bytes) else {
            return;
        };
        let Ok(total) = weights::file_len(&net, &header) else {
            return;
        };
        let body = &bytes[hlen..];
        let mut f = bytes[..hlen].to_vec();
        f.extend((0..total - hlen).map(|i| {
            if body.is_empty() {
                0
            } else {
                body[i % body.len()]
            }
        }));
        f
    };
    if let Ok((_, hlen)) = weights::Header::parse(&file) {
        if let Ok(_h) = weights::decode(&file, &net, upto, &mut out) {
            let n = weights::param_count(&net, upto).unwrap();
            for (i, v) in out[..n].iter().enumerate() {
                let b = &file[hlen + 4 * i..hlen + 4 * i + 4];
                assert_eq!(v.to_bits(), u32::from_le_bytes(b.try_into().unwrap()));
            }
        }
    } else {
        assert!(weights::decode(&file, &net, upto, &mut out).is_err());
    }
});
