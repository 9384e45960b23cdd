//! Which signals podvisor ignores: read once, kept up to date, so that neither start-up nor a
//! spawn has to ask the kernel signal by signal.
//!
//! At exec every handler is gone but SIG_IGN survives, so at start the only dispositions that
//! differ from the default are the inherited ignored ones (nohup, some CI agents) and SIGPIPE,
//! which Rust's runtime ignores before `main`. The kernel lists them in one line,
//! `SigIgn:` of /proc/self/status: one open, read and close instead of 64 `rt_sigaction`
//! queries (`strace -c` of `podvisor -q -- /bin/true`, bench/notes.md). Without /proc (a bare
//! chroot, a foreign proc mount) the queries are the fallback.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use nix::libc;

/// Bit N-1 set: signal N is ignored in podvisor now.
static IGNORED: OnceLock<AtomicU64> = OnceLock::new();

fn cell() -> &'static AtomicU64 {
    IGNORED.get_or_init(|| AtomicU64::new(read_status().unwrap_or_else(query_each)))
}

/// The signals podvisor ignores, as a mask with bit N-1 for signal N. The first call reads
/// them; later calls see what [`set_default`] changed since.
pub fn ignored() -> u64 {
    cell().load(Ordering::Relaxed)
}

/// Whether `signo` is ignored in podvisor now.
pub fn is_ignored(signo: i32) -> bool {
    (1..=64).contains(&signo) && ignored() & (1 << (signo - 1)) != 0
}

/// Puts `signo` back to SIG_DFL with the raw syscall (the libc wrappers refuse their reserved
/// signals: glibc 32-33, musl 32-34) and records it. Async-signal-safe apart from the record,
/// so a forked child calls [`raw_default`] instead.
pub fn set_default(signo: i32) {
    raw_default(signo);
    if (1..=64).contains(&signo) {
        cell().fetch_and(!(1 << (signo - 1)), Ordering::Relaxed);
    }
}

/// rt_sigaction(signo, SIG_DFL) and nothing else: for the child between fork (or vfork) and
/// exec, where nothing may allocate or take a lock.
pub fn raw_default(signo: i32) {
    raw_set(signo, libc::SIG_DFL);
}

/// rt_sigaction(signo, SIG_IGN): discards a pending `signo` (sigaction(2)). Same rules as
/// [`raw_default`].
pub fn raw_ignore(signo: i32) {
    raw_set(signo, libc::SIG_IGN);
}

fn raw_set(signo: i32, handler: libc::sighandler_t) {
    // The kernel's struct sigaction: handler, flags, restorer, mask; no flags, empty mask.
    let action = [handler as u64, 0, 0, 0];
    // SAFETY: rt_sigaction with a valid, fully initialised struct and no old-action pointer;
    // failures (KILL, STOP, out of range) change nothing.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signo,
            action.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
}

/// `SigIgn:` of /proc/self/status, read with plain system calls into a stack buffer (the file
/// is ~1.5 KiB; `SigIgn` sits in its first half).
fn read_status() -> Option<u64> {
    let mut buf = [0u8; 4096];
    // SAFETY: open/read/close on a NUL-terminated literal and a local buffer.
    let len = unsafe {
        // The raw call: musl's open() adds an fcntl for O_CLOEXEC.
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/proc/self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        let Ok(fd) = i32::try_from(fd) else {
            return None;
        };
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        usize::try_from(n).ok()?
    };
    parse_sig_ign(&buf[..len])
}

/// The hex mask of the `SigIgn:` line.
fn parse_sig_ign(status: &[u8]) -> Option<u64> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"SigIgn:"))?;
    let hex = std::str::from_utf8(line).ok()?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// The fallback: every disposition queried; a query changes nothing.
fn query_each() -> u64 {
    let mut mask = 0;
    for signo in 1..=64 {
        let mut old = [0u64; 4];
        // SAFETY: rt_sigaction with no new action only writes the old one into a local.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signo,
                std::ptr::null::<u64>(),
                old.as_mut_ptr(),
                8usize,
            )
        };
        if rc == 0 && old[0] == libc::SIG_IGN as u64 {
            mask |= 1 << (signo - 1);
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_status_line() {
        let status = b"Name:\tpodvisor\nSigPnd:\t0000000000000000\nSigBlk:\t0000000000010000\n\
                       SigIgn:\t0000000000001000\nSigCgt:\t0000000000000000\n";
        assert_eq!(parse_sig_ign(status), Some(1 << (libc::SIGPIPE - 1)));
        assert_eq!(parse_sig_ign(b"Name:\tx\n"), None);
        assert_eq!(parse_sig_ign(b"SigIgn:\tzz\n"), None);
    }

    #[test]
    fn status_and_queries_agree() {
        // The test binary's own dispositions: Rust's runtime ignores SIGPIPE.
        let from_status = read_status().expect("/proc/self/status");
        assert_eq!(from_status, query_each());
        assert_ne!(from_status & (1 << (libc::SIGPIPE - 1)), 0);
    }
}
