//! Every signal 1..64 sent to podvisor from another process (kill, sigqueue, a process-group
//! kill), as PID 1 of a PID namespace and not: podvisor survives, forwards it to the child (all
//! but CHLD; KILL and STOP cannot be caught), and exits with the child's status, which the
//! marker records. A genuine fault still kills a process blocked the way podvisor is.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::libc;
use podvisor::run::signals::name;
use support::poll_until;
use support::sigs::{podvisor_at, proc_stat, sigecho, Supervised};
use support::TempDir;

/// How a test sends a signal to podvisor.
#[derive(Clone, Copy, Debug)]
enum Send {
    Kill,
    Sigqueue,
    /// kill(-pgid): podvisor's whole group, as Buildkite's agent cancels a job.
    Group,
}

fn sigqueue(pid: i32, sig: i32) -> bool {
    // SAFETY: sigqueue(3) with plain numbers and a zeroed value.
    unsafe { libc::sigqueue(pid, sig, std::mem::zeroed()) == 0 }
}

/// Every signal number a process can catch, KILL and STOP left out.
fn catchable() -> Vec<i32> {
    (1..=64)
        .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP)
        .collect()
}

/// What the table says podvisor does with `sig` sent by another process: forwarded, but CHLD.
fn forwarded(sig: i32) -> bool {
    sig != libc::SIGCHLD
}

