//! Raw signals become events at this one boundary.
//!
//! podvisor installs no signal handlers: every signal it cares about is blocked in all threads
//! (in `main` first, and by each thread podvisor starts, see threads.rs) and read by one pump
//! thread.
//! Blocked signals are queued even for PID 1, whose default-disposition signals the kernel would
//! otherwise drop; real-time signals keep their count; and nothing runs in signal context.
//! The child gets an empty mask and default dispositions back before exec (see `child.rs`).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use crate::run::dispositions;
use crate::run::reaper::Reaper;

/// The first real-time signal as podvisor names and forwards it: 34, glibc's SIGRTMIN and what
/// `kill -l` shows. musl's SIGRTMIN is 35 (it keeps 34 for itself), and the static image is built
/// with musl: a step or agent built with glibc still sends 34 for "SIGRTMIN", and it must be
/// forwarded, not kill podvisor. podvisor uses none of the libc's internal signals.
pub fn rtmin() -> i32 {
    libc::SIGRTMIN().min(34)
}

/// Signals that ask the step to end; they start the grace period and cancel the wait phase.
pub fn is_terminating(signo: i32) -> bool {
    [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP].contains(&signo)
}

/// KILL and STOP: no process can block, catch or ignore them.
fn uncatchable(signo: i32) -> bool {
    signo == libc::SIGKILL || signo == libc::SIGSTOP
}

/// The synchronous faults. Blocked like every other signal, so that one sent with kill(2) is
/// read and forwarded instead of killing podvisor; a genuine fault of podvisor still kills it:
/// the kernel (force_sig_info_to_task) unblocks a fault it raises and resets it to SIG_DFL.
/// Their disposition is left alone (Rust's stack-overflow handler).
fn is_fault(signo: i32) -> bool {
    [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGSYS,
    ]
    .contains(&signo)
}

/// Every signal the pump reads: 1..=64 but KILL and STOP. 32 and 33 too
/// (glibc's and musl's internal signals: podvisor uses neither thread cancellation nor
/// setuid-in-threads nor timer threads, and unblocked, their default action would kill it).
fn handled() -> impl Iterator<Item = i32> {
    (1..=64).filter(|&s| !uncatchable(s))
}

/// A sigset_t with these signals (1..=64), written bit by bit: musl's sigaddset and sigfillset
/// refuse the signals it reserves (32-34), and 34 is glibc's SIGRTMIN, which podvisor forwards.
/// Allocation-free, so a forked child may call it too.
pub fn raw_sigset(signals: impl IntoIterator<Item = i32>) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, at least 64 bits and u64-aligned on Linux (glibc and musl);
    // the kernel reads bit N-1 of its first word for signal N.
    unsafe {
        let mut raw = std::mem::zeroed::<libc::sigset_t>();
        let word = (&mut raw as *mut libc::sigset_t).cast::<u64>();
        for s in signals.into_iter().filter(|s| (1..=64).contains(s)) {
            *word |= 1u64 << (s - 1);
        }
        raw
    }
}

/// Puts `signo` back to SIG_DFL with the raw syscall: the libc wrappers refuse their reserved
/// signals (glibc 32-33, musl 32-34). See `dispositions`, which keeps the record.
pub fn set_default(signo: i32) {
    dispositions::set_default(signo);
}

