//! One task owns the running step: it selects over the child's end, incoming signals, the grace
//! timer and the sidecar's until-condition. Stopping is data: a signal, then SIGKILL after the
//! grace period. Nothing here polls; with no timer pending the runtime sleeps in epoll.

use std::future::Future;
use std::pin::Pin;

use nix::libc;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::after::exit::{ChildEnd, Outcome};
use crate::config::duration;
use crate::config::Config;
use crate::deadline::sleep_until_opt;
use crate::run::child::Child;
use crate::run::leftovers;
use crate::run::reaper::Reaper;
use crate::run::signals::{self, Forwarder, Received, Route};

/// A condition that, once it holds, stops the child (the sidecar's until-condition).
pub type Until = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the step stands; shared with the runtime-free supervisor (`direct`).
#[derive(Default)]
pub(crate) struct State {
    /// When SIGKILL goes out unless the child has ended; set by the first terminating signal.
    pub kill_at: Option<Instant>,
    /// SIGKILL was sent.
    pub killed: bool,
    /// The sidecar was asked to stop: its death counts as success.
    pub stopping: bool,
}

impl State {
    /// How the step ended, once the child is collected.
    pub fn outcome(&self, end: ChildEnd) -> Outcome {
        if self.stopping {
            Outcome::Stopped(end)
        } else {
            Outcome::Child(end)
        }
    }
}

/// Supervises `child` until it ends and its leftovers are gone; returns how the step ended.
pub async fn supervise(
    mut child: Child,
    config: &Config,
    reaper: &Reaper,
    signals: &mut UnboundedReceiver<Received>,
    forwarder: &Forwarder,
    until: Option<Until>,
) -> Outcome {
    tracing::info!("child started (pid {})", child.pid);
    let mut state = State::default();
    // The pump forwards from now on (see signals::Forwarder). What it queued before the child
    // existed goes first, in order: no await until then, so the pump cannot overtake it.
    forwarder.set(child.pid.as_raw(), child.group);
    while let Ok(got) = signals.try_recv() {
        on_signal(got, &child, config, forwarder, &mut state);
    }
    let mut until = until;
    let end = loop {
        tokio::select! {
            // Signals first: every signal the pump sent before the child's end was reaped is in
            // the queue before that end, and its bookkeeping (a sidecar's stop makes its death a
            // success) must happen before the loop ends.
            biased;
            // A signal for podvisor: forward it, or turn it into a stop.
            Some(got) = signals.recv() => on_signal(got, &child, config, forwarder, &mut state),
            // The reaper collected the main child.
            end = &mut child.end => break end.unwrap_or(ChildEnd::Exited(libc::EXIT_FAILURE)),
            // The grace period ran out.
            _ = sleep_until_opt(state.kill_at), if !state.killed => grace_expired(&child, config, &mut state),
            // The sidecar's work is done.
            _ = until_holds(&mut until), if until.is_some() => {
                until = None;
                let stop_signal = config.stop_signal.unwrap_or(libc::SIGTERM);
                send(&child, stop_signal);
                stopping(config, &mut state);
                tracing::info!("until-condition holds, stopping the child with {}", signals::name(stop_signal));
            }
        }
    };
    // The pump cleared it when the child was reaped; this only says so here too.
    forwarder.clear();
    // With --log-to: the child's last output goes into the copy before this line.
    crate::sidecar::logcopy::catch_up();
    tracing::info!("child ended ({})", describe(end));
    // Hand the terminal back before anything else can print.
    drop(child.terminal.take());
    leftovers::terminate(&child, config, reaper, signals, state.kill_at).await;
    state.outcome(end)
}

/// The grace period ran out: the child's group gets SIGKILL.
pub(crate) fn grace_expired(child: &Child, config: &Config, state: &mut State) {
    tracing::info!(
        "grace period of {} expired, sending SIGKILL",
        duration::show(config.grace_period)
    );
    send(child, libc::SIGKILL);
    state.killed = true;
    crate::after::termination::grace_period_expired();
}

/// One signal read while the child runs, after the pump (or `direct`) forwarded it: its
/// bookkeeping and log line.
pub(crate) fn on_signal(
    got: Received,
    child: &Child,
    config: &Config,
    fwd: &Forwarder,
    state: &mut State,
) {
    let route = match got.routed {
        // The pump has sent it already (see signals::Forwarder).
        Some(route) => route,
        None if !fwd.running() => {
            // Read after the reaper collected the child: nothing to forward it to.
            tracing::debug!("{} after the child ended", signals::name(got.signo));
            return;
        }
        // Queued before the child started: it goes now, first and in order.
        None => {
            let route = fwd.decide(&got, child.group);
            if let Some(signo) = route.signal() {
                send(child, signo);
            }
            route
        }
    };
    // Either way the signal went out first and the line comes after.
    match route {
        Route::Stop(stop_signal) => {
            stopping(config, state);
            tracing::info!(
                "{} received, stopping the child with {}",
                signals::name(got.signo),
                signals::name(stop_signal)
            );
        }
        Route::Dropped => {
            tracing::info!("{} dropped (--rewrite-signal)", signals::name(got.signo));
        }
        Route::NotForwarded => {
            tracing::debug!(
                "{} is about podvisor itself (si_code {}), not forwarded",
                signals::name(got.signo),
                got.code
            );
        }
        Route::FromTerminal => tracing::debug!(
            "{} from the terminal reached the child directly (--no-group)",
            signals::name(got.signo)
        ),
        Route::Forward(to) => {
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
    }
}

/// The sidecar was asked to stop (its stop signal is out): its end counts as success.
fn stopping(config: &Config, state: &mut State) {
    state.stopping = true;
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
    let pid = child.pid.as_raw();
    signals::kill(if child.group { -pid } else { pid }, signo);
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