/// podvisor (`bin`) with `flags`, directly or as PID 1 of a new PID namespace.
fn podvisor_cmd(bin: &Path, pid1: bool, flags: &[&str]) -> Command {
    if !pid1 {
        return podvisor_at(bin, flags);
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"])
        .arg(bin)
        .args(flags)
        .stdin(std::process::Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PODVISOR_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// podvisor's host pid: itself, or the only child of `unshare --fork`.
fn podvisor_pid(s: &Supervised, pid1: bool) -> i32 {
    if !pid1 {
        return s.pid();
    }
    child_pid_of(s.pid())
}

fn send(s: &Supervised, target: i32, how: Send, sig: i32) {
    let sent = match how {
        Send::Kill => support::sigs::kill(target, sig),
        Send::Sigqueue => sigqueue(target, sig),
        Send::Group => {
            assert_eq!(target, s.pid(), "group kills only outside a PID namespace");
            s.signal_group(sig);
            true
        }
    };
    assert!(
        sent,
        "cannot send {} to {target}\n{}",
        name(sig),
        s.explain()
    );
}

fn read_marker(path: &Path, explain: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no marker {}: {e}\n{explain}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("marker {text:?}: {e}\n{explain}"))
}

/// Sends every catchable signal, one at a time, to podvisor running a child that reports what
/// it gets; each forwarded one must arrive once, CHLD never. The last one (64) ends the child
/// with 42: podvisor's status and its marker say 42.
fn every_signal_reaches_the_child(bin: &Path, pid1: bool, how: Send) {
    every_signal_reaches_the_child_with(bin, pid1, how, &[]);
}

/// As [`every_signal_reaches_the_child`], with `extra` options before the marker's.
fn every_signal_reaches_the_child_with(bin: &Path, pid1: bool, how: Send, extra: &[&str]) {
    let dir = TempDir::new("every");
    let marker = dir.path().join("m/step.json");
    let mut flags = extra.to_vec();
    flags.extend([
        "--grace-period",
        "120s",
        "--marker",
        marker.to_str().expect("utf-8"),
        "--",
    ]);
    let mut cmd = podvisor_cmd(bin, pid1, &flags);
    cmd.arg(sigecho()).args(["--exit-on", "64:42"]);
    let mut s = Supervised::start(cmd, true);
    s.expect_echo("");
    s.expect("ready");
    let target = podvisor_pid(&s, pid1);
    for sig in catchable() {
        send(&s, target, how, sig);
        if forwarded(sig) && sig != 64 {
            s.expect(&name(sig));
        }
    }
    let f = s.finish(Duration::from_secs(30));
    f.assert_code(42);
    for sig in catchable() {
        let want = usize::from(forwarded(sig));
        assert_eq!(
            f.count(&name(sig)),
            want,
            "{} ({sig}) sent {how:?}\n{}",
            name(sig),
            f.explain()
        );
    }
    let m = read_marker(&marker, &f.explain());
    assert_eq!(m["status"], "exited", "{m}");
    assert_eq!(m["exit_code"], 42, "{m}");
}

#[test]
fn every_signal_sent_with_kill_reaches_the_child() {
    every_signal_reaches_the_child(&support::podvisor_bin(), false, Send::Kill);
}

#[test]
fn every_signal_sent_with_sigqueue_reaches_the_child() {
    every_signal_reaches_the_child(&support::podvisor_bin(), false, Send::Sigqueue);
}

#[test]
fn every_signal_sent_to_podvisors_group_reaches_the_child_once() {
    every_signal_reaches_the_child(&support::podvisor_bin(), false, Send::Group);
}

#[test]
fn as_pid1_every_signal_sent_with_kill_reaches_the_child() {
    every_signal_reaches_the_child(&support::podvisor_bin(), true, Send::Kill);
}

#[test]
fn as_pid1_every_signal_sent_with_sigqueue_reaches_the_child() {
    every_signal_reaches_the_child(&support::podvisor_bin(), true, Send::Sigqueue);
}

#[test]
fn the_static_musl_build_takes_every_signal_too() {
    // musl keeps 32-34 for itself (glibc 32-33): neither may be fatal to podvisor.
    let bin = support::docker::static_binary();
    every_signal_reaches_the_child(&bin, false, Send::Kill);
    every_signal_reaches_the_child(&bin, true, Send::Sigqueue);
}

/// `--log-to` runs two threads of its own beside the pump, and the libc unblocks its internal
/// signals (glibc 32 and 33, musl 33 and 34) in every thread it starts: each must block them
/// again, or the kernel hands them such a signal (`kill -33` killed the static build).
#[test]
fn with_a_log_copy_every_signal_reaches_the_child() {
    let dir = TempDir::new("every-log");
    let log = dir.path().join("copy.log");
    let log = ["--log-to", log.to_str().expect("utf-8")];
    every_signal_reaches_the_child_with(&support::podvisor_bin(), false, Send::Kill, &log);
    every_signal_reaches_the_child_with(&support::podvisor_bin(), true, Send::Sigqueue, &log);
    let bin = support::docker::static_binary();
    every_signal_reaches_the_child_with(&bin, false, Send::Kill, &log);
    every_signal_reaches_the_child_with(&bin, true, Send::Kill, &log);
}

/// The names (`comm`) of `pid`'s threads.
fn thread_names(pid: i32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_owned())
        .collect()
}

/// Once one of podvisor's own threads has shown up (`what`, found by `seen`): its start, a
/// matter of microseconds, is long over after this, and it must keep every signal blocked.
fn settled(pid: i32, what: &str, seen: impl Fn(&[String]) -> bool) {
    poll_until(Duration::from_secs(10), what, || {
        seen(&thread_names(pid)).then_some(())
    });
    std::thread::sleep(Duration::from_millis(100));
}

/// The libc's internal signals, each sent [`SENDS`] times.
const LIBC_SIGNALS: [i32; 3] = [32, 33, 34];

/// Where a thread left one unblocked, the kernel hands it there about every other time (the
/// pump waits for it too): a broken build passes ten sends about once in a thousand runs.
const SENDS: usize = 10;

/// `--until-marker` waits for a busy lock in a thread of its own (glibc leaves 32 unblocked in
/// a new thread): 32, 33 and 34 still reach the child, every time.
#[test]
fn the_until_markers_lock_waiter_takes_no_signal() {
    use std::os::fd::AsRawFd;
    let dir = TempDir::new("flock");
    let marker = dir.path().join("step.json");
    let lock = std::fs::File::create(dir.path().join("step.json.lock")).expect("the lock file");
    // SAFETY: flock on a descriptor this test owns; held until the test ends.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let cmd = support::sigs::podvisor_sigecho(
        &["--until-marker", marker.to_str().expect("utf-8")],
        &["--exit-on", "64:42"],
    );
    let mut s = Supervised::start(cmd, true);
    s.expect_echo("");
    s.expect("ready");
    settled(s.pid(), "podvisor's flock thread", |names| {
        names.iter().any(|n| n == "flock")
    });
    for sig in LIBC_SIGNALS {
        for _ in 0..SENDS {
            assert!(support::sigs::kill(s.pid(), sig), "{}", s.explain());
            s.expect(&name(sig));
        }
    }
    assert!(support::sigs::kill(s.pid(), 64), "{}", s.explain());
    s.finish(Duration::from_secs(30)).assert_code(42);
}

/// A host name is looked up on a thread of tokio's, which must block podvisor's signals as its
/// own threads do: during the wait 32, 33 and 34 are dropped, and the wait times out as usual.
#[test]
fn a_name_lookups_thread_takes_no_signal() {
    let cmd = support::sigs::podvisor(&[
        "--timeout",
        "3s",
        "--wait-tcp",
        "podvisor-test.invalid:9",
        "--",
        "true",
    ]);
    let s = Supervised::start(cmd, true);
    // The main thread, the pump and the lookup's.
    settled(s.pid(), "the name lookup's thread", |names| {
        names.len() >= 3
    });
    for sig in LIBC_SIGNALS {
        for _ in 0..SENDS {
            assert!(support::sigs::kill(s.pid(), sig), "{}", s.explain());
        }
    }
    s.finish(Duration::from_secs(30)).assert_code(124);
}

