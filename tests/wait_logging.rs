//! podvisor's own lines on stderr during the wait phase: the start line, the ready lines, the
//! periodic "still waiting" line, --log-format json, --quiet and --log-level.

mod support;

use std::time::Duration;

use support::wait::{create_file_after, free_port, Reply, Server, V4};
use support::{TempDir, TestCommand};

#[test]
fn start_line_names_every_target_and_the_deadline_then_one_ready_line_each() {
    let dir = TempDir::new("log-lines");
    let f = dir.path().join("late");
    create_file_after(&f, Duration::from_millis(600));
    let server = Server::tcp(V4);
    let tcp = format!("tcp://{}", server.host_port());
    let file = format!("file://{}", f.display());
    let run = TestCommand::new()
        .args(["--timeout", "20s", "--wait-tcp", &server.host_port()])
        .args(["--wait-file", f.to_str().unwrap(), "--", "true"])
        .run();
    run.assert_code(0);
    let stderr = run.stderr();
    let first = stderr.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!("podvisor: waiting for {tcp}, {file} (timeout 20s)"),
        "{}",
        run.explain()
    );
    for target in [&tcp, &file] {
        let ready: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("podvisor: {target} is ready after ")))
            .collect();
        assert_eq!(ready.len(), 1, "{}", run.explain());
    }
    // The late file's line tells the time it took.
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("{file} is ready after ")))
        .unwrap_or_default();
    let ms: u64 = line
        .split("ready after ")
        .nth(1)
        .and_then(|r| r.split("ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no time in {line:?}"));
    // The file was scheduled just before podvisor started, so a little less than 600 ms.
    assert!((450..5000).contains(&ms), "{}", run.explain());
}

#[test]
fn a_pending_target_is_reported_about_every_5_seconds() {
    // A file that appears after 6.5 s (many quick attempts), and a server that never answers
    // (one attempt that lasts the whole wait): each gets one line after ~5 s.
    let dir = TempDir::new("log-still");
    let f = dir.path().join("late");
    create_file_after(&f, Duration::from_millis(6500));
    let silent = Server::http(V4, vec![], Reply::Silent);
    let file = format!("file://{}", f.display());
    let url = silent.url("/");
    let run = TestCommand::new()
        .args(["--no-strict", "--timeout", "8s", "--attempt-timeout", "30s"])
        .args(["--wait-file", f.to_str().unwrap(), "--wait-http", &url])
        .args(["--", "true"])
        .run();
    run.assert_code(0)
        .assert_stderr_has(&format!("{file} is ready after"));
    let stderr = run.stderr();
    let still = |target: &str| -> Vec<&str> {
        stderr
            .lines()
            .filter(|l| l.contains(&format!("still waiting for {target}: ")))
            .collect()
    };
    let file_lines = still(&file);
    assert_eq!(
        file_lines.len(),
        1,
        "one line after ~5 s\n{}",
        run.explain()
    );
    assert!(
        file_lines[0].contains(" attempts in ") && file_lines[0].contains("does not exist"),
        "attempts, elapsed and the last error\n{}",
        run.explain()
    );
    let url_lines = still(&url);
    assert_eq!(url_lines.len(), 1, "{}", run.explain());
    assert!(
        url_lines[0].contains("1 attempt in ") && url_lines[0].contains("attempt 1 still running"),
        "{}",
        run.explain()
    );
}

