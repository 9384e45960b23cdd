//! After the main child ends, whatever it left behind — the rest of its process group and orphans
//! reparented to podvisor (as PID 1 or child subreaper) — gets SIGTERM (and SIGCONT, so that a
//! stopped process can act on it), then SIGKILL after the grace period; podvisor returns once it
//! has no child left. Nothing of the step outlives it.
//!
//! Leftovers are found three ways: the step's group is signalled as a whole (atomic against
//! forks), podvisor's children are read from /proc (daemons that left the group come back to us
//! when their parent dies), and as PID 1 `kill(-1)` reaches everything in the PID namespace,
//! which works even where /proc belongs to another namespace.

use std::collections::HashSet;

use nix::libc;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{sleep_until, Instant};

use crate::config::Config;
use crate::deadline::sleep_until_opt;
use crate::run::child::Child;
use crate::run::reaper::Reaper;
use crate::run::signals::{self, Received};

/// Terminates and reaps every leftover process. `deadline` is the SIGKILL time of a grace period
/// already running (a terminating signal came before the child ended): leftovers get no more
/// than what is left of it, so that podvisor ends within the one grace period it was given
/// (and before Kubernetes' own SIGKILL, when --grace-period is set below it).
pub async fn terminate(
    child: &Child,
    config: &Config,
    reaper: &Reaper,
    signals: &mut UnboundedReceiver<Received>,
    deadline: Option<Instant>,
) {
    let mut sweep = Sweep {
        group: child.group.then_some(child.pid.as_raw()),
        me: std::process::id() as i32,
        seen: HashSet::new(),
        started: false,
        blind: false,
    };
    if !any(child, reaper) {
        return;
    }
    let mut seen = reaper.passes();
    sweep.run(libc::SIGTERM);
    // Only zombies left (already exited, just not reaped yet) is nothing to report.
    let report = !sweep.seen.is_empty() || sweep.blind;
    if report {
        tracing::info!("terminating {} with SIGTERM", sweep.counted());
    }
    let fresh = Instant::now() + config.grace_period;
    let kill_at = deadline.map_or(fresh, |d| d.min(fresh));
    let mut killed = false;
    // Blind and not PID 1 (no /proc of our own namespace): orphans that left the step's group
    // cannot be found to be signalled, and waiting for them would never end.
    let mut give_up_at: Option<Instant> = None;
    loop {
        tokio::select! {
            // Something was reaped: maybe the last one, maybe new orphans to signal.
            _ = reaper.pass_after(seen) => {}
            // Leftovers that ignore SIGTERM.
            _ = sleep_until(kill_at), if !killed => {
                killed = true;
                sweep.run(libc::SIGKILL);
                tracing::info!("grace period of {} expired, sending SIGKILL to the leftovers",
                    crate::config::duration::show(config.grace_period));
                if sweep.blind && sweep.me != 1 {
                    give_up_at = Some(Instant::now() + BLIND_REAP_WAIT);
                }
            }
            // The SIGKILLed ones had their time to be reaped; the rest are out of our sight.
            _ = sleep_until_opt(give_up_at) => {
                tracing::warn!(
                    "leftover processes outside the step's group cannot be found without this \
                     PID namespace's /proc; not waiting for them"
                );
                break;
            }
            // Signals still arrive; the leftovers are being stopped already.
            Some(got) = signals.recv() => {
                tracing::debug!("{} during cleanup: already terminating", signals::name(got.signo));
            }
        }
        if !reaper.reap().children_left {
            break;
        }
        seen = reaper.passes();
        sweep.run(if killed { libc::SIGKILL } else { libc::SIGTERM });
    }
    if report || !sweep.seen.is_empty() {
        if sweep.blind && sweep.seen.is_empty() {
            tracing::info!("leftovers terminated");
        } else {
            tracing::info!("leftovers terminated ({})", sweep.seen.len());
        }
    }
}

/// Whether the step left anything behind: a child of podvisor's not reaped yet, or a live
/// member of its process group. When not, [`terminate`] has nothing to do.
pub fn any(child: &Child, reaper: &Reaper) -> bool {
    reaper.reap().children_left || (child.group && kill(-child.pid.as_raw(), 0))
}

/// How long SIGKILLed leftovers get to be reaped when the rest cannot be seen.
const BLIND_REAP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Signals what the step left; each process gets SIGTERM once, SIGKILL as often as needed.
struct Sweep {
    /// The step's process group, if it has its own.
    group: Option<i32>,
    /// podvisor's pid (1 as init).
    me: i32,
    /// Every leftover found so far (and sent SIGTERM).
    seen: HashSet<i32>,
    /// The group-wide (and, as PID 1, namespace-wide) SIGTERM went out.
    started: bool,
    /// /proc is not this PID namespace's: leftovers are signalled but cannot be counted.
    blind: bool,
}

impl Sweep {
    /// "N leftover process(es)", or what can be said when they cannot be counted: a "0" would
    /// be a lie when the group-wide signal reaches processes /proc does not show us.
    fn counted(&self) -> String {
        if self.blind && self.seen.is_empty() {
            "the leftover processes (uncounted: this PID namespace's /proc is not mounted)".into()
        } else {
            format!("{} leftover process(es)", self.seen.len())
        }
    }

    fn run(&mut self, signo: i32) {
        // Found before the group-wide kill: a process born in between gets that signal anyway.
        let found = self.find();
        self.blind = found.is_none();
        let first = !self.started;
        self.started = true;
        let wide = first || signo == libc::SIGKILL;
        if wide {
            if let Some(g) = self.group {
                send(-g, signo);
            }
            if self.me == 1 {
                // Everything in our PID namespace but ourselves: all of it is the step's.
                send(-1, signo);
            }
        }
        for (pid, pgrp) in found.into_iter().flatten() {
            let new = self.seen.insert(pid);
            let covered = wide && (self.me == 1 || Some(pgrp) == self.group);
            if (new || signo == libc::SIGKILL) && !covered {
                send(pid, signo);
            }
        }
    }

    /// Live leftovers as (pid, pgrp): members of the step's group and podvisor's children
    /// (everything but podvisor as PID 1). None when /proc is not this PID namespace's.
    fn find(&self) -> Option<Vec<(i32, i32)>> {
        let me_in_proc: i32 = std::fs::read_link("/proc/self")
            .ok()?
            .to_str()?
            .parse()
            .ok()?;
        if me_in_proc != self.me {
            return None;
        }
        let dir = std::fs::read_dir("/proc").ok()?;
        Some(
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&pid| pid != self.me)
                .filter_map(|pid| {
                    let (state, ppid, pgrp) = stat(pid)?;
                    let ours = ppid == self.me || Some(pgrp) == self.group || self.me == 1;
                    (ours && state != 'Z').then_some((pid, pgrp))
                })
                .collect(),
        )
    }
}

/// kill(2), plus SIGCONT after SIGTERM so that a stopped process wakes up to handle it.
fn send(target: i32, signo: i32) {
    kill(target, signo);
    if signo == libc::SIGTERM {
        kill(target, libc::SIGCONT);
    }
}

fn kill(target: i32, signo: i32) -> bool {
    // SAFETY: kill(2) with plain numbers. Individual kills go to children of ours (their pid
    // cannot be recycled before we reap them) or, as PID 1, into our own namespace; a group id
    // stays taken while the group has members.
    unsafe { libc::kill(target, signo) == 0 }
}

/// State, ppid and pgrp from /proc/PID/stat (after the command name, which may hold spaces).
fn stat(pid: i32) -> Option<(char, i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat[stat.rfind(')')? + 2..].split(' ');
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}
