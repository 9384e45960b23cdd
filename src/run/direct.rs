//! The plain init: `podvisor [OPTIONS] -- COMMAND` with nothing to wait for, watch, copy or tell
//! (no wait target, until-condition, marker, shutdown call or `--log-to`), which is what runs in
//! front of every step. One thread and no runtime: the main thread waits for its signals in
//! `rt_sigtimedwait`, as tini does, forwards them and reaps. Not a signalfd read, as catatonit
//! does: the signal then reaches podvisor through the descriptor's wait queue and comes back
//! through a read, and in bench row 4 (2 x 6 samples of 200 rounds, the two builds swapped
//! between slots) the signalfd build was the slower in 11 of 12 samples, by 3 µs at the median
//! (bench/notes.md, fifth pass). A second thread, the runtime's
//! start-up and the wake-ups between them cost more than the rest of podvisor's start-up
//! together (bench row 1, docs/benchmarks.md).
//!
//! It runs the same decisions as `supervise` (routing, the grace period, the sidecar's stop,
//! the log lines): only the loop around them differs. Leftovers are rare and need the reaper's
//! async wait: when the step left some, the pump and the runtime start then, and
//! `leftovers::terminate` runs as on the full path.

use std::sync::Arc;

use nix::libc;
use tokio::time::Instant;

use crate::after::exit::{ChildEnd, Outcome};
use crate::config::Config;
use crate::run::child::{self, Child};
use crate::run::reaper::Reaper;
use crate::run::signals::{self, Forwarder};
use crate::run::supervise::{self, State};
use crate::run::{leftovers, oom};

/// The first wait's timeout: podvisor wakes once, this long after the step's start, and then
/// only for a signal. Its start-up (the vfork, the step's exec beside it) leaves it owed CPU
/// time, EEVDF's lag, which a sleep keeps: woken by a signal on the sender's CPU, podvisor
/// preempted the sender there, and the child it then woke could not have that CPU. Traced
/// (bench row 4, 400 rounds with every CPU busy), podvisor preempted the sender in 39 and 22
/// rounds of two runs and in none with this wake-up, which comes once the step's start is
/// over; tini, tini-static, catatonit and dumb-init in 0-4. That the wake-up sheds the lag is
/// a reading of those counts. Untraced, the two builds swapped between slots (4 runs of 3
/// tables): quicker than without it in all 12 tables and than every peer in all 12; 1 and 2 ms
/// did less well than 5 (bench/notes.md, eighth pass).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(5);

/// Whether this run is the plain init that [`run`] handles.
pub fn suits(config: &Config) -> bool {
    !config.command.is_empty()
        && config.waits.is_empty()
        && config.until_files.is_empty()
        && config.until_markers.is_empty()
        && config.marker.is_none()
        && config.shutdown_posts.is_empty()
        && config.log_to.is_none()
        && config.install_to.is_none()
}

/// Spawns COMMAND and supervises it to its end and its leftovers'.
pub fn run(config: &Config, forwarder: Arc<Forwarder>) -> Outcome {
    let reaper = Reaper::new();
    let set = signals::handled_set();
    // The OOM killer takes the step, not podvisor, while there is a step (oom.rs).
    oom::protect();
    let outcome = match child::spawn(&reaper, &config.command, config.group) {
        Err(e) => e.into(),
        Ok(child) => supervise(child, config, &reaper, &forwarder, &set),
    };
    oom::unprotect();
    outcome
}

fn supervise(
    mut child: Child,
    config: &Config,
    reaper: &Arc<Reaper>,
    fwd: &Arc<Forwarder>,
    set: &libc::sigset_t,
) -> Outcome {
    tracing::info!("child started (pid {})", child.pid);
    // The first clock read finds clock_gettime in the vDSO and faults in two of its pages
    // (musl looks it up lazily). Made now, while the child starts, rather than after the
    // first forwarded stop signal, which starts the grace period: there those faults kept
    // this CPU busy for microseconds the child's wake-up could need (bench row 4).
    let _ = Instant::now();
    let mut state = State::default();
    fwd.set(child.pid.as_raw(), child.group);
    let mut settle = Some(SETTLE);
    let end = loop {
        let first = settle.take();
        let timeout = match state.kill_at {
            Some(at) if !state.killed => Some(at.saturating_duration_since(Instant::now())),
            _ => first,
        };
        match signals::next_signal(set, timeout) {
            Ok(Some(got)) if got.signo == libc::SIGCHLD => {
                reaper.reap();
                fwd.forget_reaped(reaper);
                if let Ok(end) = child.end.try_recv() {
                    break end;
                }
            }
            Ok(Some(mut got)) => {
                got.routed = fwd.forward(&got);
                supervise::on_signal(got, &child, config, fwd, &mut state);
            }
            // The wait is capped (68 years): only a deadline that has come is one.
            Ok(None) if state.kill_at.is_some_and(|at| at <= Instant::now()) => {
                supervise::grace_expired(&child, config, &mut state)
            }
            Ok(None) => {}
            Err(e) => {
                // Not expected (the set and the timeout are valid): the child must not run
                // unsupervised, so it goes as podvisor's own error would leave it.
                tracing::error!("reading signals failed: {e}; killing the child");
                supervise::send(&child, libc::SIGKILL);
                state.killed = true;
                break collect(&mut child, reaper);
            }
        }
    };
    fwd.clear();
    tracing::info!("child ended ({})", supervise::describe(end));
    drop(child.terminal.take());
    if leftovers::any(&child, reaper) {
        cleanup(&child, config, reaper, fwd, state.kill_at);
    }
    state.outcome(end)
}

/// The child's end once it was sent SIGKILL, with no signal to say so: the reaper (the only
/// waitpid caller) is asked until it has it, a millisecond apart.
fn collect(child: &mut Child, reaper: &Reaper) -> ChildEnd {
    loop {
        reaper.reap();
        if let Ok(end) = child.end.try_recv() {
            return end;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The step left processes behind: the full path's cleanup, with the pump and a runtime.
fn cleanup(
    child: &Child,
    config: &Config,
    reaper: &Arc<Reaper>,
    fwd: &Arc<Forwarder>,
    kill_at: Option<Instant>,
) {
    let runtime = crate::threads::runtime(false);
    let pumped = signals::pump(reaper.clone(), fwd.clone());
    match (runtime, pumped) {
        (Ok(runtime), Ok((_pump, mut signals))) => {
            runtime.block_on(leftovers::terminate(
                child,
                config,
                reaper,
                &mut signals,
                kill_at,
            ));
            runtime.shutdown_background();
        }
        (Err(e), _) | (_, Err(e)) => {
            // Nothing can wait for them: they go at once rather than outlive the step.
            tracing::error!("cannot wait for the leftover processes ({e}): sending SIGKILL");
            if child.group {
                signals::kill(-child.pid.as_raw(), libc::SIGKILL);
            }
        }
    }
}
