//! Every target kind, ready at once and ready later; COMMAND starts only after.
//!
//! The ordering proof: the target's helper notes the wall-clock time just before it makes the
//! target ready, and COMMAND prints the time it started (`date +%s%N`); COMMAND must not be
//! earlier.

mod support;

use std::time::Duration;

use support::wait::{
    as_uid, clock_command, create_file_after, printed_ns, InotifyHog, Reply, Server, UnixServer, V4,
};
use support::{Run, TempDir, TestCommand};

/// How long "ready later" targets take.
const LATER: Duration = Duration::from_millis(800);

fn wait_then_clock(args: &[&str]) -> Run {
    TestCommand::new()
        .args(["--timeout", "20s"])
        .args(args)
        .args(clock_command())
        .run()
}

fn assert_ready_at_once(run: &Run, target: &str) {
    run.assert_code(0)
        .assert_stderr_has(&format!("waiting for {target}"))
        .assert_stderr_has(&format!("{target} is ready after"))
        .assert_stderr_has("(1 attempt)");
    printed_ns(&run.stdout());
    assert!(
        run.elapsed < Duration::from_secs(2),
        "a ready target must not delay COMMAND\n{}",
        run.explain()
    );
}

fn assert_started_after(run: &Run, target: &str, ready_at: u128) {
    run.assert_code(0)
        .assert_stderr_has(&format!("{target} is ready after"));
    let started = printed_ns(&run.stdout());
    assert!(
        started >= ready_at,
        "COMMAND started {} ms before {target} was ready\n{}",
        (ready_at - started) / 1_000_000,
        run.explain()
    );
    assert!(run.elapsed >= LATER, "{}", run.explain());
    assert!(
        run.elapsed < LATER + Duration::from_secs(5),
        "{}",
        run.explain()
    );
}

#[test]
fn tcp_ready_at_once() {
    let server = Server::tcp(V4);
    let run = wait_then_clock(&["--wait-tcp", &server.host_port()]);
    assert_ready_at_once(&run, &format!("tcp://{}", server.host_port()));
}

#[test]
fn tcp_ready_later() {
    let server = Server::tcp_after(V4, LATER);
    let run = wait_then_clock(&["--wait-tcp", &server.host_port()]);
    let target = format!("tcp://{}", server.host_port());
    assert_started_after(&run, &target, server.ready_at.get());
}

#[test]
fn file_ready_at_once() {
    let dir = TempDir::new("file-now");
    let f = dir.path().join("ready");
    std::fs::write(&f, "x").unwrap();
    let f = f.to_str().unwrap();
    let run = wait_then_clock(&["--wait-file", f]);
    assert_ready_at_once(&run, &format!("file://{f}"));
}

#[test]
fn file_ready_later_in_folders_that_do_not_exist_yet() {
    let dir = TempDir::new("file-later");
    let f = dir.path().join("a/b/ready");
    let ready_at = create_file_after(&f, LATER);
    let f = f.to_str().unwrap();
    let run = wait_then_clock(&["--wait-file", f]);
    assert_started_after(&run, &format!("file://{f}"), ready_at.get());
}

#[test]
fn file_is_noticed_by_event_not_by_polling() {
    // With attempts 30 s apart, only inotify can notice the file within seconds.
    let dir = TempDir::new("file-event");
    let f = dir.path().join("sub/ready");
    let ready_at = create_file_after(&f, LATER);
    let f = f.to_str().unwrap();
    let run = wait_then_clock(&["--interval", "30s", "--wait-file", f]);
    assert_started_after(&run, &format!("file://{f}"), ready_at.get());
}

