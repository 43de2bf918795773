//! Handing back the pages of code and read-only data a node ran only to set itself up
//! ([`release_set_up_code`]).
//!
//! Parsing the command line and the cluster file, loading or generating the parameters,
//! planning and starting the node run code that never runs again. Its pages stay mapped (and
//! counted in the resident set) for the life of the process, with the pages the kernel maps
//! around each one touched (fault-around, 64 KiB). Measured on a YOLOv2-608 5x5 helper edge:
//! 5.7 MiB of the executable's and the C library's read-only mappings were resident, and
//! about 3 MiB of them once unmapped in the middle of a run and faulted back as the node
//! kept computing.
//!
//! Unmapping a clean page of a read-only file mapping (`MADV_DONTNEED`) loses nothing: the
//! next access maps the same page from the page cache again (a minor fault, no disk read while
//! the page stays cached). Only mappings that cannot change under the call are touched: those
//! of the executable and of the libraries a node links at start (never unloaded), without
//! write permission and without a page the process ever wrote (`Anonymous: 0 kB`: relocated
//! data made read-only after start-up has written pages, and is skipped).

extern crate alloc;
extern crate std;

use alloc::vec::Vec;

/// Libraries (file-name prefixes) a node process links when it starts and never unloads.
const LINKED_AT_START: [&str; 6] = [
    "libc.so",
    "libm.so",
    "libgcc_s.so",
    "libpthread.so",
    "ld-linux",
    "ld-musl",
];

/// What [`release_set_up_code`] handed back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeRelease {
    /// Mappings whose pages were unmapped.
    pub mappings: usize,
    /// Bytes they had resident.
    pub bytes: u64,
}

/// A read-only file mapping of `/proc/self/smaps` that may be unmapped: start, length and
/// resident bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    len: usize,
    rss: u64,
}

/// One mapping's header line and counters while `smaps` is read.
struct Entry {
    span: Span,
    eligible: bool,
    anonymous: Option<u64>,
}

impl Entry {
    /// The mapping headed by `line` (`start-end perms offset dev inode path`), if it is one.
    fn parse(line: &str, exe_inode: u64) -> Option<Entry> {
        let mut f = line.split_whitespace();
        let (start, end) = f.next()?.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        let perms = f.next()?;
        let (_offset, _dev) = (f.next()?, f.next()?);
        let inode: u64 = f.next()?.parse().ok()?;
        let path = f.next().unwrap_or("");
        let name = path.rsplit('/').next().unwrap_or("");
        let linked = path.starts_with('/') && LINKED_AT_START.iter().any(|p| name.starts_with(p));
        let own = inode != 0 && inode == exe_inode;
        Some(Entry {
            span: Span {
                start,
                len: end.checked_sub(start)?,
                rss: 0,
            },
            eligible: !perms.contains('w') && perms.starts_with('r') && (own || linked),
            anonymous: None,
        })
    }

    fn take(self) -> Option<Span> {
        (self.eligible && self.anonymous == Some(0) && self.span.rss > 0).then_some(self.span)
    }
}

/// The kB value of a `Name:   123 kB` line of `smaps` named `field`, in bytes.
fn kib_field(line: &str, field: &str) -> Option<u64> {
    let v = line.strip_prefix(field)?.strip_prefix(':')?;
    Some(v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()? * 1024)
}

/// The mappings of `smaps` (a `/proc/PID/smaps` text) that [`release_set_up_code`] may unmap:
/// read-only mappings of the executable (inode `exe_inode`) or of a library linked at start,
/// resident, never written.
fn spans(smaps: &str, exe_inode: u64) -> Vec<Span> {
    let mut out = Vec::new();
    let mut cur: Option<Entry> = None;
    for line in smaps.lines() {
        // A counter line starts with `Name:`; any other line heads the next mapping, and one
        // that does not parse ends the current mapping without starting one, so its counters
        // are never credited to the mapping before it.
        let counter = line
            .split_whitespace()
            .next()
            .is_some_and(|w| w.ends_with(':'));
        if !counter {
            out.extend(cur.take().and_then(Entry::take));
            cur = Entry::parse(line, exe_inode);
        } else if let Some(e) = cur.as_mut() {
            if let Some(rss) = kib_field(line, "Rss") {
                e.span.rss = rss;
            } else if let Some(anon) = kib_field(line, "Anonymous") {
                e.anonymous = Some(anon);
            }
        }
    }
    out.extend(cur.and_then(Entry::take));
    out
}

