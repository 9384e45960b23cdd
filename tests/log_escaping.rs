//! Log lines that cannot lie: a value holding newlines, control bytes or bytes that are not
//! UTF-8 prints as one escaped `podvisor:` line, never a second line a reader would take for one
//! of podvisor's own (issue 15, item 4).

mod support;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use support::{Run, TempDir, TestCommand};

/// Every line of stderr is podvisor's, and none holds a raw control character.
fn assert_lines_are_podvisors(run: &Run) {
    let stderr = run.stderr();
    for line in stderr.lines() {
        assert!(
            line.starts_with("podvisor: "),
            "a line without the prefix: {line:?}\n{}",
            run.explain()
        );
        assert!(
            !line.chars().any(char::is_control),
            "a raw control character in {line:?}\n{}",
            run.explain()
        );
    }
}

#[test]
fn a_newline_in_a_config_value_stays_on_one_line() {
    let run = TestCommand::new()
        .args(["--timeout", "soon\nnext", "--", "echo", "SHOULD-NOT-RUN"])
        .run();
    run.assert_code(125)
        .assert_stderr_has("podvisor: error: invalid value 'soon\\nnext' for --timeout");
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.explain());
    assert_lines_are_podvisors(&run);
    assert!(!run.stdout().contains("SHOULD-NOT-RUN"));
}

#[test]
fn a_forged_line_in_a_wait_file_path_is_escaped_everywhere_it_is_named() {
    let dir = TempDir::new("esc");
    let path = format!("{}/x\nforged: line", dir.path().display());
    let run = TestCommand::new()
        .args(["--wait-file", &path, "--timeout", "300ms", "--", "true"])
        .run();
    run.assert_code(124).assert_stderr_has("x\\nforged: line");
    // "waiting for ..." and the error line, each one line.
    assert!(run.stderr().lines().count() >= 2, "{}", run.explain());
    assert_lines_are_podvisors(&run);
}

#[test]
fn clap_errors_keep_the_value_whole_on_one_line() {
    let run = TestCommand::new().arg("--ti\nforged: x").run();
    run.assert_code(125)
        .assert_stderr_has("podvisor: error: unexpected argument '--ti\\nforged: x'");
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.explain());
    assert_lines_are_podvisors(&run);
}

#[test]
fn control_bytes_and_non_utf8_bytes_are_shown_escaped() {
    let bad = OsString::from_vec(b"5\xff\x1b[2K\r".to_vec());
    let run = TestCommand::new().arg("--timeout").arg(&bad).run();
    run.assert_code(125)
        .assert_stderr_has("'5\\xff\\x1b[2K\\r' for --timeout: not valid UTF-8");
    assert_lines_are_podvisors(&run);

    let run = TestCommand::new()
        .arg("--")
        .arg(OsString::from_vec(b"/nonexistent/\xfe\nforged: x".to_vec()))
        .run();
    run.assert_code(127)
        .assert_stderr_has("/nonexistent/\\xfe\\nforged: x");
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.explain());
    assert_lines_are_podvisors(&run);
}

#[test]
fn a_variable_name_with_a_newline_is_one_warning_line() {
    let run = TestCommand::new()
        .env("PODVISOR_X\nforged: line", "1")
        .args(["--", "true"])
        .run();
    run.assert_code(0)
        .assert_stderr_has("unknown variable PODVISOR_X\\nforged: line is ignored");
    assert_lines_are_podvisors(&run);
}

#[test]
fn json_lines_stay_one_object_each() {
    let run = TestCommand::new()
        .args(["--log-format", "json", "--wait-file", "/nonexistent/a\nb"])
        .args(["--timeout", "200ms", "--", "true"])
        .run();
    run.assert_code(124);
    for line in run.stderr().lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{line:?} is not one JSON object ({e})\n{}", run.explain()));
        assert!(v["message"].is_string(), "{}", run.explain());
    }
}
