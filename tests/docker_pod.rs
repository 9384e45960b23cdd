//! A pod made of Docker containers: one holds the network namespace (as Kubernetes' pause
//! container does), the others join it with `--network container:...` and share a volume as
//! /workspace. It replays Buildkite's nginx + curl sidecar example with podvisor in every
//! container, podvisor itself handed to the stock images by an init container (--install-to);
//! and the native-sidecar variant, stopped from outside as the kubelet does.

mod support;

use std::time::{Duration, Instant};

use support::docker::{self, Pod};

/// Every container's logs, for failure messages.
fn all_logs(names: &[String]) -> String {
    names
        .iter()
        .map(|c| format!("--- {c} ---\n{}", docker::logs(c)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn nginx_sidecar_and_curl_step_both_exit_cleanly() {
    let started = Instant::now();
    let marker = "/workspace/podvisor/step.json";
    // The pod's network holder: the empty podvisor image, ending when the step has ended.
    let mut pod = Pod::new(
        &["--add-host", "sidecar.test:127.0.0.1"],
        &["--until-marker", marker],
    );
    let (image, base) = (pod.image.clone(), pod.base.clone());
    let step = pod.container("step");
    let nginx = pod.container("nginx");
    let probe = pod.container("probe");
    let all = [
        pod.holder.clone(),
        step.clone(),
        nginx.clone(),
        probe.clone(),
    ];
    let explain = || all_logs(&all);
    pod.install_podvisor();

    // A startupProbe-like check from the empty image, for a name from the pod's /etc/hosts;
    // its marker (no command: status exited, code 0) tells the step that it has passed, so
    // that nginx cannot stop before the probe has seen it.
    let probe_marker = "/workspace/podvisor/probe.json";
    let probe_cmd = [
        "--wait-tcp",
        "sidecar.test:80",
        "--timeout",
        "60s",
        "--marker",
        probe_marker,
    ];
    pod.start(&probe, &image, &probe_cmd);
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
    pod.start(&step, &base, &step_cmd);
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
    pod.start(&nginx, &base, &nginx_cmd);

    let t = Duration::from_secs(90);
    let codes: Vec<i32> = [&probe, &step, &nginx, &pod.holder]
        .iter()
        .map(|c| docker::wait_exit(c, t))
        .collect();
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

    let ws = pod.ws.clone();
    let marker_json = pod.cleanup.run(&["-v", &ws, &base, "cat", marker]);
    let record: serde_json::Value =
        serde_json::from_str(marker_json.expect_ok()).expect("the marker is one JSON object");
    assert_eq!(record["status"], "exited", "{record}");
    assert_eq!(record["exit_code"], 0, "{record}");
    let waits = record["waits"].as_array().expect("waits is a list");
    assert!(
        waits
            .iter()
            .any(|w| w["target"] == "tcp://localhost:80" && w["ready"] == true),
        "{record}"
    );
}

/// The native-sidecar variant (examples/kubernetes/job-native-sidecar.yaml): nginx runs under
/// `--sidecar`, a startupProbe (`docker exec` of `podvisor --wait-tcp localhost:80 --retries
/// 0`, polled as the kubelet does) gates the step, and after the step the sidecar is stopped
/// from outside (`docker stop`, as the kubelet SIGTERMs native sidecars): nginx gets QUIT and
/// the container exits 0, not 143.
#[test]
fn native_sidecar_stopped_from_outside_exits_0() {
    // A pause-like holder: blocks on a file nobody creates, ends with 0 on docker stop.
    let mut pod = Pod::new(&[], &["--until-file", "/workspace/never"]);
    let base = pod.base.clone();
    let nginx = pod.container("nginx");
    let step = pod.container("step");
    let all = [pod.holder.clone(), nginx.clone(), step.clone()];
    let explain = || all_logs(&all);
    pod.install_podvisor();

    let nginx_cmd = [
        "/workspace/bin/podvisor",
        "--sidecar",
        "--stop-signal",
        "QUIT",
        "--grace-period",
        "10s",
        "--",
        "nginx",
        "-g",
        "daemon off;",
    ];
    pod.start(&nginx, &base, &nginx_cmd);
    // The startupProbe: one attempt per run, 0 once nginx listens, 124 before.
    let probe = [
        "exec",
        &nginx,
        "/workspace/bin/podvisor",
        "--wait-tcp",
        "localhost:80",
        "--retries",
        "0",
        "-q",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = docker::docker(probe, Duration::from_secs(30));
        if run.ok() {
            break;
        }
        assert!(
            run.code == Some(124) && Instant::now() < deadline,
            "startupProbe failed\n{}\n{}",
            run.explain(),
            explain()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let step_cmd = [
        "/workspace/bin/podvisor",
        "--wait-tcp",
        "localhost:80",
        "--",
        "curl",
        "-sf",
        "http://localhost/",
    ];
    pod.start(&step, &base, &step_cmd);
    assert_eq!(
        docker::wait_exit(&step, Duration::from_secs(60)),
        0,
        "{}",
        explain()
    );
    assert!(
        docker::logs(&step).contains("Welcome to nginx"),
        "{}",
        explain()
    );

    // The kubelet's part, after the main containers have ended.
    let start = Instant::now();
    docker::docker(["stop", "-t", "30", &nginx], Duration::from_secs(60)).expect_ok();
    let took = start.elapsed();
    assert_eq!(
        docker::wait_exit(&nginx, Duration::from_secs(10)),
        0,
        "{}",
        explain()
    );
    assert!(
        took < Duration::from_secs(10),
        "stop took {took:?}\n{}",
        explain()
    );
    assert!(
        docker::logs(&nginx).contains("SIGTERM received, stopping the child with SIGQUIT"),
        "{}",
        explain()
    );
    docker::docker(["stop", "-t", "30", &pod.holder], Duration::from_secs(60)).expect_ok();
    assert_eq!(
        docker::wait_exit(&pod.holder, Duration::from_secs(10)),
        0,
        "{}",
        explain()
    );
    assert!(docker::still_running(&all).is_empty(), "{}", explain());
}
