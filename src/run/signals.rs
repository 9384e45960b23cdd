//! Raw signals become events at this one boundary.
//!
//! podvisor installs no signal handlers: every signal it cares about is blocked in all threads
//! (before the runtime starts, so its threads inherit the mask) and read from a `signalfd`.
//! Blocked signals are queued even for PID 1, whose default-disposition signals the kernel would
//! otherwise drop; real-time signals keep their count; and nothing runs in signal context.
//! The child gets an empty mask and default dispositions back before exec (see `child.rs`).

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::fdio::{self, Owned};
use crate::run::reaper::Reaper;

/// The first real-time signal as podvisor names and forwards it: 34, glibc's SIGRTMIN and what
/// `kill -l` shows. musl's SIGRTMIN is 35 (it keeps 34 for itself), and the static image is built
/// with musl: a step or agent built with glibc still sends 34 for "SIGRTMIN", and it must be
/// forwarded, not kill podvisor. podvisor uses none of the libc's internal signals.
pub fn rtmin() -> i32 {
    libc::SIGRTMIN().min(34)
}

/// Signals relayed to the child: HUP INT QUIT TERM USR1 USR2 WINCH CONT ALRM and the real-time ones.
pub fn is_forwarded(signo: i32) -> bool {
    const FORWARDED: [i32; 9] = [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
        libc::SIGCONT,
        libc::SIGALRM,
    ];
    FORWARDED.contains(&signo) || (rtmin()..=libc::SIGRTMAX()).contains(&signo)
}

/// Signals that ask the step to end; they start the grace period and cancel the wait phase.
pub fn is_terminating(signo: i32) -> bool {
    [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP].contains(&signo)
}

/// Job-control stops aimed at podvisor itself: read and dropped, so podvisor never stops.
fn is_job_control(signo: i32) -> bool {
    [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&signo)
}

/// Signals that cannot be read here: KILL and STOP cannot be blocked, and a blocked synchronous
/// fault would turn a crash into a hang.
fn unreadable(signo: i32) -> bool {
    [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGSYS,
    ]
    .contains(&signo)
}

/// Every signal podvisor reads from its signalfd: forwarded, CHLD, job control, and the sources
/// of `--rewrite-signal` (so that e.g. `PWR:TERM`, LXC's way to stop an init, works).
fn handled(rewritten: &[i32]) -> Vec<i32> {
    (1..=libc::SIGRTMAX())
        .filter(|&s| {
            is_forwarded(s)
                || is_job_control(s)
                || s == libc::SIGCHLD
                || (rewritten.contains(&s) && !unreadable(s))
        })
        .collect()
}

/// The FROM side of every `--rewrite-signal`.
fn sources(rewrites: &[(i32, i32)]) -> Vec<i32> {
    rewrites.iter().map(|&(from, _)| from).collect()
}

fn sigset(signals: &[i32]) -> SigSet {
    // SAFETY: a sigset_t is plain data; RT signals have no nix name.
    unsafe { SigSet::from_sigset_t_unchecked(raw_sigset(signals.iter().copied())) }
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
/// signals (glibc 32-33, musl 32-34). Async-signal-safe.
pub fn set_default(signo: i32) {
    // The kernel's struct sigaction, all zero: SIG_DFL, no flags, empty mask, whatever the
    // architecture's field order.
    let default = [0u64; 4];
    // SAFETY: rt_sigaction with a valid, fully initialised struct and no old-action pointer;
    // failures (KILL, STOP, out of range) change nothing.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signo,
            default.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
}

/// Blocks every signal podvisor always handles (all but the `--rewrite-signal` sources) in the
/// calling thread: the first thing `main` does, before the configuration is parsed, so that a
/// signal arriving in podvisor's first milliseconds is queued, not acted on by its default
/// action (a SIGUSR1 then killed podvisor itself). Also puts them back to their default
/// disposition: podvisor may have inherited some as ignored (nohup, some CI agents), and an
/// ignored signal that is not blocked would be lost.
pub fn block_early() -> io::Result<()> {
    reset_and_block(&handled(&[]))
}

/// Then, once the configuration is known: the `--rewrite-signal` sources, the same way. Call
/// after `block_early` and before any thread or child exists. Only what `block_early` did not
/// cover: setting a pending default-ignored signal (CONT, WINCH) to SIG_DFL again would discard
/// it (sigaction(2)).
pub fn block(rewrites: &[(i32, i32)]) -> io::Result<()> {
    for &(from, _) in rewrites {
        if unreadable(from) || from == libc::SIGCHLD {
            tracing::warn!(
                "--rewrite-signal {}: podvisor cannot take this signal, it is never rewritten",
                name(from)
            );
        }
    }
    let always = handled(&[]);
    let more: Vec<i32> = handled(&sources(rewrites))
        .into_iter()
        .filter(|s| !always.contains(s))
        .collect();
    reset_and_block(&more)
}

fn reset_and_block(handled: &[i32]) -> io::Result<()> {
    for &s in handled {
        // SIGCHLD too: inherited as SIG_IGN it would make the kernel reap our children itself
        // (waitpid(2): ECHILD), and the step's status would be lost.
        set_default(s);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&sigset(handled)), None)?;
    Ok(())
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
    /// The pump has already sent what this signal routes to (see [`Forwarder`]).
    pub sent: bool,
}