/// Blocks every signal but KILL and STOP in the calling thread: the first thing `main` does,
/// before the configuration is parsed, so that no signal sent to podvisor at any moment (a
/// SIGUSR1 in its first milliseconds, a SIGPWR, a kill -SEGV) is acted on by its default action:
/// each is queued and read by the pump. Blocked signals queue even for PID 1, whose
/// default-disposition signals the kernel would otherwise drop.
///
/// Also puts them back to their default disposition: podvisor may have inherited some as
/// ignored (nohup, some CI agents; an ignored SIGCHLD would make the kernel reap the step behind
/// our back). Left alone: the faults (see [`is_fault`]) and SIGPIPE, which Rust's runtime
/// ignores, so that a write to a closed pipe stays EPIPE in any thread.
///
/// The raw rt_sigprocmask syscall: glibc's sigprocmask and pthread_sigmask silently drop its
/// internal signals 32 and 33 from the set, which would leave them fatal.
pub fn block_early() -> io::Result<()> {
    // Only the ignored ones: at start every other disposition already is the default (exec
    // drops handlers), and setting all ~60 cost as many system calls (bench/notes.md).
    for s in handled().filter(|&s| !is_fault(s) && s != libc::SIGPIPE) {
        if dispositions::is_ignored(s) {
            set_default(s);
        }
    }
    block_handled()
}

/// Blocks every handled signal in the calling thread, with the raw system call.
pub(crate) fn block_handled() -> io::Result<()> {
    let set = raw_sigset(handled());
    // SAFETY: a valid set and no old-set pointer.
    if unsafe { raw_sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// rt_sigprocmask with the kernel's 8-byte set: the libc wrappers drop their reserved signals
/// (glibc 32-33) from the set. A raw system call and nothing else, so a child between fork (or
/// vfork) and exec may call it. Returns the syscall's result (0, or -1 with errno set).
///
/// # Safety
/// `set` and `old` must be valid or null.
pub(crate) unsafe fn raw_sigprocmask(
    how: i32,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> libc::c_long {
    libc::syscall(libc::SYS_rt_sigprocmask, how, set, old, 8usize)
}

/// Once the configuration is known: says which `--rewrite-signal` sources podvisor can never
/// see (everything else is already blocked by [`block_early`]).
pub fn check_rewrites(rewrites: &[(i32, i32)]) {
    for &(from, _) in rewrites {
        if uncatchable(from) || from == libc::SIGCHLD {
            tracing::warn!(
                "--rewrite-signal {}: podvisor cannot take this signal, it is never rewritten",
                name(from)
            );
        }
    }
}

/// One received signal: its number and who sent it (0 for the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The signal number.
    pub signo: i32,
    /// The sender's pid, as the kernel reports it.
    pub sender: i32,
    /// siginfo's si_code: SI_USER for kill(2), SI_KERNEL for the terminal's Ctrl-C, ...
    pub code: i32,
    /// Where the pump routed it, having sent what the route says: `None` when no child ran at
    /// that moment (see [`Forwarder`]).
    pub routed: Option<Route>,
}

impl Received {
    /// A signal the terminal driver sent to its whole foreground process group (Ctrl-C,
    /// Ctrl-\, a window resize): whoever shares that group with podvisor has it already.
    pub fn from_terminal(&self) -> bool {
        self.code == libc::SI_KERNEL
            && [libc::SIGINT, libc::SIGQUIT, libc::SIGWINCH].contains(&self.signo)
    }

    /// A signal about podvisor itself rather than a message for the step: one the kernel raised
    /// for podvisor's own doing (SIGPIPE or SIGXFSZ from its own write: si_code SI_USER with its
    /// own pid), or a kernel signal other than the terminal's (si_code > 0: SIGTTIN/SIGTTOU for
    /// its own terminal access, Ctrl-Z's SIGTSTP when podvisor holds the terminal, SIGXCPU for its
    /// own CPU limit, SIGURG/SIGIO for its own sockets). Signals sent by another process have
    /// si_code <= 0 (SI_USER, SI_QUEUE, SI_TKILL). The terminal's INT, QUIT, WINCH and its
    /// hangup's HUP and CONT are for the step.
    pub fn about_podvisor(&self, me: i32) -> bool {
        if self.code == libc::SI_USER && self.sender == me {
            return true;
        }
        self.code > 0
            && ![
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGWINCH,
                libc::SIGHUP,
                libc::SIGCONT,
            ]
            .contains(&self.signo)
    }
}

/// What a signal means while the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The sidecar's stop request (its first terminating signal): stop the child with this.
    Stop(i32),
    /// Forward it as this signal (after `--rewrite-signal`).
    Forward(i32),
    /// `--rewrite-signal SIG:0`: dropped, as if it never came.
    Dropped,
    /// About podvisor itself (see [`Received::about_podvisor`]), not for the step.
    NotForwarded,
    /// `--no-group`: the terminal's signal reached the child directly.
    FromTerminal,
}

impl Route {
    /// The signal that goes to the child, if any.
    pub fn signal(self) -> Option<i32> {
        match self {
            Route::Stop(s) | Route::Forward(s) => Some(s),
            Route::Dropped | Route::NotForwarded | Route::FromTerminal => None,
        }
    }
}

/// The configuration's part in routing a signal.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `--rewrite-signal FROM:TO`, first match wins; TO 0 drops FROM.
    pub rewrites: Vec<(i32, i32)>,
    /// Sidecar role: the first terminating signal is the stop request.
    pub sidecar: bool,
    /// `--stop-signal`, when set; else the stop request's own signal goes to the child.
    pub stop_signal: Option<i32>,
    /// podvisor's own pid (1 as init), to tell its own SIGPIPE from a sent one.
    pub me: i32,
}

