//! The child starts with an empty signal mask and every signal at its default disposition,
//! even when podvisor itself was started with signals ignored or blocked (nohup, CI agents) —
//! and podvisor still forwards those signals.

mod support;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use nix::libc;
use support::sigs::{podvisor, sigecho, Supervised};

const CLEAN_MASK: &str = "SigBlk: 0000000000000000";
const CLEAN_IGN: &str = "SigIgn: 0000000000000000";

fn sigecho_args(cmd: &mut Command) {
    cmd.arg(sigecho())
        .args(["--status", "--exit-on", "SIGUSR2:0"]);
}

#[test]
fn child_starts_clean_although_podvisor_started_with_signals_ignored_and_blocked() {
    let mut cmd = podvisor(&["--grace-period", "60s", "--"]);
    sigecho_args(&mut cmd);
    // What a careless parent hands down: ignored signals, handled or not by podvisor, and a
    // blocked mask.
    // SAFETY: signal-state calls in the forked child before exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [
                libc::SIGUSR1,
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGPIPE,
                libc::SIGPROF,
                libc::SIGXFSZ,
                libc::SIGTTOU,
                libc::SIGRTMIN() + 3,
            ] {
                libc::signal(sig, libc::SIG_IGN);
            }
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            for sig in [
                libc::SIGHUP,
                libc::SIGWINCH,
                libc::SIGVTALRM,
                libc::SIGRTMAX(),
            ] {
                libc::sigaddset(&mut set, sig);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut s = Supervised::start(cmd, true);
    s.expect_that("SigBlk", |l| l.starts_with("SigBlk:"));
    s.expect_that("SigIgn", |l| l.starts_with("SigIgn:"));
    s.expect("ready");
    // Inherited as ignored or blocked, yet forwarded.
    for (sig, line) in [
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGWINCH, "SIGWINCH"),
    ] {
        s.signal(sig);
        s.expect(line);
    }
    s.signal(libc::SIGUSR2);
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(0);
    assert_eq!(f.count(CLEAN_MASK), 1, "{}", f.explain());
    assert_eq!(f.count(CLEAN_IGN), 1, "{}", f.explain());
}

#[test]
fn child_starts_clean_under_nohup() {
    let mut cmd = Command::new("nohup");
    cmd.arg(support::podvisor_bin())
        .arg("--")
        .stdin(std::process::Stdio::null());
    sigecho_args(&mut cmd);
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    s.signal(libc::SIGHUP);
    s.expect("SIGHUP");
    s.signal(libc::SIGUSR2);
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(0);
    assert_eq!(f.count(CLEAN_MASK), 1, "{}", f.explain());
    assert_eq!(f.count(CLEAN_IGN), 1, "{}", f.explain());
}

#[test]
fn wait_cmd_probes_start_clean_too() {
    let dir = support::TempDir::new("mask");
    let out = dir.path().join("status");
    let probe = format!(
        "grep -E '^Sig(Blk|Ign)' /proc/self/status > {}",
        out.display()
    );
    let mut cmd = podvisor(&["--wait-cmd", &probe]);
    // SAFETY: signal() in the forked child before exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGUSR1, libc::SIG_IGN);
            libc::signal(libc::SIGPROF, libc::SIG_IGN);
            Ok(())
        });
    }
    let run = cmd.output().expect("run podvisor");
    assert!(
        run.status.success(),
        "{:?}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out).expect("the probe's output");
    let flat: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(flat, [CLEAN_MASK, CLEAN_IGN], "{text}");
}

#[test]
fn sigchld_inherited_as_ignored_does_not_lose_the_childs_status() {
    // SIGCHLD at SIG_IGN makes the kernel reap children by itself: waitpid would see nothing.
    let mut cmd = podvisor(&["--sh", "grep -E '^Sig(Blk|Ign)' /proc/self/status; exit 3"]);
    // SAFETY: signal() in the forked child before exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGCHLD, libc::SIG_IGN);
            Ok(())
        });
    }
    let f = Supervised::start(cmd, true).finish(Duration::from_secs(15));
    f.assert_code(3);
    let flat: Vec<String> = f
        .lines
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(flat, [CLEAN_MASK, CLEAN_IGN], "{}", f.explain());
}
