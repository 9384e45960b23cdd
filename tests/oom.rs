//! podvisor is the last to die (issue 15, item 5): it lowers its own oom_score_adj where it may,
//! the step gets the value podvisor inherited, and an OOM in the pod's memory cgroup kills the
//! step, which podvisor reports (137, marker) instead of dying with it.

mod support;

use std::os::unix::process::CommandExt;

use support::cgroup::{has_sys_resource, Cgroup};
use support::pod::read_marker;
use support::{TempDir, TestCommand};

/// Starts podvisor with oom_score_adj VALUE (raising one's own score is always allowed).
fn with_score(mut c: TestCommand, value: &'static [u8]) -> TestCommand {
    // SAFETY: open/write/close on static data between fork and exec.
    unsafe {
        c.command().pre_exec(move || {
            let fd = nix::libc::open(
                c"/proc/self/oom_score_adj".as_ptr(),
                nix::libc::O_WRONLY | nix::libc::O_CLOEXEC,
            );
            if fd >= 0 {
                nix::libc::write(fd, value.as_ptr().cast(), value.len());
                nix::libc::close(fd);
            }
            Ok(())
        });
    }
    c
}

#[test]
fn the_step_gets_the_score_podvisor_inherited() {
    let run = with_score(TestCommand::new(), b"300")
        .args(["--log-level", "debug", "--", "sh", "-c"])
        .arg("echo step=$(cat /proc/self/oom_score_adj) podvisor=$(cat /proc/$PPID/oom_score_adj)")
        .run();
    run.assert_code(0).assert_stdout_has("step=300 ");
    if has_sys_resource() {
        run.assert_stdout_has("podvisor=-1000")
            .assert_stderr_has("oom_score_adj lowered to -1000");
    } else {
        // Without CAP_SYS_RESOURCE nothing changes, and debug says why.
        run.assert_stdout_has("podvisor=300")
            .assert_stderr_has("oom_score_adj not lowered");
    }
}

#[test]
fn wait_commands_get_the_inherited_score_too() {
    let dir = TempDir::new("oomcmd");
    let seen = dir.path().join("seen");
    let run = with_score(TestCommand::new(), b"250")
        .arg("--wait-cmd")
        .arg(format!("cat /proc/self/oom_score_adj > {}", seen.display()))
        .run();
    run.assert_code(0);
    let seen = std::fs::read_to_string(&seen).unwrap_or_default();
    assert_eq!(seen.trim(), "250", "{}", run.explain());
}

#[test]
fn an_oom_in_the_pods_memory_cgroup_kills_the_step_and_podvisor_reports_it() {
    oom_in(48 << 20);
}

#[test]
fn podvisor_under_memory_pressure_still_reports_the_step() {
    // Small enough that the cgroup reclaims podvisor's own pages while the step allocates.
    oom_in(12 << 20);
}

/// The step allocates until the OOM killer takes it, in a memory cgroup of `limit` bytes.
fn oom_in(limit: u64) {
    let Some(cg) = Cgroup::new("memory", "oom") else {
        return;
    };
    cg.limit_memory(limit);
    let dir = TempDir::new("oom");
    let marker = dir.path().join("step.json");
    let run = cg.run(TestCommand::new().arg("--marker").arg(&marker).args([
        "--",
        "sh",
        "-c",
        // tail keeps one ever-growing line of /dev/zero: it allocates until killed.
        "echo step-started; exec tail /dev/zero",
    ]));
    run.assert_code(137)
        .assert_stdout_has("step-started")
        .assert_stderr_has("killed by SIGKILL");
    assert!(
        cg.oom_kills() >= 1,
        "no OOM kill counted in {}\n{}",
        cg.dir.display(),
        run.explain()
    );
    let m = read_marker(&marker);
    assert_eq!(m["status"], "signaled", "{m}\n{}", run.explain());
    assert_eq!(m["exit_code"], 137, "{m}");
    assert_eq!(m["signal"], "SIGKILL", "{m}");
}
