//! Configuration from `PODVISOR_*` variables: comma lists, booleans, empty = unset, flags over
//! the environment, warnings for unknown variables.

mod support;

use std::time::Duration;

use support::wait::{free_port, lines, Reply, Server, UnixServer, V4};
use support::{TempDir, TestCommand};

fn closed() -> String {
    format!("127.0.0.1:{}", free_port(V4))
}

#[test]
fn wait_tcp_takes_a_comma_list_with_blanks() {
    let a = Server::tcp(V4);
    let b = Server::tcp_after(V4, Duration::from_millis(500));
    let list = format!(" {} , {} ,", a.host_port(), b.host_port());
    let run = TestCommand::new()
        .env("PODVISOR_WAIT_TCP", &list)
        .env("PODVISOR_TIMEOUT", "10s")
        .args(["--", "true"])
        .run();
    run.assert_code(0)
        .assert_stderr_has(&format!("tcp://{} is ready", a.host_port()))
        .assert_stderr_has(&format!("tcp://{} is ready", b.host_port()));
    b.ready_at.get();
    assert!(
        run.elapsed >= Duration::from_millis(500),
        "{}",
        run.explain()
    );
}

#[test]
fn every_wait_kind_can_come_from_the_environment() {
    let dir = TempDir::new("env-kinds");
    let f = dir.path().join("f");
    std::fs::write(&f, "x").unwrap();
    let sock = dir.path().join("s.sock");
    let _unix = UnixServer::after(&sock, Duration::ZERO);
    let http = Server::http(V4, vec![], Reply::Status(200));
    let run = TestCommand::new()
        .env("PODVISOR_WAIT_FILE", &f)
        .env("PODVISOR_WAIT_UNIX", &sock)
        .env("PODVISOR_WAIT_HTTP", http.url("/"))
        .env("PODVISOR_WAIT_CMD", "test -e /")
        .env("PODVISOR_TIMEOUT", "10s")
        .args(["--", "true"])
        .run();
    run.assert_code(0);
    assert_eq!(
        run.stderr().matches(" is ready after ").count(),
        4,
        "{}",
        run.explain()
    );
}

#[test]
fn timeout_from_the_environment() {
    let run = TestCommand::new()
        .env("PODVISOR_WAIT_TCP", closed())
        .env("PODVISOR_TIMEOUT", "1")
        .run();
    run.assert_code(124).assert_stderr_has("(timeout 1s)");
    assert!(
        run.elapsed >= Duration::from_secs(1) && run.elapsed < Duration::from_secs(4),
        "{}",
        run.explain()
    );
}

#[test]
fn flags_override_the_environment() {
    let run = TestCommand::new()
        .env("PODVISOR_TIMEOUT", "30s")
        .args(["--timeout", "500ms", "--wait-tcp", &closed()])
        .run();
    run.assert_code(124).assert_stderr_has("(timeout 500ms)");
    assert!(run.elapsed < Duration::from_secs(3), "{}", run.explain());

    // A repeatable flag replaces the variable's whole list.
    let open = Server::tcp(V4);
    let run = TestCommand::new()
        .env("PODVISOR_WAIT_TCP", closed())
        .args([
            "--timeout",
            "5s",
            "--wait-tcp",
            &open.host_port(),
            "--",
            "true",
        ])
        .run();
    run.assert_code(0);

    // -q beats PODVISOR_LOG_LEVEL.
    let run = TestCommand::new()
        .env("PODVISOR_LOG_LEVEL", "debug")
        .args(["-q", "--wait-tcp", &open.host_port(), "--", "true"])
        .run();
    run.assert_code(0);
    assert!(run.stderr().is_empty(), "{}", run.explain());
}

