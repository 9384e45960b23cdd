//! Forwarded signals reach the child exactly once, whether sent to podvisor or to its whole
//! process group; CHLD is not forwarded; job-control stops sent by a process reach the child,
//! never stop podvisor; --rewrite-signal (SIG:0 drops SIG). tests/signal_every.rs walks 1..64.

mod support;

use std::time::Duration;

use nix::libc;
use podvisor::run::signals::name;
use support::sigs::{podvisor, podvisor_at, podvisor_sigecho, sigecho, Supervised};

/// Ends sigecho: a real-time signal, read after every pending standard one.
fn sentinel() -> i32 {
    libc::SIGRTMIN() + 10
}

fn exit_on_sentinel() -> String {
    format!("{}:0", name(sentinel()))
}

/// Every signal the issue says is forwarded, real-time ones included.
fn forwarded() -> Vec<i32> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
        libc::SIGCONT,
        libc::SIGALRM,
        min,
        min + 1,
        min + 5,
        max - 1,
        max,
    ]
}

/// Sends each forwarded signal, one at a time, and checks it arrived once and alone.
fn each_arrives_once(to_group: bool) {
    each_arrives_once_at(&support::podvisor_bin(), to_group);
}

fn each_arrives_once_at(bin: &std::path::Path, to_group: bool) {
    let mut cmd = podvisor_at(bin, &["--grace-period", "60s", "--"]);
    cmd.arg(sigecho()).args(["--exit-on", &exit_on_sentinel()]);
    let mut s = Supervised::start(cmd, true);
    let echo = s.expect_echo("");
    s.expect("ready");
    assert_eq!(echo.ppid, s.pid(), "{}", s.explain());
    assert_eq!(
        echo.pgid,
        echo.pid,
        "child leads its own group\n{}",
        s.explain()
    );
    for &sig in &forwarded() {
        if to_group {
            s.signal_group(sig);
        } else {
            s.signal(sig);
        }
        s.expect(&name(sig));
    }
    s.signal(sentinel());
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(0)
        .assert_stderr_has(&format!("child started (pid {})", echo.pid))
        .assert_stderr_has("forwarding SIGUSR1 to the child")
        .assert_stderr_has("forwarding SIGRTMAX to the child")
        .assert_stderr_has("child ended (exited with 0)");
    for &sig in &forwarded() {
        assert_eq!(
            f.count(&name(sig)),
            1,
            "{} count\n{}",
            name(sig),
            f.explain()
        );
    }
}

#[test]
fn each_forwarded_signal_arrives_exactly_once() {
    each_arrives_once(false);
}

#[test]
fn signals_sent_to_podvisors_whole_group_arrive_exactly_once() {
    each_arrives_once(true);
}

#[test]
fn the_static_musl_build_forwards_every_signal_too() {
    // musl reserves 32-34 and calls 35 SIGRTMIN; glibc senders (and this test) mean 34.
    each_arrives_once_at(&support::docker::static_binary(), true);
}

#[test]
fn real_time_signals_keep_their_count() {
    let cmd = podvisor_sigecho(&[], &["--exit-on", &exit_on_sentinel()]);
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    let rt = libc::SIGRTMIN() + 2;
    for _ in 0..5 {
        s.signal(rt);
    }
    s.signal(sentinel());
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(0);
    assert_eq!(f.count(&name(rt)), 5, "{}", f.explain());
}

#[test]
fn chld_is_not_forwarded_urg_is() {
    let cmd = podvisor_sigecho(&[], &["--exit-on", &exit_on_sentinel()]);
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    s.signal(libc::SIGCHLD);
    s.signal(libc::SIGURG);
    s.expect("SIGURG");
    s.signal(libc::SIGCHLD);
    // Read after the standard signals above: had CHLD been forwarded, it would show first.
    s.signal(sentinel());
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(0);
    assert_eq!(f.count("SIGURG"), 1, "{}", f.explain());
    assert_eq!(f.count("SIGCHLD"), 0, "{}", f.explain());
}

#[test]
fn job_control_signals_sent_to_podvisor_reach_the_child_and_never_stop_podvisor() {
    let cmd = podvisor_sigecho(&[], &["--exit-on", &exit_on_sentinel()]);
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    for sig in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
        s.signal(sig);
        s.expect(&name(sig));
    }
    // A stopped podvisor would not forward this one.
    s.signal(libc::SIGUSR2);
    s.expect("SIGUSR2");
    let (state, _, _) = support::sigs::proc_stat(s.pid()).expect("podvisor's stat");
    assert_ne!(state, 'T', "podvisor stopped\n{}", s.explain());
    s.signal(sentinel());
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(0);
    for stop in ["SIGTSTP", "SIGTTIN", "SIGTTOU"] {
        assert_eq!(f.count(stop), 1, "{stop}\n{}", f.explain());
    }
}

