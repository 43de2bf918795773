//! Result files written whole or not at all, never over an earlier result: the bytes go to a
//! temporary file in the same directory, which is then linked under its final name (the link
//! fails if the name exists) and removed. A reader never sees half a file, and a restarted
//! gateway or source never replaces what a previous run wrote.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a result file was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file of that name exists already (an earlier run's result); it is left as it was.
    #[error("{} exists already; not overwritten", .0.display())]
    Exists(PathBuf),
    /// The file system refused (no space, no permission, no such directory).
    #[error("writing {}: {}", .0.display(), .1)]
    Io(PathBuf, io::Error),
}

/// Writes `bytes` to the new file `path` atomically; an existing `path` is never replaced.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let io_err = |e| WriteError::Io(path.to_path_buf(), e);
    let name = path
        .file_name()
        .ok_or_else(|| io_err(io::Error::other("no file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    let placed = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links: rename, after checking the name is free.
        Err(_) if !path.exists() => std::fs::rename(&tmp, path).map(|()| true),
        Err(_) => Ok(false),
    });
    let _ = std::fs::remove_file(&tmp);
    match placed {
        Ok(true) => Ok(()),
        Ok(false) => Err(WriteError::Exists(path.to_path_buf())),
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_and_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("tessera-result-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("frame-1-7.json");
        let _ = std::fs::remove_file(&path);
        write_new(&path, b"first").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let again = write_new(&path, b"second");
        assert!(matches!(again, Err(WriteError::Exists(_))), "{again:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first", "left as it was");
        // No temporary file is left behind, either way.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("frame-1-7.json")]);
        let missing = write_new(&dir.join("no-such-dir").join("x.json"), b"x");
        assert!(matches!(missing, Err(WriteError::Io(..))), "{missing:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
