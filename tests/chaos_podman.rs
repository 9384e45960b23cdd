//! Chaos in the podman pod (issue 15, item 2): each round plays
//! examples/kubernetes/job-ordinary-sidecar.yaml with `podman kube play` (as
//! tests/podman_pod.rs does: the init container installs podvisor, nginx runs under
//! `--until-marker`, the step under `--marker`), the step being a shell that sleeps and exits 3,
//! and at a random moment SIGKILLs one of: the step, nginx (the sidecar's program), or either
//! container's podvisor (its PID 1: `podman kill --signal KILL` or kill(2) of its host pid, at
//! random). Then: nginx's container stops within a bound of the step container's end (podman's
//! own FinishedAt times), the pod completes, the marker is complete JSON agreeing with the exit
//! code or absent with its lock free, nothing of the pod's containers is left on the host
//! (their processes, conmon), and every exit code is one the README lists.
//!
//! `cargo test` runs 3 rounds; PODVISOR_SOAK=1 runs 100 (PODVISOR_CHAOS_RUNS to choose).
//! PODVISOR_CHAOS_SEED replays a failing sequence (the seed is printed).

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::chaos::{self, InPod, Runtime, Tally};
use support::podman::{self, KubePod, PodGuard};
use support::rng::{rounds, Rng};

const ORDINARY: &str = "kubernetes/job-ordinary-sidecar.yaml";
/// The example's marker, made unique per round (the victims are found by it).
const MARKER: &str = "/workspace/podvisor/step.json";
/// podvisor as the init container installed it, argv[0] of nginx's and the step's PID 1.
const PODVISOR: &str = "/workspace/bin/podvisor";

/// The container's command with `edit` applied to each argument.
fn edit_command(kube: &mut KubePod, name: &str, edit: impl Fn(&str) -> String) {
    let c = kube.container_mut(name);
    let command: Vec<String> = podman::strings(&c["command"])
        .iter()
        .map(|a| edit(a))
        .collect();
    c["command"] = json!(command);
}

/// A full container ID.
fn id(name: &str) -> String {
    podman::podman_ok(&["inspect", "--format", "{{.Id}}", name])
}

fn round(startup: &mut Duration, n: usize, rng: &mut Rng, tally: &mut Tally) {
    let mut guard = PodGuard::new("chaos");
    let mut kube = KubePod::from_job(ORDINARY, &mut guard, Some(0o777));
    let marker = format!("/workspace/podvisor/step-{}.json", guard.name);
    let step_ms = rng.below(600);
    let step_sh = chaos::step_script(step_ms);
    let unique = |a: &str| a.replace(MARKER, &marker);
    edit_command(&mut kube, "nginx", unique);
    // A step whose sidecar is dead waits 3 s, not the example's 2 minutes.
    edit_command(&mut kube, "step", |a| {
        if a.starts_with("--timeout=") {
            "--timeout=3s".into()
        } else {
            unique(a)
        }
    });
    kube.replace_after_dashes("step", &["sh", "-c", &step_sh]);
    let (init, cmd, nginx) = (
        guard.container("podvisor"),
        guard.container("step"),
        guard.container("nginx"),
    );
    let volume = kube.pod["spec"]["volumes"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let t0 = podman::now();
    let playing = kube.play_in_background();

    let (victim, by_runtime) = InPod::pick(rng);
    // Over the pod's whole life: kube play (the init container, then the others), the wait,
    // the step; the last round's life less its step's sleep stands for the start-up.
    let at = Duration::from_millis(rng.below(startup.as_millis() as u64 + step_ms));
    let shown = format!(
        "round {n}: victim {victim:?}{} at {at:?}, step sleeps {step_ms} ms",
        if by_runtime { " by podman kill" } else { "" }
    );
    let host_marker = guard
        .volume_dir(&volume)
        .join(format!("podvisor/step-{}.json", guard.name));
    let in_pod = InPod {
        runtime: Runtime::Podman,
        exe: PODVISOR,
        marker: &marker,
        host_marker: &host_marker,
        step: &cmd,
        sidecar: &nginx,
        victim,
        by_runtime,
    };
    std::thread::sleep(at);
    let injected = in_pod.inject(tally);

    let explain = || format!("{shown}\n{}", guard.explain());
    let played = playing
        .join()
        .unwrap_or_else(|_| panic!("the kube play thread panicked"));
    assert!(played.ok(), "{}\n{}", played.explain(), explain());
    let [(_, step_end), _] = in_pod.end(injected, tally, &explain);
    *startup = Duration::from_nanos((step_end - t0.finished_ns).max(0) as u64)
        .saturating_sub(Duration::from_millis(step_ms))
        .clamp(Duration::from_millis(100), Duration::from_secs(10));
    guard.wait_completed(Duration::from_secs(60));
    assert_eq!(
        podman::ended(&init).code,
        0,
        "the init container\n{}",
        explain()
    );
    let infra = podman::podman_ok(&[
        "pod",
        "inspect",
        "--format",
        "{{.InfraContainerID}}",
        &guard.name,
    ]);
    let ids = [id(&init), id(&cmd), id(&nginx), infra];
    chaos::assert_nothing_left(&ids, &explain);
    tally.rounds += 1;
}

#[test]
fn sigkill_anything_in_the_podman_pod_and_it_still_ends_cleanly() {
    let mut rng = Rng::from_env("PODVISOR_CHAOS_SEED", "chaos_podman");
    let mut tally = Tally::default();
    let mut startup = Duration::from_secs(2);
    let started = Instant::now();
    for n in 0..rounds("PODVISOR_CHAOS_RUNS", 3, 100) {
        round(&mut startup, n, &mut rng, &mut tally);
    }
    tally.report("chaos_podman", started.elapsed());
}
