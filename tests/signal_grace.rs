//! --grace-period: a child that outlives a terminating signal is SIGKILLed (with its group) when
//! the grace period runs out; later signals are still forwarded and do not restart the timer.

mod support;

use std::time::{Duration, Instant};

use nix::libc;
use support::sigs::{alive, podvisor_sigecho, Supervised};

#[test]
fn child_ignoring_term_is_killed_after_the_grace_period() {
    let cmd = podvisor_sigecho(&["--grace-period", "1s"], &["--ignore", "TERM"]);
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    let sent = Instant::now();
    s.signal(libc::SIGTERM);
    let f = s.finish(Duration::from_secs(20));
    let took = sent.elapsed();
    f.assert_code(137)
        .assert_stderr_has("forwarding SIGTERM to the child")
        .assert_stderr_has("grace period of 1s expired, sending SIGKILL")
        .assert_stderr_has("child ended (killed by SIGKILL)");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "killed {took:?} after SIGTERM\n{}",
        f.explain()
    );
    assert_eq!(f.count("SIGTERM"), 0, "TERM was ignored\n{}", f.explain());
}

#[test]
fn default_grace_period_is_ten_seconds() {
    let cmd = podvisor_sigecho(&[], &["--ignore", "TERM"]);
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    let sent = Instant::now();
    s.signal(libc::SIGTERM);
    let f = s.finish(Duration::from_secs(40));
    let took = sent.elapsed();
    f.assert_code(137);
    assert!(
        took >= Duration::from_millis(9_800) && took < Duration::from_secs(20),
        "killed {took:?} after SIGTERM\n{}",
        f.explain()
    );
}

#[test]
fn signals_during_the_grace_period_are_forwarded_and_the_timer_is_not_restarted() {
    // sigecho catches TERM, HUP and INT and reports them, but does not exit on them.
    let cmd = podvisor_sigecho(&["--grace-period", "3s"], &[]);
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    let sent = Instant::now();
    s.signal(libc::SIGTERM);
    s.expect("SIGTERM");
    // Spacing in time is the scenario here, not synchronisation: a restarted timer would fire
    // at 1.5 + 3 = 4.5 s or 2.5 + 3 = 5.5 s instead of 3 s.
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(sent.elapsed()));
    s.signal(libc::SIGHUP);
    s.expect("SIGHUP");
    s.signal(libc::SIGUSR1);
    s.expect("SIGUSR1");
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(sent.elapsed()));
    s.signal(libc::SIGINT);
    s.expect("SIGINT");
    let f = s.finish(Duration::from_secs(20));
    let took = sent.elapsed();
    f.assert_code(137);
    assert!(
        took >= Duration::from_millis(2_900) && took < Duration::from_millis(4_400),
        "killed {took:?} after the first SIGTERM\n{}",
        f.explain()
    );
    assert_eq!(
        f.stderr.matches("expired").count(),
        1,
        "one grace expiry\n{}",
        f.explain()
    );
}

#[test]
fn grace_kill_takes_the_whole_group() {
    let cmd = podvisor_sigecho(
        &["--grace-period", "1s"],
        &["--ignore", "TERM", "--children", "2"],
    );
    let mut s = Supervised::start(cmd, true);
    let echoes = s.expect_echoes(2);
    s.expect_all(&["ready", "c1 ready", "c2 ready"]);
    s.signal(libc::SIGTERM);
    let f = s.finish(Duration::from_secs(20));
    f.assert_code(137);
    for e in echoes {
        assert!(!alive(e.pid), "{e:?} survived\n{}", f.explain());
    }
}

#[test]
fn non_terminating_signals_start_no_grace_period() {
    let cmd = podvisor_sigecho(&["--grace-period", "1s"], &["--exit-on", "SIGUSR2:5"]);
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    s.signal(libc::SIGUSR1);
    s.expect("SIGUSR1");
    s.signal(libc::SIGWINCH);
    s.expect("SIGWINCH");
    // Past a grace period that must not have started.
    std::thread::sleep(Duration::from_millis(1800));
    s.signal(libc::SIGUSR2);
    s.finish(Duration::from_secs(20)).assert_code(5);
}

#[test]
fn leftovers_get_only_what_is_left_of_a_running_grace_period() {
    // The main shell takes 2 s to exit on SIGTERM and leaves a sleep that ignores SIGTERM.
    let script = "trap '' TERM; sleep 1011 & echo bg=$!; trap 'sleep 2; exit 8' TERM; \
                  echo ready; while :; do sleep 0.05; done";
    let mut s = Supervised::start(
        support::sigs::podvisor(&["--grace-period", "3s", "--sh", script]),
        true,
    );
    let bg = s.expect_that("bg=PID", |l| l.starts_with("bg="));
    let bg: i32 = bg["bg=".len()..].parse().expect("a pid");
    s.expect("ready");
    let sent = Instant::now();
    s.signal(libc::SIGTERM);
    let f = s.finish(Duration::from_secs(20));
    let took = sent.elapsed();
    f.assert_code(8)
        .assert_stderr_has("sending SIGKILL to the leftovers");
    // A fresh grace period after the child's end would kill the leftover at 2 + 3 = 5 s.
    assert!(
        took >= Duration::from_millis(2_900) && took < Duration::from_millis(4_500),
        "done {took:?} after SIGTERM\n{}",
        f.explain()
    );
    assert!(!alive(bg), "{}", f.explain());
}
