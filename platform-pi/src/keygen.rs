//! `tessera keygen`: a fresh cluster key from the operating system's random source.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context, Error};
use clap::Args as ClapArgs;
use tessera_backends::cluster_file::key_hex;

/// Arguments of `tessera keygen`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Also write the key (64 hex digits and a newline) to this new file, readable by its
    /// owner only; an existing file is never overwritten.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// 32 random bytes from `/dev/urandom` (the kernel's CSPRNG; it never blocks once seeded).
pub fn fresh_key() -> Result<[u8; 32], Error> {
    let mut key = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("reading /dev/urandom")?;
    Ok(key)
}

/// Prints a fresh key on stdout (and writes it to `--out`).
pub fn run(args: &Args) -> Result<(), Error> {
    let hex = key_hex(&fresh_key()?);
    if let Some(path) = &args.out {
        let at = || format!("writing {}", path.display());
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(at)?;
        writeln!(f, "{hex}").with_context(at)?;
    }
    println!("{hex}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_backends::cluster_file::parse_key;

    #[test]
    fn a_fresh_key_parses_and_differs_from_the_next() {
        let (a, b) = (fresh_key().unwrap(), fresh_key().unwrap());
        assert_ne!(a, b);
        assert_eq!(parse_key(&key_hex(&a)), Ok(a));
    }
}