impl Rules {
    /// Where `got` goes while a child runs; `group` is false with `--no-group`, `stopping` is
    /// true once a stop request was routed. Pure, so that the pump (which sends) and
    /// `supervise` (for what was queued before the child started) decide alike.
    pub fn route(&self, got: &Received, group: bool, stopping: bool) -> Route {
        if got.about_podvisor(self.me) {
            return Route::NotForwarded;
        }
        let to = self.rewrite(got.signo);
        if to == 0 {
            return Route::Dropped;
        }
        if !group && got.from_terminal() {
            // --no-group: the child shares podvisor's group, so the terminal signalled it too.
            // Forwarding would deliver Ctrl-C twice, and would start a grace period that kills
            // an interactive shell (which ignores SIGINT) for pressing Ctrl-C.
            return Route::FromTerminal;
        }
        if self.sidecar && !stopping && (is_terminating(got.signo) || is_terminating(to)) {
            // Whatever the runtime sends (an image's STOPSIGNAL: QUIT for nginx, INT for
            // postgres) is its author's choice of a graceful stop, unless --stop-signal says.
            return Route::Stop(self.stop_signal.unwrap_or(to));
        }
        Route::Forward(to)
    }

    /// The signal to forward in place of `signo` (0: drop it).
    pub fn rewrite(&self, signo: i32) -> i32 {
        self.rewrites
            .iter()
            .find(|&&(from, _)| from == signo)
            .map_or(signo, |&(_, to)| to)
    }

    /// During the wait phase (no child yet): the terminating signal `got` stands for, if any,
    /// after `--rewrite-signal` (`PWR:TERM`, as LXC stops an init); other signals are dropped.
    pub fn terminating(&self, got: &Received) -> Option<i32> {
        if got.about_podvisor(self.me) {
            return None;
        }
        let to = self.rewrite(got.signo);
        if to == 0 {
            return None;
        }
        (is_terminating(got.signo) || is_terminating(to)).then_some(to)
    }
}

/// The running child as the pump sees it, so that a signal is forwarded right after it is read:
/// before the event travels the channel to `supervise` and before any log line (bench row 4: that path cost more than tini's whole
/// forward). `supervise` sets it when the child starts; it is cleared as soon as the reaper has
/// collected the child (in the pump too, so no late signal goes to a reused pid) and when
/// supervision ends. With no child (the wait phase) nothing is sent here.
pub struct Forwarder {
    rules: Rules,
    /// kill(2)'s target: `-pgid`, or the pid with `--no-group`; 0 while no child runs.
    target: AtomicI32,
    /// The sidecar's stop request was routed: later terminating signals are forwarded.
    stopping: AtomicBool,
}

