//! The termination message: one line for every failure, nothing on success, never a password,
//! at most 4096 bytes.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{poll_until, TempDir, TestCommand};

fn message(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn each_failure_has_its_line_and_success_writes_nothing() {
    let dir = TempDir::new("term");
    let term = dir.path().join("termination-log");
    let run = |args: &[&str]| {
        let _ = std::fs::remove_file(&term);
        TestCommand::new()
            .arg("--termination-log")
            .arg(&term)
            .args(args)
            .run()
    };
    run(&["--", "sh", "-c", "exit 3"]).assert_code(3);
    assert_eq!(message(&term), "sh exited with 3");
    run(&["--", "sh", "-c", "kill -INT $$"]).assert_code(130);
    assert_eq!(message(&term), "sh killed by SIGINT");
    run(&["--", "/no/such/thing"]).assert_code(127);
    assert!(
        message(&term).starts_with("cannot start /no/such/thing: "),
        "{}",
        message(&term)
    );
    // A password in a target never reaches the message.
    run(&[
        "--wait",
        "postgres://me:s3cret@127.0.0.1:1/db",
        "--retries",
        "0",
        "--",
        "true",
    ])
    .assert_code(124);
    let m = message(&term);
    assert!(
        m.starts_with("wait failed after ")
            && m.contains("postgres://me:***@127.0.0.1:1/db")
            && !m.contains("s3cret"),
        "{m}"
    );
    // At most 4096 bytes, one line.
    let long = format!("exit 1 # {}", "x\n".repeat(5000));
    let run_long = run(&["--wait-cmd", &long, "--retries", "0", "--", "true"]);
    run_long.assert_code(124);
    let m = message(&term);
    assert!(m.len() <= 4096 && !m.contains('\n'), "{} bytes", m.len());
    // --map-exit: the mapped code decides; the line says both.
    run(&["--map-exit", "3:7", "--", "sh", "-c", "exit 3"]).assert_code(7);
    assert_eq!(
        message(&term),
        "sh exited with 3 (exit code 7 by --map-exit)"
    );
    run(&["--map-exit", "3:0", "--", "sh", "-c", "exit 3"]).assert_code(0);
    assert!(!term.exists());
    // Success: nothing written.
    run(&["--", "true"]).assert_code(0);
    assert!(!term.exists());
}

#[test]
fn a_grace_period_sigkill_says_so() {
    let dir = TempDir::new("term-grace");
    let term = dir.path().join("termination-log");
    let ready = dir.path().join("ready");
    let (mut child, shown) = TestCommand::new()
        .arg("--termination-log")
        .arg(&term)
        .args(["--grace-period", "300ms", "--", "sh", "-c"])
        .arg("trap '' TERM; touch \"$0\"; while :; do sleep 1; done")
        .arg(&ready)
        .spawn();
    poll_until(Duration::from_secs(10), "the child's trap", || {
        ready.exists().then_some(())
    });
    support::sigs::kill(child.id() as i32, nix::libc::SIGTERM);
    let status = poll_until(Duration::from_secs(20), "podvisor to exit", || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(137), "{shown}");
    assert_eq!(
        message(&term),
        "sh killed by SIGKILL after the 300ms grace period"
    );
}
