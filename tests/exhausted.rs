//! Exhausted resources (issue 15, item 6): each gives a clear line, a documented exit code, and
//! the step's output complete. Processes (pids.max), the marker's volume full or read-only,
//! descriptors, and a /proc that is not there. Memory: tests/oom.rs.

mod support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use support::cgroup::Cgroup;
use support::pod::read_marker;
use support::{Run, TempDir, TestCommand};

/// `unshare --mount sh -c 'SETUP && exec "$@"' sh podvisor ...`: podvisor in a mount namespace
/// of its own, after SETUP.
fn in_mount_ns(setup: &str) -> TestCommand {
    let script = format!("{setup} && exec \"$@\"");
    TestCommand::wrapped(&["unshare", "--mount", "sh", "-c", &script, "sh"])
}

/// Every stderr line is podvisor's (the step here writes to stdout only).
fn one_line_each(run: &Run) {
    for line in run.stderr().lines() {
        assert!(
            line.starts_with("podvisor: "),
            "{line:?}\n{}",
            run.explain()
        );
    }
}

#[test]
fn no_process_left_for_the_step_is_podvisors_own_failure_125_not_126() {
    let Some(cg) = Cgroup::new("pids", "pids") else {
        return;
    };
    // podvisor and its signal thread are the two tasks allowed: its fork fails with EAGAIN.
    cg.set("pids.max", "2");
    let dir = TempDir::new("pids");
    let marker = dir.path().join("m.json");
    let mut c =
        TestCommand::new()
            .arg("--marker")
            .arg(&marker)
            .args(["--", "echo", "SHOULD-NOT-RUN"]);
    cg.enter(c.command());
    let run = c.run();
    run.assert_code(125)
        .assert_stderr_has("podvisor: error: cannot start echo: no new process allowed (pids.max");
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.explain());
    let m = read_marker(&marker);
    assert_eq!(m["status"], "spawn_failed", "{m}");
    assert_eq!(m["exit_code"], 125, "{m}");
}

#[test]
fn a_step_out_of_processes_gets_its_own_output_and_status() {
    let Some(cg) = Cgroup::new("pids", "pids-step") else {
        return;
    };
    // podvisor (the plain init has no second thread) and the step's shell; the shell's own
    // fork fails, and dash gives up with 2.
    cg.set("pids.max", "2");
    let run = cg.run(TestCommand::new().args([
        "--",
        "sh",
        "-c",
        "echo before; sh -c true; echo NOT-REACHED",
    ]));
    run.assert_code(2)
        .assert_stderr_has("Cannot fork")
        .assert_stderr_has("podvisor: child ended (exited with 2)");
    assert_eq!(run.stdout(), "before\n", "{}", run.explain());
}

#[test]
fn the_marker_volume_full_is_one_line_and_the_steps_status() {
    let dir = TempDir::new("full");
    let vol = dir.path().display().to_string();
    let run = in_mount_ns(&format!("mount -t tmpfs -o size=64k none {vol}"))
        .arg("--marker")
        .arg(format!("{vol}/podvisor/step.json"))
        .args(["--", "sh", "-c"])
        // The step fills the volume, then ends with its own status.
        .arg(format!(
            "echo start; dd if=/dev/zero of={vol}/fill bs=4k 2>/dev/null; echo end; exit 3"
        ))
        .run();
    run.assert_code(3)
        .assert_stderr_has("podvisor: error: cannot write the marker")
        .assert_stderr_has("No space left on device");
    assert_eq!(run.stdout(), "start\nend\n", "{}", run.explain());
    one_line_each(&run);
}

#[test]
fn a_read_only_marker_volume_is_one_line_and_the_steps_status() {
    let dir = TempDir::new("ro");
    let vol = dir.path().display().to_string();
    // Read-only from the start: the lock cannot be taken, the step runs all the same.
    let run = in_mount_ns(&format!("mount -t tmpfs -o ro none {vol}"))
        .arg("--marker")
        .arg(format!("{vol}/step.json"))
        .args(["--", "sh", "-c", "echo ran; exit 4"])
        .run();
    run.assert_code(4)
        .assert_stderr_has("podvisor: error: cannot prepare the marker")
        .assert_stderr_has("Read-only file system");
    assert_eq!(run.stdout(), "ran\n", "{}", run.explain());
    one_line_each(&run);

    // Turned read-only while the step runs: the lock was taken, the marker cannot be written.
    let run = in_mount_ns(&format!("mount -t tmpfs none {vol}"))
        .arg("--marker")
        .arg(format!("{vol}/step.json"))
        .args(["--", "sh", "-c"])
        // A read-only view over the volume (remount,ro refuses while the lock is open).
        .arg(format!(
            "mount --bind {vol} {vol} && mount -o remount,bind,ro {vol} && echo ran; exit 6"
        ))
        .run();
    run.assert_code(6)
        .assert_stderr_has("podvisor: error: cannot write the marker")
        .assert_stderr_has("Read-only file system");
    assert_eq!(run.stdout(), "ran\n", "{}", run.explain());
    one_line_each(&run);
}

