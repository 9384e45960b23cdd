//! Every configuration error: exit 125 with one line naming the flag or variable and the bad
//! value, before anything runs (no wait started, COMMAND not run).

mod support;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use support::{TempDir, TestCommand};

/// One bad configuration: flags, variables, and what the line must contain.
struct Case {
    args: &'static [&'static str],
    env: Option<(&'static str, &'static str)>,
    needles: &'static [&'static str],
}

const fn flag(args: &'static [&'static str], needles: &'static [&'static str]) -> Case {
    Case {
        args,
        env: None,
        needles,
    }
}

const fn var(name: &'static str, value: &'static str, needles: &'static [&'static str]) -> Case {
    Case {
        args: &[],
        env: Some((name, value)),
        needles,
    }
}

/// 108 bytes: one more than a unix socket address holds.
const LONG_SOCKET: &str = "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock";

const CASES: &[Case] = &[
    // unknown flag (with clap's suggestion kept on the line)
    flag(&["--bogus"], &["--bogus"]),
    flag(&["--timout", "5"], &["--timout", "--timeout"]),
    // missing value
    flag(&["--timeout"], &["--timeout"]),
    // bad durations
    flag(&["--timeout", "soon"], &["--timeout", "soon"]),
    flag(&["--timeout", "-1"], &["--timeout", "-1"]),
    flag(&["--interval", "5x"], &["--interval", "5x"]),
    flag(&["--interval", "0"], &["--interval", "'0'"]),
    flag(&["--max-interval", "fast"], &["--max-interval", "fast"]),
    flag(&["--attempt-timeout", "0s"], &["--attempt-timeout", "0s"]),
    flag(&["--grace-period", "1y2"], &["--grace-period", "1y2"]),
    // bad HOST:PORT
    flag(&["--wait-tcp", "nohostport"], &["--wait-tcp", "nohostport"]),
    flag(&["--wait-tcp", "db:99999"], &["--wait-tcp", "db:99999"]),
    flag(&["--wait-tcp", "db:0"], &["--wait-tcp", "db:0"]),
    flag(&["--wait-tcp", "::1:80"], &["--wait-tcp", "::1:80"]),
    flag(&["--wait-tcp", ":80"], &["--wait-tcp", ":80"]),
    flag(&["--wait-tcp", "db:+80"], &["--wait-tcp", "db:+80"]),
    flag(
        &["--wait-tcp", "http://db:80"],
        &["--wait-tcp", "http://db:80", "--wait-http"],
    ),
    // bad URL, non-http scheme
    flag(&["--wait-http", "not a url"], &["--wait-http", "not a url"]),
    flag(
        &["--wait-http", "localhost:80/x"],
        &["--wait-http", "localhost:80/x"],
    ),
    flag(&["--wait-http", "http://"], &["--wait-http", "http://"]),
    flag(
        &["--wait-http", "https://x/#insecure=yes"],
        &["--wait-http", "https://x/#insecure=yes", "takes no value"],
    ),
    // --wait URL: unknown scheme, unknown option (with the closest), option of another scheme
    flag(
        &["--wait", "ftp://x/"],
        &["--wait", "ftp://x/", "unknown scheme"],
    ),
    flag(
        &["--wait", "https://es:9200/#stauts=200"],
        &[
            "--wait",
            "unknown option 'stauts' in https://es:9200/#stauts=200; did you mean 'status'?",
        ],
    ),
    flag(
        &["--wait", "http://x/#insecure"],
        &["--wait", "'insecure'", "https://"],
    ),
    flag(
        &["--wait", "tcp://db"],
        &["--wait", "tcp://db", "HOST:PORT"],
    ),
    flag(&["--wait-http", "ftp://x/"], &["--wait-http", "ftp://x/"]),
    // a port that is not 1-65535 (the probe used to fall back to port 80)
    flag(
        &["--wait-http", "http://db:99999/"],
        &["--wait-http", "http://db:99999/", "port"],
    ),
    flag(
        &["--wait-http", "http://db:65536/"],
        &["--wait-http", "http://db:65536/"],
    ),
    flag(
        &["--wait-http", "http://db:0/"],
        &["--wait-http", "http://db:0/"],
    ),
    flag(
        &["--wait-http", "http://db:abc/"],
        &["--wait-http", "http://db:abc/"],
    ),
    flag(
        &["--wait-http", "http://db:/"],
        &["--wait-http", "http://db:/"],
    ),
    // bad numbers
    flag(&["--retries", "many"], &["--retries", "many"]),
    flag(&["--retries", "-1"], &["--retries", "-1"]),
    flag(&["--retries", "1.5"], &["--retries", "1.5"]),
    // log format and level
    flag(&["--log-format", "xml"], &["--log-format", "xml"]),
    flag(&["--log-level", "loud"], &["--log-level", "loud"]),
    // not one of error|warn|info|debug
    flag(&["--log-level", "trace"], &["--log-level", "trace"]),
    // signals (options of the supervision and sidecar issues)
    flag(&["--rewrite-signal", "TERM"], &["--rewrite-signal", "TERM"]),
    flag(
        &["--rewrite-signal", "TERM:NOPE"],
        &["--rewrite-signal", "NOPE"],
    ),
    flag(&["--stop-signal", "SIGNOPE"], &["--stop-signal", "SIGNOPE"]),
    flag(
        &["--rewrite-signal", "0:TERM"],
        &["--rewrite-signal", "0:TERM"],
    ),
    // bad --map-exit
    flag(&["--map-exit", "143"], &["--map-exit", "'143'", "FROM:TO"]),
    flag(&["--map-exit", "256:0"], &["--map-exit", "256:0"]),
    flag(&["--map-exit", "143:-1"], &["--map-exit", "143:-1"]),
    flag(&["--map-exit", "-1:0"], &["--map-exit", "-1:0"]),
    flag(&["--map-exit", "TERM:0"], &["--map-exit", "TERM:0"]),
    var(
        "PODVISOR_MAP_EXIT",
        "143:0, 3",
        &["PODVISOR_MAP_EXIT", "'3'"],
    ),
    // empty paths
    flag(&["--wait-file", ""], &["--wait-file"]),
    // a socket path longer than sun_path can hold (107 bytes)
    flag(
        &["--wait-unix", LONG_SOCKET],
        &["--wait-unix", LONG_SOCKET, "107"],
    ),
    var(
        "PODVISOR_WAIT_UNIX",
        LONG_SOCKET,
        &["PODVISOR_WAIT_UNIX", LONG_SOCKET],
    ),
    // --sh and a COMMAND
    flag(&["--sh", "true", "--", "ls"], &["--sh", "ls"]),
    // bad env values
    var("PODVISOR_TIMEOUT", "soon", &["PODVISOR_TIMEOUT", "soon"]),
    var("PODVISOR_INTERVAL", "fast", &["PODVISOR_INTERVAL", "fast"]),
    var("PODVISOR_RETRIES", "x", &["PODVISOR_RETRIES", "'x'"]),
    var(
        "PODVISOR_WAIT_TCP",
        "a:1,bad",
        &["PODVISOR_WAIT_TCP", "bad"],
    ),
    var(
        "PODVISOR_WAIT_HTTP",
        "https://x/#ca",
        &["PODVISOR_WAIT_HTTP", "https://x/#ca", "needs a value"],
    ),
    var(
        "PODVISOR_WAIT",
        "https://x/#status=200-299,401, postgres://db#stauts=1",
        &[
            "PODVISOR_WAIT",
            "postgres://db#stauts=1",
            "takes no options",
        ],
    ),
    var(
        "PODVISOR_WAIT_HTTP",
        "http://db:8o80/",
        &["PODVISOR_WAIT_HTTP", "http://db:8o80/"],
    ),
    var(
        "PODVISOR_NO_STRICT",
        "perhaps",
        &["PODVISOR_NO_STRICT", "perhaps"],
    ),
    var("PODVISOR_QUIET", "2", &["PODVISOR_QUIET", "'2'"]),
    var("PODVISOR_NO_GROUP", "on", &["PODVISOR_NO_GROUP", "on"]),
    var(
        "PODVISOR_LOG_FORMAT",
        "xml",
        &["PODVISOR_LOG_FORMAT", "xml"],
    ),
    var(
        "PODVISOR_LOG_LEVEL",
        "loud",
        &["PODVISOR_LOG_LEVEL", "loud"],
    ),
    var(
        "PODVISOR_LOG_LEVEL",
        "trace",
        &["PODVISOR_LOG_LEVEL", "trace"],
    ),
    var(
        "PODVISOR_GRACE_PERIOD",
        "x",
        &["PODVISOR_GRACE_PERIOD", "'x'"],
    ),
];