#[test]
fn rewrite_to_0_drops_the_signal_without_a_grace_period() {
    let cmd = podvisor_sigecho(
        &[
            "--grace-period",
            "200ms",
            "--rewrite-signal",
            "TERM:0",
            "--rewrite-signal",
            "USR1:0",
        ],
        &["--exit-on", "SIGUSR2:5"],
    );
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    s.signal(libc::SIGTERM);
    s.signal(libc::SIGUSR1);
    s.expect_stderr("SIGUSR1 dropped (--rewrite-signal)");
    s.expect_stderr("SIGTERM dropped (--rewrite-signal)");
    // No grace period started: well past its 200ms the child still answers.
    std::thread::sleep(Duration::from_millis(600));
    s.signal(libc::SIGUSR2);
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(5);
    assert_eq!(f.count("SIGTERM"), 0, "{}", f.explain());
    assert_eq!(f.count("SIGUSR1"), 0, "{}", f.explain());
}

#[test]
fn rewrite_signal_by_name_and_number() {
    let rt = libc::SIGRTMIN() + 1;
    let cmd = podvisor_sigecho(
        &[
            "--grace-period",
            "60s",
            "--rewrite-signal",
            "TERM:QUIT",
            "--rewrite-signal",
            "10:12",
            "--rewrite-signal",
            &format!("{}:SIGHUP", name(rt)),
        ],
        &["--exit-on", &exit_on_sentinel()],
    );
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    s.signal(libc::SIGTERM);
    s.expect("SIGQUIT");
    s.signal(libc::SIGUSR1);
    s.expect("SIGUSR2");
    s.signal(rt);
    s.expect("SIGHUP");
    s.signal(libc::SIGINT);
    s.expect("SIGINT");
    s.signal(sentinel());
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(0)
        .assert_stderr_has("forwarding SIGTERM to the child as SIGQUIT")
        .assert_stderr_has("forwarding SIGUSR1 to the child as SIGUSR2");
    for never in ["SIGTERM", "SIGUSR1", &name(rt)] {
        assert_eq!(f.count(never), 0, "{never} not rewritten\n{}", f.explain());
    }
}

#[test]
fn rewrite_signal_from_the_environment() {
    let mut cmd = podvisor_sigecho(&["--grace-period", "60s"], &["--exit-on", "SIGQUIT:0"]);
    cmd.env("PODVISOR_REWRITE_SIGNAL", "USR1:USR2,TERM:QUIT");
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    s.signal(libc::SIGUSR1);
    s.expect("SIGUSR2");
    s.signal(libc::SIGTERM);
    s.finish(Duration::from_secs(15)).assert_code(0);
}

#[test]
fn no_such_process_when_forwarding_is_a_debug_line() {
    // The child leaves its own group, so forwarding to that group finds nobody.
    let mut cmd = podvisor(&["--log-level", "debug", "--"]);
    cmd.arg(sigecho()).args(["--leave-group", "--exit-on-eof"]);
    cmd.stdin(std::process::Stdio::piped());
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    s.signal(libc::SIGUSR1);
    s.expect_stderr("No such process");
    drop(s.child.stdin.take());
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(0);
    let loud: Vec<&str> = f
        .stderr
        .lines()
        // By level: a debug line may quote an OS error ("os error 13").
        .filter(|l| l.starts_with("podvisor: error:") || l.starts_with("podvisor: warning:"))
        .collect();
    assert!(loud.is_empty(), "{loud:?}\n{}", f.explain());
    assert!(
        f.stderr
            .lines()
            .any(|l| l.starts_with("podvisor: debug:") && l.contains("No such process")),
        "{}",
        f.explain()
    );
}

#[test]
fn rewrite_takes_signals_that_are_otherwise_not_forwarded() {
    // LXC stops an init with SIGPWR; a stop (TSTP) can become something the step understands.
    let cmd = podvisor_sigecho(
        &[
            "--grace-period",
            "60s",
            "--rewrite-signal",
            "PWR:TERM",
            "--rewrite-signal",
            "TSTP:USR1",
        ],
        &["--exit-on", &exit_on_sentinel()],
    );
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    s.signal(libc::SIGPWR);
    s.expect("SIGTERM");
    s.signal(libc::SIGTSTP);
    s.expect("SIGUSR1");
    s.signal(sentinel());
    s.finish(Duration::from_secs(15))
        .assert_code(0)
        .assert_stderr_has("forwarding SIGPWR to the child as SIGTERM");
}

#[test]
fn rewriting_a_signal_podvisor_cannot_take_is_a_warning() {
    let cmd = podvisor_sigecho(
        &[
            "--rewrite-signal",
            "KILL:TERM",
            "--rewrite-signal",
            "CHLD:TERM",
        ],
        &["--exit-on", "SIGUSR1:0"],
    );
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    s.signal(libc::SIGUSR1);
    s.finish(Duration::from_secs(15))
        .assert_code(0)
        .assert_stderr_has("--rewrite-signal SIGKILL: podvisor cannot take this signal")
        .assert_stderr_has("--rewrite-signal SIGCHLD: podvisor cannot take this signal");
}
