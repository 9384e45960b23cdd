//! A Docker pod (containers sharing a network namespace and a volume) with a failing sidecar:
//! nginx under `--log-to` refuses its configuration; its own `docker logs` keeps the line (the
//! passthrough), and the step's `docker logs` shows it under the sidecar's header (the copy on
//! the shared volume). The step's termination message is read back from the file mounted at
//! /dev/termination-log, as the kubelet mounts it, beside `docker inspect`'s exit code.

mod support;

use std::time::Duration;

use support::docker::{self, Cleanup};
use support::TempDir;

#[test]
fn a_failing_sidecars_line_shows_in_its_own_log_and_in_the_steps() {
    docker::require_docker();
    let mut cleanup = Cleanup::new();
    let image = docker::podvisor_image(&mut cleanup);
    let base = docker::base_image();
    let ws = format!("{}:/workspace", cleanup.volume("logs-ws"));
    // The holder of the pod's network namespace, as Kubernetes' pause container.
    let holder = cleanup.container("logs-pod");
    cleanup.start(
        &holder,
        &["-v", &ws, &image, "--until-file", "/workspace/end"],
    );
    let net = format!("container:{holder}");
    let init = cleanup.container("logs-init");
    cleanup.start(
        &init,
        &[
            "--network",
            &net,
            "-v",
            &ws,
            &image,
            "--install-to",
            "/workspace/bin",
        ],
    );
    assert_eq!(
        docker::wait_exit(&init, Duration::from_secs(60)),
        0,
        "{}",
        docker::logs(&init)
    );

    // The sidecar: nginx with a directive it does not know exits at once.
    let nginx = cleanup.container("logs-nginx");
    cleanup.start(
        &nginx,
        &[
            "--network",
            &net,
            "-v",
            &ws,
            &base,
            "/workspace/bin/podvisor",
            "--log-to",
            "/workspace/logs/nginx.log",
            "--",
            "nginx",
            "-g",
            "daemon off; bogus_directive on;",
        ],
    );
    let code = docker::wait_exit(&nginx, Duration::from_secs(60));
    let sidecar_logs = docker::logs(&nginx);
    assert_eq!(code, 1, "{sidecar_logs}");
    assert!(
        sidecar_logs.contains("[emerg]")
            && sidecar_logs.contains("unknown directive \"bogus_directive\""),
        "the passthrough lacks nginx's line:\n{sidecar_logs}"
    );

    // The step: waits for nginx on the pod's localhost, fails, and shows why.
    let dir = TempDir::new("logs-docker");
    let term = dir.path().join("termination-log");
    std::fs::write(&term, "").unwrap();
    let step = cleanup.container("logs-step");
    let mount = format!("{}:/dev/termination-log", term.display());
    cleanup.start(
        &step,
        &[
            "--network",
            &net,
            "-v",
            &ws,
            "-v",
            &mount,
            "-e",
            "PODVISOR_SHOW_LOGS=/workspace/logs",
            &base,
            "/workspace/bin/podvisor",
            "--wait-tcp",
            "localhost:80",
            "--timeout",
            "3s",
            "--",
            "curl",
            "-s",
            "http://localhost/",
        ],
    );
    let code = docker::wait_exit(&step, Duration::from_secs(60));
    let step_logs = docker::logs(&step);
    assert_eq!(code, 124, "{step_logs}");
    let header = step_logs
        .find("podvisor: ==> nginx: last ")
        .unwrap_or_else(|| panic!("no nginx header in the step's log:\n{step_logs}"));
    let line = step_logs
        .find("unknown directive \"bogus_directive\"")
        .unwrap_or_else(|| panic!("no nginx line in the step's log:\n{step_logs}"));
    assert!(header < line, "{step_logs}");
    let inspected = docker::docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &step]);
    assert_eq!(inspected.trim(), "124");
    let message = std::fs::read_to_string(&term).unwrap();
    assert!(
        message.starts_with("wait failed after 3s: tcp://localhost:80 ")
            && message.ends_with(" attempts)"),
        "termination message: {message:?}"
    );
    // The holder ends when asked.
    let end = cleanup.container("logs-end");
    cleanup.start(
        &end,
        &[
            "--network",
            &net,
            "-v",
            &ws,
            &base,
            "touch",
            "/workspace/end",
        ],
    );
    assert_eq!(docker::wait_exit(&holder, Duration::from_secs(60)), 0);
}