#[test]
fn unix_ready_at_once() {
    let dir = TempDir::new("unix-now");
    let sock = dir.path().join("s.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let s = sock.to_str().unwrap();
    let run = wait_then_clock(&["--wait-unix", s]);
    assert_ready_at_once(&run, &format!("unix://{s}"));
}

#[test]
fn unix_ready_later() {
    let dir = TempDir::new("unix-later");
    let sock = dir.path().join("s.sock");
    let server = UnixServer::after(&sock, LATER);
    let s = sock.to_str().unwrap();
    let run = wait_then_clock(&["--wait-unix", s]);
    assert_started_after(&run, &format!("unix://{s}"), server.ready_at.get());
}

#[test]
fn unix_socket_file_without_listener_is_not_ready() {
    // A stale socket file (its server gone) must not count as ready.
    let dir = TempDir::new("unix-stale");
    let sock = dir.path().join("s.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    TestCommand::new()
        .args(["--timeout", "500ms", "--wait-unix", sock.to_str().unwrap()])
        .args(["--", "echo", "SHOULD-NOT-RUN"])
        .run()
        .assert_code(124)
        .assert_stderr_has("Connection refused");
}

#[test]
fn http_ready_at_once() {
    let server = Server::http(V4, vec![], Reply::Status(200));
    let url = server.url("/");
    let run = wait_then_clock(&["--wait-http", &url]);
    assert_ready_at_once(&run, &url);
}

#[test]
fn http_ready_later() {
    let server = Server::http_after(V4, LATER);
    let url = server.url("/health");
    let run = wait_then_clock(&["--wait-http", &url]);
    assert_started_after(&run, &url, server.ready_at.get());
}

#[test]
fn cmd_ready_at_once() {
    let run = wait_then_clock(&["--wait-cmd", "true"]);
    assert_ready_at_once(&run, "cmd://true");
}

#[test]
fn cmd_ready_later() {
    let dir = TempDir::new("cmd-later");
    let f = dir.path().join("flag");
    let ready_at = create_file_after(&f, LATER);
    let script = format!("test -e {}", f.display());
    let run = wait_then_clock(&["--wait-cmd", &script]);
    assert_started_after(&run, &format!("cmd://{script}"), ready_at.get());
}

#[test]
fn cmd_output_is_hidden_below_debug() {
    // The script's text differs from its output (OUT-42), so the target's name does not match.
    let script = "echo OUT-$((40+2)); echo ERR-$((40+2)) >&2";
    let run = TestCommand::new()
        .args(["--wait-cmd", script, "--", "true"])
        .run();
    run.assert_code(0);
    assert!(
        !run.stdout().contains("-42") && !run.stderr().contains("-42"),
        "{}",
        run.explain()
    );
    let run = TestCommand::new()
        .args(["--log-level", "debug", "--wait-cmd", script, "--", "true"])
        .run();
    run.assert_code(0)
        .assert_stderr_has("OUT-42")
        .assert_stderr_has("ERR-42");
    assert!(!run.stdout().contains("-42"), "{}", run.explain());
}

#[test]
fn mixed_kinds_are_waited_for_concurrently() {
    // Three targets each ready after ~1 s: all at once takes ~1 s, one after another ~3 s.
    let delay = Duration::from_secs(1);
    let dir = TempDir::new("mixed");
    let f = dir.path().join("file");
    let sock = dir.path().join("s.sock");
    let tcp = Server::tcp_after(V4, delay);
    let file_at = create_file_after(&f, delay);
    let unix = UnixServer::after(&sock, delay);
    let run = TestCommand::new()
        .args(["--timeout", "20s", "--wait-tcp", &tcp.host_port()])
        .args(["--wait-file", f.to_str().unwrap()])
        .args(["--wait-unix", sock.to_str().unwrap()])
        .args(clock_command())
        .run();
    run.assert_code(0);
    let started = printed_ns(&run.stdout());
    for ready_at in [tcp.ready_at.get(), file_at.get(), unix.ready_at.get()] {
        assert!(started >= ready_at, "{}", run.explain());
    }
    assert!(
        run.elapsed < Duration::from_millis(1800),
        "three 1 s targets must finish well under 2 s\n{}",
        run.explain()
    );
    assert_eq!(
        run.stderr().matches(" is ready after ").count(),
        3,
        "{}",
        run.explain()
    );
}

/// A UID of this test's own (the until tests use another), whose inotify instances get used up.
const HOGGED_UID: &str = "65532";

#[test]
fn file_waits_poll_where_inotify_is_unavailable() {
    let dir = TempDir::new("file-poll");
    let f = dir.path().join("ready");
    let hog = InotifyHog::start(HOGGED_UID);
    let ready_at = create_file_after(&f, LATER);
    let start = std::time::Instant::now();
    let output = as_uid(HOGGED_UID)
        .arg(support::podvisor_bin())
        .args([
            "--log-level",
            "debug",
            "--interval",
            "200ms",
            "--timeout",
            "20s",
        ])
        .arg("--wait-file")
        .arg(&f)
        .args(clock_command())
        .output()
        .expect("run podvisor as the hogged UID");
    drop(hog);
    let run = Run {
        shown: format!(
            "setpriv --reuid {HOGGED_UID} podvisor --wait-file {}",
            f.display()
        ),
        output,
        elapsed: start.elapsed(),
    };
    run.assert_stderr_has("inotify unavailable, polling");
    assert_started_after(&run, &format!("file://{}", f.display()), ready_at.get());
}

#[test]
fn a_wait_cmd_leaving_a_background_child_is_ready_at_debug_level_too() {
    // At debug level the script's output is read from a pipe; a child it leaves in the
    // background holds that pipe open, which must not hold up the attempt.
    let run = TestCommand::new()
        .args(["--log-level", "debug", "--attempt-timeout", "10s"])
        .args([
            "--wait-cmd",
            "echo OUT-$((40+2)); sleep 5 & true",
            "--",
            "true",
        ])
        .run();
    run.assert_code(0)
        .assert_stderr_has("OUT-42")
        .assert_stderr_has("(1 attempt)");
    assert!(run.elapsed < Duration::from_secs(3), "{}", run.explain());
}
