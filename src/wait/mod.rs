//! The wait phase: every target checked concurrently, under one deadline.
//!
//! Each target runs its own loop (attempt, then sleep by the retry policy, or wake early on a
//! file event). The phase ends when all are ready, when the deadline passes, or at once when one
//! target has used up its retries.

pub mod policy;
pub mod target;

mod cmd;
mod connect;
pub(crate) mod file;
mod http;
mod log;
mod mysql;
mod postgres;
mod redis;
mod tcp;
mod timer;
mod tls;
mod unix;
mod wire;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};

use crate::config::duration::show;
use crate::deadline::sleep_until_opt;
use crate::run::reaper::Reaper;
use policy::Policy;
use target::Target;

/// What one attempt found: every probe answers with this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Ready; the detail (a server's version, say) goes in the ready line, and may be empty.
    Ready(String),
    /// Not ready, and why, in the server's terms ("HTTP 503", "connection reset 40 ms after
    /// connect"): it becomes the "still waiting" line and the marker's `last_error`.
    NotReady(String),
}

impl From<Result<(), String>> for Attempt {
    fn from(r: Result<(), String>) -> Self {
        match r {
            Ok(()) => Attempt::Ready(String::new()),
            Err(e) => Attempt::NotReady(e),
        }
    }
}

/// How one target fared, for log lines and the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetReport {
    /// The target, e.g. `tcp://localhost:80`.
    pub target: String,
    /// Whether it became ready.
    pub ready: bool,
    /// Time from the start of the wait phase to ready (or to the end of waiting).
    pub after: Duration,
    /// Attempts made.
    pub attempts: u32,
    /// The last error, if it never became ready.
    pub last_error: Option<String>,
}

/// The result of the wait phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One entry per target, in the order given.
    pub targets: Vec<TargetReport>,
}

impl Report {
    /// Whether every target became ready.
    pub fn all_ready(&self) -> bool {
        self.targets.iter().all(|t| t.ready)
    }

