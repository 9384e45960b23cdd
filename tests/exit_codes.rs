//! The exit-code table, walked end to end.

mod support;
use support::{TempDir, TestCommand};

#[test]
fn child_status_passes_through() {
    for code in [0, 1, 42, 255] {
        TestCommand::new()
            .args(["--", "sh", "-c", &format!("exit {code}")])
            .run()
            .assert_code(code);
    }
}

#[test]
fn death_by_signal_is_128_plus_n() {
    for (sig, code) in [("KILL", 137), ("TERM", 143), ("SEGV", 139)] {
        TestCommand::new()
            .args(["--", "sh", "-c", &format!("kill -{sig} $$")])
            .run()
            .assert_code(code);
    }
}

#[test]
fn not_found_is_127_and_names_command_and_path() {
    TestCommand::new()
        .env("PATH", "/usr/bin:/bin")
        .args(["--", "no-such-command-xyz"])
        .run()
        .assert_code(127)
        .assert_stderr_has("no-such-command-xyz")
        .assert_stderr_has("PATH=/usr/bin:/bin");
}

#[test]
fn unset_path_searches_the_default_path_and_empty_path_nothing() {
    let without_path = || {
        let mut cmd = TestCommand::new();
        cmd.command().env_clear();
        cmd
    };
    // As execvp(3), tini and the shell: `sh` is found although PATH is unset.
    without_path()
        .args(["--", "sh", "-c", "exit 2"])
        .run()
        .assert_code(2);
    without_path()
        .args(["--", "no-such-command-xyz"])
        .run()
        .assert_code(127)
        .assert_stderr_has("no-such-command-xyz")
        .assert_stderr_has("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .assert_stderr_has("unset");
    // Set but empty is searched as given: nothing.
    TestCommand::new()
        .env("PATH", "")
        .args(["--", "sh", "-c", "exit 2"])
        .run()
        .assert_code(127)
        .assert_stderr_has("PATH=\n");
}

#[test]
fn not_executable_is_126() {
    let dir = support::TempDir::new("noexec");
    let f = dir.path().join("script");
    std::fs::write(&f, "#!/bin/sh\necho hi\n").unwrap();
    TestCommand::new()
        .arg("--")
        .arg(&f)
        .run()
        .assert_code(126)
        .assert_stderr_has("script");
    TestCommand::new()
        .env("PATH", dir.path())
        .args(["--", "script"])
        .run()
        .assert_code(126);
    // A folder is found, but cannot be executed.
    TestCommand::new()
        .arg("--")
        .arg(dir.path())
        .run()
        .assert_code(126)
        .assert_stderr_has(&dir.path().display().to_string());
}

#[test]
fn a_failed_wait_is_124_and_a_bad_config_125() {
    TestCommand::new()
        .args([
            "--wait-file",
            "/nonexistent/podvisor-test",
            "--retries",
            "0",
        ])
        .run()
        .assert_code(124);
    TestCommand::new()
        .args(["--timeout", "soon"])
        .run()
        .assert_code(125);
}

#[test]
fn map_exit_maps_the_commands_code_and_a_death_by_signal_alike() {
    // Java exits 143 itself after SIGTERM; a death by SIGTERM is 143 too: both map.
    let dir = TempDir::new("mapexit");
    for (script, child, signal) in [
        ("kill -TERM $$", 143, Some("SIGTERM")),
        ("exit 143", 143, None),
    ] {
        let marker = dir.path().join("step.json");
        TestCommand::new()
            .args(["--map-exit", "143:0", "--marker"])
            .arg(&marker)
            .args(["--", "sh", "-c", script])
            .run()
            .assert_code(0)
            .assert_stderr_has("exit code 143 mapped to 0 (--map-exit)");
        let m = support::pod::read_marker(&marker);
        assert_eq!(m["exit_code"], 0, "{m}");
        assert_eq!(m["child_exit_code"], child, "{m}");
        assert_eq!(m["signal"].as_str(), signal, "{m}");
        assert_eq!(
            m["status"],
            if signal.is_some() {
                "signaled"
            } else {
                "exited"
            },
            "{m}"
        );
    }
    // From the environment, a comma list; the first match wins; no match keeps the code.
    for (code, want) in [(4, 1), (3, 0), (5, 5)] {
        TestCommand::new()
            .env("PODVISOR_MAP_EXIT", "3:0, 4:1, 4:2")
            .args(["--", "sh", "-c", &format!("exit {code}")])
            .run()
            .assert_code(want);
    }
}

#[test]
fn map_exit_leaves_podvisors_own_codes_alone() {
    // A failed wait (124) and a missing command (127) are podvisor's, not the command's.
    let dir = TempDir::new("mapexit-own");
    let never = dir.path().join("never");
    TestCommand::new()
        .args(["--map-exit", "124:0", "--timeout", "200ms", "--wait-file"])
        .arg(&never)
        .args(["--", "true"])
        .run()
        .assert_code(124);
    TestCommand::new()
        .args(["--map-exit", "127:0", "--", "no-such-command-xyz"])
        .run()
        .assert_code(127);
}
