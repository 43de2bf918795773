//! Where a data-source edge's frames come from: fixed files, a directory a camera writes
//! into, or a pipe of paths. Each is polled without blocking, so the edge keeps serving its
//! peers while it waits for the next frame.

extern crate alloc;
extern crate std;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, TryRecvError};

/// Frames a data-source edge keeps submitted and unfinished at once. Each is decoded just
/// before it is submitted; past this bound the source waits for a frame to finish
/// (back-pressure), so its memory does not grow with `--repeat` or the number of inputs.
pub const SOURCE_QUEUE: usize = 2;

/// What [`FrameSource::poll`] has.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// The next frame's image file.
    Frame(PathBuf),
    /// Nothing yet; poll again later.
    NotYet,
    /// A list source's file could not be read (the source has ended).
    Unreadable(String),
    /// The source has ended.
    Done,
}

/// A source of frames (image files, decoded by the edge).
pub enum FrameSource {
    /// `--input IMG... --repeat N`: these files, in order, N times.
    Files {
        /// The files.
        files: Vec<PathBuf>,
        /// Frames handed out.
        next: usize,
        /// Frames in all (files × repeat).
        total: usize,
    },
    /// `--input-dir DIR`: every image file that appears in `DIR`, in name order, deleted once
    /// read (by [`FrameSource::consumed`]). Names starting with `.` or ending in `.tmp` are
    /// still being written and are skipped.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Files seen and not handed out yet, in name order.
        queue: VecDeque<PathBuf>,
    },
    /// `--input-list FILE` (`-`: stdin): one path per line, as the lines arrive; ends at EOF
    /// (or with why the file could not be opened).
    List(Receiver<Result<PathBuf, String>>),
}

/// Most files a directory source keeps queued from one scan (a directory flooded by a
/// runaway writer costs a bounded list; the rest is seen on later scans).
const DIR_SCAN_MAX: usize = 64;

impl FrameSource {
    /// `files`, `repeat` times.
    pub fn files(files: Vec<PathBuf>, repeat: usize) -> FrameSource {
        let total = files.len() * repeat;
        FrameSource::Files {
            files,
            next: 0,
            total,
        }
    }

    /// A directory source (the directory must exist).
    pub fn dir(dir: &Path) -> io::Result<FrameSource> {
        std::fs::read_dir(dir)?;
        Ok(FrameSource::Dir {
            dir: dir.to_path_buf(),
            queue: VecDeque::new(),
        })
    }

    /// A list of paths read from `file` (`-`: stdin) on a thread of its own, so a FIFO with
    /// no writer yet does not block the edge.
    pub fn list(file: &Path) -> FrameSource {
        let (tx, rx) = channel();
        let file = file.to_path_buf();
        std::thread::spawn(move || {
            let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                match std::fs::File::open(&file) {
                    Ok(f) => Box::new(std::io::BufReader::new(f)),
                    Err(e) => {
                        let _ = tx.send(Err(format!("reading {}: {e}", file.display())));
                        return;
                    }
                }
            };
            for line in reader.lines().map_while(Result::ok) {
                let line = line.trim();
                if !line.is_empty() && tx.send(Ok(PathBuf::from(line))).is_err() {
                    return;
                }
            }
        });
        FrameSource::List(rx)
    }

    /// The number of frames, when known in advance.
    pub fn total(&self) -> Option<usize> {
        match self {
            FrameSource::Files { total, .. } => Some(*total),
            _ => None,
        }
    }

    /// The next frame, if there is one now.
    pub fn poll(&mut self) -> Next {
        match self {
            FrameSource::Files { files, next, total } => {
                if *next >= *total {
                    return Next::Done;
                }
                *next += 1;
                Next::Frame(files[(*next - 1) % files.len()].clone())
            }
            FrameSource::Dir { dir, queue } => {
                if queue.is_empty() {
                    *queue = scan(dir);
                }
                queue.pop_front().map_or(Next::NotYet, Next::Frame)
            }
            FrameSource::List(rx) => match rx.try_recv() {
                Ok(Ok(p)) => Next::Frame(p),
                Ok(Err(why)) => Next::Unreadable(why),
                Err(TryRecvError::Empty) => Next::NotYet,
                Err(TryRecvError::Disconnected) => Next::Done,
            },
        }
    }

    /// `frame` was read: a directory source deletes it (the directory is a spool).
    pub fn consumed(&self, frame: &Path) -> io::Result<()> {
        match self {
            FrameSource::Dir { .. } => std::fs::remove_file(frame),
            _ => Ok(()),
        }
    }

    /// True for sources whose frames come from outside while the edge runs (a bad one is
    /// skipped rather than fatal).
    pub fn live(&self) -> bool {
        !matches!(self, FrameSource::Files { .. })
    }
}

/// Complete files in `dir`, in name order, at most [`DIR_SCAN_MAX`].
fn scan(dir: &Path) -> VecDeque<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return VecDeque::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && !n.ends_with(".tmp"))
        })
        .collect();
    files.sort();
    files.truncate(DIR_SCAN_MAX);
    files.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn files_repeat_then_end() {
        let mut s = FrameSource::files(vec!["a".into(), "b".into()], 2);
        let got: Vec<Next> = (0..5).map(|_| s.poll()).collect();
        let f = |p: &str| Next::Frame(p.into());
        assert_eq!(got, [f("a"), f("b"), f("a"), f("b"), Next::Done]);
        assert_eq!(s.total(), Some(4));
    }

    #[test]
    fn a_directory_yields_complete_files_in_name_order_and_deletes_them() {
        let dir = std::env::temp_dir().join(format!("tessera-frame-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = FrameSource::dir(&dir).unwrap();
        assert_eq!(s.poll(), Next::NotYet);
        for name in ["2.jpg", "1.jpg", ".3.jpg", "4.jpg.tmp"] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        for want in ["1.jpg", "2.jpg"] {
            let Next::Frame(p) = s.poll() else {
                panic!("no frame")
            };
            assert_eq!(p, dir.join(want));
            s.consumed(&p).unwrap();
            assert!(!p.exists());
        }
        assert_eq!(s.poll(), Next::NotYet);
        std::fs::rename(dir.join("4.jpg.tmp"), dir.join("4.jpg")).unwrap();
        assert_eq!(s.poll(), Next::Frame(dir.join("4.jpg")));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(FrameSource::dir(&dir).is_err());
    }

    #[test]
    fn a_list_yields_its_lines_then_ends() {
        let file = std::env::temp_dir().join(format!("tessera-frame-list-{}", std::process::id()));
        std::fs::write(&file, "a.jpg\n\n b.png \n").unwrap();
        let mut s = FrameSource::list(&file);
        let mut got = Vec::new();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < end {
            match s.poll() {
                Next::Frame(p) => got.push(p),
                Next::NotYet => std::thread::sleep(std::time::Duration::from_millis(5)),
                Next::Done | Next::Unreadable(_) => break,
            }
        }
        std::fs::remove_file(&file).unwrap();
        assert_eq!(got, [PathBuf::from("a.jpg"), PathBuf::from("b.png")]);
    }
}
