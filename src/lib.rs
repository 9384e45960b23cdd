//! podvisor: wait for a pod's sidecars, run the step as a correct init, tell the sidecars.
//!
//! The pipeline, top to bottom; each phase is a folder of its own:
//!
//! 1. `config/`: flags (`cli`) merged with `PODVISOR_*` variables into a validated [`Config`].
//! 2. `run/signals`: every signal but KILL and STOP is blocked before any thread or child exists and read
//!    by one pump thread (`sigwaitinfo`); SIGCHLD makes `run/reaper` (the only waitpid caller)
//!    collect every exited child, and while a child runs the pump forwards to it at once.
//! 3. `after/marker`: with `--marker`, the lock on PATH.lock is taken before anything else (if
//!    its folder is not writable yet, tried again after the wait phase and at the end).
//! 4. `wait/`: every target concurrently under one deadline; `target` parses the `--wait URL`
//!    syntax, one file per probe (each an `attempt -> Ready | NotReady(reason)`); the protocol
//!    probes (postgres, redis, mysql) are pure decisions on the server's first bytes around one
//!    I/O helper, `wire`; a terminating signal cancels.
//! 5. `run/`: `child` spawns the step (own process group, clean mask, terminal); `supervise`
//!    forwards signals, runs the grace timer and the sidecar's `until`-condition; `leftovers`
//!    terminates what the step left behind.
//! 6. `after/`: every way out, in order: the marker is written on every path; `shutdown` POSTs
//!    to the mesh and proxy sidecars (`--shutdown-post`, `--proxy`), then the marker is written
//!    again with the calls' results and its lock let go; `tails` prints the sidecars' logs
//!    (`--show-logs`) when the step failed; `termination` writes the one-line reason of a
//!    failure for Kubernetes; `exit` maps the [`Outcome`] to one exit code.
//! 7. `sidecar/`: the sidecar's side (`until`: the conditions that stop it; `progress`: what it
//!    still waits for, at growing intervals; `logcopy`: with `--log-to`, COMMAND's output passed
//!    through and copied to a bounded file, `rotating`, from the first line podvisor logs to
//!    its exit code).
//!
//! docs/design.md explains the signal, reaping and marker models.

pub mod after;
pub mod config;
pub mod deadline;
pub mod environ;
pub mod fdio;
pub mod install;
pub mod logging;
pub mod run;
pub mod sidecar;
pub mod threads;
pub mod wait;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc::UnboundedReceiver;

pub use after::exit::Outcome;
pub use config::Config;

use after::{marker, shutdown};
use run::reaper::Reaper;
use run::signals::{self, Received};
use run::{child, supervise};
use sidecar::{logcopy, until};
use wait::Report;

/// Runs podvisor to its end. Builds the runtime, so call it from `main` (after
/// `signals::block_early`, which every thread inherits) before any other thread exists.
pub fn run(config: Config) -> Outcome {
    let mut report = Report::default();
    let outcome = run_inner(&config, &mut report);
    finish(&config, &outcome, &report);
    outcome
}

/// The ways out after the marker, in order: the error line, the sidecars' log tails, the
/// termination message, the end of the `--log-to` copy.
fn finish(config: &Config, outcome: &Outcome, report: &Report) {
    match outcome {
        Outcome::Error(reason) | Outcome::SpawnFailed { reason, .. } => {
            tracing::error!("{reason}")
        }
        _ => {}
    }
    let reason = after::termination::reason(config, outcome, report);
    after::tails::show(config, outcome, reason.as_deref());
    if let Some(reason) = &reason {
        after::termination::write(config, reason);
    }
    if logcopy::active() {
        match &reason {
            Some(r) => logcopy::note(&format!("exit code {}: {r}", outcome.code())),
            None => logcopy::note(&format!("exit code {}", outcome.code())),
        }
        logcopy::close();
    }
}

fn run_inner(config: &Config, report: &mut Report) -> Outcome {
    if let Some(path) = &config.log_to {
        // A copy that cannot be made must not stop the sidecar: it runs without one.
        if let Err(e) = logcopy::start(path, config.log_size) {
            tracing::warn!(
                "cannot copy the output to {}: {e}; running without the copy",
                path.display()
            );
        }
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(dir) = &config.install_to {
        return match install::install_to(dir) {
            Ok(path) => {
                tracing::info!("installed {}", path.display());
                Outcome::Done
            }
            Err(e) => Outcome::Error(e),
        };
    }
    signals::check_rewrites(&config.rewrites);
    if std::process::id() != 1 {
        // Orphans of the step are reparented to us instead of the host's init, and reaped.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!("cannot become child subreaper: {e}");
        }
    }
    if run::direct::suits(config) {
        // The plain init: no runtime, no second thread (run/direct.rs).
        return mapped(
            config,
            run::direct::run(config, signals::Forwarder::new(rules(config))),
        );
    }
    let runtime = match threads::runtime(true) {
        Ok(rt) => rt,
        Err(e) => return failed_early(config, format!("cannot start the runtime: {e}")),
    };
    let outcome = runtime.block_on(run_async(config, report));
    // Don't wait for blocking work (a stuck name lookup, a flock wait) to finish.
    runtime.shutdown_background();
    outcome
}

