//! A node's parameters from a Darknet weights file ([`read_prefix`], [`LayerReader`]): the
//! whole file is validated (header, and size against every layer's parameters), then only the
//! layers the node runs are read and the rest is skipped with a seek, so a node holds what it
//! computes.

extern crate alloc;
extern crate std;

use alloc::vec;
use alloc::vec::Vec;
use std::io::{self, Read, Seek, SeekFrom};

use tessera_core::model::weights::{self, WeightsError};
use tessera_core::model::Network;

/// Bytes read at a time.
const CHUNK: usize = 1 << 16;

/// Why the parameters could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsFileError {
    /// Reading or seeking failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The header is unreadable, or the contents are not parameters.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The file's size does not match the network.
    #[error("{len} bytes, the network needs {expected}: {error}")]
    Size {
        /// Bytes in the file.
        len: u64,
        /// Bytes the network needs (header included).
        expected: usize,
        /// How they differ.
        #[source]
        error: WeightsError,
    },
}

/// Reads the parameters of layers `[0, upto)` of `net` from `file`, a Darknet weights file of
/// `len` bytes, keeping only those (in fixed-size chunks, into the one buffer returned).
pub fn read_prefix<F: Read + Seek>(
    file: &mut F,
    len: u64,
    net: &Network,
    upto: usize,
) -> Result<Vec<f32>, WeightsFileError> {
    let mut reader = LayerReader::open(file, len, net)?;
    let params = reader.read(0, upto)?;
    // Past the layers not run: the size check already covered them.
    reader.file.seek(SeekFrom::End(0))?;
    Ok(params)
}

/// A Darknet weights file validated once (header, and size against every layer's
/// parameters), then read a range of layers at a time, so a node building its share layer by
/// layer holds one layer's parameters at once.
#[derive(Debug)]
pub struct LayerReader<'n, F> {
    file: F,
    net: &'n Network,
    header_len: u64,
}

impl<'n, F: Read + Seek> LayerReader<'n, F> {
    /// Checks `file` (`len` bytes) against `net`.
    pub fn open(mut file: F, len: u64, net: &'n Network) -> Result<Self, WeightsFileError> {
        // The longest header (8-byte `seen`); a shorter file is reported by `Header::parse`.
        let mut head = [0u8; 20];
        file.seek(SeekFrom::Start(0))?;
        let got = read_up_to(&mut file, &mut head)?;
        let (header, header_len) = weights::Header::parse(&head[..got])?;
        let expected = weights::file_len(net, &header)?;
        weights::check_file_len(net, &header, len).map_err(|error| WeightsFileError::Size {
            len,
            expected,
            error,
        })?;
        Ok(LayerReader {
            file,
            net,
            header_len: header_len as u64,
        })
    }

    /// The parameters of layers `[from, upto)`, in Darknet order (read in fixed-size chunks
    /// into the one buffer returned).
    pub fn read(&mut self, from: usize, upto: usize) -> Result<Vec<f32>, WeightsFileError> {
        let before = weights::param_count(self.net, from.min(upto))?;
        let count = weights::param_count(self.net, upto)? - before;
        let mut params = vec![0.0f32; count];
        self.file
            .seek(SeekFrom::Start(self.header_len + 4 * before as u64))?;
        let mut chunk = vec![0u8; CHUNK];
        for dst in params.chunks_mut(CHUNK / 4) {
            let bytes = &mut chunk[..4 * dst.len()];
            self.file.read_exact(bytes)?;
            weights::decode_params(bytes, dst)?;
        }
        Ok(params)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_up_to<F: Read>(file: &mut F, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use tessera_core::model::cfg;
    use tessera_core::model::weights::{param_count, Header};

    const CFG: &str =
        "[net]\nwidth=8\nheight=8\nchannels=3\n\n[convolutional]\nfilters=4\nsize=3\n\
                       stride=1\npad=1\nactivation=leaky\n\n[maxpool]\nsize=2\nstride=2\n\n\
                       [convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\nstride=1\npad=0\n\
                       activation=linear\n";

    fn file(net: &Network) -> (Vec<u8>, Vec<f32>) {
        let params = crate::gen_weights::params(net, net.layers().len(), 3);
        let header = Header {
            major: 0,
            minor: 1,
            revision: 0,
            seen: 0,
        };
        let mut bytes = vec![0u8; 32];
        let n = header.encode(&mut bytes).unwrap();
        bytes.truncate(n);
        bytes.extend(params.iter().flat_map(|v| v.to_le_bytes()));
        (bytes, params)
    }

    #[test]
    fn reads_the_prefix_of_a_whole_file_only() {
        let net = cfg::parse(CFG).unwrap();
        let (bytes, params) = file(&net);
        let len = bytes.len() as u64;
        let first = param_count(&net, 1).unwrap();
        let mut f = Cursor::new(bytes.clone());
        assert_eq!(read_prefix(&mut f, len, &net, 1).unwrap(), params[..first]);
        assert_eq!(f.position(), len);
        let all = read_prefix(&mut Cursor::new(&bytes), len, &net, 3).unwrap();
        assert_eq!(all, params);
        // One value short: refused before anything is read, whatever is asked for.
        let short = &bytes[..bytes.len() - 4];
        let e = read_prefix(&mut Cursor::new(short), len - 4, &net, 1).unwrap_err();
        assert!(matches!(e, WeightsFileError::Size { .. }), "{e}");
        let e = read_prefix(&mut Cursor::new(&bytes[..6]), 6, &net, 1).unwrap_err();
        assert!(matches!(e, WeightsFileError::Weights(_)), "{e}");
    }

    #[test]
    fn reads_any_range_of_layers() {
        let net = cfg::parse(CFG).unwrap();
        let (bytes, params) = file(&net);
        let len = bytes.len() as u64;
        let mut r = LayerReader::open(Cursor::new(&bytes), len, &net).unwrap();
        let at = |l: usize| param_count(&net, l).unwrap();
        // The last conv alone, then the first: each exactly its slice of the whole.
        assert_eq!(r.read(2, 3).unwrap(), params[at(2)..]);
        assert_eq!(r.read(0, 1).unwrap(), params[..at(1)]);
        assert!(
            r.read(1, 2).unwrap().is_empty(),
            "a max pool has no parameters"
        );
        assert!(matches!(
            r.read(0, 4).unwrap_err(),
            WeightsFileError::Weights(_)
        ));
        let short = &bytes[..bytes.len() - 4];
        let e = LayerReader::open(Cursor::new(short), len - 4, &net).unwrap_err();
        assert!(matches!(e, WeightsFileError::Size { .. }), "{e}");
    }
}
