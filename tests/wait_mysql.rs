//! `--wait mysql://` and `mariadb://`: against a real MariaDB, and a scripted server for the
//! ERR packets a real one cannot be made to send on demand before its greeting.

mod support;

use std::time::Duration;

use support::servers::{
    assert_scripted_ready, assert_step_runs, mysql_err, mysql_greeting, wait_debug, wait_once,
    First, Mariadb, Scripted,
};
use support::wait::{Reply, Server, V4};
use support::{TempDir, TestCommand};

#[test]
fn a_running_mariadb_is_ready_and_names_its_version() {
    let db = Mariadb::start();
    let version = db.version();
    assert!(version.contains("MariaDB"), "{version}");
    for scheme in ["mariadb", "mysql"] {
        let target = format!("{scheme}://127.0.0.1:{}", db.port);
        // Without MariaDB's "5.5.5-" prefix for old replication clients.
        assert_step_runs(&target)
            .assert_stderr_has(&format!("(1 attempt): server version {version}\n"));
    }
}

#[test]
fn credentials_in_the_url_are_never_sent_nor_shown() {
    let server = Scripted::start(First::Server, vec![], mysql_greeting("8.0.36"));
    let dir = TempDir::new("mysql-pw");
    let marker = dir.path().join("marker.json");
    let target = format!("mysql://root:hunter2-x@127.0.0.1:{}/shop", server.port());
    let run = TestCommand::new()
        .args(["--timeout", "20s", "--wait", &target])
        .arg("--marker")
        .arg(&marker)
        .args(["--", "true"])
        .run();
    run.assert_code(0).assert_stderr_has(&format!(
        "mysql://root:***@127.0.0.1:{}/shop is ready after ",
        server.port()
    ));
    run.assert_stderr_has("server version 8.0.36");
    let marker_text = std::fs::read_to_string(&marker).expect("the marker");
    for text in [run.stderr(), marker_text] {
        assert!(!text.contains("hunter2"), "a password shown:\n{text}");
    }
    // The probe only listens: the server got nothing at all (no login, no password).
    support::poll_until(Duration::from_secs(5), "the connection to close", || {
        (server.connections() == 1).then_some(())
    });
    let received = server.received.lock().expect("lock").clone();
    assert_eq!(received, vec![Vec::<u8>::new()]);
}

#[test]
fn errors_of_a_live_server_are_ready_as_mysqladmin_ping_says() {
    for (code, message, what) in [
        (1040, "Too many connections", "too many connections"),
        (1129, "Host '10.1.2.3' is blocked because of many connection errors; unblock with 'mariadb-admin flush-hosts'", "host blocked"),
        (1130, "Host '10.1.2.3' is not allowed to connect to this MariaDB server", "host not allowed"),
    ] {
        assert_scripted_ready(
            "mysql",
            First::Server,
            mysql_err(code, message),
            &format!("the server is live ({what}: ERR {code} {message})"),
        );
    }
}

#[test]
fn other_errors_are_not_ready_with_the_servers_message() {
    let server = Scripted::start(
        First::Server,
        vec![],
        mysql_err(1045, "Access denied for user 'x'@'10.1.2.3'"),
    );
    let target = format!("mysql://127.0.0.1:{}", server.port());
    let run = wait_once(&target);
    run.assert_code(124)
        .assert_stderr_has(&format!("{target} not ready after "))
        .assert_stderr_has("mysql answered ERR 1045: Access denied for user 'x'@'10.1.2.3'");
}

#[test]
fn scripted_errors_then_a_greeting() {
    let err = mysql_err(1053, "Server shutdown in progress");
    let server = Scripted::start(
        First::Server,
        vec![err.clone(), err],
        mysql_greeting("8.4.0"),
    );
    let target = format!("mysql://127.0.0.1:{}", server.port());
    let run = wait_debug(&target);
    run.assert_code(0)
        .assert_stderr_has("mysql answered ERR 1053: Server shutdown in progress")
        .assert_stderr_has("(3 attempts): server version 8.4.0");
}

#[test]
fn a_port_that_accepts_and_says_nothing_times_out_with_the_reason() {
    // A proxy that accepts but has no server behind it: no greeting ever comes.
    let silent = Server::http(V4, vec![], Reply::Silent);
    let target = format!("mysql://{}", silent.host_port());
    let run = TestCommand::new()
        .args([
            "--timeout",
            "1s",
            "--attempt-timeout",
            "300ms",
            "--wait",
            &target,
        ])
        .args(["--", "true"])
        .run();
    run.assert_code(124)
        .assert_stderr_has(&format!("{target} not ready after "))
        .assert_stderr_has("attempt timed out after 300ms");
}

#[test]
fn something_else_on_the_port_is_not_mysql() {
    let server = Scripted::start(First::Server, vec![], b"SSH-2.0-OpenSSH_9.2p1\r\n".to_vec());
    let target = format!("mariadb://127.0.0.1:{}", server.port());
    let run = wait_once(&target);
    run.assert_code(124)
        .assert_stderr_has(r#"not a mysql server: it answered "SSH-2.0-OpenSSH_9.2p1\r\n""#);
}