impl Forwarder {
    /// No child yet.
    pub fn new(rules: Rules) -> Arc<Self> {
        Arc::new(Self {
            rules,
            target: AtomicI32::new(0),
            stopping: AtomicBool::new(false),
        })
    }

    /// The rules both sides route by.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Routes `got` (a child runs); the first stop request is marked, so that it is the only one.
    pub fn decide(&self, got: &Received, group: bool) -> Route {
        let route = self
            .rules
            .route(got, group, self.stopping.load(Ordering::SeqCst));
        // The pump thread and `supervise` (for what was queued) may decide at once: only the
        // one that marks the stop first has the stop request.
        if let Route::Stop(_) = route {
            if self.stopping.swap(true, Ordering::SeqCst) {
                return self.rules.route(got, group, true);
            }
        }
        route
    }

    /// The child `pid` runs from now on (its own group unless `--no-group`).
    pub fn set(&self, pid: i32, group: bool) {
        let target = if group { -pid } else { pid };
        self.target.store(target, Ordering::Relaxed);
    }

    /// Whether a child runs (set and not yet reaped).
    pub fn running(&self) -> bool {
        self.target.load(Ordering::Relaxed) != 0
    }

    /// No child to forward to any more.
    pub fn clear(&self) {
        self.target.store(0, Ordering::Relaxed);
    }

    /// Sends what `got` routes to, if a child runs; the route, when one was taken.
    pub(crate) fn forward(&self, got: &Received) -> Option<Route> {
        let target = self.target.load(Ordering::Relaxed);
        if target == 0 {
            return None;
        }
        let route = self.decide(got, target < 0);
        if let Some(signo) = route.signal() {
            kill(target, signo);
            // On a busy or single CPU, let the woken child run now rather than after the
            // rest of this wake-up (channel, supervise, the log line): a no-op when its
            // CPU is another one and this one has nothing else to run.
            let _ = nix::sched::sched_yield();
        }
        Some(route)
    }

    /// After a reaping pass: forget the child once the reaper has collected it.
    pub(crate) fn forget_reaped(&self, reaper: &Reaper) {
        let target = self.target.load(Ordering::Relaxed);
        if target != 0 && !reaper.awaits(target.abs()) {
            self.clear();
        }
    }
}

/// kill(2) with a plain number (nix's Signal has no real-time signals); `target` negative for a
/// group. ESRCH (the child is gone or left its group) is only a debug line.
pub fn kill(target: i32, signo: i32) {
    // SAFETY: kill(2) with plain numbers.
    let rc = unsafe { libc::kill(target, signo) };
    if rc != 0 {
        match Errno::last() {
            Errno::ESRCH => tracing::debug!(
                "{} not delivered: No such process ({})",
                name(signo),
                target
            ),
            e => tracing::warn!("sending {} failed: {e}", name(signo)),
        }
    }
}

/// Signals read off the process's queue before the pump ran, for it to take first, in order.
static KEPT: Mutex<Vec<Received>> = Mutex::new(Vec::new());

/// The pump runs: it reads what comes, and nothing is kept for it any more.
static PUMPING: AtomicBool = AtomicBool::new(false);

fn kept() -> MutexGuard<'static, Vec<Received>> {
    KEPT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Before a thread starts (see threads.rs): every handled signal pending for the process is
/// read off its queue and kept for the pump, so that the new thread, in the moment the libc
/// leaves its internal signals unblocked there, finds none to take. Nothing once the pump runs:
/// it takes each signal as it comes.
pub(crate) fn keep_pending() {
    if PUMPING.load(Ordering::SeqCst) {
        return;
    }
    let set = handled_set();
    let mut kept = kept();
    while let Ok(Some(got)) = next_signal(&set, Some(std::time::Duration::ZERO)) {
        kept.push(got);
    }
}

/// What the pump queues once it has read everything sent before [`Pump::drain`] asked.
pub const DRAINED: i32 = 0;

