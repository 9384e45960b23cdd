//! Shutdown calls (`--shutdown-post`, `--proxy`): every way out POSTs exactly once per URL,
//! within the bound, after the marker's first version, without touching the exit code.
//! The fake proxies are tests/support/bin/fakeproxy.rs: not ready at first, every request
//! recorded, an exit on their shutdown call (unless `--stay`, to see a second call).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use nix::libc;
use serde_json::Value;
use support::pod::read_marker;
use support::proxy::{free_port, requests, FakeProxy};
use support::sigs::{podvisor, Finished, Supervised};
use support::{TempDir, TestCommand};

/// Bound for a run that should take a moment.
const LONG: Duration = Duration::from_secs(30);

/// A fake proxy that stays up and records every shutdown call on `/quitquitquit`.
fn staying_proxy() -> (FakeProxy, String) {
    let port = free_port();
    let proxy = FakeProxy::start(&["--shutdown", &format!("{port}/quitquitquit"), "--stay"]);
    (proxy, format!("http://127.0.0.1:{port}/quitquitquit"))
}

/// How podvisor is driven to one way out.
enum Drive {
    /// Runs to its end by itself.
    Alone,
    /// Gets `signal` once its stdout (the step's) or stderr shows `line`.
    Signal { line: &'static str, signal: i32 },
}

/// One way out: podvisor with two shutdown URLs and a marker, driven to its end.
struct Case {
    name: &'static str,
    flags: Vec<String>,
    drive: Drive,
    code: i32,
    status: &'static str,
}

fn run_case(case: &Case, dir: &TempDir) {
    let (a, url_a) = staying_proxy();
    let (b, url_b) = staying_proxy();
    let marker = dir.path().join(format!("{}.json", case.name));
    let mut flags = vec![
        "--shutdown-post".to_owned(),
        url_a.clone(),
        "--shutdown-post".into(),
        url_b.clone(),
        "--marker".into(),
        marker.display().to_string(),
    ];
    flags.extend(case.flags.iter().cloned());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut pv = Supervised::start(podvisor(&flags), true);
    if let Drive::Signal { line, signal } = case.drive {
        if line.starts_with("podvisor:") {
            pv.expect_stderr(line);
        } else {
            pv.expect(line);
        }
        pv.signal(signal);
    }
    let run = pv.finish(LONG);
    let (a, b) = (a.stop(), b.stop());
    let story = || {
        format!(
            "case {}\n{}\n--- proxy a ---\n{}\n--- proxy b ---\n{}",
            case.name,
            run.explain(),
            a.lines.join("\n"),
            b.lines.join("\n")
        )
    };
    assert_eq!(run.code(), Some(case.code), "{}", story());
    for proxy in [&a, &b] {
        let calls = requests(proxy, "POST /quitquitquit");
        assert_eq!(calls.len(), 1, "exactly one call per URL\n{}", story());
        assert!(
            calls[0].starts_with("POST /quitquitquit 200 "),
            "{}",
            story()
        );
        assert!(calls[0].ends_with("content-length=0"), "{}", story());
    }
    assert_eq!(
        run.stderr.matches("podvisor: shutdown call POST").count(),
        2,
        "one log line per call\n{}",
        story()
    );
    let m = read_marker(&marker);
    assert_eq!(m["status"], case.status, "{m}\n{}", story());
    assert_eq!(m["exit_code"], case.code, "{m}\n{}", story());
    let calls = m["shutdown"].as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), 2, "{m}\n{}", story());
    for (call, url) in calls.iter().zip([&url_a, &url_b]) {
        assert_eq!(call["url"], url.as_str(), "{m}");
        assert_eq!(call["status"], 200, "{m}");
        assert_eq!(call["error"], Value::Null, "{m}");
        assert!(call["after_ms"].is_u64(), "{m}");
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn every_way_out_posts_exactly_once_per_url() {
    let dir = TempDir::new("shutdown-paths");
    let not_executable = dir.path().join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("write file");
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let closed = format!("127.0.0.1:{}", free_port());
    let done = dir.path().join("done");
    std::fs::write(&done, "").expect("write file");
    let cases = [
        Case {
            name: "sidecar-stopped",
            flags: vec![
                "--until-file".into(),
                done.display().to_string(),
                "--".into(),
                "sleep".into(),
                "100".into(),
            ],
            drive: Drive::Alone,
            code: 0,
            status: "exited",
        },
        Case {
            name: "exit-0",
            flags: strings(&["--", "true"]),
            drive: Drive::Alone,
            code: 0,
            status: "exited",
        },
        Case {
            name: "exit-3",
            flags: strings(&["--", "sh", "-c", "exit 3"]),
            drive: Drive::Alone,
            code: 3,
            status: "exited",
        },
        Case {
            name: "forwarded-term",
            flags: strings(&["--sh", "echo started; exec sleep 100"]),
            drive: Drive::Signal {
                line: "started",
                signal: libc::SIGTERM,
            },
            code: 143,
            status: "signaled",
        },
        Case {
            name: "grace-kill",
            flags: strings(&[
                "--grace-period",
                "300ms",
                "--sh",
                "trap '' TERM; echo started; while :; do sleep 0.1; done",
            ]),
            drive: Drive::Signal {
                line: "started",
                signal: libc::SIGTERM,
            },
            code: 137,
            status: "signaled",
        },
        Case {
            name: "wait-failed",
            flags: strings(&["--wait-tcp", &closed, "--timeout", "300ms", "--", "true"]),
            drive: Drive::Alone,
            code: 124,
            status: "wait_failed",
        },
        Case {
            // scuttle #34: the app never started, the proxy must still be told.
            name: "cancelled-in-wait",
            flags: strings(&["--wait-tcp", &closed, "--", "true"]),
            drive: Drive::Signal {
                line: "podvisor: waiting for",
                signal: libc::SIGTERM,
            },
            code: 143,
            status: "cancelled",
        },
        Case {
            name: "not-executable",
            flags: vec!["--".into(), not_executable.display().to_string()],
            drive: Drive::Alone,
            code: 126,
            status: "spawn_failed",
        },
        Case {
            name: "not-found",
            flags: strings(&["--", "/nonexistent/podvisor-step"]),
            drive: Drive::Alone,
            code: 127,
            status: "spawn_failed",
        },
    ];
    for case in &cases {
        run_case(case, &dir);
    }
}

/// podvisor's own error after start-up (exit 125): the kernel refuses its signalfd.
#[test]
fn own_error_after_start_up_posts_too() {
    let dir = TempDir::new("shutdown-own-error");
    let (proxy, url) = staying_proxy();
    let marker = dir.path().join("m.json");
    let run = TestCommand::under(support::noflock())
        // podvisor's signal thread cannot start: its own error after start-up.
        .env("NOFLOCK_REFUSE", "clone3")
        .args(["--shutdown-post", &url, "--marker"])
        .arg(&marker)
        .args(["--", "true"])
        .run();
    let proxy = proxy.stop();
    run.assert_code(125).assert_stderr_has("signal");
    assert_eq!(
        requests(&proxy, "POST /quitquitquit").len(),
        1,
        "{}\n{}",
        run.explain(),
        proxy.lines.join("\n")
    );
    let m = read_marker(&marker);
    assert_eq!(m["exit_code"], 125, "{m}");
    assert_eq!(m["shutdown"][0]["status"], 200, "{m}");
}

/// The marker's first version is in place before the calls (the lock still held), and the
/// final one, written after them, holds their results.
#[test]
fn the_marker_comes_first_and_records_the_results() {
    let dir = TempDir::new("shutdown-order");
    let marker = dir.path().join("m.json");
    let port = free_port();
    let proxy = FakeProxy::start(&[
        "--shutdown",
        &format!("{port}/quitquitquit"),
        "--marker",
        &marker.display().to_string(),
    ]);
    let run = TestCommand::new()
        .args([
            "--shutdown-post",
            &format!("http://me:secret@127.0.0.1:{port}/quitquitquit"),
            "--marker",
        ])
        .arg(&marker)
        .args(["--", "sh", "-c", "exit 5"])
        .run();
    let proxy = proxy.finish(LONG);
    run.assert_code(5);
    let seen = |prefix: &str| -> String {
        proxy
            .lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line\n{}", proxy.explain()))
            .to_owned()
    };
    let first: Value = serde_json::from_str(&seen("marker-at-call: "))
        .unwrap_or_else(|e| panic!("marker at the call is not JSON ({e})\n{}", proxy.explain()));
    assert_eq!(first["exit_code"], 5, "{first}");
    assert_eq!(
        first["shutdown"],
        serde_json::json!([{"url": format!("http://me:***@127.0.0.1:{port}/quitquitquit"),
                            "status": null, "error": null, "after_ms": null}]),
        "{first}"
    );
    assert_eq!(seen("lock-at-call: "), "busy", "{}", proxy.explain());
    // me:secret, as Basic credentials.
    assert!(
        requests(&proxy, "POST /quitquitquit 200")
            .first()
            .is_some_and(|l| l.ends_with("content-length=0 auth=Basic bWU6c2VjcmV0")),
        "{}",
        proxy.explain()
    );
    let last = read_marker(&marker);
    assert_eq!(last["shutdown"][0]["status"], 200, "{last}");
    assert_eq!(
        last["shutdown"][0]["url"],
        format!("http://me:***@127.0.0.1:{port}/quitquitquit"),
        "{last}"
    );
    assert!(!run.stderr().contains("secret"), "{}", run.explain());
    assert!(
        !std::fs::read_to_string(&marker)
            .unwrap_or_default()
            .contains("secret"),
        "{last}"
    );
}

#[test]
fn the_calls_happen_when_the_marker_cannot_be_written() {
    let dir = TempDir::new("shutdown-no-marker");
    // A folder where the marker should go: it can never be renamed into place.
    let marker = dir.path().join("m.json");
    std::fs::create_dir(&marker).expect("mkdir");
    let (proxy, url) = staying_proxy();
    let run = TestCommand::new()
        .args(["--shutdown-post", &url, "--marker"])
        .arg(&marker)
        .args(["--", "sh", "-c", "exit 4"])
        .run();
    let proxy = proxy.stop();
    run.assert_code(4)
        .assert_stderr_has("cannot write the marker")
        .assert_stderr_has("shutdown call POST");
    assert_eq!(requests(&proxy, "POST /quitquitquit").len(), 1);
}

/// The bound on one run with a refused port and a blackhole (a listener that never accepts):
/// podvisor waits for neither past `--shutdown-timeout`, and a live proxy beside them is told
/// at once.
#[test]
fn unreachable_endpoints_delay_the_exit_by_the_bound_at_most() {
    let refused = free_port();
    let blackhole = support::wait::listen_any(support::wait::V4);
    let hole = blackhole.local_addr().expect("address").port();
    let (live, live_url) = staying_proxy();
    let dir = TempDir::new("shutdown-bound");
    let marker = dir.path().join("m.json");
    let run = TestCommand::new()
        .args(["--shutdown-timeout", "1s", "--marker"])
        .arg(&marker)
        .args([
            "--shutdown-post",
            &format!("http://127.0.0.1:{refused}/quitquitquit"),
            "--shutdown-post",
            &format!("http://127.0.0.1:{hole}/quitquitquit"),
            "--shutdown-post",
            &live_url,
            "--",
            "sh",
            "-c",
            "exit 2",
        ])
        .run();
    let live = live.stop();
    drop(blackhole);
    run.assert_code(2);
    // 1 s of bound, plus start-up and the step (~1.1 s in all, measured): a generous ceiling
    // for a busy machine.
    assert!(
        run.elapsed >= Duration::from_millis(900) && run.elapsed < Duration::from_secs(6),
        "{}",
        run.explain()
    );
    let m = read_marker(&marker);
    let calls = &m["shutdown"];
    let error = |i: usize| calls[i]["error"].as_str().unwrap_or("").to_owned();
    assert!(error(0).contains("connection refused"), "{m}");
    // Retried: more than one attempt in the second.
    let attempts: u32 = error(0)
        .split('(')
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(attempts > 1, "{m}");
    assert!(error(1).contains("no answer"), "{m}");
    assert_eq!(calls[2]["status"], 200, "{m}");
    assert!(
        calls[2]["after_ms"].as_u64().unwrap_or(u64::MAX) < 900,
        "{m}"
    );
    assert_eq!(requests(&live, "POST /quitquitquit").len(), 1);
    for needle in ["connection refused", "no answer"] {
        run.assert_stderr_has(needle);
    }
}

/// A refused connect is tried again: a proxy that comes up within the bound is told.
#[test]
fn a_refused_connect_is_retried_until_the_proxy_listens() {
    // Built before podvisor starts calling: a build under load can outlast any bound.
    support::proxy::fakeproxy();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/quitquitquit");
    let pv = Supervised::start(
        podvisor(&[
            "--log-level",
            "debug",
            "--shutdown-timeout",
            "30s",
            "--shutdown-post",
            &url,
            "--",
            "true",
        ]),
        true,
    );
    pv.expect_stderr("trying again");
    let proxy = FakeProxy::start(&["--shutdown", &format!("{port}/quitquitquit")]);
    let run: Finished = pv.finish(LONG);
    let proxy = proxy.stop();
    run.assert_code(0)
        .assert_stderr_has(&format!("shutdown call POST {url}: HTTP 200"));
    assert_eq!(
        requests(&proxy, "POST /quitquitquit").len(),
        1,
        "{}\n{}",
        run.explain(),
        proxy.explain()
    );
}

/// `--proxy NAME:READY:SHUTDOWN` and `NAME:PORT` on loopback ports of our own: the wait goes to
/// the ready port (503 first, then 200), the call to the shutdown port, and each fake proxy
/// exits on its call.
#[test]
fn presets_with_changed_ports() {
    let (ready, quit, admin) = (free_port(), free_port(), free_port());
    let dir = TempDir::new("shutdown-ports");
    let ready_file = dir.path().join("ready").display().to_string();
    let mut istio = FakeProxy::start(&[
        "--ready",
        &format!("{ready}/healthz/ready"),
        "--shutdown",
        &format!("{quit}/quitquitquit"),
        "--ready-file",
        &ready_file,
    ]);
    let mut envoy = FakeProxy::start(&[
        "--ready",
        &format!("{admin}/ready"),
        "--shutdown",
        &format!("{admin}/quitquitquit"),
        "--ready-file",
        &ready_file,
    ]);
    let mut cmd = podvisor(&["--", "sh", "-c", "exit 7"]);
    cmd.env(
        "PODVISOR_PROXY",
        format!("istio:{ready}:{quit}, envoy:{admin}"),
    );
    let pv = Supervised::start(cmd, true);
    // Both have said "not ready" at least once; then both turn ready.
    istio
        .0
        .expect_that("a 503", |l| l.starts_with("GET /healthz/ready 503"));
    envoy
        .0
        .expect_that("a 503", |l| l.starts_with("GET /ready 503"));
    std::fs::write(&ready_file, "").expect("write the ready file");
    let run = pv.finish(LONG);
    let (istio, envoy) = (istio.finish(LONG), envoy.finish(LONG));
    run.assert_code(7);
    for (proxy, get, post) in [
        (&istio, "GET /healthz/ready", "POST /quitquitquit"),
        (&envoy, "GET /ready", "POST /quitquitquit"),
    ] {
        let story = format!("{}\n{}", run.explain(), proxy.explain());
        let gets = requests(proxy, get);
        assert!(gets.first().is_some_and(|g| g.contains(" 503 ")), "{story}");
        assert!(gets.last().is_some_and(|g| g.contains(" 200 ")), "{story}");
        assert_eq!(requests(proxy, post).len(), 1, "{story}");
        assert_eq!(proxy.code(), Some(0), "exits on its call\n{story}");
    }
    run.assert_stderr_has(&format!("http://localhost:{ready}/healthz/ready is ready"))
        .assert_stderr_has(&format!(
            "shutdown call POST http://localhost:{quit}/quitquitquit: HTTP 200"
        ))
        .assert_stderr_has(&format!(
            "shutdown call POST http://localhost:{admin}/quitquitquit: HTTP 200"
        ));
}

/// Every preset on its real ports, in a network namespace of its own (the ports are free
/// there whatever runs on this machine), all from one `PODVISOR_PROXY` list.
#[test]
fn every_preset_on_its_real_ports() {
    let pod = support::pod::Pod::new("presets");
    let ready_file = pod.ws("proxies-ready");
    let presets = [
        ("istio", "15021/healthz/ready", "15020/quitquitquit"),
        ("envoy", "15000/ready", "15000/quitquitquit"),
        ("linkerd", "4191/ready", "4191/shutdown"),
        ("cloudsql", "9090/readiness", "9091/quitquitquit"),
        ("dapr", "3500/v1.0/healthz/outbound", "3500/v1.0/shutdown"),
    ];
    let mut proxies: Vec<FakeProxy> = presets
        .iter()
        .map(|(_, ready, quit)| {
            FakeProxy::start_in(
                &pod.ns,
                &[
                    "--ready",
                    ready,
                    "--shutdown",
                    quit,
                    "--ready-file",
                    &ready_file,
                ],
            )
        })
        .collect();
    let mut step = pod.start(
        "step",
        &[
            "--proxy", "istio", "--proxy", "envoy", "--proxy", "linkerd", "--proxy", "cloudsql",
            "--proxy", "dapr", "--", "true",
        ],
    );
    // Every proxy has said "not ready" to podvisor at least once; then they all turn ready.
    for ((_, ready, _), proxy) in presets.iter().zip(proxies.iter_mut()) {
        let get = format!("GET {} 503", &ready[ready.find('/').unwrap_or(0)..]);
        proxy.0.expect_that(&get, |l| l.starts_with(&get));
    }
    std::fs::write(&ready_file, "").expect("write the ready file");
    step.assert_exit(0, LONG, &[]);
    for ((name, ready, quit), proxy) in presets.iter().zip(proxies) {
        let proxy = proxy.finish(LONG);
        let story = format!("{name}\n{}\n{}", step.explain(), proxy.explain());
        let ready_path = &ready[ready.find('/').unwrap_or(0)..];
        let quit_path = &quit[quit.find('/').unwrap_or(0)..];
        let gets = requests(&proxy, &format!("GET {ready_path} "));
        assert!(gets.first().is_some_and(|g| g.contains(" 503 ")), "{story}");
        assert!(gets.last().is_some_and(|g| g.contains(" 200 ")), "{story}");
        assert_eq!(
            requests(&proxy, &format!("POST {quit_path} 200")).len(),
            1,
            "{story}"
        );
        assert_eq!(proxy.code(), Some(0), "{story}");
    }
}

/// A configuration error ends podvisor before anything started: no call (README).
#[test]
fn a_configuration_error_makes_no_call() {
    let (proxy, url) = staying_proxy();
    let run = TestCommand::new()
        .args(["--shutdown-post", &url, "--timeout", "soon", "--", "true"])
        .run();
    let proxy = proxy.stop();
    run.assert_code(125);
    assert!(
        requests(&proxy, "POST").is_empty(),
        "{}\n{}",
        run.explain(),
        proxy.explain()
    );
}

#[test]
fn an_empty_proxy_list_means_none() {
    let run = TestCommand::new()
        .env("PODVISOR_PROXY", "")
        .args(["--", "true"])
        .run();
    run.assert_code(0);
    assert!(!run.stderr().contains("waiting for"), "{}", run.explain());
    assert!(!run.stderr().contains("shutdown call"), "{}", run.explain());
    let run = TestCommand::new().args(["--proxy", "", "--", "true"]).run();
    run.assert_code(0);
}

#[test]
fn bad_values_are_one_line_and_125() {
    for (args, env, needles) in [
        (
            vec!["--proxy", "istoi"],
            None,
            vec!["--proxy", "istoi", "istio"],
        ),
        (vec!["--proxy", "istio:0"], None, vec!["--proxy", "istio:0"]),
        (
            vec!["--shutdown-post", "ftp://localhost:15020/quitquitquit"],
            None,
            vec!["--shutdown-post", "ftp://", "http://"],
        ),
        (
            vec!["--shutdown-post", "http://localhost:15020/q#status=200"],
            None,
            vec!["--shutdown-post", "status=", "are for waits"],
        ),
        (
            vec!["--shutdown-post", "localhost:15020"],
            None,
            vec!["--shutdown-post", "localhost:15020"],
        ),
        (
            vec!["--shutdown-timeout", "0"],
            None,
            vec!["--shutdown-timeout", "'0'"],
        ),
        (
            vec![],
            Some(("PODVISOR_SHUTDOWN_POST", "http://a/, ftp://b/")),
            vec!["PODVISOR_SHUTDOWN_POST", "ftp://b/"],
        ),
        (
            vec![],
            Some(("PODVISOR_PROXY", "istio, nope")),
            vec!["PODVISOR_PROXY", "nope"],
        ),
    ] {
        let mut cmd = TestCommand::new().args(&args);
        if let Some((k, v)) = env {
            cmd = cmd.env(k, v);
        }
        let run = cmd.args(["--", "true"]).run();
        run.assert_code(125);
        let lines: Vec<&str> = run
            .output
            .stderr
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| std::str::from_utf8(l).unwrap_or(""))
            .collect();
        assert_eq!(lines.len(), 1, "{}", run.explain());
        for needle in needles {
            run.assert_stderr_has(needle);
        }
    }
}

