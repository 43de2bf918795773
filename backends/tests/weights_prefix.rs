//! A node reads (or generates) only the parameters of the layers it runs, from a weights file
//! it still validates whole.
#![cfg(all(feature = "std", feature = "simd"))]

use tessera_backends::gen_weights;
use tessera_backends::model_files::read_weights;
use tessera_backends::weights_writer::write_weights;
use tessera_core::model::{cfg, weights, Network};

const CFG: &str = "[net]\nwidth=32\nheight=32\nchannels=3\n\n\
[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n\
[maxpool]\nsize=2\nstride=2\n\n\
[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n\
[convolutional]\nfilters=5\nsize=1\nstride=1\npad=0\nactivation=linear\n";

/// A file in the temp dir, removed on drop.
struct Temp(std::path::PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp(name: &str) -> Temp {
    Temp(std::env::temp_dir().join(format!("tessera-{}-{name}", std::process::id())))
}

fn net() -> Network {
    cfg::parse(CFG).unwrap()
}

#[test]
fn prefix_of_a_file_equals_the_generated_prefix() {
    let net = net();
    let file = temp("whole.weights");
    write_weights(&net, 11, &file.0).unwrap();
    let all = net.layers().len();
    let whole = gen_weights::params(&net, all, 11);
    for upto in 0..=all {
        let n = weights::param_count(&net, upto).unwrap();
        let read = read_weights(&file.0, &net, upto).unwrap();
        let generated = gen_weights::params(&net, upto, 11);
        // Exactly the prefix, nothing more kept.
        assert_eq!(read.len(), n);
        assert_eq!(generated.len(), n);
        assert_eq!(read, whole[..n]);
        assert_eq!(generated, whole[..n]);
    }
}

#[test]
fn a_wrong_size_fails_before_reading_naming_file_and_sizes() {
    let net = net();
    let file = temp("sized.weights");
    write_weights(&net, 3, &file.0).unwrap();
    let bytes = std::fs::read(&file.0).unwrap();
    let total = bytes.len();
    let short = temp("short.weights");
    std::fs::write(&short.0, &bytes[..total - 4]).unwrap();
    // Even a node reading only layer 0 checks the whole file's size.
    let e = read_weights(&short.0, &net, 1).unwrap_err().to_string();
    assert!(e.contains(&short.0.display().to_string()), "{e}");
    assert!(
        e.contains(&format!("need {total}, have {}", total - 4)),
        "{e}"
    );
    let long = temp("long.weights");
    let mut more = bytes.clone();
    more.extend_from_slice(&[0; 8]);
    std::fs::write(&long.0, &more).unwrap();
    let e = read_weights(&long.0, &net, 1).unwrap_err().to_string();
    assert!(e.contains(&long.0.display().to_string()), "{e}");
    assert!(e.contains("8 bytes past the end"), "{e}");
    assert!(
        e.contains(&format!("{} bytes, the network needs {total}", total + 8)),
        "{e}"
    );
    let tiny = temp("tiny.weights");
    std::fs::write(&tiny.0, &bytes[..6]).unwrap();
    let e = read_weights(&tiny.0, &net, 1).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    let missing = temp("missing.weights");
    let e = read_weights(&missing.0, &net, 1).unwrap_err().to_string();
    assert!(e.contains(&missing.0.display().to_string()), "{e}");
}