/// Unmaps the resident pages of the executable's and its start-up libraries' read-only
/// mappings: what runs afterwards is mapped again as it runs, the rest (what ran only to set
/// up) is no longer counted in the node's resident set. Call once set-up is over; nothing is
/// done where `/proc/self/smaps` cannot be read, on other systems than Linux, or on 32-bit
/// targets: the armv7 build crashed in this call under `qemu-arm` 7.2 (whose `/proc/self/smaps`
/// is not the guest's own), and without a 32-bit board to tell an emulator artefact from a
/// fault of ours, the 32-bit build keeps its code mapped.
pub fn release_set_up_code() -> CodeRelease {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return CodeRelease::default();
    };
    let exe_inode = exe_inode().unwrap_or(0);
    let mut r = CodeRelease::default();
    for s in spans(&smaps, exe_inode) {
        if dont_need(s) {
            r.mappings += 1;
            r.bytes += s.rss;
        }
    }
    r
}

/// The inode of this process's executable.
#[cfg(unix)]
fn exe_inode() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/exe").ok().map(|m| m.ino())
}

#[cfg(not(unix))]
fn exe_inode() -> Option<u64> {
    None
}

/// `MADV_DONTNEED` over `s`; true when the kernel took it.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[allow(unsafe_code)]
fn dont_need(s: Span) -> bool {
    // SAFETY: `s` is a whole read-only file mapping of the executable or of a library linked at
    // start, which stays mapped for the life of the process (`spans`), and none of its pages
    // was ever written (`Anonymous: 0 kB`): dropping them changes no byte the process reads,
    // as the next access maps the file's page again. No Rust object lives in such a mapping.
    unsafe { libc::madvise(s.start as *mut libc::c_void, s.len, libc::MADV_DONTNEED) == 0 }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn dont_need(_: Span) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
10000000-10100000 r--p 00000000 fd:01 4242 /usr/bin/tessera
Rss:                 468 kB
Anonymous:             0 kB
10100000-10500000 r-xp 00100000 fd:01 4242 /usr/bin/tessera
Rss:                3460 kB
Anonymous:             0 kB
10500000-10520000 r--p 00500000 fd:01 4242 /usr/bin/tessera
Rss:                  68 kB
Anonymous:            68 kB
10520000-10530000 rw-p 00520000 fd:01 4242 /usr/bin/tessera
Rss:                  64 kB
Anonymous:            64 kB
20000000-20100000 rw-p 00000000 00:00 0
Rss:                1024 kB
Anonymous:          1024 kB
30000000-30150000 r-xp 00028000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1176 kB
Anonymous:             0 kB
40000000-40010000 r-xp 00000000 fd:01 78 /usr/lib/x86_64-linux-gnu/libplugin.so
Rss:                  64 kB
Anonymous:             0 kB
50000000-50001000 r-xp 00000000 fd:01 79 /usr/lib/ld-linux-x86-64.so.2
Rss:                   0 kB
Anonymous:             0 kB
";

    #[test]
    fn only_unwritten_read_only_mappings_of_the_executable_and_libc_are_taken() {
        let s = spans(SMAPS, 4242);
        let starts: Vec<usize> = s.iter().map(|s| s.start).collect();
        // The executable's rodata and text, libc's text; not the relocated (written) rodata,
        // the writable data, the heap, a library that may be unloaded, nothing resident.
        assert_eq!(starts, [0x1000_0000, 0x1010_0000, 0x3000_0000], "{s:?}");
        assert_eq!(s[1].len, 0x400000);
        assert_eq!(s[1].rss, 3460 * 1024);
        // Another executable's inode: its mappings are not this process's own.
        assert_eq!(spans(SMAPS, 1).len(), 1);
    }

    #[test]
    fn counters_after_an_unreadable_header_are_not_the_previous_mappings() {
        // The executable's text has not been counted yet when a header that does not parse
        // follows; the `Anonymous: 0 kB` and `Rss` under that header are not its own.
        let smaps = "\
10000000-10100000 r-xp 00000000 fd:01 4242 /usr/bin/tessera
zzzz-10200000 r-xp 00000000 fd:01 4242 /usr/bin/tessera
Rss:                 468 kB
Anonymous:             0 kB
";
        assert_eq!(spans(smaps, 4242), []);
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn code_keeps_running_after_its_pages_are_handed_back() {
        let r = release_set_up_code();
        assert!(r.mappings >= 1 && r.bytes > 0, "{r:?}");
        // The code that runs next is mapped again from the page cache.
        let v: Vec<u64> = (0..1000u64).map(|i| i * i).collect();
        assert_eq!(v.iter().sum::<u64>(), 332_833_500);
        let again = release_set_up_code();
        assert!(again.mappings >= 1, "{again:?}");
    }
}
