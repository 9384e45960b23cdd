//! While supervising, podvisor sleeps: no periodic timer or polling wakes it while the child
//! does nothing (its context switches stay flat).

mod support;

use std::time::Duration;

use nix::libc;
use support::sigs::{podvisor_sigecho, Supervised};
use support::{podvisor_bin, poll_until, TempDir, TestCommand};

/// Voluntary + involuntary context switches of every thread of `pid`.
fn switches(pid: i32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("podvisor's tasks");
    tasks
        .flatten()
        .map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

#[test]
fn supervising_podvisor_sleeps() {
    let cmd = podvisor_sigecho(&[], &["--exit-on", "SIGUSR1:0"]);
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    // Let start-up settle (the first SIGCHLD-free moments after spawn).
    std::thread::sleep(Duration::from_millis(200));
    let before = switches(s.pid());
    std::thread::sleep(Duration::from_secs(2));
    let after = switches(s.pid());
    s.signal(libc::SIGUSR1);
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(0);
    // Zero is expected; a 10 ms tick would be ~200.
    assert!(
        after - before <= 2,
        "{} context switches in 2 s of nothing\n{}",
        after - before,
        f.explain()
    );
}

/// podvisor's `rt_sigtimedwait` calls in an `strace -f -o` file, each as one line (a call
/// that another process's line interrupted is joined back from its `resumed` part).
fn sigtimedwaits(trace: &str) -> Vec<String> {
    let mut calls: Vec<String> = Vec::new();
    for line in trace.lines() {
        let rest = line
            .split_once(char::is_whitespace)
            .map_or("", |(_, r)| r.trim_start());
        if let Some(tail) = rest.strip_prefix("<... rt_sigtimedwait resumed>") {
            if let Some(last) = calls.last_mut() {
                last.push_str(tail);
            }
        } else if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            calls.push(head.to_owned());
        } else if rest.starts_with("rt_sigtimedwait(") {
            calls.push(rest.to_owned());
        }
    }
    calls
}

/// The plain init wakes once, 5 ms after its step's start, and then only for a signal
/// (run/direct.rs, `SETTLE`: the sleep after that wake-up starts without the start-up's lag).
#[test]
fn the_plain_init_wakes_once_after_the_start_then_only_for_signals() {
    let dir = TempDir::new("idle-settle");
    let trace = dir.path().join("strace");
    let out = std::process::Command::new("strace")
        .args(["-f", "-e", "trace=rt_sigtimedwait", "-o"])
        .arg(&trace)
        .arg(podvisor_bin())
        .args(["-q", "--", "sleep", "0.5"])
        .output()
        .expect("strace (.ci/install installs it)");
    assert!(out.status.success(), "strace podvisor -- sleep: {out:?}");
    let text = std::fs::read_to_string(&trace).expect("the strace output");
    let calls = sigtimedwaits(&text);
    assert_eq!(calls.len(), 2, "two waits expected:\n{text}");
    assert!(
        calls[0].contains("{tv_sec=0, tv_nsec=5000000}") && calls[0].contains("= -1 EAGAIN"),
        "the first wait times out after 5 ms:\n{text}"
    );
    assert!(
        calls[1].contains(", NULL, 8) = 17 (SIGCHLD)"),
        "the second waits without a timeout, for the step's SIGCHLD:\n{text}"
    );
}

/// The `inotify wd:` lines of every inotify descriptor of `pid`: its live watches.
fn inotify_watches(pid: u32) -> Vec<String> {
    // A podvisor that has exited has no watch either: that must not pass for a removed one.
    let fds = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap_or_else(|e| panic!("podvisor (pid {pid}) is gone: {e}"));
    fds.flatten()
        .filter_map(|f| std::fs::read_to_string(f.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A file wait's watch is removed once the step has started (not before: wait/file.rs), so that
/// the step's own writes in that folder do not wake podvisor.
#[test]
fn a_finished_file_wait_leaves_no_watch() {
    let dir = TempDir::new("idle-watch");
    let ready = dir.path().join("ready");
    let started = dir.path().join("started");
    let script = format!("touch {}; exec sleep 30", started.display());
    let (mut child, shown) = TestCommand::new()
        .arg("--wait-file")
        .arg(&ready)
        .args(["--", "sh", "-c", &script])
        .spawn();
    let pid = child.id();
    poll_until(Duration::from_secs(10), "the file watch", || {
        (!inotify_watches(pid).is_empty()).then_some(())
    });
    std::fs::write(&ready, b"").expect("create the ready file");
    poll_until(Duration::from_secs(10), "the step's start", || {
        started.exists().then_some(())
    });
    // Fails (panics) when a watch is still there after 5 s.
    poll_until(Duration::from_secs(5), "the watch's removal", || {
        inotify_watches(pid).is_empty().then_some(())
    });
    // The step writes in the folder that was watched: podvisor sleeps through it.
    std::thread::sleep(Duration::from_millis(200));
    let before = switches(pid as i32);
    for i in 0..200 {
        std::fs::write(dir.path().join(format!("f{i}")), b"x").expect("write in the folder");
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = switches(pid as i32);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        after - before <= 2,
        "{shown}: {} context switches while the step wrote 200 files in the folder once waited on",
        after - before
    );
}