/// The pump: a thread of its own, blocked in `sigwaitinfo` on every blocked signal.
///
/// Why a thread: a signal then reaches the child in the steps tini takes, one `sigwaitinfo`
/// and one `kill`, instead of an epoll wake-up, the runtime's dispatch of the pump task and a
/// signalfd read first (bench row 4). It forwards first and tells the async side after, over
/// the channel, in order; every signal is dequeued by the kernel exactly once, here.
pub struct Pump {
    thread: libc::pthread_t,
}

impl Pump {
    /// Asks the pump to read every signal sent so far and then queue a [`DRAINED`] event: what
    /// comes before it on the channel was sent before this call. The wait phase uses it so that
    /// no signal sent during the wait can reach the child. The request is a SIGCHLD sent to the
    /// pump's own thread (`si_code` SI_TKILL from podvisor itself, which nothing else sends): it
    /// ends the pump's `sigwaitinfo` ahead of the process-wide queue, which the pump then reads
    /// without waiting until it is empty.
    pub fn drain(&self) {
        // SAFETY: the pump thread runs as long as the process (it is never joined).
        unsafe { libc::pthread_kill(self.thread, libc::SIGCHLD) };
    }
}

/// Starts the signal pump: SIGCHLD means "reap now" and never leaves the pump; every other
/// signal is forwarded at once when a child runs (see [`Forwarder`]) and queued, in order, for
/// whoever runs the current phase. Call after [`block_early`] (the thread inherits the mask).
pub fn pump(
    reaper: Arc<Reaper>,
    forwarder: Arc<Forwarder>,
) -> io::Result<(Pump, mpsc::UnboundedReceiver<Received>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let set = handled_set();
    let me = forwarder.rules().me;
    let body = move || {
        let pass_on = |mut got: Received| {
            if got.signo == libc::SIGCHLD {
                reaper.reap();
                forwarder.forget_reaped(&reaper);
                return true;
            }
            got.routed = forwarder.forward(&got);
            tx.send(got).is_ok()
        };
        let kept = std::mem::take(&mut *kept());
        for got in kept {
            if !pass_on(got) {
                return;
            }
        }
        loop {
            let got = match next_signal(&set, None) {
                Ok(Some(got)) => got,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!("reading signals failed: {e}");
                    return;
                }
            };
            let drain =
                got.signo == libc::SIGCHLD && got.code == libc::SI_TKILL && got.sender == me;
            if !drain {
                if !pass_on(got) {
                    return;
                }
                continue;
            }
            while let Ok(Some(got)) = next_signal(&set, Some(std::time::Duration::ZERO)) {
                if !pass_on(got) {
                    return;
                }
            }
            let done = Received {
                signo: DRAINED,
                sender: me,
                code: 0,
                routed: None,
            };
            if tx.send(done).is_err() {
                return;
            }
        }
    };
    // What is pending now is kept for the body, which takes it first; from here on it reads
    // whatever comes, and no later thread keeps anything.
    let thread = crate::threads::start_raw(Box::new(body))?;
    PUMPING.store(true, Ordering::SeqCst);
    Ok((Pump { thread }, rx))
}

/// A relative timeout for the kernel, capped at 68 years (`i32::MAX` seconds): the callers
/// check their deadline again when it returns.
fn timespec(t: std::time::Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: t.subsec_nanos() as _,
    }
}

/// Every signal podvisor reads, as one set for [`next_signal`].
pub(crate) fn handled_set() -> libc::sigset_t {
    raw_sigset(handled())
}

