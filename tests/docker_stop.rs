//! `docker stop` on a container whose ENTRYPOINT is podvisor (docker/step.Dockerfile, built on
//! the podvisor image with COPY --from): the step gets the SIGTERM, the marker says signaled,
//! the container ends with 143; a step ignoring SIGTERM is killed after --grace-period, long
//! before Docker's own stop timeout.

mod support;

use std::time::{Duration, Instant};

use support::docker::{self, docker, docker_ok, Cleanup};
use support::TempDir;

const MARKER: &str = "/workspace/podvisor/step.json";
/// Docker's own timeout before it SIGKILLs the container itself.
const DOCKER_STOP_TIMEOUT: u64 = 30;

/// The example step image, built from the podvisor image and the Debian base.
fn step_image(cleanup: &mut Cleanup) -> String {
    let podvisor = docker::podvisor_image(cleanup);
    let base = docker::base_image();
    // The Dockerfile takes nothing from its context: an empty one is the fastest.
    let ctx = TempDir::new("step-ctx");
    docker::build_image(
        cleanup,
        "step",
        &docker::repo_root().join("docker").join("step.Dockerfile"),
        ctx.path(),
        &[("PODVISOR_IMAGE", &podvisor), ("BASE_IMAGE", &base)],
        None,
    )
}

/// Starts `script` as the step, waits for its `ready` line, runs `docker stop`, and returns
/// (exit code, how long the stop took, logs, marker).
fn stop_step(
    cleanup: &mut Cleanup,
    image: &str,
    grace: &str,
    script: &str,
) -> (i32, Duration, String, serde_json::Value) {
    let volume = cleanup.volume("ws");
    let ws = format!("{volume}:/workspace");
    let name = cleanup.container("step");
    let grace_env = format!("PODVISOR_GRACE_PERIOD={grace}");
    cleanup.start(
        &name,
        &["-v", &ws, "-e", &grace_env, image, "sh", "-c", script],
    );
    docker::wait_for_log(&name, "ready", Duration::from_secs(30));

    let t = DOCKER_STOP_TIMEOUT.to_string();
    let start = Instant::now();
    let stop = docker(["stop", "-t", &t, &name], Duration::from_secs(90));
    let took = start.elapsed();
    let logs = docker::logs(&name);
    assert!(stop.ok(), "\n{}\n--- logs ---\n{logs}", stop.explain());
    let code: i32 = docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &name])
        .parse()
        .expect("exit code");
    let cat = cleanup.run(&["-v", &ws, &docker::base_image(), "cat", MARKER]);
    assert!(
        cat.ok(),
        "no marker\n{}\n--- logs ---\n{logs}",
        cat.explain()
    );
    let marker = serde_json::from_str(&cat.stdout)
        .unwrap_or_else(|e| panic!("marker is not JSON ({e}): {:?}", cat.stdout));
    (code, took, logs, marker)
}

#[test]
fn docker_stop_reaches_the_step_and_the_container_ends_143() {
    docker::require_docker();
    let mut cleanup = Cleanup::new();
    let image = step_image(&mut cleanup);
    // The trap proves the step itself got SIGTERM; it then dies of it, as a step should.
    let script = "trap 'echo got SIGTERM; trap - TERM; kill -TERM $$' TERM; \
                  echo ready; while :; do sleep 0.1; done";
    let (code, took, logs, marker) = stop_step(&mut cleanup, &image, "10s", script);
    let explain = format!("took {took:?}\n--- logs ---\n{logs}\n--- marker ---\n{marker}");
    assert_eq!(code, 143, "{explain}");
    assert!(logs.contains("got SIGTERM"), "{explain}");
    assert!(took < Duration::from_secs(10), "{explain}");
    assert_eq!(marker["status"], "signaled", "{explain}");
    assert_eq!(marker["signal"], "SIGTERM", "{explain}");
    assert_eq!(marker["exit_code"], 143, "{explain}");
}

#[test]
fn a_step_ignoring_sigterm_is_killed_after_the_grace_period() {
    docker::require_docker();
    let mut cleanup = Cleanup::new();
    let image = step_image(&mut cleanup);
    // `trap '' TERM` is inherited by every sleep, so nothing in the group dies of SIGTERM.
    let script = "trap '' TERM; echo ready; while :; do sleep 0.1; done";
    let (code, took, logs, marker) = stop_step(&mut cleanup, &image, "2s", script);
    let explain = format!("took {took:?}\n--- logs ---\n{logs}\n--- marker ---\n{marker}");
    assert_eq!(code, 137, "{explain}");
    // podvisor's SIGKILL, not Docker's: after the 2 s grace, far from Docker's 30 s.
    assert!(took >= Duration::from_millis(1900), "{explain}");
    assert!(took < Duration::from_secs(15), "{explain}");
    assert!(logs.contains("grace period of 2s expired"), "{explain}");
    assert_eq!(marker["status"], "signaled", "{explain}");
    assert_eq!(marker["signal"], "SIGKILL", "{explain}");
    assert_eq!(marker["exit_code"], 137, "{explain}");
}
