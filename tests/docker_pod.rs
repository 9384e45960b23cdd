//! A pod made of Docker containers: one holds the network namespace (as Kubernetes' pause
//! container does), the others join it with `--network container:...` and share a volume as
//! /workspace. It replays Buildkite's nginx + curl sidecar example with podvisor in every
//! container, podvisor itself handed to the stock images by an init container (--install-to).

mod support;

use std::time::{Duration, Instant};

use support::docker::{self, Cleanup};

#[test]
fn nginx_sidecar_and_curl_step_both_exit_cleanly() {
    docker::require_docker();
    let mut cleanup = Cleanup::new();
    let image = docker::podvisor_image(&mut cleanup);
    let base = docker::base_image();
    let volume = cleanup.volume("ws");
    let ws = format!("{volume}:/workspace");
    let pod = cleanup.container("pod");
    let init = cleanup.container("init");
    let step = cleanup.container("step");
    let nginx = cleanup.container("nginx");
    let probe = cleanup.container("probe");
    let net = format!("container:{pod}");
    let marker = "/workspace/podvisor/step.json";
    let all = [pod.clone(), step.clone(), nginx.clone(), probe.clone()];
    let started = Instant::now();

    // The pod's network holder: the empty podvisor image, ending when the step has ended.
    cleanup.start(
        &pod,
        &[
            "--add-host",
            "sidecar.test:127.0.0.1",
            "-v",
            &ws,
            &image,
            "--until-marker",
            marker,
        ],
    );
    // Every other container joins the pod: its network namespace and its /workspace.
    let in_pod = |image: &str, rest: &[&str]| -> Vec<String> {
        ["--network", &net, "-v", &ws, image]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    };
    // The init container hands podvisor to the stock images through the volume.
    cleanup.start(&init, &in_pod(&image, &["--install-to", "/workspace/bin"]));
    let code = docker::wait_exit(&init, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", docker::logs(&init));

    // A startupProbe-like check from the empty image, for a name from the pod's /etc/hosts;
    // its marker (no command: status exited, code 0) tells the step that it has passed, so
    // that nginx cannot stop before the probe has seen it.
    let probe_marker = "/workspace/podvisor/probe.json";
    cleanup.start(
        &probe,
        &in_pod(
            &image,
            &[
                "--wait-tcp",
                "sidecar.test:80",
                "--timeout",
                "60s",
                "--marker",
                probe_marker,
            ],
        ),
    );
    // The command container starts before the sidecar, as in a pod where nginx is slow.
    let step_cmd = [
        "/workspace/bin/podvisor",
        "--wait-tcp",
        "localhost:80",
        "--wait-file",
        probe_marker,
        "--timeout",
        "60s",
        "--marker",
        marker,
        "--",
        "curl",
        "-sf",
        "http://localhost/",
    ];
    cleanup.start(&step, &in_pod(&base, &step_cmd));
    docker::wait_for_log(
        &step,
        "waiting for tcp://localhost:80",
        Duration::from_secs(30),
    );
    let nginx_cmd = [
        "/workspace/bin/podvisor",
        "--until-marker",
        marker,
        "--stop-signal",
        "QUIT",
        "--",
        "nginx",
        "-g",
        "daemon off;",
    ];
    cleanup.start(&nginx, &in_pod(&base, &nginx_cmd));

    let t = Duration::from_secs(90);
    let codes: Vec<i32> = [&probe, &step, &nginx, &pod]
        .iter()
        .map(|c| docker::wait_exit(c, t))
        .collect();
    let explain = || {
        all.iter()
            .map(|c| format!("--- {c} ---\n{}", docker::logs(c)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        codes,
        [0, 0, 0, 0],
        "exit codes of probe, step, nginx, pod\n{}",
        explain()
    );
    let step_logs = docker::logs(&step);
    assert!(step_logs.contains("Welcome to nginx"), "\n{}", explain());
    assert!(
        step_logs.contains("tcp://localhost:80 is ready"),
        "\n{}",
        explain()
    );
    assert!(
        docker::logs(&nginx).contains("until-condition holds"),
        "nginx did not stop on the marker\n{}",
        explain()
    );
    assert!(docker::still_running(&all).is_empty(), "\n{}", explain());
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );

    let marker_json = cleanup.run(&["-v", &ws, &base, "cat", marker]);
    let record: serde_json::Value =
        serde_json::from_str(marker_json.expect_ok()).expect("the marker is one JSON object");
    assert_eq!(record["status"], "exited", "{record}");
    assert_eq!(record["exit_code"], 0, "{record}");
    assert_eq!(
        record["waits"][0]["target"], "tcp://localhost:80",
        "{record}"
    );
    assert_eq!(record["waits"][0]["ready"], true, "{record}");
}