async fn run_async(config: &Config, report: &mut Report) -> Outcome {
    let started_at = SystemTime::now();
    let started = Instant::now();
    // Before anything else, so that a sidecar sees this step as running from the first moment.
    let next = if config.waits.is_empty() {
        AT_END
    } else {
        "trying again after the wait phase"
    };
    let mut marker = marker::Slot::acquire(config.marker.as_deref(), next);
    let outcome = mapped(config, start(config, report, &mut marker).await);
    // The step's output is all passed through (and copied) before the marker says it ended.
    logcopy::drain();
    let pending = shutdown::pending(&config.shutdown_posts);
    let mut record = marker::Record {
        outcome: &outcome,
        waits: report,
        command: &config.command,
        started_at,
        started,
        map_exit: !config.map_exit.is_empty(),
        shutdown: &pending,
    };
    // The after-phase, in this order (README "Exit codes" holds whatever happens here):
    // 1. The marker, first, so that a sidecar watching the shared volume learns at once. If it
    //    could not be prepared so far, a last try: its folder may be writable by now, and the
    //    marker alone still tells the sidecar, though its lock was not held while the step ran.
    marker.try_again(
        Some("at the end (its lock was not held while the step ran)"),
        "it will not be written",
    );
    write_marker(marker.held(), &record);
    // 2. The shutdown calls, made whether or not the marker could be written; then the marker
    //    again with their results. Its lock goes only after that final version, so a reader
    //    that needs the results waits for the lock.
    let results = shutdown::post_all(&config.shutdown_posts, config.shutdown_timeout).await;
    if !results.is_empty() {
        record.shutdown = &results;
        write_marker(marker.held(), &record);
    }
    drop(marker);
    outcome
}

/// `--map-exit` applied to the step's end, and said.
fn mapped(config: &Config, outcome: Outcome) -> Outcome {
    let outcome = outcome.map_exit(&config.map_exit);
    if let (Outcome::Mapped { code, .. }, Some(from)) = (&outcome, outcome.child_code()) {
        tracing::info!("exit code {from} mapped to {code} (--map-exit)");
    }
    outcome
}

/// How signals are routed, from the configuration.
fn rules(config: &Config) -> signals::Rules {
    signals::Rules {
        rewrites: config.rewrites.clone(),
        sidecar: config.sidecar,
        stop_signal: config.stop_signal,
        me: std::process::id() as i32,
    }
}

/// The error line's end when the marker could not be prepared and the next try is the last.
const AT_END: &str = "trying again at the end";

/// Writes the marker, if there is one; a failure is one error line and changes nothing else.
fn write_marker(marker: Option<&marker::Marker>, record: &marker::Record<'_>) {
    if let Some(marker) = marker {
        if let Err(e) = marker.write(record) {
            tracing::error!("cannot write the marker {}: {e}", marker.path().display());
        }
    }
}

/// podvisor could not set up its signals: the after-phase that is possible without a runtime
/// (shutdown calls, log tails, termination message); `main` exits with its code.
pub fn fail(config: &Config, reason: String) -> Outcome {
    let outcome = failed_early(config, reason);
    finish(config, &outcome, &Report::default());
    outcome
}

/// podvisor's own error before its runtime exists: the shutdown calls still go out (on a
/// runtime of their own), as on every other way out. `main` reports the error.
pub fn failed_early(config: &Config, reason: String) -> Outcome {
    shutdown::post_all_blocking(&config.shutdown_posts, config.shutdown_timeout);
    Outcome::Error(reason)
}

/// Signals and reaping, then the steps; every way out of here is recorded by the marker.
async fn start(config: &Config, report: &mut Report, marker: &mut marker::Slot) -> Outcome {
    let reaper = Reaper::new();
    let forwarder = signals::Forwarder::new(rules(config));
    let (pump, mut signals) = match signals::pump(reaper.clone(), forwarder.clone()) {
        Ok(p) => p,
        Err(e) => return Outcome::Error(format!("cannot read signals: {e}")),
    };
    steps(
        config,
        &reaper,
        (&pump, &mut signals),
        &forwarder,
        report,
        marker,
    )
    .await
}

