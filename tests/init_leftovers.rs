//! What the step leaves behind when its main process exits — background jobs, orphans, daemons
//! that left the group, processes that ignore SIGTERM — is terminated; podvisor exits with the
//! main child's status, and nothing survives.

mod support;

use std::time::Duration;

use support::sigs::{alive, podvisor, Supervised};

/// Runs `--sh SCRIPT`; the script prints `bg=PID` for every process it leaves.
fn leave(flags: &[&str], script: &str, background: usize) -> (support::sigs::Finished, Vec<i32>) {
    let mut args = flags.to_vec();
    args.extend(["--sh", script]);
    let mut s = Supervised::start(podvisor(&args), true);
    let mut pids = Vec::new();
    for _ in 0..background {
        let line = s.expect_that("bg=PID", |l| l.starts_with("bg="));
        pids.push(line["bg=".len()..].parse::<i32>().expect("a pid"));
    }
    let f = s.finish(Duration::from_secs(30));
    (f, pids)
}

fn assert_gone(f: &support::sigs::Finished, pids: &[i32]) {
    for &pid in pids {
        assert!(!alive(pid), "leftover {pid} survived\n{}", f.explain());
        assert!(
            support::sigs::proc_stat(pid).is_none(),
            "leftover {pid} not reaped\n{}",
            f.explain()
        );
    }
}

#[test]
fn background_jobs_and_orphans_are_terminated() {
    let (f, pids) = leave(
        &[],
        "sleep 1001 & echo bg=$!; (sleep 1002 & echo bg=$!); exit 3",
        2,
    );
    f.assert_code(3)
        .assert_stderr_has("child ended (exited with 3)")
        .assert_stderr_has("terminating 2 leftover process(es) with SIGTERM")
        .assert_stderr_has("leftovers terminated (2)");
    // SIGTERM is enough: no grace period (10 s by default) waited out.
    assert!(f.elapsed < Duration::from_secs(8), "{}", f.explain());
    assert_gone(&f, &pids);
}

#[test]
fn leftover_ignoring_term_is_killed_after_the_grace_period() {
    // The trap is set before the fork, so the leftover ignores SIGTERM from its first moment.
    let (f, pids) = leave(
        &["--grace-period", "1s"],
        "trap '' TERM; sleep 1003 & echo bg=$!; exit 4",
        1,
    );
    f.assert_code(4)
        .assert_stderr_has("sending SIGKILL to the leftovers")
        .assert_stderr_has("leftovers terminated (1)");
    assert!(
        f.elapsed >= Duration::from_millis(900) && f.elapsed < Duration::from_secs(8),
        "{}",
        f.explain()
    );
    assert_gone(&f, &pids);
}

#[test]
fn daemon_that_left_the_group_is_terminated() {
    // setsid: a new session and group, out of reach of the group-wide signal; it comes back
    // to podvisor (the subreaper) when the script exits.
    let (f, pids) = leave(&[], "setsid sleep 1004 & echo bg=$!; exit 5", 1);
    f.assert_code(5)
        .assert_stderr_has("leftovers terminated (1)");
    assert_gone(&f, &pids);
}

#[test]
fn leftovers_are_terminated_with_no_group_too() {
    let (f, pids) = leave(&["--no-group"], "sleep 1005 & echo bg=$!; exit 6", 1);
    f.assert_code(6)
        .assert_stderr_has("leftovers terminated (1)");
    assert_gone(&f, &pids);
}

#[test]
fn a_step_that_leaves_nothing_logs_no_cleanup() {
    let (f, _) = leave(&[], "exit 0", 0);
    f.assert_code(0);
    assert!(!f.stderr.contains("leftover"), "{}", f.explain());
}

#[test]
fn a_stopped_leftover_is_woken_to_handle_sigterm() {
    let (f, pids) = leave(
        &["--grace-period", "20s"],
        "sleep 1006 & echo bg=$!; kill -STOP $!; exit 7",
        1,
    );
    f.assert_code(7)
        .assert_stderr_has("leftovers terminated (1)");
    assert!(f.elapsed < Duration::from_secs(10), "{}", f.explain());
    assert_gone(&f, &pids);
}

#[test]
fn orphans_out_of_sight_do_not_hang_podvisor() {
    // A PID namespace without its own /proc, podvisor not its PID 1: an orphan that left the
    // step's group (setsid) cannot be found. podvisor must still end after the grace period,
    // with the step's status; the namespace's init (sh) ending then takes the orphan with it.
    let dir = support::TempDir::new("blind");
    let flag = dir.path().join("left");
    // The step exits only once the orphan has left its group, so the group-wide SIGTERM misses it.
    let step = format!(
        "setsid sh -c \"echo > {f}; exec sleep 1004\" & until [ -s {f} ]; do sleep 0.01; done; exit 5",
        f = flag.display()
    );
    let script = format!(
        "{} --grace-period 1s -- sh -c '{step}'; echo podvisor-rc=$?",
        support::podvisor_bin().display()
    );
    let run = std::process::Command::new("timeout")
        .args([
            "30",
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .expect("run unshare");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    let explain = format!(
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        run.status
    );
    assert!(stdout.contains("podvisor-rc=5"), "{explain}");
    assert!(stderr.contains("cannot be found"), "{explain}");
}
