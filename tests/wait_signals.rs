//! A terminating signal during the wait phase: COMMAND never runs, exit 128+N, and the wait
//! phase's own children (--wait-cmd shells) do not outlive podvisor.

mod support;

use std::time::Duration;

use support::wait::{free_port, processes_with, Background, V4};
use support::{poll_until, TempDir, TestCommand};

fn signal_during_wait(name: &str, number: i32) {
    let dir = TempDir::new(&format!("sig-{name}"));
    let ran = dir.path().join("ran");
    // A unique duration names this run's --wait-cmd sleeps.
    let nap = format!("sleep 40.{}{number}", std::process::id());
    let mut bg = Background::start(
        TestCommand::new()
            .args(["--timeout", "30s"])
            .args(["--wait-tcp", &format!("127.0.0.1:{}", free_port(V4))])
            .args(["--wait-cmd", &format!("{nap}; false")])
            .args(["--", "touch", ran.to_str().unwrap()]),
    );
    bg.wait_for_line("waiting for", Duration::from_secs(10));
    poll_until(
        Duration::from_secs(5),
        "the --wait-cmd sleep to start",
        || (!processes_with(&nap).is_empty()).then_some(()),
    );
    bg.signal(name);
    let run = bg.finish(Duration::from_secs(10));
    run.assert_code(128 + number)
        .assert_stderr_has(&format!("SIG{name} during the wait phase"));
    assert!(!ran.exists(), "COMMAND ran\n{}", run.explain());
    assert!(
        run.elapsed < Duration::from_secs(10),
        "the signal must end the wait at once\n{}",
        run.explain()
    );
    poll_until(
        Duration::from_secs(5),
        "the --wait-cmd sleep to be gone",
        || processes_with(&nap).is_empty().then_some(()),
    );
}

#[test]
fn sigterm_during_wait_is_143() {
    signal_during_wait("TERM", 15);
}

#[test]
fn sigint_during_wait_is_130() {
    signal_during_wait("INT", 2);
}

#[test]
fn sighup_during_wait_is_129() {
    signal_during_wait("HUP", 1);
}

#[test]
fn sigquit_during_wait_is_131() {
    signal_during_wait("QUIT", 3);
}

#[test]
fn other_signals_do_not_end_the_wait() {
    let dir = TempDir::new("sig-usr1");
    let f = dir.path().join("ready");
    let mut bg = Background::start(
        TestCommand::new()
            .args(["--timeout", "30s", "--wait-file", f.to_str().unwrap()])
            .args(["--", "echo", "RAN"]),
    );
    bg.wait_for_line("waiting for", Duration::from_secs(10));
    bg.signal("USR1");
    bg.signal("WINCH");
    std::fs::write(&f, "x").unwrap();
    let run = bg.finish(Duration::from_secs(10));
    run.assert_code(0).assert_stdout_has("RAN");
}

#[test]
fn a_signal_rewritten_into_term_cancels_the_wait_as_term() {
    // As LXC stops an init: SIGPWR, rewritten to TERM, must end the wait phase like TERM.
    let dir = TempDir::new("sig-pwr");
    let ran = dir.path().join("ran");
    let mut bg = Background::start(
        TestCommand::new()
            .args(["--timeout", "30s", "--rewrite-signal", "PWR:TERM"])
            .args(["--wait-tcp", &format!("127.0.0.1:{}", free_port(V4))])
            .args(["--", "touch", ran.to_str().unwrap()]),
    );
    bg.wait_for_line("waiting for", Duration::from_secs(10));
    bg.signal("PWR");
    let run = bg.finish(Duration::from_secs(10));
    run.assert_code(143)
        .assert_stderr_has("SIGTERM during the wait phase");
    assert!(!ran.exists(), "COMMAND ran\n{}", run.explain());
}
