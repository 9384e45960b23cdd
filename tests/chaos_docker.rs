//! Chaos in the Docker pod (issue 15, item 2): the pod of tests/docker_pod.rs (a holder of the
//! network namespace, a volume as /workspace, podvisor installed there by an init container),
//! and in each round a command container and an ordinary sidecar (`--until-marker`) from the
//! Debian base, started at once. At a random moment one of them is SIGKILLed: the step, the
//! sidecar's program (kill(2) of its host pid), or either container's podvisor (its PID 1:
//! `docker kill --signal KILL` or kill(2) of its host pid, at random). Then: the sidecar
//! stops within a bound of the command container's end (Docker's own FinishedAt times), the
//! marker is complete JSON agreeing with the exit code or absent with its lock free, nothing
//! of either container is left on the host, and every exit code is one the README lists.
//!
//! `cargo test` runs 4 rounds; PODVISOR_SOAK=1 runs 100 (PODVISOR_CHAOS_RUNS to choose).
//! PODVISOR_CHAOS_SEED replays a failing sequence (the seed is printed).

mod support;

use std::time::{Duration, Instant};

use support::chaos::{self, InPod, Runtime, Tally};
use support::docker::{self, Pod};
use support::rng::{rounds, Rng};

/// podvisor as the init container installed it, argv[0] of every container's PID 1.
const PODVISOR: &str = "/workspace/bin/podvisor";

/// What the rounds keep: the victims' moments are drawn over the pod's life, which starts with
/// `docker run` (a few hundred ms here, seconds under load): `startup` is the last round's time
/// from the `docker run`s to the command container's end, less its step's sleep.
struct Rig {
    pod: Pod,
    volume: std::path::PathBuf,
    startup: Duration,
}

fn round(rig: &mut Rig, n: usize, rng: &mut Rng, tally: &mut Tally) {
    let Rig { pod, volume, .. } = rig;
    // Paths no other round or test process uses: the victims are found by them.
    let tag = format!("{}-{n}", std::process::id());
    let marker = format!("/workspace/podvisor/step-{tag}.json");
    let ready = format!("/workspace/ready-{tag}");
    let side = pod.container(&format!("side{n}"));
    let cmd = pod.container(&format!("step{n}"));
    let step_ms = rng.below(600);
    let base = pod.base.clone();
    let with_podvisor = |args: &[String]| {
        let mut all = vec![PODVISOR.to_string()];
        all.extend_from_slice(args);
        all
    };
    let side_args = with_podvisor(&chaos::sidecar_args(&marker, &ready));
    let cmd_args = with_podvisor(&chaos::step_args(&ready, "3s", &marker, step_ms));
    let t0 = docker::now_ns();
    let started = [
        pod.start_in_background(&side, &base, &side_args),
        pod.start_in_background(&cmd, &base, &cmd_args),
    ];

    let (victim, by_runtime) = InPod::pick(rng);
    // Over the pod's whole life: `docker run`, the wait, the step.
    let life = rig.startup.as_millis() as u64 + step_ms;
    let at = Duration::from_millis(rng.below(life));
    let shown = format!(
        "round {n}: victim {victim:?}{} at {at:?}, step sleeps {step_ms} ms",
        if by_runtime { " by docker kill" } else { "" }
    );
    let host_marker = volume.join(format!("podvisor/step-{tag}.json"));
    let in_pod = InPod {
        runtime: Runtime::Docker,
        exe: PODVISOR,
        marker: &marker,
        host_marker: &host_marker,
        step: &cmd,
        sidecar: &side,
        victim,
        by_runtime,
    };
    std::thread::sleep(at);
    let injected = in_pod.inject(tally);

    let explain = || {
        format!(
            "{shown}\n--- {side} ---\n{}\n--- {cmd} ---\n{}",
            docker::logs(&side),
            docker::logs(&cmd)
        )
    };
    for run in started {
        let done = run.join();
        assert!(done.ok(), "docker run\n{}\n{}", done.explain(), explain());
    }
    let [(_, step_end), _] = in_pod.end(injected, tally, &explain);
    let life = Duration::from_nanos((step_end - t0).max(0) as u64);
    rig.startup = life
        .saturating_sub(Duration::from_millis(step_ms))
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    let ids = [docker::ended(&cmd).id, docker::ended(&side).id];
    chaos::assert_nothing_left(&ids, &explain);
    docker::docker(["rm", "-v", &cmd, &side], Duration::from_secs(60));
    tally.rounds += 1;
}

#[test]
fn sigkill_anything_in_the_docker_pod_and_it_still_ends_cleanly() {
    // The holder: blocks on a file nobody creates, ends with 0 on docker stop.
    let mut pod = Pod::new(&[], &["--until-file", "/workspace/never"]);
    pod.install_podvisor();
    let volume = pod.volume_dir();
    let mut rig = Rig {
        pod,
        volume,
        startup: Duration::from_millis(500),
    };
    let mut rng = Rng::from_env("PODVISOR_CHAOS_SEED", "chaos_docker");
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..rounds("PODVISOR_CHAOS_RUNS", 4, 100) {
        round(&mut rig, n, &mut rng, &mut tally);
    }
    tally.report("chaos_docker", started.elapsed());
    // The pod's own PID 1 saw all of it and still stops cleanly.
    let holder = &rig.pod.holder;
    docker::docker(["stop", "-t", "10", holder], Duration::from_secs(60)).expect_ok();
    assert_eq!(
        docker::wait_exit(holder, Duration::from_secs(10)),
        0,
        "{}",
        docker::logs(holder)
    );
}