/// What a child with every signal at its default action does with `sig`.
#[derive(Debug, PartialEq)]
enum Default {
    Dies,
    Ignores,
    Stops,
}

fn default_action(sig: i32) -> Default {
    match sig {
        libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH => Default::Ignores,
        libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => Default::Stops,
        _ => Default::Dies,
    }
}

/// One signal to podvisor whose child keeps every default action: a fatal one kills the child
/// and podvisor exits 128+N with a `signaled` marker; otherwise the child lives on (or stops),
/// and a SIGCONT and SIGTERM afterwards end it with 143.
fn one_signal_with_default_actions(pid1: bool, sig: i32) {
    let dir = TempDir::new("default");
    let marker = dir.path().join("step.json");
    let mut cmd = podvisor_cmd(
        &support::podvisor_bin(),
        pid1,
        &[
            "--grace-period",
            "60s",
            "--marker",
            marker.to_str().expect("utf-8"),
            "--",
        ],
    );
    cmd.arg(sigecho()).arg("--default");
    let mut s = Supervised::start(cmd, true);
    let echo = s.expect_echo("");
    s.expect("ready");
    let target = podvisor_pid(&s, pid1);
    assert!(support::sigs::kill(target, sig), "{}", s.explain());
    let action = default_action(sig);
    let (code, signal) = match action {
        Default::Dies => (128 + sig, sig),
        Default::Ignores | Default::Stops => {
            if action == Default::Stops {
                let host_pid = if pid1 { child_pid_of(target) } else { echo.pid };
                poll_until(Duration::from_secs(10), "the child stopped", || {
                    proc_stat(host_pid).and_then(|(st, _, _)| (st == 'T').then_some(()))
                });
            }
            // Still there: podvisor survived and the child did not die of it.
            s.expect_stderr(&format!("forwarding {} to the child", name(sig)));
            // A stopped process acts on SIGTERM only once continued (SIGCONT is forwarded too).
            assert!(
                support::sigs::kill(target, libc::SIGCONT),
                "{}",
                s.explain()
            );
            assert!(
                support::sigs::kill(target, libc::SIGTERM),
                "{}",
                s.explain()
            );
            (143, libc::SIGTERM)
        }
    };
    let f = s.finish(Duration::from_secs(30));
    assert_eq!(
        f.code(),
        Some(code),
        "{} ({sig}), pid1 {pid1}\n{}",
        name(sig),
        f.explain()
    );
    let m = read_marker(&marker, &f.explain());
    assert_eq!(m["status"], "signaled", "{} {m}", name(sig));
    assert_eq!(m["exit_code"], code, "{} {m}", name(sig));
    assert_eq!(m["signal"], name(signal), "{m}");
}

/// The host pid of the only child of `pid`.
fn child_pid_of(pid: i32) -> i32 {
    poll_until(Duration::from_secs(10), "podvisor's child", || {
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    })
}

#[test]
fn every_signal_acts_on_a_default_child_and_the_marker_says_so() {
    for sig in catchable().into_iter().filter(|&s| forwarded(s)) {
        one_signal_with_default_actions(false, sig);
    }
}

#[test]
fn as_pid1_every_signal_acts_on_a_default_child_and_the_marker_says_so() {
    for sig in catchable().into_iter().filter(|&s| forwarded(s)) {
        one_signal_with_default_actions(true, sig);
    }
}

#[test]
fn sigpwr_to_podvisor_running_sleep_is_forwarded_and_the_marker_written() {
    // The case: `podvisor --marker DIR/step.json -- sleep 30 & kill -PWR $!`.
    let dir = TempDir::new("pwr");
    let marker = dir.path().join("m/step.json");
    let mut cmd = podvisor_at(
        &support::podvisor_bin(),
        &[
            "--marker",
            marker.to_str().expect("utf-8"),
            "--",
            "sleep",
            "30",
        ],
    );
    cmd.stdin(std::process::Stdio::null());
    let s = Supervised::start(cmd, true);
    s.expect_stderr("child started");
    s.signal(libc::SIGPWR);
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(128 + libc::SIGPWR)
        .assert_stderr_has("forwarding SIGPWR to the child")
        .assert_stderr_has("child ended (killed by SIGPWR)");
    let m = read_marker(&marker, &f.explain());
    assert_eq!(m["status"], "signaled", "{m}");
    assert_eq!(m["signal"], "SIGPWR", "{m}");
    assert_eq!(m["exit_code"], 158, "{m}");
}