/// podvisor with RLIMIT_NOFILE at `n`.
fn with_nofile(mut c: TestCommand, n: u64) -> TestCommand {
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        c.command().pre_exec(move || {
            let lim = nix::libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

#[test]
fn fifty_targets_with_few_descriptors_are_retried_until_ready() {
    let listeners: Vec<TcpListener> = (0..50)
        .map(|_| support::wait::listen_any(support::wait::V4))
        .collect();
    let mut c = TestCommand::new().args(["--timeout", "20s", "--interval", "10ms"]);
    for l in &listeners {
        c = c
            .arg("--wait-tcp")
            .arg(l.local_addr().expect("addr").to_string());
    }
    // 12: podvisor's own few, and a handful of connects at a time; the rest fail with EMFILE and
    // are tried again.
    let run = with_nofile(c.args(["--", "echo", "step-ran"]), 12).run();
    run.assert_code(0).assert_stdout_has("step-ran");
    assert_eq!(
        run.stderr().matches(" is ready after ").count(),
        50,
        "{}",
        run.explain()
    );
    one_line_each(&run);
}

#[test]
fn too_few_descriptors_to_start_is_125_with_one_line() {
    // With a wait phase podvisor needs 6 descriptors (its runtime's epoll and eventfd, the
    // signal thread); the plain init needs none beyond stdin, stdout and stderr (below).
    for n in [4, 5] {
        let run = with_nofile(
            TestCommand::new().args(["--wait-file", "/", "--", "echo", "SHOULD-NOT-RUN"]),
            n,
        )
        .run();
        run.assert_code(125)
            .assert_stderr_has("podvisor: error: ")
            .assert_stderr_has("Too many open files");
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.explain());
        assert!(
            !run.stdout().contains("SHOULD-NOT-RUN"),
            "{}",
            run.explain()
        );
    }
}

#[test]
fn the_plain_init_runs_the_step_with_only_the_standard_descriptors() {
    // One more than stdin, stdout and stderr: the debug build's loader opens libgcc_s.
    let run = with_nofile(TestCommand::new().args(["--", "echo", "ran"]), 4).run();
    run.assert_code(0).assert_stdout_has("ran");
}

#[test]
fn without_proc_the_step_and_its_group_end_and_the_line_says_uncounted() {
    // Not PID 1: /proc hidden by an empty tmpfs; the step leaves a sleeper in its group.
    let run = in_mount_ns("mount -t tmpfs none /proc")
        .args(["--grace-period", "20s", "--", "sh", "-c"])
        .arg("sleep 30 & echo out; exit 3")
        .run();
    run.assert_code(3)
        .assert_stdout_has("out")
        .assert_stderr_has("uncounted");
    assert!(
        run.elapsed < Duration::from_secs(10),
        "the sleeper should end on SIGTERM\n{}",
        run.explain()
    );
    one_line_each(&run);

    // As PID 1 of a PID namespace without its /proc: a daemon that left the group still ends
    // (kill(-1) reaches the whole namespace).
    let run = TestCommand::wrapped(&[
        "unshare",
        "--pid",
        "--fork",
        "--mount",
        "sh",
        "-c",
        "mount -t tmpfs none /proc && exec \"$@\"",
        "sh",
    ])
    .args(["--grace-period", "20s", "--", "sh", "-c"])
    .arg("setsid sleep 30 & echo out; exit 3")
    .run();
    run.assert_code(3).assert_stdout_has("out");
    assert!(
        run.elapsed < Duration::from_secs(10),
        "the daemon should end on SIGTERM\n{}",
        run.explain()
    );
    one_line_each(&run);
}
