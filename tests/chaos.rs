//! Chaos in the namespace pod (issue 15, item 2): a step container and an ordinary sidecar; at a
//! random moment one of them is SIGKILLed — the step, the sidecar's program, or either
//! podvisor — and then: the ordinary sidecar stops within a bound, the marker is either absent
//! with its lock free or complete valid JSON agreeing with the step container's exit code, no
//! process is left, and every exit code is one the README lists.
//!
//! `cargo test` runs 12 rounds; PODVISOR_SOAK=1 runs 300 (PODVISOR_CHAOS_RUNS to choose).
//! PODVISOR_CHAOS_SEED replays a failing sequence (the seed is printed).

mod support;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::libc;
use support::pod::{explain, Container, Pod};
use support::rng::{rounds, Rng};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    /// The step (podvisor's child in the command container).
    Step,
    /// The sidecar's program (podvisor's child in the sidecar container).
    SidecarProgram,
    /// The command container's podvisor (the container dies with its PID 1).
    StepPodvisor,
    /// The sidecar container's podvisor.
    SidecarPodvisor,
}

const VICTIMS: [Victim; 4] = [
    Victim::Step,
    Victim::SidecarProgram,
    Victim::StepPodvisor,
    Victim::SidecarPodvisor,
];

/// How long the ordinary sidecar may take to stop once the step container has ended.
const STOP_BOUND: Duration = Duration::from_secs(5);

/// What one round did, for the summary.
#[derive(Default)]
struct Tally {
    rounds: usize,
    injected: [usize; 4],
    missed: usize,
    before_lock: usize,
    markers: usize,
    free_locks: usize,
}

/// Whether nobody holds the lock at `path` (or there is no lock file at all).
fn lock_free(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return true;
    };
    // SAFETY: flock on a descriptor we own; closing it (drop) releases what we took.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Whether a container's status is one the README lists (`own`: the program's own codes).
/// A container whose podvisor was SIGKILLed has no podvisor exit code at all: what shows is
/// the runtime's report (unshare says "sigprocmask unblock failed" and exits 1; Kubernetes
/// says 137), so `killed` accepts anything.
fn listed(status: ExitStatus, own: &[i32], killed: bool) -> bool {
    killed
        || status
            .code()
            .is_some_and(|c| own.contains(&c) || [124, 125, 137, 143].contains(&c))
}