/// wait -> run -> until: the part of the pipeline that the marker records.
async fn steps(
    config: &Config,
    reaper: &Arc<Reaper>,
    (pump, signals): (&signals::Pump, &mut UnboundedReceiver<Received>),
    forwarder: &signals::Forwarder,
    report: &mut Report,
    marker: &mut marker::Slot,
) -> Outcome {
    if !config.waits.is_empty() {
        let tracker = wait::Tracker::new(&config.waits);
        tokio::select! {
            done = wait::wait_all(&config.waits, &config.policy, reaper, &tracker) => {
                *report = done;
                // Signals that came while the last target turned ready, not read yet, belong
                // to the wait phase too: they must not reach the child once it starts.
                if let Some(signo) = queued_during_wait(forwarder.rules(), pump, signals).await {
                    return cancelled(config, signo);
                }
            }
            signo = next_terminating(forwarder.rules(), signals) => {
                // The marker lists every target as far as it got.
                *report = tracker.report();
                return cancelled(config, signo);
            }
        }
        if !report.all_ready() {
            // --no-strict runs COMMAND anyway; with nothing to run, a failed wait is a failure
            // (an exec probe `podvisor --no-strict --wait-tcp ...` must not always say ready).
            let fails = config.strict || config.command.is_empty();
            for t in report.targets.iter().filter(|t| !t.ready) {
                let line = format!(
                    "{} not ready after {}ms ({}): {}",
                    t.target,
                    t.after.as_millis(),
                    wait::count(t.attempts, "attempt"),
                    t.last_error.as_deref().unwrap_or("no attempt finished")
                );
                if fails {
                    tracing::error!("{line}");
                } else {
                    tracing::warn!("{line}");
                }
            }
            if fails {
                return Outcome::WaitFailed(report.failure());
            }
            tracing::warn!("--no-strict: running the command anyway");
        }
        // The sidecars waited for have had their start by now: one of them (`--until-marker`)
        // may have made the marker's folder writable for this UID.
        marker.try_again(
            Some("after the wait phase (its lock is held from now on)"),
            AT_END,
        );
    }

    let until: Option<supervise::Until> =
        (!config.until_files.is_empty() || !config.until_markers.is_empty()).then(|| {
            Box::pin(until::until(
                config.until_files.clone(),
                config.until_markers.clone(),
                config.policy.interval,
            )) as supervise::Until
        });

    if config.command.is_empty() {
        wait::file::remove_retired();
        let Some(until) = until else {
            return Outcome::Done;
        };
        tokio::select! {
            _ = until => {
                tracing::info!("until-condition holds");
                return Outcome::Done;
            }
            signo = next_terminating(forwarder.rules(), signals) => {
                // A sidecar stopped from outside has done its job.
                if config.sidecar {
                    tracing::info!("{} received: sidecar stopped", signals::name(signo));
                    return Outcome::Done;
                }
                tracing::warn!("{} before the until-condition held", signals::name(signo));
                return Outcome::Cancelled(signo);
            }
        }
    }

    // The OOM killer takes the step, not podvisor, while there is a step (run/oom.rs).
    run::oom::protect();
    let spawned = child::spawn(reaper, &config.command, config.group);
    if spawned.is_ok() {
        // The step's start is what the wait phase was for. vfork lets podvisor go on once the
        // child's exec has dropped our memory, not once the new program runs: on the same CPU
        // podvisor's bookkeeping would take it from the rest of the exec (bench row 3, shuffled,
        // 40 runs: median 0.525 / 0.551 -> 0.467 / 0.507 ms). Not in the plain init: there it
        // bought nothing measurable, in row 1 or row 4 (bench/notes.md, fourth pass).
        let _ = nix::sched::sched_yield();
    }
    // Not before: removing a watch wakes a kernel worker (wait/file.rs).
    wait::file::remove_retired();
    let outcome = match spawned {
        Err(e) => e.into(),
        Ok(child) => supervise::supervise(child, config, reaper, signals, forwarder, until).await,
    };
    run::oom::unprotect();
    outcome
}

/// The outcome of a terminating signal during the wait phase.
fn cancelled(config: &Config, signo: i32) -> Outcome {
    // A sidecar stopped from outside (the kubelet at pod end) has nothing left to do.
    if config.sidecar {
        tracing::info!(
            "{} during the wait phase: sidecar stopped, not running the command",
            signals::name(signo)
        );
        return Outcome::Done;
    }
    tracing::warn!(
        "{} during the wait phase, not running the command",
        signals::name(signo)
    );
    Outcome::Cancelled(signo)
}

/// Drains what the wait phase left unread: the first terminating signal, if any; others are
/// dropped like those read during the wait.
async fn queued_during_wait(
    rules: &signals::Rules,
    pump: &signals::Pump,
    signals: &mut UnboundedReceiver<Received>,
) -> Option<i32> {
    // Signals sent but not yet read by the pump thread (busy, or not scheduled yet) belong to
    // the wait phase too: the pump reads all of them, then says so.
    pump.drain();
    let mut cancel = None;
    while let Some(got) = signals.recv().await {
        if got.signo == signals::DRAINED {
            break;
        }
        match rules.terminating(&got) {
            Some(signo) => {
                cancel.get_or_insert(signo);
            }
            None => tracing::debug!("{} ignored: no child yet", signals::name(got.signo)),
        }
    }
    cancel
}

/// The next terminating signal (after `--rewrite-signal`); others are dropped (there is no
/// child to forward them to yet, and they are not kept for it).
async fn next_terminating(
    rules: &signals::Rules,
    signals: &mut UnboundedReceiver<Received>,
) -> i32 {
    loop {
        match signals.recv().await {
            Some(got) => match rules.terminating(&got) {
                Some(signo) => return signo,
                None => tracing::debug!("{} ignored: no child yet", signals::name(got.signo)),
            },
            None => return std::future::pending().await,
        }
    }
}
