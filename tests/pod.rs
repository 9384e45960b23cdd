//! Pod simulations: the scenarios of a CI job pod, each container a PID namespace running
//! podvisor as PID 1 in a shared network namespace with a shared workspace folder.

mod support;

use std::path::Path;
use std::time::Duration;

use nix::libc;
use support::pod::{explain, read_marker, Pod, PORT};

/// Bound for anything that should take a few seconds at most on a slow, busy machine.
const LONG: Duration = Duration::from_secs(30);
/// Bound for "the sidecar notices at once".
const PROMPT: Duration = Duration::from_secs(3);

fn url() -> String {
    format!("http://127.0.0.1:{PORT}/")
}

fn tcp() -> String {
    format!("127.0.0.1:{PORT}")
}

/// `podvisor --until-marker M... -- nginx ...` as a sidecar's arguments.
fn nginx_until(pod: &Pod, markers: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for m in markers {
        args.push("--until-marker".to_owned());
        args.push((*m).to_owned());
    }
    args.push("--".into());
    args.extend(pod.nginx());
    args
}

/// The command container: wait for nginx, fetch its page, leave a marker.
fn fetch(marker: &str) -> Vec<String> {
    vec![
        "--wait-tcp".to_owned(),
        tcp(),
        "--marker".into(),
        marker.into(),
        "--".into(),
        "curl".into(),
        "-sf".into(),
        url(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Asserts how long after `earlier` ended `later` ended.
fn ended_within(
    later: &support::pod::Container,
    earlier: &support::pod::Container,
    bound: Duration,
) {
    let (Some(a), Some(b)) = (earlier.ended, later.ended) else {
        panic!("both must have ended\n{}", explain(&[earlier, later]));
    };
    assert!(
        b >= a && b - a < bound,
        "{} ended {:?} after {} (bound {bound:?})\n{}",
        later.name,
        b.checked_duration_since(a),
        earlier.name,
        explain(&[earlier, later])
    );
}

#[test]
fn nginx_sidecar_started_after_the_command() {
    let pod = Pod::new("nginx");
    let marker = pod.ws("cmd.json");
    let mut cmd = pod.start("command", &strs(&fetch(&marker)));
    std::thread::sleep(Duration::from_secs(1)); // the scenario: the sidecar comes a second late
    let mut side = pod.start("nginx", &strs(&nginx_until(&pod, &[&marker])));
    cmd.assert_exit(0, LONG, &[&side]);
    assert!(
        cmd.stdout().contains("hello from the sidecar"),
        "{}",
        cmd.explain()
    );
    side.assert_exit(0, LONG, &[&cmd]);
    ended_within(&side, &cmd, PROMPT);
    let m = read_marker(Path::new(&marker));
    assert_eq!(m["status"], "exited", "{m}");
    assert_eq!(m["exit_code"], 0, "{m}");
    assert_eq!(m["waits"][0]["target"], format!("tcp://{}", tcp()), "{m}");
    assert_eq!(m["waits"][0]["ready"], true, "{m}");
    assert!(m["waits"][0]["attempts"].as_u64() > Some(1), "{m}");
    pod.assert_nothing_left(&[&cmd, &side]);
}

#[test]
fn file_hand_off() {
    let pod = Pod::new("parcel");
    let marker = pod.ws("cmd.json");
    let parcel = pod.ws("pass-the-parcel");
    let script = format!(
        "sleep 1 && echo parcel > {parcel}.tmp && mv {parcel}.tmp {parcel} && exec sleep 600"
    );
    let mut side = pod.start("sidecar", &["--until-marker", &marker, "--sh", &script]);
    let mut cmd = pod.start(
        "command",
        &[
            "--wait-file",
            &parcel,
            "--marker",
            &marker,
            "--sh",
            &format!("cat {parcel} && rm {parcel}"),
        ],
    );
    let took = cmd.assert_exit(0, LONG, &[&side]);
    assert!(
        took >= Duration::from_millis(900),
        "the parcel comes after 1 s: {took:?}"
    );
    assert!(cmd.stdout().contains("parcel"), "{}", cmd.explain());
    assert!(
        !Path::new(&parcel).exists(),
        "the command removes the parcel"
    );
    side.assert_exit(0, LONG, &[&cmd]);
    ended_within(&side, &cmd, PROMPT);
    pod.assert_nothing_left(&[&cmd, &side]);
}

#[test]
fn sidecar_never_ready() {
    let pod = Pod::new("never");
    let marker = pod.ws("cmd.json");
    let mut side = pod.start(
        "sidecar",
        &["--until-marker", &marker, "--", "sleep", "600"],
    );
    let mut args = vec!["--timeout".to_owned(), "1s".into()];
    args.extend(fetch(&marker));
    let mut cmd = pod.start("command", &strs(&args));
    let took = cmd.assert_exit(124, LONG, &[&side]);
    assert!(
        took >= Duration::from_millis(900),
        "{took:?}\n{}",
        cmd.explain()
    );
    let m = read_marker(Path::new(&marker));
    assert_eq!(m["status"], "wait_failed", "{m}");
    assert_eq!(m["exit_code"], 124, "{m}");
    assert_eq!(m["waits"][0]["ready"], false, "{m}");
    side.assert_exit(0, LONG, &[&cmd]);
    ended_within(&side, &cmd, PROMPT);
    pod.assert_nothing_left(&[&cmd, &side]);
}

#[test]
fn command_podvisor_sigkilled_mid_step() {
    let pod = Pod::new("sigkill");
    let marker = pod.ws("cmd.json");
    let mut side = pod.start("nginx", &strs(&nginx_until(&pod, &[&marker])));
    let mut cmd = pod.start(
        "command",
        &[
            "--wait-tcp",
            &tcp(),
            "--marker",
            &marker,
            "--sh",
            "echo step-running; exec sleep 600",
        ],
    );
    cmd.wait_for_line("step-running", LONG);
    side.wait_for_line("until: waiting", LONG);
    cmd.signal(libc::SIGKILL);
    // unshare reports its child's SIGKILL its own way; all that matters is that it failed.
    let code = cmd.wait(LONG, &[&side]);
    assert_ne!(code, 0, "{}", cmd.explain());
    side.assert_exit(0, LONG, &[&cmd]);
    ended_within(&side, &cmd, Duration::from_millis(1500));
    assert!(
        !Path::new(&marker).exists(),
        "a SIGKILLed podvisor writes no marker"
    );
    assert!(
        side.stderr().contains("without a marker") && side.stderr().contains(&marker),
        "the sidecar warns, naming the marker\n{}",
        side.explain()
    );
    pod.assert_nothing_left(&[&cmd, &side]);
}

#[test]
fn two_command_containers_one_after_another() {
    let pod = Pod::new("two");
    let (m1, m2) = (pod.ws("step-1.json"), pod.ws("step-2.json"));
    let mut side = pod.start("nginx", &strs(&nginx_until(&pod, &[&m1, &m2])));
    let mut first = pod.start("command-1", &strs(&fetch(&m1)));
    first.assert_exit(0, LONG, &[&side]);
    // The second container runs only after the first (as agent-stack-k8s runs them); its
    // fetch succeeding proves the sidecar outlived the first marker.
    let mut second = pod.start("command-2", &strs(&fetch(&m2)));
    second.assert_exit(0, LONG, &[&side, &first]);
    assert!(
        second.stdout().contains("hello from the sidecar"),
        "{}",
        second.explain()
    );
    side.assert_exit(0, LONG, &[&first, &second]);
    ended_within(&side, &second, PROMPT);
    for m in [&m1, &m2] {
        assert_eq!(read_marker(Path::new(m))["status"], "exited");
    }
    pod.assert_nothing_left(&[&first, &second, &side]);
}

#[test]
fn native_sidecar_stopped_by_sigterm_quits_nginx_gracefully() {
    let pod = Pod::new("native");
    let mut args = vec!["--sidecar", "--stop-signal", "QUIT", "--"];
    let nginx = pod.nginx();
    args.extend(strs(&nginx));
    let mut side = pod.start("nginx", &args);
    let marker = pod.ws("cmd.json");
    let mut cmd = pod.start("command", &strs(&fetch(&marker)));
    cmd.assert_exit(0, LONG, &[&side]);
    assert!(
        side.running(),
        "a native sidecar waits for the kubelet\n{}",
        side.explain()
    );
    // The kubelet, once the main containers are done: SIGTERM to the sidecar's PID 1.
    side.signal(libc::SIGTERM);
    side.assert_exit(0, LONG, &[&cmd]);
    let log = pod.nginx_log();
    assert!(
        log.contains("signal 3 (SIGQUIT)") && log.contains("gracefully shutting down"),
        "nginx was stopped with QUIT, gracefully:\n{log}\n{}",
        side.explain()
    );
    assert!(!log.contains("signal 15 (SIGTERM)"), "{log}");
    pod.assert_nothing_left(&[&cmd, &side]);
}

#[test]
fn marker_already_present_stops_the_sidecar_at_once() {
    let pod = Pod::new("present");
    let marker = pod.ws("cmd.json");
    let mut cmd = pod.start("command", &["--marker", &marker, "--", "true"]);
    cmd.assert_exit(0, LONG, &[]);
    assert!(Path::new(&marker).exists());
    let mut side = pod.start("nginx", &strs(&nginx_until(&pod, &[&marker])));
    let took = side.assert_exit(0, LONG, &[&cmd]);
    assert!(took < PROMPT, "stopped after {took:?}\n{}", side.explain());
    pod.assert_nothing_left(&[&cmd, &side]);
}
