//! `--wait postgres://`: against a real postgres 15 (trust, SCRAM password, a standby stuck in
//! recovery), and a scripted server for the exact bytes of the start-up answers.

mod support;

use std::time::Duration;

use support::servers::{
    assert_scripted_ready, assert_step_runs, marker_wait, pg_auth_ok, pg_error, wait_debug,
    wait_once, First, PgMode, Postgres, Scripted,
};
use support::wait::Background;
use support::{TempDir, TestCommand};

/// `postgres://HOST:PORT` with an optional `user[:password]@` and `/db`.
fn url(port: u16, userinfo: &str, db: &str) -> String {
    format!("postgres://{userinfo}127.0.0.1:{port}{db}")
}

#[test]
fn a_running_server_is_ready_and_the_probe_leaves_no_error_in_its_log() {
    let pg = Postgres::start(PgMode::Trust);
    let target = url(pg.port, "", "");
    let run = assert_step_runs(&target);
    run.assert_stderr_has("postgres accepts connections (no password needed)");
    // A session opened with AuthenticationOk is ended with Terminate: the server logs the
    // connection, and no "unexpected EOF" or other error about it.
    let log = pg.log();
    assert!(
        log.contains(
            "connection authorized: user=postgres database=postgres application_name=podvisor"
        ),
        "{log}"
    );
    // Every line of the backend that served podvisor (`[PID]`), none an error.
    let pid = log
        .lines()
        .find(|l| l.contains("application_name=podvisor"))
        .and_then(|l| l.split_once('[')?.1.split_once(']'))
        .map(|(pid, _)| format!("[{pid}]"))
        .unwrap_or_else(|| panic!("no podvisor connection in the log:\n{log}"));
    let ours: Vec<&str> = log.lines().filter(|l| l.contains(&pid)).collect();
    assert!(
        ours.iter().all(|l| l.contains("LOG:  connection ")),
        "the backend serving podvisor logged more than its connection:\n{}\n{}",
        ours.join("\n"),
        run.explain()
    );
}

#[test]
fn a_wrong_user_or_database_is_still_ready_the_server_accepts_connections() {
    let pg = Postgres::start(PgMode::Trust);
    let target = url(pg.port, "nobody@", "/nodb");
    let run = TestCommand::new()
        .args([
            "--timeout",
            "30s",
            "--retries",
            "0",
            "--wait",
            &target,
            "--",
            "true",
        ])
        .run();
    run.assert_code(0)
        .assert_stderr_has(&format!("{target} is ready after "));
    // The server did see who knocked (and refused the role after authentication: the step's
    // business, not the wait's).
    let log = pg.log();
    assert!(log.contains("user=nobody database=nodb"), "{log}");
}

#[test]
fn a_password_server_is_ready_without_the_password_and_no_password_is_shown() {
    let pg = Postgres::start(PgMode::Password);
    let dir = TempDir::new("pg-pw");
    let marker = dir.path().join("marker.json");
    let with_wrong = url(pg.port, "app:n0t-the-pass%40rd@", "/shop");
    let without = url(pg.port, "", "");
    let run = TestCommand::new()
        .args(["--timeout", "30s", "--retries", "0"])
        .args(["--wait", &with_wrong, "--wait", &without])
        .arg("--marker")
        .arg(&marker)
        .args(["--", "true"])
        .run();
    run.assert_code(0)
        .assert_stderr_has(&format!(
            "postgres://app:***@127.0.0.1:{}/shop is ready after ",
            pg.port
        ))
        .assert_stderr_has("it asks for SASL (SCRAM) authentication");
    let marker_text = std::fs::read_to_string(&marker).expect("the marker");
    for shown in [run.stderr(), marker_text.clone()] {
        assert!(
            !shown.contains("n0t-the-pass"),
            "a password shown:\n{shown}"
        );
    }
    assert!(marker_text.contains("app:***@"), "{marker_text}");
    // Closed without a word after the password request, as libpq's ping does: no "expected
    // SASL response" error in the server's log.
    let log = pg.log();
    assert!(!log.contains("expected SASL response"), "{log}");
}