/// The next signal of `set`, waiting for one at most `timeout` (forever when `None`); `None`
/// when none came. The raw rt_sigtimedwait: the libc wrappers would drop their reserved
/// signals from the set.
pub(crate) fn next_signal(
    set: &libc::sigset_t,
    timeout: Option<std::time::Duration>,
) -> io::Result<Option<Received>> {
    let bound = timeout.map(timespec);
    let timeout: *const libc::timespec = match &bound {
        Some(t) => t,
        None => std::ptr::null(),
    };
    loop {
        // SAFETY: a zeroed siginfo_t is valid; every pointer is to a live local.
        let (rc, info) = unsafe {
            let mut info = std::mem::zeroed::<libc::siginfo_t>();
            let rc = libc::syscall(
                libc::SYS_rt_sigtimedwait,
                set as *const libc::sigset_t,
                &mut info as *mut libc::siginfo_t,
                timeout,
                8usize,
            );
            (rc, info)
        };
        if rc > 0 {
            return Ok(Some(Received {
                signo: info.si_signo,
                // SAFETY: si_pid is in every siginfo the kernel fills for a signal (0 if none).
                sender: unsafe { info.si_pid() },
                code: info.si_code,
                routed: None,
            }));
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::EAGAIN => return Ok(None),
            e => return Err(e.into()),
        }
    }
}

/// `SIGTERM`, `SIGRTMIN+3`, or the number for anything else.
pub fn name(signo: i32) -> String {
    let (min, max) = (rtmin(), libc::SIGRTMAX());
    if signo == min {
        return "SIGRTMIN".into();
    }
    if signo == max {
        return "SIGRTMAX".into();
    }
    if (min..max).contains(&signo) {
        return format!("SIGRTMIN+{}", signo - min);
    }
    Signal::try_from(signo)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {signo}"))
}

