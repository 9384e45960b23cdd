//! After the main child ends, whatever it left behind — the rest of its process group and orphans
//! reparented to podvisor (as PID 1 or child subreaper) — gets SIGTERM, then SIGKILL after the
//! grace period; podvisor returns once it has no child left. Nothing of the step outlives it.

use std::collections::HashSet;

use nix::libc;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{sleep_until, Instant};

use crate::child::Child;
use crate::config::Config;
use crate::reaper::Reaper;
use crate::signals::{self, Received};

/// Terminates and reaps every leftover process.
pub async fn terminate(
    child: &Child,
    config: &Config,
    reaper: &Reaper,
    signals: &mut UnboundedReceiver<Received>,
) {
    let mut sweep = Sweep {
        group: child.group.then_some(child.pid.as_raw()),
        signalled: HashSet::new(),
    };
    if !reaper.reap().children_left && !sweep.group_alive() {
        return;
    }
    let count = sweep.run(libc::SIGTERM);
    tracing::info!("terminating {count} leftover process(es)");
    let kill_at = Instant::now() + config.grace_period;
    let mut killed = false;
    loop {
        tokio::select! {
            // Something was reaped: maybe the last one, maybe new orphans to signal.
            _ = reaper.next_pass() => {}
            // Leftovers that ignore SIGTERM.
            _ = sleep_until(kill_at), if !killed => {
                killed = true;
                let n = sweep.run(libc::SIGKILL);
                tracing::warn!("grace period expired, sent SIGKILL to {n} leftover process(es)");
            }
            // Signals still arrive; the leftovers are being stopped already.
            Some(got) = signals.recv() => {
                tracing::debug!("{} during cleanup: already terminating", signals::name(got.signo));
            }
        }
        if !reaper.reap().children_left {
            break;
        }
        sweep.run(if killed { libc::SIGKILL } else { libc::SIGTERM });
    }
    tracing::info!("leftovers terminated ({count})");
}

/// Signals the group and every child of podvisor; each gets SIGTERM once.
struct Sweep {
    /// The step's process group, if it has its own.
    group: Option<i32>,
    /// Pids already sent SIGTERM.
    signalled: HashSet<i32>,
}

impl Sweep {
    fn group_alive(&self) -> bool {
        // SAFETY: signal 0 only checks for existence.
        self.group
            .is_some_and(|g| unsafe { libc::kill(-g, 0) } == 0)
    }

    /// Sends `signo`; returns how many processes it reached.
    fn run(&mut self, signo: i32) -> usize {
        let mut n = 0;
        if let Some(g) = self.group {
            // SAFETY: kill(2) on the step's own group.
            if unsafe { libc::kill(-g, signo) } == 0 {
                n += 1;
            }
        }
        for pid in children() {
            if signo == libc::SIGKILL || self.signalled.insert(pid) {
                // SAFETY: kill(2) on a child of ours; it cannot be recycled before we reap it.
                if unsafe { libc::kill(pid, signo) } == 0 {
                    n += 1;
                }
            }
        }
        n
    }
}

/// Pids whose parent is podvisor, read from /proc.
fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| parent_of(pid) == Some(me))
        .collect()
}

/// The ppid field of /proc/PID/stat (after the command name, which may hold spaces and parens).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}
