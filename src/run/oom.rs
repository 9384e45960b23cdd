//! podvisor is the last to die: under memory pressure the kernel's OOM killer must pick the
//! step, not podvisor, or the step's status and marker are lost.
//!
//! podvisor lowers its own `oom_score_adj` to [`OWN_SCORE_ADJ`] and every process it starts gets
//! back the value podvisor inherited, written between fork and exec (`restore_in_child`).
//! Lowering needs CAP_SYS_RESOURCE (root in the container, proc(5)); without it the write fails
//! with EACCES, podvisor says so at debug level, and the kernel chooses as it always did.

use std::ffi::CStr;
use std::io::{self, Read, Write};
use std::sync::OnceLock;

use nix::libc;

/// -1000, "never kill": a cgroup-wide OOM kill (cgroup v2 `memory.oom.group`, which the kubelet
/// sets on every container since Kubernetes 1.28) kills every process of the cgroup except those
/// at -1000, so any other value would let podvisor die with the step. podvisor's own memory is
/// small and fixed (about a megabyte), so a cgroup left with podvisor alone has little to free.
pub const OWN_SCORE_ADJ: i32 = -1000;

const PATH: &CStr = c"/proc/self/oom_score_adj";

/// The inherited value as written back in children (an i32 in decimal: at most 11 bytes).
#[derive(Clone, Copy)]
struct Inherited {
    bytes: [u8; 12],
    len: usize,
}

static INHERITED: OnceLock<Option<Inherited>> = OnceLock::new();

/// Lowers podvisor's own score; call once, before the first spawn. Returns the inherited value
/// when it was lowered.
pub fn protect_self() -> Option<i32> {
    INHERITED
        .get_or_init(|| match lower() {
            Ok(kept) => kept,
            Err(e) => {
                tracing::debug!("oom_score_adj not lowered: {e}");
                None
            }
        })
        .map(|i| parse(&i.bytes[..i.len]).unwrap_or_default())
}

fn lower() -> io::Result<Option<Inherited>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/oom_score_adj")?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let inherited = parse(text.as_bytes())
        .ok_or_else(|| io::Error::other(format!("unreadable value {:?}", text.trim())))?;
    if inherited <= OWN_SCORE_ADJ {
        return Ok(None);
    }
    file.write_all(OWN_SCORE_ADJ.to_string().as_bytes())?;
    let shown = inherited.to_string();
    let mut bytes = [0u8; 12];
    bytes[..shown.len()].copy_from_slice(shown.as_bytes());
    tracing::debug!("oom_score_adj lowered from {inherited} to {OWN_SCORE_ADJ}");
    Ok(Some(Inherited {
        bytes,
        len: shown.len(),
    }))
}

fn parse(text: &[u8]) -> Option<i32> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// Gives a forked child the value podvisor inherited, when podvisor lowered its own: the step
/// must not share podvisor's protection. A no-op (no system call) when nothing was lowered.
/// Raising a score is always allowed, and /proc was there when podvisor lowered its own, so
/// this does not fail in practice; if it did, the step would still start (at podvisor's score,
/// where the kernel would pick the larger of the two).
///
/// # Safety
/// Call only in the forked child before exec: async-signal-safe calls on static data only.
pub unsafe fn restore_in_child() {
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
