//! While supervising, podvisor sleeps: no periodic timer or polling wakes it while the child
//! does nothing (its context switches stay flat).

mod support;

use std::time::Duration;

use nix::libc;
use support::sigs::{podvisor_sigecho, Supervised};

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
