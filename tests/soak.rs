//! Soak (issue 15, item 7): many sequential runs and sidecar stop cycles with no growth in
//! podvisor's descriptors or memory, one supervised child left alone with zero wake-ups, and
//! 1 000 wait targets with the CPU they cost.
//!
//! `cargo test` runs a small version; PODVISOR_SOAK=1 (scripts/reliability --full) the full one:
//! 10 000 runs, 1 000 stop cycles, 10 minutes idle. Each test prints its figures (--nocapture).

mod support;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::libc;
use support::{podvisor_bin, poll_until, TempDir, TestCommand};

fn full() -> bool {
    std::env::var_os("PODVISOR_SOAK").is_some()
}

/// podvisor's anonymous memory (RssAnon, kB: what a leak grows; the mapped binary's pages,
/// RssFile, grow across runs with the page cache alone: a 10 000-run soak saw VmRSS go from
/// 6.7 to 8.0 MB in fresh processes) and open descriptors, as the step sees them. Sockets are
/// left out: std's spawn holds a socket pair until it has seen the exec succeed, which is the
/// very moment the probe runs (it is closed right after; podvisor itself has no socket here).
const PROBE: &str = "set -- $(grep RssAnon /proc/$PPID/status); l=$(ls -l /proc/$PPID/fd); \
                     echo rss=$2 fds=$(echo \"$l\" | grep -c -e '->') \
                     sockets=$(echo \"$l\" | grep -c socket:)";

/// Anonymous RSS (kB) and descriptor count of `pid`, read from outside once two reads 20 ms
/// apart agree
/// (a sidecar sets up its watch right after the spawn).
fn usage(pid: i32) -> (u64, usize) {
    let read = || {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let fds = fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        (rss, fds)
    };
    let mut last = read();
    poll_until(Duration::from_secs(5), "a settled descriptor count", || {
        std::thread::sleep(Duration::from_millis(20));
        let now = read();
        let settled = now.1 == last.1;
        last = now;
        settled.then_some(now)
    })
}

/// Asserts that a series measured once per run neither grows nor wanders: the descriptors
/// are the same in every run, and the anonymous RSS of the last tenth is within `slack_kb` of
/// the first.
fn assert_flat(what: &str, samples: &[(u64, usize)], slack_kb: u64) -> String {
    let fds: Vec<usize> = samples.iter().map(|s| s.1).collect();
    let (fd_min, fd_max) = (fds.iter().min().copied(), fds.iter().max().copied());
    assert_eq!(
        fd_min, fd_max,
        "{what}: descriptors changed between runs: {fds:?}"
    );
    let tenth = (samples.len() / 10).max(1);
    let mean = |s: &[(u64, usize)]| s.iter().map(|x| x.0).sum::<u64>() / s.len() as u64;
    let first = mean(&samples[..tenth]);
    let last = mean(&samples[samples.len() - tenth..]);
    let rss_max = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let figure = format!(
        "{what}: {} runs, descriptors {} in every run, anonymous RSS first tenth {first} kB, \
         last tenth {last} kB, max {rss_max} kB",
        samples.len(),
        fd_max.unwrap_or(0)
    );
    assert!(last <= first + slack_kb, "{figure}: RSS grew");
    eprintln!("{figure}");
    figure
}

#[test]
fn sequential_runs_leave_nothing_and_do_not_grow() {
    let runs = if full() { 10_000 } else { 100 };
    let mut samples = Vec::with_capacity(runs);
    let started = Instant::now();
    for n in 0..runs {
        let run = TestCommand::new()
            .args(["-q", "--", "sh", "-c", PROBE])
            .run();
        run.assert_code(0);
        let out = run.stdout();
        let field = |k: &str| {
            out.split_whitespace()
                .find_map(|w| w.strip_prefix(k)?.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("run {n}: no {k} in {out:?}\n{}", run.explain()))
        };
        samples.push((field("rss="), (field("fds=") - field("sockets=")) as usize));
    }
    assert_flat("podvisor -- PROBE", &samples, 256);
    eprintln!("{runs} sequential runs in {:?}", started.elapsed());
}

/// `podvisor ARGS` started, once it runs its child.
fn supervising(args: &[&str]) -> (std::process::Child, i32) {
    let child = Command::new(podvisor_bin())
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .expect("start podvisor");
    let pid = child.id() as i32;
    poll_until(Duration::from_secs(10), "podvisor's child", || {
        let children =
            fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        (!children.trim().is_empty()).then_some(())
    });
    (child, pid)
}