#[test]
fn the_env_list_and_the_timeout_variable() {
    let (a, url_a) = staying_proxy();
    let (b, url_b) = staying_proxy();
    let run = TestCommand::new()
        // A comma in a URL's query stays in it: the list splits only before `SCHEME://`.
        .env(
            "PODVISOR_SHUTDOWN_POST",
            format!(" {url_a}?a=1,2 , {url_b} "),
        )
        .env("PODVISOR_SHUTDOWN_TIMEOUT", "2s")
        .args(["--", "true"])
        .run();
    let (a, b) = (a.stop(), b.stop());
    run.assert_code(0);
    assert_eq!(
        requests(&a, "POST /quitquitquit?a=1,2 200").len(),
        1,
        "{}\n{}",
        run.explain(),
        a.explain()
    );
    assert_eq!(
        requests(&b, "POST /quitquitquit").len(),
        1,
        "{}",
        run.explain()
    );
}

/// The proxy container of a pod: PID 1 podvisor running a fake Istio (pilot-agent's ports)
/// that is ready once `ready_file` exists and exits only on its shutdown call.
fn istio_proxy(pod: &support::pod::Pod, ready_file: &str) -> support::pod::Container {
    let fake = support::proxy::fakeproxy().display().to_string();
    pod.start(
        "istio-proxy",
        &[
            "--",
            &fake,
            "--ready",
            "15021/healthz/ready",
            "--shutdown",
            "15020/quitquitquit",
            "--ready-file",
            ready_file,
        ],
    )
}

