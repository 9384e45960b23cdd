//! While supervising, podvisor sleeps: no periodic timer or polling wakes it while the child
//! does nothing (its context switches stay flat).

mod support;

use std::time::Duration;

use nix::libc;
use support::sigs::{podvisor_sigecho, Supervised};
use support::{poll_until, TempDir, TestCommand};

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
