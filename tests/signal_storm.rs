//! Storms (issue 15, item 3): signals of every forwarded kind, real-time included, sent at full
//! rate to podvisor while the child runs. podvisor neither dies nor hangs, each real-time signal
//! reaches the child exactly as many times as the kernel accepted it from the sender, and the
//! exit status is the child's own.
//!
//! `cargo test` runs 20 000 signals; PODVISOR_SOAK=1 (scripts/reliability) runs 100 000.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::libc;
use podvisor::run::signals;
use support::sigs::{podvisor_sigecho, Supervised};

fn sigstorm() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| support::build_example("sigstorm"))
        .clone()
}

/// The signals podvisor forwards (since every signal is: all of them a process may send but
/// KILL, STOP, CHLD and the faults, which would kill sigecho), real-time ones but the last (the
/// end mark) included. 32 and 33 are left out: glibc keeps them for itself in sigecho and
/// swallows them there, so the child could not count them.
fn kinds() -> Vec<String> {
    let mut kinds: Vec<String> = [
        "HUP", "INT", "QUIT", "TERM", "USR1", "USR2", "WINCH", "CONT", "ALRM", "TSTP", "TTIN",
        "TTOU", "PWR", "XCPU", "XFSZ", "VTALRM", "PROF", "URG", "PIPE", "STKFLT",
    ]
    .iter()
    .map(|s| format!("SIG{s}"))
    .collect();
    let rt = libc::SIGRTMAX() - signals::rtmin();
    kinds.extend((0..rt).map(|n| signals::name(signals::rtmin() + n)));
    kinds
}

fn total() -> usize {
    if std::env::var_os("PODVISOR_SOAK").is_some() {
        100_000
    } else {
        20_000
    }
}

/// sigqueue(3) until the kernel accepts it (the queue may still be full of the storm).
fn queue_until_accepted(pid: i32, signo: i32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    // SAFETY: sigqueue(3) with plain numbers and a zeroed value.
    while unsafe { libc::sigqueue(pid, signo, std::mem::zeroed()) } != 0 {
        assert!(Instant::now() < deadline, "SIGRTMAX never accepted");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_storm_of_every_forwarded_signal_is_forwarded_and_counted() {
    let kinds = kinds();
    let total = total();
    // A terminating signal starts the grace period: an hour, so that only the child ends it.
    let mut s = Supervised::start(
        podvisor_sigecho(&["--grace-period", "1h"], &["--exit-on", "SIGRTMAX:7"]),
        true,
    );
    s.expect("ready");
    let started = Instant::now();
    let out = Command::new(sigstorm())
        .arg(s.pid().to_string())
        .arg(total.to_string())
        .args(&kinds)
        .output()
        .expect("run sigstorm");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sigstorm failed: {report}\n{}",
        s.explain()
    );
    let accepted: HashMap<String, usize> = report
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(" accepted=")?;
            Some((name.to_owned(), rest.split(' ').next()?.parse().ok()?))
        })
        .collect();
    // The end mark: delivered after every lower-numbered signal still pending, in podvisor
    // (signalfd hands out the lowest first) and in the child alike.
    queue_until_accepted(s.pid(), libc::SIGRTMAX());
    let f = s.finish(Duration::from_secs(300));
    f.assert_code(7);
    let mut shown = String::new();
    for kind in &kinds {
        let sent = accepted.get(kind).copied().unwrap_or(0);
        let got = f.count(kind);
        shown.push_str(&format!("{kind}: accepted {sent}, child saw {got}\n"));
    }
    for kind in &kinds {
        let sent = accepted.get(kind).copied().unwrap_or(0);
        let got = f.count(kind);
        if kind.starts_with("SIGRT") {
            assert_eq!(got, sent, "{kind} count differs\n{shown}\n{report}");
        } else if ["SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU"].contains(&kind.as_str()) {
            // The kernel discards a pending CONT when a stop signal is generated and every
            // pending stop signal when a CONT is (signal(7)): in podvisor's own queue as in the
            // child's, so in a storm of both, none of either may survive to be read.
            assert!(got <= sent, "{kind}\n{shown}");
        } else {
            // Standard signals merge while pending: at least one of each gets through.
            assert!(got >= 1 && got <= sent, "{kind}\n{shown}");
        }
    }
    eprintln!(
        "{total} signals, storm and drain {:?}\n{report}{shown}",
        started.elapsed()
    );
}