fn round(rng: &mut Rng, tally: &mut Tally) {
    let pod = Pod::new("chaos");
    let marker = pod.ws("podvisor/step.json");
    let ready = pod.ws("sidecar-ready");
    let step_ms = rng.below(600);
    let mut side = pod.start(
        "sidecar",
        &[
            "--until-marker",
            &marker,
            "--grace-period",
            "2s",
            "--sh",
            &format!("touch {ready}; exec sleep 1000"),
        ],
    );
    let mut cmd = pod.start(
        "command",
        &[
            "--wait-file",
            &ready,
            "--timeout",
            "5s",
            "--marker",
            &marker,
            "--sh",
            &format!(
                "sleep {}.{:03}; echo step-done; exit 3",
                step_ms / 1000,
                step_ms % 1000
            ),
        ],
    );
    let victim = VICTIMS[rng.below(4) as usize];
    // Over the pod's whole life: start-up (a few hundred ms here), the wait, the step.
    let at = Duration::from_millis(rng.below(400 + step_ms));
    let shown = format!("victim {victim:?} at {at:?}, step sleeps {step_ms} ms");
    std::thread::sleep(at);
    // At that moment, or as soon after as the victim exists (a step not started yet); none if
    // its container has ended meanwhile.
    let find = |cmd: &mut Container, side: &mut Container| match victim {
        Victim::Step => cmd.step_pid().ok_or(!cmd.running()),
        Victim::SidecarProgram => side.step_pid().ok_or(!side.running()),
        Victim::StepPodvisor => cmd.podvisor_pid_now().ok_or(!cmd.running()),
        Victim::SidecarPodvisor => side.podvisor_pid_now().ok_or(!side.running()),
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let pid = loop {
        match find(&mut cmd, &mut side) {
            Ok(pid) => break Some(pid),
            Err(true) => break None,
            Err(false) if Instant::now() > deadline => break None,
            Err(false) => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let injected = match pid {
        Some(pid) => {
            // SAFETY: kill(2) on a process of our own pod.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            tally.injected[victim as usize] += 1;
            true
        }
        None => {
            tally.missed += 1;
            false
        }
    };

    let all = |c: &Container, s: &Container| format!("{shown}\n{}", explain(&[c, s]));
    let cmd_status = cmd
        .wait_status(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the command container hangs\n{}", all(&cmd, &side)));
    assert!(
        listed(cmd_status, &[3], injected && victim == Victim::StepPodvisor),
        "command container: {cmd_status:?}\n{}",
        all(&cmd, &side)
    );
    let cmd_ended = cmd.ended.unwrap_or_else(Instant::now);
    let lock = format!("{marker}.lock");
    if !Path::new(&marker).exists() && !Path::new(&lock).exists() {
        // Killed before its podvisor took the lock (in the first milliseconds, often before
        // podvisor even ran): on the volume that is a container not started yet, which the
        // sidecar waits for (README, the marker protocol) until its own SIGTERM ends it.
        tally.before_lock += 1;
        if side.running() {
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                side.running(),
                "the sidecar stopped for a container that never ran
{}",
                all(&cmd, &side)
            );
            side.signal(libc::SIGTERM);
        }
    }
    let side_status = side
        .wait_status(STOP_BOUND + Duration::from_secs(2))
        .unwrap_or_else(|| panic!("the sidecar did not stop\n{}", all(&cmd, &side)));
    assert!(
        listed(
            side_status,
            &[0],
            injected && victim == Victim::SidecarPodvisor
        ),
        "sidecar: {side_status:?}\n{}",
        all(&cmd, &side)
    );
    if let Some(ended) = side.ended {
        assert!(
            ended.saturating_duration_since(cmd_ended) < STOP_BOUND,
            "the sidecar took {:?} after the command container\n{}",
            ended.saturating_duration_since(cmd_ended),
            all(&cmd, &side)
        );
    }

    let path = Path::new(&marker);
    if path.exists() {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let m: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("marker is not JSON ({e}): {text:?}\n{}", all(&cmd, &side)));
        assert!(
            [
                "exited",
                "signaled",
                "wait_failed",
                "cancelled",
                "spawn_failed"
            ]
            .contains(&m["status"].as_str().unwrap_or("")),
            "{m}"
        );
        if let (Some(code), false) = (cmd_status.code(), victim == Victim::StepPodvisor) {
            assert_eq!(
                m["exit_code"].as_i64(),
                Some(i64::from(code)),
                "marker and exit code disagree: {m}\n{}",
                all(&cmd, &side)
            );
        }
        tally.markers += 1;
    } else {
        assert!(
            lock_free(Path::new(&lock)),
            "no marker and the lock is held\n{}",
            all(&cmd, &side)
        );
        tally.free_locks += 1;
    }
    pod.assert_nothing_left(&[&cmd, &side]);
    tally.rounds += 1;
}

#[test]
fn sigkill_anything_at_any_moment_and_the_pod_still_ends_cleanly() {
    let mut rng = Rng::from_env("PODVISOR_CHAOS_SEED", "chaos");
    let mut tally = Tally::default();
    let started = Instant::now();
    for _ in 0..rounds("PODVISOR_CHAOS_RUNS", 12, 300) {
        round(&mut rng, &mut tally);
    }
    eprintln!(
        "chaos: {} rounds in {:?}; SIGKILLs: step {}, sidecar program {}, step podvisor {}, \
         sidecar podvisor {}; victim already gone {}; ended with a marker {}, with a free lock \
         and no marker {} (of which killed before the lock existed: {})",
        tally.rounds,
        started.elapsed(),
        tally.injected[0],
        tally.injected[1],
        tally.injected[2],
        tally.injected[3],
        tally.missed,
        tally.markers,
        tally.free_locks,
        tally.before_lock
    );
}
