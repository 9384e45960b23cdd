//! The only code that calls waitpid.
//!
//! Children are spawned through [`Reaper::spawn`], which registers their pid before any reaping can
//! see it (the registry's lock is held from before the spawn until the pid is in). On every
//! SIGCHLD the signal pump (a thread of its own) calls [`Reaper::reap`], which collects every exited child — one SIGCHLD
//! can stand for several exits — hands registered pids their status and drops the rest (orphans
//! reparented to podvisor as PID 1 or subreaper). tokio's process support is not used at all, so
//! nothing races this `waitpid(-1)`.

use std::collections::HashMap;
use std::io;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nix::errno::Errno;
use nix::libc;
use nix::unistd::Pid;
use tokio::sync::{oneshot, Notify};

use crate::after::exit::ChildEnd;

/// Registered children waiting for their status, plus a wake-up for "something was reaped".
#[derive(Default)]
pub struct Reaper {
    /// Pids whose end someone awaits.
    waiting: Mutex<HashMap<i32, oneshot::Sender<ChildEnd>>>,
    /// Notified after every reaping pass.
    reaped: Notify,
    /// Reaping passes so far.
    passes: AtomicU64,
}

/// What one reaping pass saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Children collected in this pass.
    pub reaped: usize,
    /// Whether podvisor still has any child at all.
    pub children_left: bool,
}

impl Reaper {
    /// A reaper shared by the signal pump and whoever spawns.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Spawns `cmd` and registers its pid; the receiver yields how it ended.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<(Pid, oneshot::Receiver<ChildEnd>)> {
        self.spawn_with(|| {
            let child = cmd.spawn()?;
            // Dropping std's Child neither waits nor kills: the status is ours to collect. Its
            // pipes, if any, are the caller's (set up as fds it keeps), never std's.
            Ok(child.id() as i32)
        })
    }

    /// Like [`Reaper::spawn`], for a child started by `start`, which returns its pid.
    pub fn spawn_with(
        &self,
        start: impl FnOnce() -> io::Result<i32>,
    ) -> io::Result<(Pid, oneshot::Receiver<ChildEnd>)> {
        // Held across the start: the pump thread may reap the child as soon as it exists, and
        // it must find the pid registered (it waits for this lock after its waitpid).
        let mut waiting = self.lock();
        let pid = start()?;
        let (tx, rx) = oneshot::channel();
        waiting.insert(pid, tx);
        drop(waiting);
        Ok((Pid::from_raw(pid), rx))
    }

    /// Collects every exited child without blocking.
    pub fn reap(&self) -> Pass {
        let mut reaped = 0;
        let children_left = loop {
            let mut status = 0;
            // Raw waitpid, not nix's: nix turns a death by a real-time signal (no `Signal`
            // variant) into EINVAL after the kernel has already consumed the status, which
            // would lose the child's end for good.
            // SAFETY: waitpid(2) writing into a local int.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            let end = match pid {
                0 => break true,
                -1 => match Errno::last() {
                    Errno::EINTR => continue,
                    Errno::ECHILD => break false,
                    e => {
                        tracing::warn!("waitpid failed: {e}");
                        break true;
                    }
                },
                _ if libc::WIFEXITED(status) => ChildEnd::Exited(libc::WEXITSTATUS(status)),
                _ if libc::WIFSIGNALED(status) => ChildEnd::Signaled(libc::WTERMSIG(status)),
                // Stops and continues are not asked for (no WUNTRACED/WCONTINUED).
                _ => continue,
            };
            reaped += 1;
            match self.lock().remove(&pid) {
                Some(tx) => {
                    // The receiver may be gone (an abandoned --wait-cmd attempt): fine.
                    let _ = tx.send(end);
                }
                None => tracing::debug!("reaped orphan {pid} ({end:?})"),
            }
        };
        self.passes.fetch_add(1, Ordering::SeqCst);
        self.reaped.notify_waiters();
        Pass {
            reaped,
            children_left,
        }
    }

    /// Whether `pid` was spawned here and not collected yet.
    pub fn awaits(&self, pid: i32) -> bool {
        self.lock().contains_key(&pid)
    }

    /// How many reaping passes have run so far, for [`Reaper::pass_after`].
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::SeqCst)
    }

    /// Resolves once a pass after the `seen`-th has run. A count, not a bare wake-up: the
    /// pump thread's pass may come between a caller's own `reap` and this call, and must not be
    /// lost (leftovers would then wait out the grace period for an exit already collected).
    pub async fn pass_after(&self, seen: u64) {
        loop {
            let notified = self.reaped.notified();
            tokio::pin!(notified);
            // Registered before the check, so a pass between the two still wakes us.
            notified.as_mut().enable();
            if self.passes() > seen {
                return;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, oneshot::Sender<ChildEnd>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