#[test]
fn a_genuine_fault_still_kills_a_process_blocked_like_podvisor() {
    // The kernel unblocks a fault it raises and resets it to SIG_DFL (force_sig_info_to_task):
    // blocking the faults so that kill -SEGV is forwarded cannot turn a crash into a hang.
    use std::os::unix::process::ExitStatusExt;
    for (kind, sig) in [("segv", libc::SIGSEGV), ("abort", libc::SIGABRT)] {
        let out = Command::new(sigecho())
            .args(["--fault", kind])
            .output()
            .expect("run sigecho");
        assert_eq!(
            out.status.signal(),
            Some(sig),
            "--fault {kind}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// During the wait phase every signal but the four terminating ones is read and dropped: none
/// kills podvisor, none is kept for the child; the step then runs normally.
fn every_other_signal_during_the_wait_is_dropped(pid1: bool) {
    let dir = TempDir::new("wait-every");
    let go = dir.path().join("go");
    let marker = dir.path().join("step.json");
    let mut cmd = podvisor_cmd(
        &support::podvisor_bin(),
        pid1,
        &[
            "--log-level",
            "debug",
            "--timeout",
            "0",
            "--wait-file",
            go.to_str().expect("utf-8"),
            "--marker",
            marker.to_str().expect("utf-8"),
            "--",
        ],
    );
    // The step reports what reaches it and ends with 9 on SIGUSR2, sent after it is ready.
    cmd.arg(sigecho()).args(["--exit-on", "USR2:9"]);
    let mut s = Supervised::start(cmd, true);
    s.expect_stderr("waiting for");
    let target = podvisor_pid(&s, pid1);
    let terminating = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP];
    for sig in catchable().into_iter().filter(|s| !terminating.contains(s)) {
        assert!(support::sigs::kill(target, sig), "{}", s.explain());
    }
    // Read and dropped, not queued for the child: once the last (64, read last) is, the wait
    // may end.
    s.expect_stderr("SIGRTMAX ignored: no child yet");
    std::fs::write(&go, "").expect("create the file waited for");
    s.expect("ready");
    assert!(
        support::sigs::kill(target, libc::SIGUSR2),
        "{}",
        s.explain()
    );
    let f = s.finish(Duration::from_secs(30));
    f.assert_code(9);
    let got: Vec<&String> = f
        .lines
        .iter()
        .filter(|l| l.starts_with("SIG") || l.starts_with("signal "))
        .collect();
    assert_eq!(
        got,
        ["SIGUSR2"],
        "only the signal sent after the start\n{}",
        f.explain()
    );
    assert_eq!(read_marker(&marker, &f.explain())["exit_code"], 9);
}

#[test]
fn every_non_terminating_signal_during_the_wait_is_dropped() {
    every_other_signal_during_the_wait_is_dropped(false);
}

#[test]
fn as_pid1_every_non_terminating_signal_during_the_wait_is_dropped() {
    every_other_signal_during_the_wait_is_dropped(true);
}

/// Whether `pid` blocks any signal: podvisor has passed `block_early`.
fn blocks_signals(pid: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .is_some_and(|mask| !mask.trim().trim_start_matches('0').is_empty())
}

/// A signal sent before podvisor starts its first thread waits in the kernel's queue, and the
/// libc unblocks its internal signals in that thread (musl in its creator too): it must be read
/// off the queue first and forwarded once the step runs. podvisor is held before its first
/// thread by a `--log-to` FIFO that nobody reads yet.
#[test]
fn a_libc_signal_pending_before_the_first_thread_reaches_the_child() {
    for bin in [support::podvisor_bin(), support::docker::static_binary()] {
        for sig in [32, 33, 34] {
            let dir = TempDir::new("early");
            let fifo = dir.path().join("copy.log");
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .expect("mkfifo");
            let cmd = podvisor_at(
                &bin,
                &[
                    "--log-to",
                    fifo.to_str().expect("utf-8"),
                    "--",
                    "sleep",
                    "30",
                ],
            );
            let s = Supervised::start(cmd, true);
            poll_until(
                Duration::from_secs(10),
                "podvisor blocked its signals",
                || blocks_signals(s.pid()).then_some(()),
            );
            assert!(support::sigs::kill(s.pid(), sig), "{}", s.explain());
            // Opening the FIFO's other end lets podvisor go on, to its first thread.
            let _reader = std::fs::File::open(&fifo).expect("open the FIFO");
            let f = s.finish(Duration::from_secs(30));
            assert_eq!(
                f.code(),
                Some(128 + sig),
                "{} from {}\n{}",
                name(sig),
                bin.display(),
                f.explain()
            );
            f.assert_stderr_has(&format!("forwarding {} to the child", name(sig)));
        }
    }
}