impl Received {
    /// A signal the terminal driver sent to its whole foreground process group (Ctrl-C,
    /// Ctrl-\, a window resize): whoever shares that group with podvisor has it already.
    pub fn from_terminal(&self) -> bool {
        self.code == libc::SI_KERNEL
            && [libc::SIGINT, libc::SIGQUIT, libc::SIGWINCH].contains(&self.signo)
    }
}

/// The readable end of all blocked signals.
pub struct SignalSource {
    fd: AsyncFd<Owned<SignalFd>>,
    /// Sources of `--rewrite-signal`: job-control stops among them are passed on, not dropped.
    rewritten: Vec<i32>,
}

impl SignalSource {
    /// Opens the signalfd; `block()` must have run first, with the same rewrites.
    pub fn open(rewrites: &[(i32, i32)]) -> io::Result<Self> {
        let rewritten = sources(rewrites);
        let sfd = SignalFd::with_flags(
            &sigset(&handled(&rewritten)),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )?;
        Ok(Self {
            fd: fdio::readable(sfd)?,
            rewritten,
        })
    }

    /// The next signal; job-control stops are dropped here.
    pub async fn recv(&mut self) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.get_inner().0.read_signal() {
                Ok(Some(info)) => {
                    let got = Received {
                        signo: info.ssi_signo as i32,
                        sender: info.ssi_pid as i32,
                        code: info.ssi_code,
                        sent: false,
                    };
                    if is_job_control(got.signo) && !self.rewritten.contains(&got.signo) {
                        tracing::debug!("ignoring {} sent to podvisor itself", name(got.signo));
                        continue;
                    }
                    return Ok(got);
                }
                Ok(None) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// What a signal means while the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `--sidecar`'s SIGTERM: stop the child with this stop signal.
    Stop(i32),
    /// Forward it as this signal (after `--rewrite-signal`).
    Forward(i32),
    /// Neither forwarded nor a `--rewrite-signal` source.
    NotForwarded,
    /// `--no-group`: the terminal's signal reached the child directly.
    FromTerminal,
}

impl Route {
    /// The signal that goes to the child, if any.
    pub fn signal(self) -> Option<i32> {
        match self {
            Route::Stop(s) | Route::Forward(s) => Some(s),
            Route::NotForwarded | Route::FromTerminal => None,
        }
    }
}

/// The configuration's part in routing a signal.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `--rewrite-signal FROM:TO`, first match wins.
    pub rewrites: Vec<(i32, i32)>,
    /// `--sidecar`: SIGTERM stops the child with `stop_signal`.
    pub sidecar: bool,
    /// `--stop-signal`.
    pub stop_signal: i32,
}

impl Rules {
    /// Where `got` goes while a child runs; `group` is false with `--no-group`. Pure, so that the
    /// pump (which sends) and `supervise` (which logs and arms the grace period) agree.
    pub fn route(&self, got: &Received, group: bool) -> Route {
        if self.sidecar && got.signo == libc::SIGTERM {
            return Route::Stop(self.stop_signal);
        }
        let rewrite = self.rewrites.iter().find(|&&(from, _)| from == got.signo);
        if !is_forwarded(got.signo) && rewrite.is_none() {
            return Route::NotForwarded;
        }
        if !group && got.from_terminal() {
            // --no-group: the child shares podvisor's group, so the terminal signalled it too.
            // Forwarding would deliver Ctrl-C twice, and would start a grace period that kills
            // an interactive shell (which ignores SIGINT) for pressing Ctrl-C.
            return Route::FromTerminal;
        }
        Route::Forward(rewrite.map_or(got.signo, |&(_, to)| to))
    }
}