#[test]
fn json_format_is_one_object_per_line() {
    let target = format!("127.0.0.1:{}", free_port(V4));
    let run = TestCommand::new()
        .args(["--log-format", "json", "--no-strict", "--timeout", "300ms"])
        .args(["--wait-tcp", &target, "--wait-cmd", "true", "--", "true"])
        .run();
    run.assert_code(0);
    let mut levels = Vec::new();
    for line in run.stderr().lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {line:?} is not JSON ({e})\n{}", run.explain()));
        assert!(v.is_object(), "{}", run.explain());
        assert!(
            v["message"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        levels.push(v["level"].as_str().unwrap_or_default().to_owned());
    }
    assert!(levels.iter().any(|l| l == "INFO"), "{}", run.explain());
    assert!(levels.iter().any(|l| l == "WARN"), "{}", run.explain());
    assert!(run.stderr().contains("waiting for"), "{}", run.explain());
}

#[test]
fn quiet_shows_errors_only() {
    let open = Server::tcp(V4);
    let run = TestCommand::new()
        .args(["-q", "--wait-tcp", &open.host_port(), "--", "true"])
        .run();
    run.assert_code(0);
    assert!(run.stderr().is_empty(), "{}", run.explain());

    let target = format!("127.0.0.1:{}", free_port(V4));
    let run = TestCommand::new()
        .args(["--quiet", "--timeout", "300ms", "--wait-tcp", &target])
        .run();
    run.assert_code(124);
    let stderr = run.stderr();
    assert!(
        !stderr.is_empty() && stderr.lines().all(|l| l.starts_with("podvisor: error: ")),
        "{}",
        run.explain()
    );
}

#[test]
fn log_level_warn_hides_progress_but_not_warnings() {
    let target = format!("127.0.0.1:{}", free_port(V4));
    let run = TestCommand::new()
        .args(["--log-level", "warn", "--no-strict", "--timeout", "300ms"])
        .args(["--wait-tcp", &target, "--", "true"])
        .run();
    run.assert_code(0)
        .assert_stderr_has(&format!("warning: tcp://{target} not ready"));
    assert!(!run.stderr().contains("waiting for"), "{}", run.explain());
}

#[test]
fn log_level_debug_shows_failed_attempts() {
    let target = format!("127.0.0.1:{}", free_port(V4));
    TestCommand::new()
        .args([
            "--log-level",
            "debug",
            "--retries",
            "1",
            "--wait-tcp",
            &target,
        ])
        .run()
        .assert_code(124)
        .assert_stderr_has(&format!("debug: tcp://{target}: attempt 1 failed"));
}

/// A stderr pipe whose reader has gone: every log line podvisor writes fails with EPIPE.
fn broken_stderr(cmd: &mut TestCommand) {
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    drop(reader);
    cmd.command().stderr(std::process::Stdio::from(writer));
}

#[test]
fn a_broken_stderr_changes_neither_the_status_nor_the_outcome() {
    // The step's own status, although "child started" and "child ended" cannot be written.
    let mut cmd = TestCommand::new().args(["--", "sh", "-c", "exit 3"]);
    broken_stderr(&mut cmd);
    cmd.run().assert_code(3);

    // A failed wait (its error lines lost too) is still 124.
    let target = format!("127.0.0.1:{}", free_port(V4));
    let mut cmd = TestCommand::new().args(["--retries", "0", "--wait-tcp", &target]);
    broken_stderr(&mut cmd);
    cmd.run().assert_code(124);

    // Supervision goes on to the end: the marker is written.
    let dir = TempDir::new("broken-stderr");
    let marker = dir.path().join("m.json");
    let mut cmd = TestCommand::new()
        .arg("--marker")
        .arg(&marker)
        .args(["--", "sh", "-c", "exit 5"]);
    broken_stderr(&mut cmd);
    let run = cmd.run();
    run.assert_code(5);
    let text = std::fs::read_to_string(&marker)
        .unwrap_or_else(|e| panic!("no marker {}: {e}\n{}", marker.display(), run.explain()));
    assert!(
        text.contains(r#""status":"exited""#) && text.contains(r#""exit_code":5"#),
        "{text}\n{}",
        run.explain()
    );
}

#[test]
fn wait_cmd_output_at_debug_level_keeps_the_prefix_on_every_line() {
    let run = TestCommand::new()
        .args(["--log-level", "debug", "--wait-cmd"])
        .arg("echo OUT1; echo OUT2; echo ERR >&2")
        .arg("--wait-cmd")
        .arg("echo A\necho B")
        .run();
    run.assert_code(0);
    let stderr = run.stderr();
    assert!(
        stderr.lines().all(|l| l.starts_with("podvisor: ")),
        "a line without the prefix\n{}",
        run.explain()
    );
    for out in ["OUT1", "OUT2", "ERR"] {
        run.assert_stderr_has(&format!(
            "podvisor: debug: echo OUT1; echo OUT2; echo ERR >&2: {out}\n"
        ));
    }
    // A script of several lines is shown on one.
    run.assert_stderr_has("podvisor: debug: echo A\\necho B: B\n");
    run.assert_stderr_has("podvisor: cmd://echo A\\necho B is ready");
}
