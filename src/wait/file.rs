//! File readiness: the path exists, noticed within a millisecond.
//!
//! An inotify watch sits on the nearest existing ancestor folder (so neither the file nor its
//! folders need exist yet) and moves down as folders appear. Every event triggers a re-check;
//! the regular attempts of the retry policy go on beside it and are the fallback where inotify
//! is unavailable. The inotify fd is never closed: closing an fd that held a watch waits for the
//! kernel's fsnotify grace period (5-15 ms), and the next step is starting COMMAND. Nor does
//! exit close it: `fdio::release_after_exit` hands the last reference to the kernel. Even a
//! watch's removal waits until COMMAND has started ([`remove_retired`]): it wakes a kernel
//! worker that takes the CPU from podvisor on the way to the spawn (`perf sched`: 30-45 µs of a
//! file target's 0.7 ms from creation to the step's start, bench row 3).

use std::mem::ManuallyDrop;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;

use crate::fdio::{self, Owned};

/// A watch on the folder a path will appear in.
pub struct Watcher {
    /// The path waited for.
    path: PathBuf,
    /// The inotify instance; `None` after it failed (polling fallback).
    fd: Option<ManuallyDrop<AsyncFd<Owned<Inotify>>>>,
    /// The folder watched now and its descriptor.
    watching: Option<(PathBuf, WatchDescriptor)>,
    /// Also report writes to files in the folder (a log that grows), not only new entries.
    modify: bool,
    /// The watch's removal waits for [`remove_retired`] (a wait-phase watcher).
    retire_late: bool,
}

impl Watcher {
    /// A watcher for `path`; falls back to polling when inotify is unavailable.
    pub fn new(path: &Path) -> Self {
        Self::watch(path, false)
    }

    /// A watcher that also wakes up when a file in the folder is written to.
    pub fn with_modify(path: &Path) -> Self {
        Self::watch(path, true)
    }

    fn watch(path: &Path, modify: bool) -> Self {
        let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(std::io::Error::from)
            .and_then(|fd| {
                // Not even exit may close it on the way out (see release_after_exit).
                if let Err(e) = fdio::release_after_exit(fd.as_fd()) {
                    tracing::debug!("inotify fd will be closed at exit: {e}");
                }
                fdio::readable(fd)
            })
            .map_err(|e| tracing::debug!("inotify unavailable, polling {}: {e}", path.display()))
            .ok()
            .map(ManuallyDrop::new);
        Self {
            path: absolute(path),
            fd,
            watching: None,
            modify,
            retire_late: false,
        }
    }

    /// Leaves the watch's removal, once dropped, to [`remove_retired`]: for the wait phase,
    /// whose watchers are dropped on the way to COMMAND's start.
    pub fn retired_late(mut self) -> Self {
        self.retire_late = true;
        self
    }

    /// Whether the path exists now; first moves the watch to the nearest existing ancestor, so
    /// that anything created after this check raises an event.
    pub fn check(&mut self) -> bool {
        self.rewatch();
        self.path.exists()
    }

    /// Whether changes are noticed by events; false means the caller must poll.
    pub fn event_driven(&self) -> bool {
        self.fd.is_some() && self.watching.is_some()
    }

    /// Resolves on the next event in the watched folder (never, when polling).
    pub async fn changed(&mut self) {
        let Some(fd) = self.fd.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return std::future::pending().await;
            };
            match guard.get_inner().0.read_events() {
                Ok(events) if !events.is_empty() => return,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(_) => return,
            }
        }
    }

    /// Sleeps for `delay`, checking the path again at every event; true as soon as it exists.
    /// These checks are not attempts: `--retries` counts the policy's attempts only, however
    /// busy the folder is.
    pub async fn exists_within(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return false,
                _ = self.changed() => if self.check() { return true },
            }
        }
    }

    fn rewatch(&mut self) {
        let Some(fd) = self.fd.as_ref() else { return };
        let Some(dir) = self.path.ancestors().skip(1).find(|d| d.is_dir()) else {
            return;
        };
        if self.watching.as_ref().is_some_and(|(d, _)| d == dir) {
            return;
        }
        if let Some((_, wd)) = self.watching.take() {
            let _ = fd.get_ref().0.rm_watch(wd);
        }
        let mut mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_ONLYDIR;
        if self.modify {
            // IN_MOVED_FROM and IN_DELETE: a log rotated away or removed.
            mask |=
                AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_MOVED_FROM | AddWatchFlags::IN_DELETE;
        }
        match fd.get_ref().0.add_watch(dir, mask) {
            Ok(wd) => self.watching = Some((dir.to_owned(), wd)),
            Err(e) => tracing::debug!("cannot watch {}: {e}; polling", dir.display()),
        }
    }
}

type Instance = ManuallyDrop<AsyncFd<Owned<Inotify>>>;

/// Watches of dropped watchers, not removed yet, with their instances (never closed).
static RETIRED: Mutex<Vec<(Instance, WatchDescriptor)>> = Mutex::new(Vec::new());

impl Drop for Watcher {
    fn drop(&mut self) {
        // The fd stays open until exit; the watch goes now, or at the next `remove_retired`.
        if let (Some(fd), Some((_, wd))) = (self.fd.take(), self.watching.take()) {
            if self.retire_late {
                RETIRED
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((fd, wd));
            } else {
                let _ = fd.get_ref().0.rm_watch(wd);
            }
        }
    }
}

/// Removes the watches of the wait phase's watchers dropped so far: call it once COMMAND has
/// started, or when the wait phase is over and there is nothing to start. Until then a retired
/// watch still queues events in its folder and wakes the runtime for them: harmless, not idle.
pub fn remove_retired() {
    let retired = std::mem::take(&mut *RETIRED.lock().unwrap_or_else(PoisonError::into_inner));
    for (fd, wd) in retired {
        let _ = fd.get_ref().0.rm_watch(wd);
        // Dropping the ManuallyDrop closes nothing: the instance stays open (see above).
    }
}

/// Relative paths are watched from the current folder.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