/// The running child as the pump sees it, so that a signal is forwarded right after it is read:
/// before the event travels the channel to `supervise`, before the pump's next (empty) read of
/// the signalfd, and before any log line (bench row 4: that path cost more than tini's whole
/// forward). `supervise` sets it when the child starts; it is cleared as soon as the reaper has
/// collected the child (in the pump too, so no late signal goes to a reused pid) and when
/// supervision ends. With no child (the wait phase) nothing is sent here.
pub struct Forwarder {
    rules: Rules,
    /// kill(2)'s target: `-pgid`, or the pid with `--no-group`; 0 while no child runs.
    target: AtomicI32,
}

impl Forwarder {
    /// No child yet.
    pub fn new(rules: Rules) -> Arc<Self> {
        Arc::new(Self {
            rules,
            target: AtomicI32::new(0),
        })
    }

    /// The rules both sides route by.
    pub fn rules(&self) -> &Rules {
        &self.rules
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

    /// Sends what `got` routes to, if a child runs; whether it was sent.
    fn forward(&self, got: &Received) -> bool {
        let target = self.target.load(Ordering::Relaxed);
        if target == 0 {
            return false;
        }
        match self.rules.route(got, target < 0).signal() {
            Some(signo) => {
                kill(target, signo);
                // On a busy or single CPU, let the woken child run now rather than after the
                // rest of this wake-up (channel, supervise, the log line): a no-op when its
                // CPU is another one and this one has nothing else to run.
                // SAFETY: sched_yield(2) takes nothing and cannot fail on Linux.
                unsafe { libc::sched_yield() };
                true
            }
            None => false,
        }
    }

    /// After a reaping pass: forget the child once the reaper has collected it.
    fn forget_reaped(&self, reaper: &Reaper) {
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

/// Starts the signal pump: SIGCHLD means "reap now" and never leaves this task; every other
/// signal is forwarded at once when a child runs (see [`Forwarder`]) and queued, in order, for
/// whoever runs the current phase.
pub fn pump(
    mut source: SignalSource,
    reaper: Arc<Reaper>,
    forwarder: Arc<Forwarder>,
) -> mpsc::UnboundedReceiver<Received> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match source.recv().await {
                Ok(got) if got.signo == libc::SIGCHLD => {
                    reaper.reap();
                    forwarder.forget_reaped(&reaper);
                }
                Ok(mut got) => {
                    got.sent = forwarder.forward(&got);
                    if tx.send(got).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!("reading signals failed: {e}");
                    return;
                }
            }
        }
    });
    rx
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
            ],
            sidecar: true,
            stop_signal: libc::SIGQUIT,
        };
        let got = |signo, code| Received {
            signo,
            sender: 0,
            code,
            sent: false,
        };
        let user = libc::SI_USER;
        let r = |signo, code, group| rules.route(&got(signo, code), group);
        assert_eq!(r(libc::SIGTERM, user, true), Route::Stop(libc::SIGQUIT));
        assert_eq!(r(libc::SIGPWR, user, true), Route::Forward(libc::SIGTERM));
        assert_eq!(r(libc::SIGUSR1, user, false), Route::Forward(libc::SIGUSR2));
        assert_eq!(r(libc::SIGHUP, user, true), Route::Forward(libc::SIGHUP));
        assert_eq!(r(libc::SIGURG, user, true), Route::NotForwarded);
        let terminal = libc::SI_KERNEL;
        assert_eq!(
            r(libc::SIGINT, terminal, true),
            Route::Forward(libc::SIGINT)
        );
        assert_eq!(r(libc::SIGINT, terminal, false), Route::FromTerminal);
        assert_eq!(Route::FromTerminal.signal(), None);
    }

    #[test]
    fn forwarding_table() {
        assert!(is_forwarded(libc::SIGWINCH));
        assert!(is_forwarded(libc::SIGRTMAX()));
        for never in [
            libc::SIGCHLD,
            libc::SIGURG,
            libc::SIGSEGV,
            libc::SIGKILL,
            libc::SIGTSTP,
        ] {
            assert!(!is_forwarded(never));
        }
    }
}
