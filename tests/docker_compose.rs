//! examples/compose: `docker compose up --exit-code-from step` plays the whole life cycle of
//! the pod: the step waits for the nginx sidecar, fetches from it, writes its marker; the
//! sidecar sees the marker and stops; compose returns the step's status.

mod support;

use std::time::Duration;

use support::docker::{self, docker_ok, Cleanup};

#[test]
fn compose_example_runs_the_whole_life_cycle() {
    docker::require_docker();
    let mut cleanup = Cleanup::new();
    let podvisor = docker::podvisor_image(&mut cleanup);
    let base = docker::base_image();
    let file = docker::repo_root().join("examples/compose/docker-compose.yml");
    let project = docker::unique("compose");
    cleanup.compose(&file, &project);

    // Built first with --force-rm, so that a failed RUN leaves no container behind, and
    // --no-cache, so that no layer is shared with another test's images (see build_image).
    let mut build = docker::compose_command();
    build
        .arg("-f")
        .arg(&file)
        .args(["-p", &project, "build", "--force-rm", "--no-cache"])
        .env("EXAMPLE_PODVISOR_IMAGE", &podvisor)
        .env("EXAMPLE_BASE_IMAGE", &base);
    docker::bounded(build, Duration::from_secs(300)).expect_ok();

    let mut up = docker::compose_command();
    up.arg("-f")
        .arg(&file)
        .args(["-p", &project, "up", "--exit-code-from", "step"])
        .env("EXAMPLE_PODVISOR_IMAGE", &podvisor)
        .env("EXAMPLE_BASE_IMAGE", &base);
    let done = docker::bounded(up, Duration::from_secs(300));
    let out = format!("{}{}", done.stdout, done.stderr);
    assert!(done.ok(), "\n{}", done.explain());
    for line in [
        "waiting for tcp://localhost:80",
        "tcp://localhost:80 is ready",
        "Welcome to nginx",
        "until-condition holds",
    ] {
        assert!(
            out.contains(line),
            "no {line:?} in the output\n{}",
            done.explain()
        );
    }

    // The sidecar stopped itself with success, and nothing of the project runs on.
    let mut ps = docker::compose_command();
    ps.arg("-f")
        .arg(&file)
        .args(["-p", &project, "ps", "-q", "sidecar"]);
    let id = docker::bounded(ps, Duration::from_secs(60));
    let id = id.expect_ok().trim().to_string();
    let code = docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]);
    assert_eq!(code, "0", "sidecar exit code\n{}", done.explain());
    let filter = format!("label=com.docker.compose.project={project}");
    let running = docker_ok(&["ps", "-q", "--filter", &filter]);
    assert!(
        running.is_empty(),
        "still running: {running}\n{}",
        done.explain()
    );
}
