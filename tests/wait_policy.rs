//! The retry policy and the outcome of the wait phase: deadline, retries, intervals, backoff,
//! attempt timeouts, strict and --no-strict, no COMMAND.

mod support;

use std::path::Path;
use std::time::Duration;

use support::wait::{create_file_after, free_port, lines, processes_with, Reply, Server, V4};
use support::{poll_until, TempDir, TestCommand};

/// A --wait-cmd script that appends the time of each attempt to `log` and fails.
fn failing_attempts(log: &Path) -> String {
    format!("date +%s%N >> {}; exit 1", log.display())
}

/// Attempt times from `failing_attempts`' log, in ms since the first.
fn attempt_times_ms(log: &Path) -> Vec<u128> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let ns: Vec<u128> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    ns.iter().map(|t| (t - ns[0]) / 1_000_000).collect()
}

fn closed_port() -> String {
    format!("127.0.0.1:{}", free_port(V4))
}

#[test]
fn retries_are_counted_exactly_and_fail_at_once() {
    let dir = TempDir::new("retries");
    let log = dir.path().join("attempts");
    let run = TestCommand::new()
        .args(["--retries", "3", "--interval", "50ms", "--timeout", "30s"])
        .args(["--wait-cmd", &failing_attempts(&log)])
        .args(["--", "echo", "SHOULD-NOT-RUN"])
        .run();
    run.assert_code(124).assert_stderr_has("(4 attempts)");
    assert_eq!(
        lines(&log),
        4,
        "--retries 3 is 4 attempts\n{}",
        run.explain()
    );
    assert!(
        !run.stdout().contains("SHOULD-NOT-RUN"),
        "{}",
        run.explain()
    );
    assert!(
        run.elapsed < Duration::from_secs(5),
        "out of retries must fail at once, not at the 30 s deadline\n{}",
        run.explain()
    );
}

#[test]
fn retries_zero_is_a_one_shot_check() {
    let run = TestCommand::new()
        .args(["--wait-tcp", &closed_port(), "--retries", "0"])
        .run();
    run.assert_code(124)
        .assert_stderr_has("(1 attempt)")
        .assert_stderr_has("Connection refused");
    assert!(run.elapsed < Duration::from_secs(2), "{}", run.explain());

    let server = Server::tcp(V4);
    let run = TestCommand::new()
        .args(["--wait-tcp", &server.host_port(), "--retries", "0"])
        .run();
    run.assert_code(0);
    assert!(run.stdout().is_empty(), "{}", run.explain());
}

#[test]
fn one_target_out_of_retries_ends_the_wait_for_all() {
    let dir = TempDir::new("retries-all");
    let never = dir.path().join("never");
    let target = closed_port();
    let run = TestCommand::new()
        .args(["--retries", "1", "--timeout", "30s", "--wait-tcp", &target])
        .args(["--wait-file", never.to_str().unwrap()])
        .args(["--", "echo", "SHOULD-NOT-RUN"])
        .run();
    run.assert_code(124)
        .assert_stderr_has(&format!("tcp://{target} not ready"))
        .assert_stderr_has(&format!("file://{} not ready", never.display()));
    assert!(run.elapsed < Duration::from_secs(5), "{}", run.explain());
}

#[test]
fn timeout_is_124_naming_the_target_and_its_last_error() {
    let dir = TempDir::new("timeout");
    let ran = dir.path().join("ran");
    let server = Server::tcp(V4);
    let target = closed_port();
    let run = TestCommand::new()
        .args(["--timeout", "1s", "--wait-tcp", &target])
        .args(["--wait-tcp", &server.host_port()])
        .args(["--", "touch", ran.to_str().unwrap()])
        .run();
    run.assert_code(124)
        .assert_stderr_has(&format!("error: tcp://{target} not ready after"))
        .assert_stderr_has("Connection refused");
    assert!(!ran.exists(), "COMMAND ran\n{}", run.explain());
    let ready = format!("tcp://{}", server.host_port());
    assert!(
        !run.stderr()
            .lines()
            .any(|l| l.contains("error:") && l.contains(&ready)),
        "a ready target is not named as failed\n{}",
        run.explain()
    );
    assert!(
        run.elapsed >= Duration::from_secs(1) && run.elapsed < Duration::from_secs(4),
        "{}",
        run.explain()
    );
}

