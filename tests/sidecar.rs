//! The sidecar role: a stop from outside (the first TERM, INT, QUIT or HUP: whatever the runtime
//! sends) or from an until-condition becomes `--stop-signal` (unset: the signal that arrived, or
//! TERM for an until-condition), then SIGKILL after the grace period, and counts as success.

mod support;

use std::time::{Duration, Instant};

use nix::libc;
use podvisor::run::signals::name;
use support::pod::{Container, Pod};

const LONG: Duration = Duration::from_secs(30);

/// A child that reports QUIT and TERM on stdout and exits with 3 and 4 for them.
const REPORTER: &str = "trap 'echo got-QUIT; exit 3' QUIT; trap 'echo got-TERM; exit 4' TERM; \
                        echo ready; while :; do sleep 0.05; done";

/// The reporter got QUIT (not TERM), and its exit after the stop counted as success.
fn stopped_with_quit(pod: &Pod, side: &mut Container) {
    side.assert_exit(0, LONG, &[]);
    let out = side.stdout();
    assert!(
        out.contains("got-QUIT") && !out.contains("got-TERM"),
        "{}",
        side.explain()
    );
    pod.assert_nothing_left(&[side]);
}

/// A sidecar with `--stop-signal stop` running `script`, once the script has printed `ready`.
fn start_sidecar(pod: &Pod, stop: &str, script: &str) -> Container {
    let side = pod.start(
        "sidecar",
        &["--sidecar", "--stop-signal", stop, "--sh", script],
    );
    side.wait_for_line("ready", LONG);
    side
}

#[test]
fn sigterm_becomes_the_stop_signal_and_exit_0() {
    let pod = Pod::new("sc-stop");
    let mut side = start_sidecar(&pod, "QUIT", REPORTER);
    side.signal(libc::SIGTERM);
    stopped_with_quit(&pod, &mut side);
}

#[test]
fn without_sidecar_sigterm_is_forwarded_and_the_status_kept() {
    let pod = Pod::new("sc-plain");
    let mut plain = pod.start("plain", &["--sh", REPORTER]);
    plain.wait_for_line("ready", LONG);
    plain.signal(libc::SIGTERM);
    plain.assert_exit(4, LONG, &[]);
    assert!(plain.stdout().contains("got-TERM"), "{}", plain.explain());
    pod.assert_nothing_left(&[&plain]);
}

#[test]
fn a_child_ignoring_the_stop_is_killed_after_the_grace_period_and_that_is_success() {
    let pod = Pod::new("sc-grace");
    let mut side = pod.start(
        "sidecar",
        &[
            "--sidecar",
            "--grace-period",
            "500ms",
            "--sh",
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ],
    );
    side.wait_for_line("ready", LONG);
    let t = Instant::now();
    side.signal(libc::SIGTERM);
    side.assert_exit(0, LONG, &[]);
    let took = side.ended.map_or(Duration::ZERO, |e| e - t);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "SIGKILL after the 500ms grace period, ended after {took:?}\n{}",
        side.explain()
    );
    assert!(side.stderr().contains("SIGKILL"), "{}", side.explain());
    pod.assert_nothing_left(&[&side]);
}

#[test]
fn a_child_dying_on_its_own_returns_its_real_status() {
    let pod = Pod::new("sc-own");
    let mut exits = pod.start("exits", &["--sidecar", "--", "sh", "-c", "exit 3"]);
    exits.assert_exit(3, LONG, &[]);
    let mut killed = pod.start("killed", &["--sidecar", "--sh", "kill -KILL $$"]);
    killed.assert_exit(137, LONG, &[]);
    pod.assert_nothing_left(&[&exits, &killed]);
}

#[test]
fn an_until_condition_stops_with_the_stop_signal() {
    let pod = Pod::new("sc-until");
    let done = pod.ws("done");
    let mut side = pod.start(
        "sidecar",
        &[
            "--until-file",
            &done,
            "--stop-signal",
            "QUIT",
            "--sh",
            REPORTER,
        ],
    );
    side.wait_for_line("ready", LONG);
    std::fs::write(&done, "").unwrap();
    stopped_with_quit(&pod, &mut side);
}

#[test]
fn sigterm_during_the_wait_phase_of_a_sidecar_is_a_clean_stop() {
    let pod = Pod::new("sc-wait");
    let never = pod.ws("never");
    let args = [
        "--wait-file",
        &never,
        "--timeout",
        "0",
        "--",
        "echo",
        "SHOULD-NOT-RUN",
    ];
    let mut side = pod.start("sidecar", &[&["--sidecar"], &args[..]].concat());
    let mut plain = pod.start("plain", &args);
    side.wait_for_line("waiting for", LONG);
    plain.wait_for_line("waiting for", LONG);
    side.signal(libc::SIGTERM);
    plain.signal(libc::SIGTERM);
    side.assert_exit(0, LONG, &[]);
    plain.assert_exit(143, LONG, &[]);
    assert!(
        !side.stdout().contains("SHOULD-NOT-RUN"),
        "{}",
        side.explain()
    );
    pod.assert_nothing_left(&[&side, &plain]);
}