    /// One line naming every target that is not ready, for the marker's reason.
    pub fn failure(&self) -> String {
        self.targets
            .iter()
            .filter(|t| !t.ready)
            .map(|t| {
                format!(
                    "{} not ready: {}",
                    t.target,
                    t.last_error.as_deref().unwrap_or("no attempt finished")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A target's progress, shared between its loop and the phase (which reads it at the deadline,
/// or when the phase is cancelled).
#[derive(Debug, Default)]
struct Progress {
    /// When it became ready, from the start of the phase.
    ready_after: Option<Duration>,
    /// Attempts finished.
    attempts: u32,
    /// The attempt in flight, if any.
    running: Option<u32>,
    /// The error of the last finished attempt.
    last_error: Option<String>,
}

impl Progress {
    /// Why the target is not ready, also while an attempt is in flight (`at` says when: "" or
    /// " when waiting ended").
    fn failure(&self, at: &str) -> String {
        match (self.running, &self.last_error) {
            (None, Some(e)) => e.clone(),
            (None, None) => "no attempt finished".to_owned(),
            (Some(n), None) => format!("attempt {n} still running{at}"),
            (Some(n), Some(e)) => format!("attempt {n} still running{at}; the one before: {e}"),
        }
    }
}

/// How far every target of a wait phase got: kept outside the phase's future, so that a phase
/// cancelled by a signal (its future dropped) still reports every target, with its real
/// attempts, in the marker.
#[derive(Debug)]
pub struct Tracker {
    /// When the phase started.
    start: Instant,
    /// The targets' names, in the order given.
    names: Vec<String>,
    /// One per target, shared with its loop.
    progress: Vec<Arc<Mutex<Progress>>>,
}

impl Tracker {
    /// Starts the clock of the phase for these targets.
    pub fn new(targets: &[Target]) -> Self {
        Self {
            start: Instant::now(),
            names: targets.iter().map(ToString::to_string).collect(),
            progress: targets.iter().map(|_| Arc::default()).collect(),
        }
    }

    /// Every target as far as it got: not ready yet = not ready, after the time so far.
    pub fn report(&self) -> Report {
        let elapsed = self.start.elapsed();
        let targets = self
            .names
            .iter()
            .zip(&self.progress)
            .map(|(target, p)| {
                let p = p.lock().unwrap_or_else(PoisonError::into_inner);
                TargetReport {
                    target: target.clone(),
                    ready: p.ready_after.is_some(),
                    after: p.ready_after.unwrap_or(elapsed),
                    attempts: p.running.unwrap_or(p.attempts),
                    last_error: p
                        .ready_after
                        .is_none()
                        .then(|| p.failure(" when waiting ended")),
                }
            })
            .collect();
        Report { targets }
    }

    fn is_ready(&self, i: usize) -> bool {
        self.progress[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ready_after
            .is_some()
    }
}

/// How often a pending target is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How a target's loop ended.
enum End {
    Ready,
    OutOfRetries,
}

/// Waits for every target (`tracker` made of the same targets); logs progress and the outcome
/// of each.
pub async fn wait_all(
    targets: &[Target],
    policy: &Policy,
    reaper: &Arc<Reaper>,
    tracker: &Tracker,
) -> Report {
    let start = tracker.start;
    // A deadline beyond what the clock can represent is no deadline (`--timeout 500000000y`).
    let deadline = policy.timeout.and_then(|t| start.checked_add(t));
    let names = &tracker.names;
    let progress = &tracker.progress;
    tracing::info!(
        "waiting for {} ({})",
        names.join(", "),
        policy
            .timeout
            .map_or("no timeout".to_owned(), |t| format!("timeout {}", show(t)))
    );

    let mut set = JoinSet::new();
    for (i, t) in targets.iter().enumerate() {
        let (t, p, pol, reaper, name) = (
            t.clone(),
            progress[i].clone(),
            policy.clone(),
            reaper.clone(),
            names[i].clone(),
        );
        set.spawn(async move {
            (
                i,
                run_target(t, name, pol, deadline, start, reaper, p).await,
            )
        });
    }

    // The "still waiting" lines come from here, not from the targets' loops, so that a target
    // whose attempts are slow (a silent server, a long --attempt-timeout) is reported on time too.
    let mut ticker = interval_at(start + PROGRESS_EVERY, PROGRESS_EVERY);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pending = targets.len();
    while pending > 0 {
        let joined = tokio::select! {
            joined = set.join_next() => joined,
            _ = sleep_until_opt(deadline) => break,
            _ = ticker.tick() => {
                for (i, name) in names.iter().enumerate().filter(|(i, _)| !tracker.is_ready(*i)) {
                    let p = progress[i].lock().unwrap_or_else(PoisonError::into_inner);
                    tracing::info!(
                        "still waiting for {name}: {} in {}, last error: {}",
                        count(p.running.unwrap_or(p.attempts), "attempt"),
                        show_ms(start.elapsed()),
                        p.failure("")
                    );
                }
                continue;
            }
        };
        match joined {
            Some(Ok((_, End::Ready))) => pending -= 1,
            Some(Ok((_, End::OutOfRetries))) => break,
            Some(Err(e)) => {
                tracing::error!("a wait task failed: {e}");
                break;
            }
            None => break,
        }
    }
    // Abandoned attempts are dropped here; a --wait-cmd attempt kills its shell on drop.
    set.abort_all();
    tracker.report()
}

/// Checks one target by the policy until it is ready or out of retries.
async fn run_target(
    target: Target,
    name: String,
    policy: Policy,
    deadline: Option<Instant>,
    start: Instant,
    reaper: Arc<Reaper>,
    progress: Arc<Mutex<Progress>>,
) -> End {
    let mut watcher = match &target {
        Target::File(path) => Some(file::Watcher::new(path).retired_late()),
        _ => None,
    };
    let mut follower = match &target {
        Target::Log(l) => Some(log::Follower::new(l)),
        _ => None,
    };
    let ready = |attempts: u32, detail: &str| {
        progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ready_after = Some(start.elapsed());
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        tracing::info!(
            "{name} is ready after {} ({}){detail}",
            show_ms(start.elapsed()),
            count(attempts, "attempt")
        );
        End::Ready
    };
    let mut timer = None;
    let mut attempts = 0u32;
    // When this attempt was due. Attempts are due `delay` apart, start to start, on a grid: the
    // timer wakes up to 1 ms late (tokio rounds deadlines up to whole milliseconds), and
    // sleeping a full delay after each late wake-up would stretch every cycle by that much
    // (measured: --interval 10ms gave a p90 of 10.8 ms from listen() to the step's start).
    let mut due = Instant::now();
    loop {
        attempts = attempts.saturating_add(1);
        progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running = Some(attempts);
        let bound = match deadline {
            Some(d) => policy
                .attempt_timeout
                .min(d.saturating_duration_since(Instant::now())),
            None => policy.attempt_timeout,
        };
        let result = match timeout(
            bound,
            attempt(&target, watcher.as_mut(), follower.as_mut(), &reaper),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Attempt::NotReady(format!("attempt timed out after {}", show(bound))),
        };
        {
            let mut p = progress.lock().unwrap_or_else(PoisonError::into_inner);
            p.attempts = attempts;
            p.running = None;
            if let Attempt::NotReady(e) = &result {
                p.last_error = Some(e.clone());
            }
        }
        let e = match result {
            Attempt::Ready(detail) => return ready(attempts, &detail),
            Attempt::NotReady(e) => e,
        };
        if !policy.may_retry(attempts) {
            return End::OutOfRetries;
        }
        tracing::debug!("{name}: attempt {attempts} failed: {e}");
        let delay = policy.delay(attempts);
        let now = Instant::now();
        // An attempt that took longer than the delay still gets a full delay after it.
        due = if due + delay > now {
            due + delay
        } else {
            now + delay
        };
        let until_due = due.saturating_duration_since(Instant::now());
        match (watcher.as_mut(), follower.as_mut()) {
            (Some(w), _) => {
                if w.exists_within(until_due).await {
                    return ready(attempts, "");
                }
            }
            (_, Some(f)) => {
                if f.ready_within(until_due).await {
                    return ready(attempts, "");
                }
            }
            _ => {
                timer
                    .get_or_insert_with(timer::Timer::new)
                    .sleep_until(due)
                    .await
            }
        }
    }
}

/// One attempt on any target: the one place that maps a target to its probe.
async fn attempt(
    target: &Target,
    watcher: Option<&mut file::Watcher>,
    follower: Option<&mut log::Follower>,
    reaper: &Reaper,
) -> Attempt {
    match target {
        Target::Tcp(t) => tcp::attempt(t).await,
        Target::File(path) => match watcher.map(file::Watcher::check) {
            Some(true) => Attempt::Ready(String::new()),
            _ => Attempt::NotReady(format!("{} does not exist", path.display())),
        },
        Target::Unix(path) => unix::attempt(path).await,
        Target::Http(h) => http::attempt(h).await,
        Target::Postgres(db) => postgres::attempt(db).await,
        Target::Redis(db) => redis::attempt(db).await,
        Target::Mysql(db) => mysql::attempt(db).await,
        Target::Log(_) => match follower {
            Some(f) => f.check().into(),
            None => Attempt::NotReady("cannot follow the log".into()),
        },
        Target::Cmd(script) => cmd::probe(script, reaper).await.into(),
    }
}

fn show_ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// `1 attempt`, `2 attempts`.
pub fn count(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

// What the shutdown calls (after/shutdown.rs) share with the probes: the connect that tells a
// refused port apart, TLS, and the Basic credentials' encoding.
pub(crate) use http::{basic_auth, Io};
pub(crate) use tcp::open as tcp_open;
pub(crate) use tls::connect as tls_connect;