#[test]
fn sidecar_stop_cycles_do_not_grow() {
    let cycles = if full() { 1_000 } else { 30 };
    let dir = TempDir::new("soak-sidecar");
    let mut samples = Vec::with_capacity(cycles);
    let mut slowest = Duration::ZERO;
    for n in 0..cycles {
        let marker = dir.path().join(format!("step-{n}.json"));
        let marker_arg = marker.display().to_string();
        let (mut child, pid) =
            supervising(&["--until-marker", &marker_arg, "-q", "--", "sleep", "1000"]);
        // Sampled once its watch on the marker's folder is armed (an inotify descriptor), or
        // after 2 s: with the machine's inotify instances used up (128 per user, shared with
        // every other test) a sidecar polls instead, as documented.
        let armed = Instant::now() + Duration::from_secs(2);
        while Instant::now() < armed
            && !fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| {
                    d.flatten().any(|fd| {
                        fs::read_link(fd.path())
                            .is_ok_and(|l| l.to_string_lossy().contains("inotify"))
                    })
                })
                .unwrap_or(false)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        samples.push(usage(pid));
        let tmp = dir.path().join("tmp.json");
        fs::write(&tmp, r#"{"version":1,"status":"exited","exit_code":0}"#).expect("marker");
        let stop = Instant::now();
        fs::rename(&tmp, &marker).expect("rename the marker in");
        let status = poll_until(Duration::from_secs(10), "the sidecar to stop", || {
            child.try_wait().ok().flatten()
        });
        slowest = slowest.max(stop.elapsed());
        assert_eq!(status.code(), Some(0), "cycle {n}: {status:?}");
    }
    assert_flat("sidecar stop cycles", &samples, 256);
    eprintln!("{cycles} stop cycles, slowest marker-to-exit {slowest:?}");
    assert!(slowest < Duration::from_secs(5), "a stop took {slowest:?}");
}

/// Voluntary context switches of every thread of `pid`: each one is a wake-up.
fn wakeups(pid: i32) -> u64 {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).expect("podvisor's tasks");
    tasks
        .flatten()
        .filter_map(|t| {
            let status = fs::read_to_string(t.path().join("status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

#[test]
fn a_supervised_child_left_alone_costs_no_wakeups() {
    let secs = if full() { 600 } else { 3 };
    let (mut child, pid) = supervising(&["-q", "--", "sleep", "100000"]);
    std::thread::sleep(Duration::from_millis(200));
    let (before, usage_before) = (wakeups(pid), usage(pid));
    std::thread::sleep(Duration::from_secs(secs));
    let (after, usage_after) = (wakeups(pid), usage(pid));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(143), "{status:?}");
    eprintln!(
        "idle {secs} s: {} wake-ups, anonymous RSS {} -> {} kB, descriptors {} -> {}",
        after - before,
        usage_before.0,
        usage_after.0,
        usage_before.1,
        usage_after.1
    );
    assert_eq!(after - before, 0, "podvisor woke up while nothing happened");
    assert_eq!(usage_before.1, usage_after.1);
}

/// CPU time (user + system) of a finished child, from wait4's rusage.
fn wait_with_cpu(pid: i32) -> (i32, Duration) {
    let mut status = 0;
    // SAFETY: wait4 on our own child, with a zeroed rusage for the kernel to fill.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::wait4(pid, &mut status, 0, &mut usage), pid);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (
        libc::WEXITSTATUS(status),
        tv(usage.ru_utime) + tv(usage.ru_stime),
    )
}

#[test]
fn a_thousand_wait_targets_and_their_cpu() {
    let dir = TempDir::new("soak-targets");
    let files: Vec<_> = (0..1000)
        .map(|n| dir.path().join(format!("ready-{n}")))
        .collect();
    let mut cmd = Command::new(podvisor_bin());
    cmd.args(["-q", "--timeout", "60s"]);
    for f in &files {
        cmd.arg("--wait-file").arg(f);
    }
    let started = Instant::now();
    // Waited for with wait4 below, for its rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .args(["--", "true"])
        .stdin(Stdio::null())
        .spawn()
        .expect("start podvisor");
    // Two seconds of waiting, then every file at once.
    std::thread::sleep(Duration::from_secs(2));
    for f in &files {
        fs::write(f, "").expect("create a target");
    }
    let created = Instant::now();
    let (code, cpu) = wait_with_cpu(child.id() as i32);
    let after_last = created.elapsed();
    assert_eq!(code, 0);
    eprintln!(
        "1000 file targets: {:?} in all, step started {after_last:?} after the last file, \
         podvisor CPU {cpu:?}",
        started.elapsed()
    );
    assert!(cpu < Duration::from_secs(10), "CPU {cpu:?}");
}