/// A child that reports TERM, INT, QUIT and HUP on stdout and exits with 4, 5, 3, 6 for them;
/// USR1 only reported.
const ALL_STOPS: &str = "trap 'echo got-TERM; exit 4' TERM; trap 'echo got-INT; exit 5' INT; \
                         trap 'echo got-QUIT; exit 3' QUIT; trap 'echo got-HUP; exit 6' HUP; \
                         echo ready; while :; do sleep 0.05; done";

#[test]
fn the_runtimes_stop_signal_is_the_stop_request_and_passed_on_as_it_came() {
    // containerd, CRI-O and podman stop a container with its image's STOPSIGNAL: QUIT for
    // nginx, INT for postgres. Without --stop-signal the child gets what arrived; exit 0.
    let pod = Pod::new("sc-any");
    for (sig, line) in [
        (libc::SIGQUIT, "got-QUIT"),
        (libc::SIGINT, "got-INT"),
        (libc::SIGHUP, "got-HUP"),
        (libc::SIGTERM, "got-TERM"),
    ] {
        let mut side = pod.start("sidecar", &["--sidecar", "--sh", ALL_STOPS]);
        side.wait_for_line("ready", LONG);
        side.signal(sig);
        side.assert_exit(0, LONG, &[]);
        assert!(side.stdout().contains(line), "{line}\n{}", side.explain());
        let said = format!("{} received, stopping the child with {0}", name(sig));
        assert!(side.stderr().contains(&said), "{said}\n{}", side.explain());
    }
    // A child that dies of the signal itself (default action): still success.
    let mut side = pod.start("sidecar", &["--sidecar", "--", "sleep", "100"]);
    side.wait_for_line("child started", LONG);
    side.signal(libc::SIGQUIT);
    side.assert_exit(0, LONG, &[]);
}

#[test]
fn an_explicit_stop_signal_replaces_whatever_arrived() {
    let pod = Pod::new("sc-explicit");
    for (stop_signal, arrives, want, not) in [
        ("TERM", libc::SIGQUIT, "got-TERM", "got-QUIT"),
        ("INT", libc::SIGHUP, "got-INT", "got-HUP"),
    ] {
        let mut side = start_sidecar(&pod, stop_signal, ALL_STOPS);
        side.signal(arrives);
        side.assert_exit(0, LONG, &[]);
        let out = side.stdout();
        assert!(
            out.contains(want) && !out.contains(not),
            "{}",
            side.explain()
        );
    }
}

#[test]
fn signals_after_the_stop_request_are_forwarded_as_they_come() {
    // The first TERM is the stop (--stop-signal USR1, which the child only reports); the next
    // INT is an ordinary forwarded signal, and the death from it after the stop is success.
    let script = "trap 'echo got-USR1' USR1; trap 'echo got-INT; exit 5' INT; \
                  echo ready; while :; do sleep 0.05; done";
    let pod = Pod::new("sc-after");
    let mut side = start_sidecar(&pod, "USR1", script);
    side.signal(libc::SIGTERM);
    side.wait_for_line("got-USR1", LONG);
    side.signal(libc::SIGINT);
    side.assert_exit(0, LONG, &[]);
    assert!(
        side.stderr().contains("forwarding SIGINT to the child"),
        "{}",
        side.explain()
    );
}

#[test]
fn any_stop_request_during_the_wait_phase_or_without_a_command_exits_0() {
    let pod = Pod::new("sc-wait-any");
    let never = pod.ws("never");
    for sig in [libc::SIGQUIT, libc::SIGINT, libc::SIGHUP] {
        let mut waiting = pod.start(
            "waiting",
            &[
                "--sidecar",
                "--wait-file",
                &never,
                "--timeout",
                "0",
                "--",
                "echo",
                "NO",
            ],
        );
        let mut bare = pod.start("bare", &["--until-file", &never]);
        waiting.wait_for_line("waiting for", LONG);
        bare.wait_for_line("until: waiting for", LONG);
        waiting.signal(sig);
        bare.signal(sig);
        waiting.assert_exit(0, LONG, &[]);
        bare.assert_exit(0, LONG, &[]);
        assert!(!waiting.stdout().contains("NO"), "{}", waiting.explain());
    }
}

#[test]
fn without_stop_signal_an_until_condition_stops_with_sigterm() {
    let pod = Pod::new("sc-until-term");
    let done = pod.ws("done");
    let mut side = pod.start("sidecar", &["--until-file", &done, "--sh", ALL_STOPS]);
    side.wait_for_line("ready", LONG);
    std::fs::write(&done, "").unwrap();
    side.assert_exit(0, LONG, &[]);
    assert!(side.stdout().contains("got-TERM"), "{}", side.explain());
}