#[test]
fn booleans_accept_1_0_true_false_yes_no() {
    let target = closed();
    for (value, strict) in [
        ("1", false),
        ("true", false),
        ("yes", false),
        ("TRUE", false),
        ("0", true),
        ("false", true),
        ("no", true),
    ] {
        let run = TestCommand::new()
            .env("PODVISOR_NO_STRICT", value)
            .args(["--timeout", "300ms", "--wait-tcp", &target])
            .args(["--", "sh", "-c", "exit 7"])
            .run();
        run.assert_code(if strict { 124 } else { 7 });
    }
    let run = TestCommand::new()
        .env("PODVISOR_QUIET", "yes")
        .args(["--wait-cmd", "true", "--", "true"])
        .run();
    run.assert_code(0);
    assert!(run.stderr().is_empty(), "{}", run.explain());
}

#[test]
fn empty_values_count_as_unset() {
    let dir = TempDir::new("env-empty");
    let log = dir.path().join("attempts");
    let run = TestCommand::new()
        .env("PODVISOR_WAIT_TCP", "")
        .env("PODVISOR_NO_STRICT", "")
        .env("PODVISOR_RETRIES", "")
        .env("PODVISOR_LOG_FORMAT", "")
        .env("PODVISOR_INTERVAL", "")
        .env("PODVISOR_SH", "")
        .args(["--timeout", "700ms"])
        .args(["--wait-cmd", &format!("echo >> {}; false", log.display())])
        .args(["--", "echo", "SHOULD-NOT-RUN"])
        .run();
    // Strict (124), unlimited retries at the default 100 ms interval, text logs.
    run.assert_code(124)
        .assert_stderr_has("podvisor: error: cmd://");
    assert!(
        lines(&log) >= 4,
        "{} attempts\n{}",
        lines(&log),
        run.explain()
    );
    assert!(!run.stdout().contains("SHOULD-NOT-RUN"));
}

#[test]
fn policy_options_from_the_environment() {
    let dir = TempDir::new("env-policy");
    let log = dir.path().join("attempts");
    let run = TestCommand::new()
        .env("PODVISOR_RETRIES", "2")
        .env("PODVISOR_INTERVAL", "50ms")
        .env("PODVISOR_MAX_INTERVAL", "100ms")
        .env("PODVISOR_ATTEMPT_TIMEOUT", "2s")
        .args(["--wait-cmd", &format!("echo >> {}; false", log.display())])
        .run();
    run.assert_code(124).assert_stderr_has("(3 attempts)");
    assert_eq!(lines(&log), 3, "{}", run.explain());
}

#[test]
fn unknown_variables_warn_with_the_closest_name() {
    let run = TestCommand::new()
        .env("PODVISOR_WAIT_TPC", "db:5432")
        .env("PODVISOR_TIMOUT", "5")
        .args(["--", "echo", "RAN"])
        .run();
    run.assert_code(0)
        .assert_stdout_has("RAN")
        .assert_stderr_has(
            "warning: unknown variable PODVISOR_WAIT_TPC is ignored; did you mean PODVISOR_WAIT_TCP?",
        )
        .assert_stderr_has(
            "warning: unknown variable PODVISOR_TIMOUT is ignored; did you mean PODVISOR_TIMEOUT?",
        );
}

#[test]
fn every_option_has_its_variable() {
    // Each option's variable is accepted silently (no unknown-variable warning).
    let help = TestCommand::new().arg("--help").run().stdout();
    let longs: Vec<String> = help
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .filter(|w| !w.is_empty() && w != "help" && w != "version")
        .collect();
    assert!(longs.len() >= 20, "{longs:?}");
    let mut c = TestCommand::new();
    for long in &longs {
        let name = format!("PODVISOR_{}", long.to_ascii_uppercase().replace('-', "_"));
        // Empty: set, but counts as unset.
        c = c.env(&name, "");
    }
    let run = c.args(["--", "true"]).run();
    run.assert_code(0);
    assert!(
        !run.stderr().contains("unknown variable"),
        "{}",
        run.explain()
    );
}