#[test]
fn no_strict_warns_then_runs_the_command_and_returns_its_status() {
    let target = closed_port();
    let run = TestCommand::new()
        .args(["--no-strict", "--timeout", "500ms", "--wait-tcp", &target])
        .args(["--", "sh", "-c", "echo RAN; exit 7"])
        .run();
    run.assert_code(7)
        .assert_stdout_has("RAN")
        .assert_stderr_has(&format!("warning: tcp://{target} not ready after"))
        .assert_stderr_has("Connection refused");
    assert!(!run.stderr().contains("error:"), "{}", run.explain());
}

#[test]
fn no_strict_without_a_command_still_fails_the_wait_with_124() {
    // An exec probe with PODVISOR_NO_STRICT=1 in its image must not always say ready.
    let target = closed_port();
    for env in [false, true] {
        let mut cmd = TestCommand::new();
        cmd = if env {
            cmd.env("PODVISOR_NO_STRICT", "1")
        } else {
            cmd.arg("--no-strict")
        };
        let run = cmd
            .args(["--timeout", "500ms", "--wait-tcp", &target])
            .run();
        run.assert_code(124)
            .assert_stderr_has(&format!("error: tcp://{target} not ready after"));
        assert!(
            !run.stderr().contains("running the command"),
            "{}",
            run.explain()
        );
    }
}

#[test]
fn timeout_zero_means_no_deadline() {
    let dir = TempDir::new("timeout0");
    let f = dir.path().join("late");
    let ready_at = create_file_after(&f, Duration::from_millis(1500));
    let run = TestCommand::new()
        .args(["--timeout", "0", "--wait-file", f.to_str().unwrap()])
        .args(["--", "true"])
        .run();
    run.assert_code(0).assert_stderr_has("(no timeout)");
    ready_at.get();
    assert!(
        run.elapsed >= Duration::from_millis(1500),
        "{}",
        run.explain()
    );
}

#[test]
fn no_command_exits_0_once_ready() {
    let dir = TempDir::new("nocmd");
    let f = dir.path().join("late");
    create_file_after(&f, Duration::from_millis(300));
    let run = TestCommand::new()
        .args(["--wait-file", f.to_str().unwrap()])
        .run();
    run.assert_code(0);
    assert!(f.exists() && run.stdout().is_empty(), "{}", run.explain());
}

#[test]
fn interval_spaces_the_attempts() {
    let dir = TempDir::new("interval");
    let log = dir.path().join("attempts");
    let run = TestCommand::new()
        .args(["--interval", "500ms", "--timeout", "2200ms"])
        .args(["--wait-cmd", &failing_attempts(&log)])
        .run();
    run.assert_code(124);
    let times = attempt_times_ms(&log);
    assert!(
        (3..=6).contains(&times.len()),
        "{times:?}\n{}",
        run.explain()
    );
    for pair in times.windows(2) {
        // Shell start-up jitter is in each time; 100 ms (the default) would be far below.
        assert!(pair[1] - pair[0] >= 350, "{times:?}\n{}", run.explain());
    }
}

#[test]
fn max_interval_doubles_the_delay_up_to_the_cap() {
    let dir = TempDir::new("backoff");
    let log = dir.path().join("attempts");
    let run = TestCommand::new()
        .args(["--interval", "100ms", "--max-interval", "800ms"])
        .args(["--timeout", "3500ms", "--wait-cmd", &failing_attempts(&log)])
        .run();
    run.assert_code(124);
    // Attempts at about 0, 0.1, 0.3, 0.7, 1.5, 2.3, 3.1 s: delays 100, 200, 400, 800, 800, 800.
    let times = attempt_times_ms(&log);
    let gaps: Vec<u128> = times.windows(2).map(|p| p[1] - p[0]).collect();
    assert!(
        (5..=8).contains(&times.len()),
        "gaps {gaps:?}\n{}",
        run.explain()
    );
    // The times are taken inside each attempt's shell, so each carries its own start-up jitter
    // (tens of ms on a loaded machine): the bounds tell doubling and the cap apart, no more.
    let expected = [100, 200, 400, 800, 800, 800];
    for (gap, want) in gaps.iter().zip(expected) {
        assert!(
            *gap >= want * 6 / 10 && *gap < want + 700,
            "gaps {gaps:?}, expected about {expected:?}\n{}",
            run.explain()
        );
    }
}

