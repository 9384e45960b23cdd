//! podvisor is the last to die: under memory pressure the kernel's OOM killer must pick the
//! step, not podvisor, or the step's status and marker are lost.
//!
//! While the step runs, podvisor's own `oom_score_adj` is [`OWN_SCORE_ADJ`] and the step gets
//! back the value podvisor inherited, written between fork and exec (`restore_in_child`). Once
//! the step and its leftovers are gone, podvisor takes the inherited value back itself: alone in
//! its cgroup and unkillable, a podvisor over the limit would stall there (the kernel finds no
//! victim and retries the fault) and hang the pod, where a kill at least frees the marker's lock.
//! Lowering needs CAP_SYS_RESOURCE (proc(5)); without it the write fails with EACCES, podvisor
//! says so at debug level, and the kernel chooses as it always did.

use std::ffi::CStr;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use nix::libc;

/// -1000, "never kill": a cgroup-wide OOM kill (cgroup v2 `memory.oom.group`, which the kubelet
/// sets on every container since Kubernetes 1.28) kills every process of the cgroup except those
/// at -1000, so any other value would let podvisor die with the step.
pub const OWN_SCORE_ADJ: i32 = -1000;

const PATH: &CStr = c"/proc/self/oom_score_adj";

/// The inherited value as written back (an i32 in decimal: at most 11 bytes).
#[derive(Clone, Copy)]
struct Inherited {
    bytes: [u8; 12],
    len: usize,
}

/// Read once, at the first `protect`.
static INHERITED: OnceLock<Option<Inherited>> = OnceLock::new();
/// podvisor runs at OWN_SCORE_ADJ: children must get the inherited value.
static PROTECTED: AtomicBool = AtomicBool::new(false);

/// Lowers podvisor's own score; call right before spawning the step.
pub fn protect() {
    if PROTECTED.load(Ordering::Relaxed) {
        return;
    }
    // One descriptor for the read and the write, raw calls: this runs before every step
    // (bench row 1: std's File took 11 system calls for the two).
    let file = match Own::open() {
        Ok(file) => file,
        Err(e) => {
            tracing::debug!("oom_score_adj not lowered: cannot open it: {e}");
            return;
        }
    };
    let inherited = INHERITED.get_or_init(|| match read(&file) {
        Ok(value) => value,
        Err(e) => {
            tracing::debug!("oom_score_adj not lowered: cannot read it: {e}");
            None
        }
    });
    if inherited.is_none() {
        return;
    }
    match file.write(OWN_SCORE_ADJ.to_string().as_bytes()) {
        Ok(()) => {
            PROTECTED.store(true, Ordering::Relaxed);
            tracing::debug!("oom_score_adj lowered to {OWN_SCORE_ADJ} while the step runs");
        }
        Err(e) => tracing::debug!("oom_score_adj not lowered: {e}"),
    }
}

/// Takes the inherited value back, once the step and its leftovers are gone.
pub fn unprotect() {
    if let (true, Some(Some(value))) = (PROTECTED.load(Ordering::Relaxed), INHERITED.get()) {
        // Raising one's own score is always allowed.
        if Own::open()
            .and_then(|f| f.write(&value.bytes[..value.len]))
            .is_ok()
        {
            PROTECTED.store(false, Ordering::Relaxed);
        }
    }
}

/// podvisor's own /proc/self/oom_score_adj, open for reading and writing.
struct Own(std::os::fd::OwnedFd);

impl Own {
    fn open() -> io::Result<Self> {
        use std::os::fd::FromRawFd;
        // The raw call: musl's open(3) adds an fcntl(FD_CLOEXEC) after every O_CLOEXEC open.
        // SAFETY: openat(2) of a constant C string; the fd is owned from here on.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                PATH.as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC,
            )
        } as i32;
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that nothing else owns.
        Ok(Self(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    /// The value, as read from the start (a proc file's write ignores the offset).
    fn read(&self) -> io::Result<Vec<u8>> {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 32];
        // SAFETY: pread(2) into a local buffer of its length.
        let n = unsafe { libc::pread(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(buf[..n as usize].to_vec())
    }

    fn write(&self, value: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: write(2) from a live slice of its length.
        let n = unsafe { libc::write(self.0.as_raw_fd(), value.as_ptr().cast(), value.len()) };
        match n {
            n if n < 0 => Err(io::Error::last_os_error()),
            n if n as usize == value.len() => Ok(()),
            _ => Err(io::Error::other("short write")),
        }
    }
}

/// The inherited value, None when it is already as low as ours (nothing to do).
fn read(file: &Own) -> io::Result<Option<Inherited>> {
    let text = file.read()?;
    let inherited = parse(&text).ok_or_else(|| {
        io::Error::other(format!(
            "unreadable value {:?}",
            String::from_utf8_lossy(&text).trim()
        ))
    })?;
    if inherited <= OWN_SCORE_ADJ {
        return Ok(None);
    }
    let shown = inherited.to_string();
    let mut bytes = [0u8; 12];
    bytes[..shown.len()].copy_from_slice(shown.as_bytes());
    Ok(Some(Inherited {
        bytes,
        len: shown.len(),
    }))
}

fn parse(text: &[u8]) -> Option<i32> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// Gives a forked child the value podvisor inherited while podvisor is protected: the step must
/// not share podvisor's protection. No system call when podvisor is not protected. Raising a
/// score is always allowed, so this does not fail in practice; if it did, the step would still
/// start (at podvisor's score, where the kernel would pick the larger of the two).
///
/// # Safety
/// Call only in the forked child before exec: async-signal-safe calls on static data only.
pub unsafe fn restore_in_child() {
    if !PROTECTED.load(Ordering::Relaxed) {
        return;
    }
    let Some(Some(value)) = INHERITED.get() else {
        return;
    };
    let fd = libc::open(PATH.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd >= 0 {
        libc::write(fd, value.bytes.as_ptr().cast(), value.len);
        libc::close(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_with_the_kernels_newline() {
        assert_eq!(parse(b"0\n"), Some(0));
        assert_eq!(parse(b"-1000\n"), Some(-1000));
        assert_eq!(parse(b"x"), None);
    }
}