/// Parses `TERM`, `SIGTERM`, `term`, `15`, `RTMIN+2`, `SIGRTMAX-1`.
pub fn parse(text: &str) -> Result<i32, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(format!("no signal number {n}"))
        };
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let rt = |rest: &str, base: i32, sign: i32| -> Option<i32> {
        // Digits only (i32's parser takes a sign: `RTMAX--3`), and checked: `RTMIN+2147483647`
        // overflowed (a panic in debug builds, found by tests/fuzz_parsers.rs).
        let off = if rest.is_empty() {
            0
        } else if rest.bytes().all(|b| b.is_ascii_digit()) {
            rest.parse::<i32>().ok()?
        } else {
            return None;
        };
        let n = base.checked_add(sign * off)?;
        (rtmin()..=libc::SIGRTMAX()).contains(&n).then_some(n)
    };
    let found = if let Some(rest) = bare.strip_prefix("RTMIN") {
        rt(rest.strip_prefix('+').unwrap_or(rest), rtmin(), 1)
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        rt(rest.strip_prefix('-').unwrap_or(rest), libc::SIGRTMAX(), -1)
    } else {
        format!("SIG{bare}")
            .parse::<Signal>()
            .ok()
            .map(|s| s as i32)
    };
    found.ok_or_else(|| "not a signal name or number".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse("sigquit"), Ok(libc::SIGQUIT));
        assert_eq!(parse("9"), Ok(libc::SIGKILL));
        assert_eq!(parse("RTMIN+2"), Ok(libc::SIGRTMIN() + 2));
        assert_eq!(parse("SIGRTMAX-1"), Ok(libc::SIGRTMAX() - 1));
        assert_eq!(parse("RTMIN"), Ok(libc::SIGRTMIN()));
        for bad in ["", "FOO", "0", "99", "RTMIN+99", "-1"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in [
            libc::SIGTERM,
            libc::SIGRTMIN(),
            libc::SIGRTMIN() + 3,
            libc::SIGRTMAX(),
        ] {
            assert_eq!(parse(&name(s)), Ok(s));
        }
    }

    #[test]
    fn routes() {
        let rules = Rules {
            rewrites: vec![
                (libc::SIGPWR, libc::SIGTERM),
                (libc::SIGUSR1, libc::SIGUSR2),
                (libc::SIGWINCH, 0),
            ],
            sidecar: true,
            stop_signal: Some(libc::SIGQUIT),
            me: 4242,
        };
        let got = |signo, code| Received {
            signo,
            sender: 77,
            code,
            routed: None,
        };
        let user = libc::SI_USER;
        let r = |signo, code, group| rules.route(&got(signo, code), group, false);
        assert_eq!(r(libc::SIGTERM, user, true), Route::Stop(libc::SIGQUIT));
        assert_eq!(r(libc::SIGPWR, user, true), Route::Stop(libc::SIGQUIT));
        assert_eq!(
            rules.route(&got(libc::SIGPWR, user), true, true),
            Route::Forward(libc::SIGTERM)
        );
        assert_eq!(r(libc::SIGUSR1, user, false), Route::Forward(libc::SIGUSR2));
        assert_eq!(r(libc::SIGWINCH, user, true), Route::Dropped);
        assert_eq!(r(libc::SIGURG, user, true), Route::Forward(libc::SIGURG));
        assert_eq!(r(libc::SIGTSTP, user, true), Route::Forward(libc::SIGTSTP));
        assert_eq!(
            r(libc::SIGSEGV, libc::SI_QUEUE, true),
            Route::Forward(libc::SIGSEGV)
        );
        let terminal = libc::SI_KERNEL;
        assert_eq!(r(libc::SIGINT, terminal, false), Route::FromTerminal);
        assert_eq!(r(libc::SIGTSTP, terminal, true), Route::NotForwarded);
        assert_eq!(r(libc::SIGTTOU, terminal, true), Route::NotForwarded);
        assert_eq!(Route::FromTerminal.signal(), None);
        // Its own SIGPIPE (a write to a closed pipe) is about podvisor; a sent one is not.
        let own = Received {
            sender: 4242,
            ..got(libc::SIGPIPE, user)
        };
        assert_eq!(rules.route(&own, true, false), Route::NotForwarded);
        assert_eq!(r(libc::SIGPIPE, user, true), Route::Forward(libc::SIGPIPE));

        let plain = Rules {
            sidecar: false,
            stop_signal: None,
            ..rules.clone()
        };
        assert_eq!(
            plain.route(&got(libc::SIGHUP, terminal), true, false),
            Route::Forward(libc::SIGHUP)
        );
        assert_eq!(
            plain.route(&got(libc::SIGINT, terminal), true, false),
            Route::Forward(libc::SIGINT)
        );
        let sidecar = Rules {
            sidecar: true,
            ..plain.clone()
        };
        // Without --stop-signal the child gets what arrived (rewritten, if it is).
        assert_eq!(
            sidecar.route(&got(libc::SIGQUIT, user), true, false),
            Route::Stop(libc::SIGQUIT)
        );
        assert_eq!(
            sidecar.route(&got(libc::SIGPWR, user), true, false),
            Route::Stop(libc::SIGTERM)
        );
    }

    #[test]
    fn wait_phase_terminating() {
        let rules = Rules {
            rewrites: vec![(libc::SIGPWR, libc::SIGTERM), (libc::SIGHUP, 0)],
            sidecar: false,
            stop_signal: None,
            me: 1,
        };
        let got = |signo| Received {
            signo,
            sender: 5,
            code: libc::SI_USER,
            routed: None,
        };
        assert_eq!(rules.terminating(&got(libc::SIGINT)), Some(libc::SIGINT));
        assert_eq!(rules.terminating(&got(libc::SIGPWR)), Some(libc::SIGTERM));
        assert_eq!(rules.terminating(&got(libc::SIGHUP)), None);
        assert_eq!(rules.terminating(&got(libc::SIGUSR1)), None);
    }

    #[test]
    fn every_signal_but_kill_and_stop_is_handled() {
        let all: Vec<i32> = handled().collect();
        assert_eq!(all.len(), 62);
        for s in [32, 33, 34, libc::SIGSEGV, libc::SIGPWR, libc::SIGCHLD, 64] {
            assert!(all.contains(&s), "{s}");
        }
        assert!(!all.contains(&libc::SIGKILL) && !all.contains(&libc::SIGSTOP));
    }
}
