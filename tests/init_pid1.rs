//! podvisor as an init: PID 1 of a PID namespace (`unshare --pid --fork --mount-proc`) reaps
//! orphans while the step goes on and takes signals from outside and inside; outside a PID
//! namespace it is the child subreaper and reaps orphans too.

mod support;

use std::process::Command;
use std::time::Duration;

use nix::libc;
use support::podvisor_bin;
use support::poll_until;
use support::sigs::{proc_stat, sigecho, Supervised};

/// `unshare --pid --fork --mount-proc podvisor ARGS`.
fn in_pid_namespace(args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"])
        .arg(podvisor_bin())
        .args(args)
        .stdin(std::process::Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PODVISOR_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The step: orphans that exit while it keeps running, then a count of zombies in the namespace.
const ORPHANS_THEN_COUNT: &str = r#"
read -r init < /proc/1/comm
[ "$init" = podvisor ] || { echo "pid 1 is $init"; exit 90; }
for i in 1 2 3 4 5; do ( sleep 0.2 & ) ; done
echo spawned
# The orphans are PID 1's now; once they exit, only its reaping clears their zombies.
i=0
while [ $i -lt 100 ]; do
  zombies=0; orphans=0
  for f in /proc/[0-9]*/stat; do
    read -r line < "$f" 2>/dev/null || continue
    set -- $line
    [ "$3" = Z ] && zombies=$((zombies + 1))
    [ "$2" = "(sleep)" ] && orphans=$((orphans + 1))
  done
  [ $zombies -eq 0 ] && [ $orphans -eq 0 ] && break
  sleep 0.05
  i=$((i + 1))
done
echo "zombies=$zombies orphans=$orphans"
"#;

#[test]
fn pid1_reaps_orphaned_zombies_while_the_step_goes_on() {
    let mut s = Supervised::start(
        in_pid_namespace(&["--log-level", "debug", "--sh", ORPHANS_THEN_COUNT]),
        true,
    );
    s.expect("spawned");
    s.expect_that("zombies=", |l| l.starts_with("zombies="));
    let f = s.finish(Duration::from_secs(30));
    f.assert_code(0).assert_stderr_has("reaped orphan");
    assert_eq!(
        f.count("zombies=0 orphans=0"),
        1,
        "zombies left in the namespace\n{}",
        f.explain()
    );
}

/// podvisor's host pid: the only child of `unshare --fork`.
fn child_of(pid: i32) -> i32 {
    poll_until(Duration::from_secs(10), "unshare's child", || {
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    })
}

#[test]
fn pid1_forwards_sigterm_sent_from_outside() {
    let mut cmd = in_pid_namespace(&["--"]);
    cmd.arg(sigecho()).args(["--exit-on", "TERM:7"]);
    let mut s = Supervised::start(cmd, true);
    let echo = s.expect_echo("");
    s.expect("ready");
    // podvisor is 1, the child its child (not necessarily 2: podvisor's signal thread takes a
    // pid of the namespace too).
    assert!(echo.ppid == 1 && echo.pid > 1, "{}", s.explain());
    let podvisor = child_of(s.pid());
    assert!(support::sigs::kill(podvisor, libc::SIGTERM));
    s.expect("SIGTERM");
    s.finish(Duration::from_secs(15))
        .assert_code(7)
        .assert_stderr_has("forwarding SIGTERM to the child");
}

#[test]
fn pid1_takes_signals_from_inside_its_namespace() {
    // The default disposition would make the kernel drop these for PID 1; blocked, they queue.
    let script = r#"trap 'echo got-usr1; exit 9' USR1; kill -USR1 1; while :; do sleep 0.05; done"#;
    let mut s = Supervised::start(in_pid_namespace(&["--sh", script]), true);
    s.expect("got-usr1");
    s.finish(Duration::from_secs(15)).assert_code(9);
}

#[test]
fn subreaper_reaps_orphans_outside_a_pid_namespace() {
    let script = "(sleep 2 & echo orphan=$!); echo ready; exec sleep 1000";
    let mut s = Supervised::start(support::sigs::podvisor(&["--sh", script]), true);
    let line = s.expect_that("orphan=PID", |l| l.starts_with("orphan="));
    let orphan: i32 = line["orphan=".len()..].parse().expect("a pid");
    s.expect("ready");
    let podvisor = s.pid();
    // Reparented to podvisor, not to the host's init...
    poll_until(Duration::from_secs(5), "the orphan's new parent", || {
        proc_stat(orphan).and_then(|(_, ppid, _)| (ppid == podvisor).then_some(()))
    });
    // ...and reaped by it once it exits, while the step goes on (a zombie keeps its /proc entry).
    poll_until(Duration::from_secs(15), "the orphan reaped", || {
        proc_stat(orphan).is_none().then_some(())
    });
    assert!(support::sigs::alive(podvisor), "{}", s.explain());
    s.signal(libc::SIGTERM);
    s.finish(Duration::from_secs(15)).assert_code(143);
}
