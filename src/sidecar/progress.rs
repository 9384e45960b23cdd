//! A sidecar never waits silently: while its until-conditions do not hold, it says which markers
//! are not finished (and whether their lock is held) and which files are missing, at growing
//! intervals — 10 s, 20 s, 40 s, ... then every 10 minutes — since a step may run for hours.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use tokio::time::{sleep_until, Instant};

use crate::after::marker;
use crate::config::duration;

/// The first report, after this long.
pub const FIRST: Duration = Duration::from_secs(10);
/// Reports never get further apart than this.
pub const CAP: Duration = Duration::from_secs(600);

/// Logs what is still awaited at FIRST, 2×FIRST, 4×FIRST... (capped at CAP); never returns.
pub async fn report(files: &[PathBuf], markers: &[PathBuf]) {
    let start = Instant::now();
    let mut gap = FIRST;
    let mut next = start + gap;
    loop {
        sleep_until(next).await;
        let pending: Vec<String> = markers
            .iter()
            .filter_map(|m| marker_state(m).map(|state| format!("marker {} {state}", m.display())))
            .chain(
                files
                    .iter()
                    .filter(|f| !f.exists())
                    .map(|f| format!("file {} does not exist", f.display())),
            )
            .collect();
        if !pending.is_empty() {
            tracing::info!(
                "until: still waiting after {}: {}",
                duration::show(Duration::from_secs(start.elapsed().as_secs())),
                pending.join("; ")
            );
        }
        gap = (gap * 2).min(CAP);
        next += gap;
    }
}

/// Why marker PATH is not finished, or None when it is (its marker exists).
fn marker_state(path: &Path) -> Option<String> {
    if path.exists() {
        return None;
    }
    let lock = marker::lock_path(path);
    Some(match lock_held(&lock) {
        Ok(None) => format!(
            "is not finished: not started (no {}; a step with --marker creates it first thing)",
            lock.display()
        ),
        Ok(Some(true)) => format!(
            "is not finished: running ({} is held by its podvisor)",
            lock.display()
        ),
        Ok(Some(false)) => format!(
            "has no marker and {} is free: its podvisor died (counted as finished)",
            lock.display()
        ),
        Err(e) => format!(
            "is not finished ({}: lock state unknown: {e})",
            lock.display()
        ),
    })
}

/// Whether somebody holds the lock file's lock (None: no lock file). A shared, non-blocking
/// try: if it is free, it is let go at once, so the owner side and the watcher are not disturbed.
fn lock_held(lock: &Path) -> io::Result<Option<bool>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(lock)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: flock on an fd we own; closing it (drop) releases what we took.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return Ok(Some(false));
    }
    match Errno::last() {
        Errno::EWOULDBLOCK => Ok(Some(true)),
        e => Err(io::Error::from(e)),
    }
}