/// A pod (network namespace, a PID namespace per container): an Istio-like proxy container that
/// exits only on its shutdown call, and the step with `--proxy istio`. The step waits for the
/// proxy, runs, and tells it: both containers end, so the pod completes.
#[test]
fn pod_with_a_mesh_proxy_completes() {
    let pod = support::pod::Pod::new("mesh");
    let ready_file = pod.ws("proxy-ready");
    let mut proxy = istio_proxy(&pod, &ready_file);
    let marker = pod.ws("podvisor/step.json");
    let mut step = pod.start(
        "step",
        &[
            "--proxy", "istio", "--marker", &marker, "--", "sh", "-c", "exit 3",
        ],
    );
    proxy.wait_for_line("GET /healthz/ready 503", LONG);
    std::fs::write(&ready_file, "").expect("write the ready file");
    step.assert_exit(3, LONG, &[&proxy]);
    proxy.assert_exit(0, LONG, &[&step]);
    let out = proxy.stdout();
    assert!(
        out.contains("GET /healthz/ready 503"),
        "{}",
        proxy.explain()
    );
    assert_eq!(
        out.matches("POST /quitquitquit 200").count(),
        1,
        "{}",
        proxy.explain()
    );
    let m = read_marker(std::path::Path::new(&marker));
    assert_eq!(m["shutdown"][0]["status"], 200, "{m}");
    pod.assert_nothing_left(&[&proxy, &step]);
}