#[test]
fn every_config_error_is_125_with_one_line_before_anything_runs() {
    let dir = TempDir::new("cfg");
    for (n, case) in CASES.iter().enumerate() {
        // A --wait-cmd that would leave a file shows whether the wait phase started.
        let waited = dir.path().join(format!("waited-{n}"));
        let mut c = TestCommand::new();
        if let Some((k, v)) = case.env {
            c = c.env(k, v);
        }
        let run = c
            .args(["--wait-cmd", &format!("touch {}", waited.display())])
            .args(case.args)
            .args(["--", "echo", "SHOULD-NOT-RUN"])
            .run();
        run.assert_code(125);
        let stderr = run.stderr();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{}", run.explain());
        assert!(stderr.starts_with("podvisor: error: "), "{}", run.explain());
        for needle in case.needles {
            run.assert_stderr_has(needle);
        }
        assert!(
            !run.stdout().contains("SHOULD-NOT-RUN"),
            "{}",
            run.explain()
        );
        assert!(
            !waited.exists(),
            "the wait phase started\n{}",
            run.explain()
        );
    }
}

#[test]
fn non_utf8_values_name_the_flag_or_variable() {
    let bad = OsString::from_vec(vec![b'5', 0xff, b's']);
    let run = TestCommand::new().arg("--timeout").arg(&bad).run();
    run.assert_code(125)
        .assert_stderr_has("--timeout")
        .assert_stderr_has("UTF-8");
    let run = TestCommand::new().env("PODVISOR_TIMEOUT", &bad).run();
    run.assert_code(125)
        .assert_stderr_has("PODVISOR_TIMEOUT")
        .assert_stderr_has("UTF-8");
    assert_eq!(
        run.stderr().trim_end().lines().count(),
        1,
        "{}",
        run.explain()
    );
}

#[test]
fn the_error_line_follows_log_format_json() {
    for c in [
        TestCommand::new().args(["--log-format", "json", "--timeout", "soon"]),
        TestCommand::new()
            .env("PODVISOR_LOG_FORMAT", "json")
            .arg("--bogus"),
    ] {
        let run = c.run();
        run.assert_code(125);
        let line = run.stderr();
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("not one JSON object ({e})\n{}", run.explain()));
        assert_eq!(v["level"], "ERROR", "{}", run.explain());
        assert!(v["message"].as_str().is_some(), "{}", run.explain());
    }
}

#[test]
fn help_and_version_are_not_errors() {
    let run = TestCommand::new().arg("--help").run();
    run.assert_code(0).assert_stdout_has("--wait-tcp");
    TestCommand::new()
        .arg("--version")
        .run()
        .assert_code(0)
        .assert_stdout_has("podvisor ");
}
