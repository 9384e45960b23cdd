//! Chaos in the namespace pod (issue 15, item 2): a step container and an ordinary sidecar; at a
//! random moment one of them is SIGKILLed — the step, the sidecar's program, or either
//! podvisor — and then: the ordinary sidecar stops within a bound, the marker is either absent
//! with its lock free or complete valid JSON agreeing with the step container's exit code, no
//! process is left, and every exit code is one the README lists.
//!
//! `cargo test` runs 12 rounds; PODVISOR_SOAK=1 runs 300 (PODVISOR_CHAOS_RUNS to choose).
//! PODVISOR_CHAOS_SEED replays a failing sequence (the seed is printed).

mod support;

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use support::chaos::{self, Tally, Victim, STOP_BOUND};
use support::pod::{explain, Container, Pod};
use support::rng::{rounds, Rng};

/// Whether a container's status is one the README lists (`own`: the program's own codes).
/// A container whose podvisor was SIGKILLed has no podvisor exit code at all: what shows is
/// the runtime's report (unshare says "sigprocmask unblock failed" and exits 1; Kubernetes
/// says 137), so `killed` accepts anything.
fn listed(status: ExitStatus, own: &[i32], killed: bool) -> bool {
    killed || status.code().is_some_and(|c| chaos::listed(c, own))
}

fn round(rng: &mut Rng, tally: &mut Tally) {
    let pod = Pod::new("chaos");
    let marker = pod.ws("podvisor/step.json");
    let ready = pod.ws("sidecar-ready");
    let step_ms = rng.below(600);
    let side_args = chaos::sidecar_args(&marker, &ready);
    let step_args = chaos::step_args(&ready, "5s", &marker, step_ms);
    let side_args: Vec<&str> = side_args.iter().map(String::as_str).collect();
    let step_args: Vec<&str> = step_args.iter().map(String::as_str).collect();
    let mut side = pod.start("sidecar", &side_args);
    let mut cmd = pod.start("command", &step_args);
    let victim = Victim::pick(rng);
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
            chaos::sigkill(pid);
            tally.injected(victim, false);
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
    let path = Path::new(&marker);
    if chaos::killed_before_lock(path) {
        // Killed before its podvisor took the lock (in the first milliseconds, often before
        // podvisor even ran): on the volume that is a container not started yet, which the
        // sidecar waits for (README, the marker protocol) until its own SIGTERM ends it.
        tally.before_lock += 1;
        if side.running() {
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                side.running(),
                "the sidecar stopped for a container that never ran\n{}",
                all(&cmd, &side)
            );
            side.signal(nix::libc::SIGTERM);
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
    let code = |s: ExitStatus| s.code().unwrap_or(-1);
    *tally.step_codes.entry(code(cmd_status)).or_default() += 1;
    *tally.sidecar_codes.entry(code(side_status)).or_default() += 1;
    if let Some(ended) = side.ended {
        tally.stopped_after(ended.saturating_duration_since(cmd_ended), &|| {
            all(&cmd, &side)
        });
    }
    chaos::check_marker(
        path,
        cmd_status.code(),
        victim == Victim::StepPodvisor,
        tally,
        &|| all(&cmd, &side),
    );
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
    tally.report("chaos", started.elapsed());
}
