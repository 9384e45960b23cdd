//! One task owns the running step: it selects over the child's end, incoming signals, the grace
//! timer and the sidecar's until-condition. Stopping is data: a signal, then SIGKILL after the
//! grace period. Nothing here polls; with no timer pending the runtime sleeps in epoll.

use std::future::Future;
use std::pin::Pin;

use nix::errno::Errno;
use nix::libc;
use nix::unistd::Pid;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::child::Child;
use crate::config::Config;
use crate::deadline::sleep_until_opt;
use crate::exit::{ChildEnd, Outcome};
use crate::reaper::Reaper;
use crate::signals::{self, Received};
use crate::{duration, leftovers};

/// A condition that, once it holds, stops the child (the sidecar's until-condition).
pub type Until = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the step stands.
struct State {
    /// When SIGKILL goes out unless the child has ended; set by the first terminating signal.
    kill_at: Option<Instant>,
    /// SIGKILL was sent.
    killed: bool,
    /// The sidecar was asked to stop: its death counts as success.
    stopping: bool,
}

/// Supervises `child` until it ends and its leftovers are gone; returns how the step ended.
pub async fn supervise(
    mut child: Child,
    config: &Config,
    reaper: &Reaper,
    signals: &mut UnboundedReceiver<Received>,
    until: Option<Until>,
) -> Outcome {
    tracing::info!("child started (pid {})", child.pid);
    let mut state = State {
        kill_at: None,
        killed: false,
        stopping: false,
    };
    let mut until = until;
    let end = loop {
        tokio::select! {
            // The reaper collected the main child.
            end = &mut child.end => break end.unwrap_or(ChildEnd::Exited(libc::EXIT_FAILURE)),
            // A signal for podvisor: forward it, or turn it into a stop.
            Some(got) = signals.recv() => on_signal(got, &child, config, &mut state),
            // The grace period ran out.
            _ = sleep_until_opt(state.kill_at), if !state.killed => {
                tracing::info!("grace period of {} expired, sending SIGKILL", duration::show(config.grace_period));
                send(&child, libc::SIGKILL);
                state.killed = true;
            }
            // The sidecar's work is done.
            _ = until_holds(&mut until), if until.is_some() => {
                until = None;
                stop(&child, config, &mut state);
                tracing::info!("until-condition holds, stopping the child with {}", signals::name(config.stop_signal));
            }
        }
    };
    tracing::info!("child ended ({})", describe(end));
    // Hand the terminal back before anything else can print.
    drop(child.terminal.take());
    leftovers::terminate(&child, config, reaper, signals, state.kill_at).await;
    if state.stopping {
        Outcome::Stopped(end)
    } else {
        Outcome::Child(end)
    }
}

fn on_signal(got: Received, child: &Child, config: &Config, state: &mut State) {
    // Every path below signals first and logs after: formatting and writing a line costs
    // ~16 µs, which is the forwarding latency's own budget (bench row 4).
    if config.sidecar && got.signo == libc::SIGTERM {
        stop(child, config, state);
        tracing::info!(
            "SIGTERM received, stopping the child with {}",
            signals::name(config.stop_signal)
        );
        return;
    }
    let rewritten = config.rewrites.iter().any(|&(from, _)| from == got.signo);
    if !signals::is_forwarded(got.signo) && !rewritten {
        tracing::debug!("{} is not forwarded", signals::name(got.signo));
        return;
    }
    if !child.group && got.from_terminal() {
        // --no-group: the child shares podvisor's group, so the terminal signalled it too.
        // Forwarding would deliver Ctrl-C twice, and would start a grace period that kills an
        // interactive shell (which ignores SIGINT) for pressing Ctrl-C.
        tracing::debug!(
            "{} from the terminal reached the child directly (--no-group)",
            signals::name(got.signo)
        );
        return;
    }
    let to = config.rewrite(got.signo);
    send(child, to);
    if to == got.signo {
        tracing::info!("forwarding {} to the child", signals::name(to));
    } else {
        tracing::info!(
            "forwarding {} to the child as {}",
            signals::name(got.signo),
            signals::name(to)
        );
    }
    if signals::is_terminating(got.signo) || signals::is_terminating(to) {
        arm_grace(config, state);
    }
}

fn stop(child: &Child, config: &Config, state: &mut State) {
    state.stopping = true;
    send(child, config.stop_signal);
    arm_grace(config, state);
}

/// Starts the grace period once; later signals do not restart it.
fn arm_grace(config: &Config, state: &mut State) {
    if state.kill_at.is_none() {
        state.kill_at = Some(Instant::now() + config.grace_period);
    }
}

/// Signals the child's group (or the child alone with --no-group).
pub fn send(child: &Child, signo: i32) {
    let target = if child.group {
        Pid::from_raw(-child.pid.as_raw())
    } else {
        child.pid
    };
    // SAFETY: kill(2) with a plain number; nix's Signal has no real-time signals.
    let rc = unsafe { libc::kill(target.as_raw(), signo) };
    if rc != 0 {
        match Errno::last() {
            // The child is gone or left its group: nothing to signal, nothing to worry about.
            Errno::ESRCH => tracing::debug!(
                "{} not delivered: No such process ({})",
                signals::name(signo),
                target
            ),
            e => tracing::warn!("sending {} failed: {e}", signals::name(signo)),
        }
    }
}

/// Words for the log: `exited with 3`, `killed by SIGTERM`.
pub fn describe(end: ChildEnd) -> String {
    match end {
        ChildEnd::Exited(c) => format!("exited with {c}"),
        ChildEnd::Signaled(s) => format!("killed by {}", signals::name(s)),
    }
}

async fn until_holds(until: &mut Option<Until>) {
    match until {
        Some(f) => f.as_mut().await,
        None => std::future::pending().await,
    }
}
