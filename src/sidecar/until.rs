//! Until-conditions of the sidecar role: all `--until-file` paths exist and every
//! `--until-marker` command container is finished.
//!
//! Nothing here polls when the kernel can tell us: an inotify watch on the folder (the wait
//! phase's `Watcher`, which follows the nearest existing ancestor) wakes us on every entry
//! created or renamed in, and a thread blocked in flock(2) on the lock file wakes us when its
//! owner lets go. Polling at `--interval` is only the fallback where inotify is unavailable.
//!
//! A command container is finished when its marker PATH exists, or when PATH.lock exists and its
//! lock can be taken: the owner holds it from before the file was visible until after the
//! marker is in place, so a free lock without a marker means the owner died (SIGKILL, OOM).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use tokio::sync::oneshot;

use crate::after::marker;
use crate::sidecar::progress;
use crate::wait::file::Watcher;

/// Resolves once every condition holds. `poll` is the fallback interval without inotify.
pub async fn until(files: Vec<PathBuf>, markers: Vec<PathBuf>, poll: Duration) {
    let names: Vec<String> = markers
        .iter()
        .map(|m| format!("marker {}", m.display()))
        .chain(files.iter().map(|f| format!("file {}", f.display())))
        .collect();
    for m in &markers {
        prepare_folder(m);
    }
    tracing::info!("until: waiting for {}", names.join(", "));
    tokio::select! {
        _ = all_hold(&files, &markers, poll) => {}
        // Never ends: says what is still awaited, at growing intervals.
        _ = progress::report(&files, &markers) => {}
    }
}

/// Creates the missing folders of marker `path` (mode 1777, as the step side does), so that a
/// step running as another UID can write its marker on a root-owned volume. A failure is a
/// warning: the step side may still manage, or the folder may appear later.
fn prepare_folder(path: &Path) {
    let dir = marker::folder(path);
    if let Err(e) = marker::create_folders(&dir) {
        tracing::warn!(
            "until: cannot create {} for the marker {}: {e} ({}); a step running as another \
             user may not be able to write its marker there",
            dir.display(),
            path.display(),
            marker::who_can_write(&dir)
        );
    }
}

async fn all_hold(files: &[PathBuf], markers: &[PathBuf], poll: Duration) {
    // Each marker is its own command container (they may run one after another); once
    // finished, a container stays finished, so one after the other is as good as all at once.
    for m in markers {
        marker_finished(m, poll).await;
    }
    // Made once: a watcher's inotify fd is never closed (see wait/file.rs).
    let mut watchers: Vec<(&PathBuf, Watcher)> =
        files.iter().map(|f| (f, Watcher::new(f))).collect();
    loop {
        for (f, watcher) in &mut watchers {
            file_exists(f, watcher, poll).await;
        }
        // A file can vanish while we wait for the next one: all of them, at one moment.
        if files.iter().all(|f| f.exists()) {
            return;
        }
    }
}

/// Resolves when `path` exists.
async fn file_exists(path: &Path, watcher: &mut Watcher, poll: Duration) {
    let mut exists = watcher.check();
    tell_if_polling(watcher, path, poll);
    while !exists {
        next_change(watcher, poll, false).await;
        exists = watcher.check();
    }
    tracing::info!("until: {} exists", path.display());
}

/// Says once when a path is polled rather than watched (inotify unavailable or refused).
fn tell_if_polling(watcher: &Watcher, path: &Path, poll: Duration) {
    if !watcher.event_driven() {
        tracing::info!(
            "until: no inotify watch for {}, checking every {}",
            path.display(),
            crate::config::duration::show(poll)
        );
    }
}

/// The next event in the watched folder, or the next poll.
async fn next_change(watcher: &mut Watcher, poll: Duration, force_poll: bool) {
    if watcher.event_driven() && !force_poll {
        watcher.changed().await;
    } else {
        tokio::time::sleep(poll).await;
    }
}

/// What a look at PATH.lock found.
enum Probe {
    /// No lock file (yet): the container has not started, or runs without flock.
    Absent,
    /// The lock was free and is now ours.
    Free(File),
    /// Someone holds the lock: the step runs.
    Busy(File),
    /// The file system has no flock.
    Unsupported(Errno),
    /// Anything else (permissions, I/O).
    Failed(String),
}

/// A lock grant from the blocked thread: the locked file, or why flock failed.
type Grant = oneshot::Receiver<Result<File, Errno>>;