#[test]
fn attempt_timeout_bounds_one_attempt() {
    // The server accepts but never answers: only the attempt timeout ends each attempt.
    let server = Server::http(V4, vec![], Reply::Silent);
    let run = TestCommand::new()
        .args(["--attempt-timeout", "300ms", "--timeout", "2s"])
        .args(["--wait-http", &server.url("/")])
        .run();
    run.assert_code(124)
        .assert_stderr_has("attempt timed out after 300ms");
    let accepted = *server.accepted.lock().unwrap();
    assert!(
        accepted >= 3,
        "attempts go on after a timed-out one ({accepted} connections)\n{}",
        run.explain()
    );
}

#[test]
fn attempts_never_outlast_the_deadline() {
    let server = Server::http(V4, vec![], Reply::Silent);
    let run = TestCommand::new()
        .args(["--attempt-timeout", "30s", "--timeout", "1s"])
        .args(["--wait-http", &server.url("/")])
        .args(["--", "echo", "SHOULD-NOT-RUN"])
        .run();
    run.assert_code(124)
        .assert_stderr_has("attempt 1 still running when waiting ended");
    assert!(run.elapsed < Duration::from_secs(3), "{}", run.explain());
}

#[test]
fn a_timed_out_wait_cmd_is_killed_with_its_children() {
    // A unique duration names this test's sleeps.
    let nap = format!("sleep 30.{}", std::process::id());
    let run = TestCommand::new()
        .args(["--attempt-timeout", "300ms", "--timeout", "1s"])
        .args(["--wait-cmd", &format!("{nap}; true")])
        .run();
    run.assert_code(124)
        .assert_stderr_has("attempt timed out after 300ms");
    poll_until(
        Duration::from_secs(5),
        "the attempts' sleeps to be gone",
        || processes_with(&nap).is_empty().then_some(()),
    );
}

#[test]
fn a_deadline_beyond_the_clock_is_no_deadline() {
    // Instant + 584542046090 years overflows: that must be a (very) long deadline, not a panic.
    TestCommand::new()
        .args([
            "--timeout",
            "584542046090y",
            "--retries",
            "1",
            "--wait-cmd",
            "false",
        ])
        .run()
        .assert_code(124)
        .assert_stderr_has("(2 attempts)");
}

#[test]
fn wait_cmd_attempts_in_flight_are_killed_when_waiting_ends() {
    let nap = format!("sleep 31.{}", std::process::id());
    let run = TestCommand::new()
        .args(["--attempt-timeout", "20s", "--timeout", "500ms"])
        .args(["--wait-cmd", &format!("{nap}; true")])
        .run();
    run.assert_code(124)
        .assert_stderr_has("attempt 1 still running when waiting ended");
    poll_until(
        Duration::from_secs(5),
        "the attempt's sleep to be gone",
        || processes_with(&nap).is_empty().then_some(()),
    );

    // With --no-strict, before COMMAND is done (it outlives the poll below).
    let nap = format!("sleep 32.{}", std::process::id());
    let mut bg = support::wait::Background::start(
        TestCommand::new()
            .args([
                "--no-strict",
                "--attempt-timeout",
                "20s",
                "--timeout",
                "500ms",
            ])
            .args(["--wait-cmd", &format!("{nap}; true")])
            .args(["--", "sleep", "30"]),
    );
    bg.wait_for_line("running the command anyway", Duration::from_secs(10));
    poll_until(
        Duration::from_secs(5),
        "the attempt's sleep to be gone",
        || processes_with(&nap).is_empty().then_some(()),
    );
    drop(bg);
}