/// The same pod when the proxy never gets ready and the kubelet stops the step during its wait
/// (scuttle #34): the step exits 143 without running, and the proxy is still told to quit.
#[test]
fn pod_completes_when_the_step_is_stopped_during_the_wait() {
    let pod = support::pod::Pod::new("mesh-cancel");
    // Never ready: the file is never written.
    let mut proxy = istio_proxy(&pod, &pod.ws("never"));
    let mut step = pod.start("step", &["--proxy", "istio", "--", "echo", "ran"]);
    step.wait_for_line("waiting for", LONG);
    proxy.wait_for_line("GET /healthz/ready 503", LONG);
    step.signal(libc::SIGTERM);
    step.assert_exit(143, LONG, &[&proxy]);
    proxy.assert_exit(0, LONG, &[&step]);
    assert!(!step.stdout().contains("ran"), "{}", step.explain());
    assert_eq!(
        proxy.stdout().matches("POST /quitquitquit 200").count(),
        1,
        "{}",
        proxy.explain()
    );
    pod.assert_nothing_left(&[&proxy, &step]);
}

/// `https://` shutdown calls use the waits' TLS (rustls): a TLS terminator (socat, a
/// self-signed certificate for localhost) in front of a fake proxy. Trusted through `ca=`,
/// refused without it (the call's error says why), accepted with `insecure`.
#[test]
fn https_calls_verify_the_certificate_as_the_waits_do() {
    let dir = TempDir::new("shutdown-tls");
    let openssl = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-keyout", "self.key", "-out", "self.pem"])
        .current_dir(dir.path())
        .output()
        .expect("run openssl (.ci/install installs it)");
    assert!(openssl.status.success(), "{openssl:?}");
    let (proxy, plain) = staying_proxy();
    let port = plain
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let tls_port = free_port();
    let pem = dir.path().join("self.pem").display().to_string();
    let key = dir.path().join("self.key").display().to_string();
    let mut socat = std::process::Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,cert={pem},key={key},verify=0"
        ))
        .arg(format!("TCP:127.0.0.1:{port}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run socat (.ci/install installs it)");
    support::poll_until(LONG, "socat to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", tls_port)).ok()
    });
    let url = format!("https://localhost:{tls_port}/quitquitquit");
    let marker = dir.path().join("m.json");
    let run = TestCommand::new()
        .args(["--shutdown-post", &format!("{url}#ca={pem}")])
        .args(["--shutdown-post", &url])
        .args(["--shutdown-post", &format!("{url}#insecure")])
        .arg("--marker")
        .arg(&marker)
        .args(["--", "true"])
        .run();
    let proxy = proxy.stop();
    let _ = socat.kill();
    let _ = socat.wait();
    run.assert_code(0);
    let m = read_marker(&marker);
    let story = format!("{m}\n{}\n{}", run.explain(), proxy.explain());
    let calls = &m["shutdown"];
    assert_eq!(calls[0]["url"], format!("{url}#ca={pem}"), "{story}");
    assert_eq!(calls[0]["status"], 200, "{story}");
    assert!(
        calls[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("certificate not trusted")),
        "{story}"
    );
    assert_eq!(calls[2]["status"], 200, "{story}");
    assert_eq!(
        requests(&proxy, "POST /quitquitquit 200").len(),
        2,
        "{story}"
    );
}
