//! The only code that calls waitpid.
//!
//! Children are spawned through [`Reaper::spawn`], which registers their pid before any reaping can
//! run (spawn and registration are one synchronous step on the runtime's only thread). On every
//! SIGCHLD the signal pump calls [`Reaper::reap`], which collects every exited child — one SIGCHLD
//! can stand for several exits — hands registered pids their status and drops the rest (orphans
//! reparented to podvisor as PID 1 or subreaper). tokio's process support is not used at all, so
//! nothing races this `waitpid(-1)`.

use std::collections::HashMap;
use std::io;
use std::process::Command;
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
        let pid = start()?;
        let (tx, rx) = oneshot::channel();
        self.lock().insert(pid, tx);
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

    /// Resolves after the next reaping pass.
    pub async fn next_pass(&self) {
        self.reaped.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, oneshot::Sender<ChildEnd>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
