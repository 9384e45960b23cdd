//! The sidecar-log options' configuration errors (exit 125, one line naming the flag or variable
//! and the value) and the termination message of a configuration error.

mod support;

use support::{TempDir, TestCommand};

/// Flags, a variable, and what the error line must contain.
type Case<'a> = (&'a [&'a str], Option<(&'a str, &'a str)>, &'a [&'a str]);

#[test]
fn bad_values_are_one_line_and_exit_125() {
    let cases: &[Case] = &[
        (&["--log-size", "lots"], None, &["--log-size", "lots"]),
        (&["--log-size", "1T"], None, &["--log-size", "1T"]),
        (
            &["--log-size", "100"],
            None,
            &["--log-size", "'100'", "at least 1KiB"],
        ),
        (
            &[],
            Some(("PODVISOR_LOG_SIZE", "1.5M")),
            &["PODVISOR_LOG_SIZE", "1.5M"],
        ),
        (&["--show-lines", "-3"], None, &["--show-lines", "-3"]),
        (
            &[],
            Some(("PODVISOR_SHOW_LINES", "ten")),
            &["PODVISOR_SHOW_LINES", "ten"],
        ),
        (
            &["--show-logs-when", "sometimes"],
            None,
            &["--show-logs-when", "sometimes", "failure or always"],
        ),
        (
            &[],
            Some(("PODVISOR_SHOW_LOGS_WHEN", "never")),
            &["PODVISOR_SHOW_LOGS_WHEN", "never"],
        ),
        (
            &["--wait-log", "/w/a.log"],
            None,
            &["--wait-log", "/w/a.log", "regex="],
        ),
        (
            &["--wait-log", "/w/a.log#regex=("],
            None,
            &["--wait-log", "regex=("],
        ),
        (
            &["--wait-log", "/w/a.log#regx=a"],
            None,
            &[
                "--wait-log",
                "unknown option 'regx'",
                "did you mean 'regex'",
            ],
        ),
        (
            &["--wait-log", "/w/a.log#regex=a&count=0"],
            None,
            &["--wait-log", "count=0"],
        ),
        (
            &[],
            Some(("PODVISOR_WAIT_LOG", "/w/a.log#count=2")),
            &["PODVISOR_WAIT_LOG", "needs a regex option"],
        ),
        (&["--log-to", ""], None, &["--log-to"]),
        (&["--show-logs", ""], None, &["--show-logs"]),
    ];
    for (args, env, needles) in cases {
        let mut cmd = TestCommand::new().args(*args);
        if let Some((k, v)) = env {
            cmd = cmd.env(k, v);
        }
        let run = cmd.args(["--", "echo", "ran"]).run();
        run.assert_code(125);
        let stderr = run.stderr();
        assert_eq!(stderr.lines().count(), 1, "{}", run.explain());
        for needle in *needles {
            assert!(
                stderr.contains(needle),
                "lacks {needle:?}\n{}",
                run.explain()
            );
        }
        assert!(!run.stdout().contains("ran"), "{}", run.explain());
    }
}

#[test]
fn good_values_are_taken() {
    let dir = TempDir::new("logs-config");
    let log = dir.path().join("x.log");
    std::fs::write(&log, "ok\n").unwrap();
    TestCommand::new()
        .env("PODVISOR_LOG_SIZE", "2M")
        .env("PODVISOR_SHOW_LINES", "0")
        .env("PODVISOR_SHOW_LOGS_WHEN", "ALWAYS")
        .env(
            "PODVISOR_WAIT_LOG",
            format!("{}#regex=%6Fk&count=1", log.display()),
        )
        .env("PODVISOR_LOG_TO", dir.path().join("copy.log"))
        .args(["--", "true"])
        .run()
        .assert_code(0);
    assert!(std::fs::read_to_string(dir.path().join("copy.log"))
        .unwrap()
        .contains("is ready after"));
}

#[test]
fn a_configuration_error_is_a_termination_message_too() {
    let dir = TempDir::new("logs-config-term");
    let term = dir.path().join("term");
    TestCommand::new()
        .env("PODVISOR_TERMINATION_LOG", &term)
        .args(["--timeout", "soon", "--", "true"])
        .run()
        .assert_code(125);
    let message = std::fs::read_to_string(&term).unwrap();
    assert!(
        message.starts_with("podvisor error: invalid value 'soon' for --timeout"),
        "{message:?}"
    );
}