/// Resolves when the command container of marker `path` is finished.
async fn marker_finished(path: &Path, poll: Duration) {
    let lock_path = marker::lock_path(path);
    let mut watcher = Watcher::new(path);
    // Cleared where flock does not work: marker-only from then on.
    let mut use_lock = true;
    // Set when no thread could be started for the blocked flock: retry the lock at every poll.
    let mut poll_lock = false;
    // The thread blocked on the lock, when one is.
    let mut pending: Option<Grant> = None;
    let mut first = true;
    loop {
        // The watch is (re)armed before anything is looked at, so nothing can slip in between.
        if watcher.check() {
            tracing::info!("until: {} finished (marker written)", path.display());
            return;
        }
        if std::mem::take(&mut first) {
            tell_if_polling(&watcher, path, poll);
        }
        if use_lock && pending.is_none() {
            match probe(&lock_path) {
                Probe::Absent => {}
                Probe::Free(file) => {
                    if owner_gone(path, &lock_path, &file) {
                        return;
                    }
                    continue;
                }
                Probe::Busy(file) => match block_on_lock(file) {
                    Ok(grant) => pending = Some(grant),
                    Err(e) => {
                        tracing::warn!(
                            "cannot start a thread to wait for {}: {e}; checking it every {}",
                            lock_path.display(),
                            crate::config::duration::show(poll)
                        );
                        poll_lock = true;
                    }
                },
                Probe::Unsupported(e) => {
                    tracing::warn!(
                        "no flock on the file system of {}: {e}; waiting for the marker only \
                         (a command container that dies without writing it will not be noticed)",
                        lock_path.display()
                    );
                    use_lock = false;
                }
                Probe::Failed(e) => {
                    tracing::warn!("{e}; waiting for the marker only");
                    use_lock = false;
                }
            }
        }
        tokio::select! {
            // The owner let go of the lock (or flock failed late).
            granted = granted(&mut pending) => {
                pending = None;
                match granted {
                    Ok(file) => {
                        if owner_gone(path, &lock_path, &file) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("waiting for the lock {} failed: {e}; waiting for the marker only", lock_path.display());
                        use_lock = false;
                    }
                }
            }
            // Something changed in the folder: a marker or lock renamed in, a folder created.
            _ = next_change(&mut watcher, poll, poll_lock) => {}
        }
    }
}

/// With the lock of `file` in hand: true when the container is finished. The marker is written
/// before the lock is let go, so it is looked for again now; a lock file replaced in the
/// meantime (a new owner renamed its own in) means nothing and the caller looks again.
fn owner_gone(path: &Path, lock_path: &Path, file: &File) -> bool {
    let current = std::fs::symlink_metadata(lock_path);
    let ours = file.metadata();
    let same =
        matches!((&current, &ours), (Ok(c), Ok(o)) if c.dev() == o.dev() && c.ino() == o.ino());
    if path.exists() {
        tracing::info!("until: {} finished (marker written)", path.display());
        return true;
    }
    if !same {
        tracing::debug!("{} was replaced; looking again", lock_path.display());
        return false;
    }
    tracing::warn!(
        "until: {} finished without a marker: its podvisor died (SIGKILL, out of memory?) or \
         could not write it; counting it as finished",
        path.display()
    );
    true
}

/// Opens PATH.lock and tries its lock without blocking.
fn probe(lock_path: &Path) -> Probe {
    // Read-only is enough for flock; O_NONBLOCK so that a FIFO planted here cannot hang us.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(lock_path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Probe::Absent,
        Err(e) => return Probe::Failed(format!("cannot open {}: {e}", lock_path.display())),
    };
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Probe::Free(file);
    }
    match Errno::last() {
        Errno::EWOULDBLOCK => Probe::Busy(file),
        e if marker::flock_unsupported(e) => Probe::Unsupported(e),
        e => Probe::Failed(format!("cannot lock {}: {e}", lock_path.display())),
    }
}

/// Blocks a small thread in flock(LOCK_EX) on `file`; the grant carries the locked file back.
/// If nobody waits for it any more, the thread drops the file, which lets the lock go at once.
fn block_on_lock(file: File) -> io::Result<Grant> {
    let (tx, rx) = oneshot::channel();
    crate::threads::spawn("flock", Some(64 * 1024), move || {
        let result = loop {
            // SAFETY: flock on an fd this thread owns. Every signal is blocked in every
            // thread, so EINTR is not expected; it is retried all the same.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break Ok(file);
            }
            match Errno::last() {
                Errno::EINTR => continue,
                e => break Err(e),
            }
        };
        let _ = tx.send(result);
    })?;
    Ok(rx)
}

async fn granted(pending: &mut Option<Grant>) -> Result<File, Errno> {
    match pending {
        Some(rx) => rx.await.unwrap_or(Err(Errno::EIO)),
        None => std::future::pending().await,
    }
}