#[test]
fn a_server_in_recovery_answers_57p03_and_is_not_ready_until_promoted() {
    let pg = Postgres::start(PgMode::Recovering);
    assert_eq!(
        pg.isready(),
        Some(1),
        "pg_isready should say 'rejecting connections'"
    );
    let target = url(pg.port, "", "");

    // Out of time while it recovers: 124, with what the server said.
    let dir = TempDir::new("pg-recovery");
    let marker = dir.path().join("marker.json");
    let run = TestCommand::new()
        .args(["--timeout", "1s", "--wait", &target])
        .arg("--marker")
        .arg(&marker)
        .args(["--", "echo", "must not run"])
        .run();
    run.assert_code(124)
        .assert_stderr_has(&format!("{target} not ready after "));
    run.assert_stderr_has(
        "postgres is starting up (57P03): the database system is not accepting connections",
    );
    assert!(!run.stdout().contains("must not run"), "{}", run.explain());
    let wait = marker_wait(&marker, 0);
    assert_eq!(wait["ready"], false, "{wait}");
    assert_eq!(wait["target"], target.as_str(), "{wait}");
    let last = wait["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("postgres is starting up (57P03)"), "{wait}");

    // Waiting through the promotion: the step starts once the server accepts sessions.
    let mut waiting = Background::start(
        TestCommand::new()
            .args(["--timeout", "60s", "--interval", "50ms"])
            .args(["--log-level", "debug"])
            .args(["--wait", &target, "--", "echo", "step"]),
    );
    waiting.wait_for_line("postgres is starting up (57P03)", Duration::from_secs(20));
    pg.promote();
    let run = waiting.finish(Duration::from_secs(60));
    run.assert_code(0)
        .assert_stdout_has("step")
        .assert_stderr_has(&format!("{target} is ready after "));
}

#[test]
fn a_server_finishing_recovery_by_itself_is_ready_once_it_accepts_connections() {
    let pg = Postgres::start(PgMode::ArchiveRecovery);
    let target = url(pg.port, "", "");
    let run = TestCommand::new()
        .args(["--timeout", "60s", "--interval", "50ms"])
        .args(["--log-level", "debug"])
        .args(["--wait", &target, "--", "echo", "step"])
        .run();
    run.assert_code(0)
        .assert_stdout_has("step")
        .assert_stderr_has("failed: postgres is starting up (57P03)")
        .assert_stderr_has(&format!("{target} is ready after "));
    // Not before the server said so: its log has the end of recovery before podvisor's session.
    let log = pg.log();
    let ready = log.find("database system is ready to accept connections");
    let ours = log.find("application_name=podvisor");
    assert!(
        ready.is_some() && ours.is_some() && ready < ours,
        "{log}\n{}",
        run.explain()
    );
}

#[test]
fn scripted_start_up_answers_then_ready_with_the_exact_bytes_on_the_wire() {
    let starting = pg_error("57P03", "the database system is starting up");
    let server = Scripted::start(
        First::Client,
        vec![starting.clone(), starting],
        pg_auth_ok(),
    );
    let target = format!("postgres://app@127.0.0.1:{}/shop", server.port());
    let run = wait_debug(&target);
    run.assert_code(0)
        .assert_stderr_has("postgres is starting up (57P03): the database system is starting up")
        .assert_stderr_has(&format!("{target} is ready after "))
        .assert_stderr_has("(3 attempts)");
    let received = server.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 3, "{received:?}");
    // StartupMessage: length, protocol 3.0, user, database, application_name.
    let mut startup =
        b"\0\0\0\0\0\x03\0\0user\0app\0database\0shop\0application_name\0podvisor\0\0".to_vec();
    let len = u32::try_from(startup.len()).expect("small").to_be_bytes();
    startup[..4].copy_from_slice(&len);
    for (i, got) in received.iter().enumerate() {
        assert!(got.starts_with(&startup), "connection {i}: {got:?}");
    }
    // After AuthenticationOk, a Terminate; after an error, nothing more.
    assert_eq!(received[0], startup);
    assert_eq!(received[2][startup.len()..], [b'X', 0, 0, 0, 4]);
}

#[test]
fn scripted_errors_other_than_57p03_mean_a_live_server() {
    for (code, message) in [
        ("53300", "sorry, too many clients already"),
        ("28000", "no pg_hba.conf entry for host \"10.0.0.9\""),
        ("3D000", "database \"nodb\" does not exist"),
    ] {
        assert_scripted_ready(
            "postgres",
            First::Client,
            pg_error(code, message),
            &format!("postgres accepts connections; it answered {code}: {message}"),
        );
    }
}

#[test]
fn something_else_on_the_port_is_not_postgres() {
    let server = Scripted::start(
        First::Client,
        vec![],
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
    );
    let target = format!("postgresql://127.0.0.1:{}", server.port());
    let run = wait_once(&target);
    run.assert_code(124).assert_stderr_has(
        r#"not a postgres server: it answered "HTTP/1.1 400 Bad Request\r\n\r\n""#,
    );
}
