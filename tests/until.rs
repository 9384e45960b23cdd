//! `--until-marker` and `--until-file`: when the sidecar's work is done. Each podvisor runs as
//! PID 1 of its own container in a simulated pod (tests/support/pod.rs).

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use nix::libc;
use support::pod::{explain, Container, Pod};

const LONG: Duration = Duration::from_secs(30);
/// "At once" / "promptly" on a slow, busy machine.
const PROMPT: Duration = Duration::from_secs(2);

/// Asserts that `c` ended within `bound` after `since`.
fn ended_within(c: &Container, since: Instant, bound: Duration, others: &[&Container]) {
    let ended = c.ended.unwrap_or_else(|| panic!("{} still runs", c.name));
    let took = ended.saturating_duration_since(since);
    assert!(
        took < bound,
        "{} ended {took:?} after the event (bound {bound:?})\n{}\n{}",
        c.name,
        c.explain(),
        explain(others)
    );
}

/// Asserts that `c` is still running a little after something that must not stop it.
fn still_running(c: &mut Container, others: &[&Container]) {
    // Absence of an event needs a window; 300 ms is far longer than a wake-up takes.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        c.running(),
        "{} stopped too early\n{}\n{}",
        c.name,
        c.explain(),
        explain(others)
    );
}

#[test]
fn a_marker_already_present_counts_at_once() {
    let pod = Pod::new("until-present");
    let m = pod.ws("cmd.json");
    fs::write(&m, "{}\n").unwrap();
    let mut side = pod.start("sidecar", &["--until-marker", &m, "--", "sleep", "600"]);
    let took = side.assert_exit(0, LONG, &[]);
    assert!(took < PROMPT, "{took:?}\n{}", side.explain());
    // With no COMMAND, the same check is a one-shot.
    let mut bare = pod.start("bare", &["--until-marker", &m]);
    let took = bare.assert_exit(0, LONG, &[]);
    assert!(took < PROMPT, "{took:?}\n{}", bare.explain());
    pod.assert_nothing_left(&[&side, &bare]);
}

#[test]
fn a_free_lock_without_marker_counts_at_once_with_a_warning() {
    let pod = Pod::new("until-free");
    let m = pod.ws("cmd.json");
    // What a SIGKILLed owner leaves: the lock file, nobody holding it, no marker.
    fs::write(format!("{m}.lock"), "").unwrap();
    let mut side = pod.start("sidecar", &["--until-marker", &m, "--", "sleep", "600"]);
    let took = side.assert_exit(0, LONG, &[]);
    assert!(took < PROMPT, "{took:?}\n{}", side.explain());
    let err = side.stderr();
    assert!(
        err.contains("warning") && err.contains("without a marker") && err.contains(&m),
        "{}",
        side.explain()
    );
    pod.assert_nothing_left(&[&side]);
}

/// An owner holding its lock (waiting for `go` before its step) and a sidecar waiting on it.
fn owner_and_waiting_sidecar(pod: &Pod) -> (String, String, Container, Container) {
    let m = pod.ws("cmd.json");
    let go = pod.ws("go");
    let owner = pod.start("owner", &["--marker", &m, "--wait-file", &go, "--", "true"]);
    owner.wait_for_line("waiting for", LONG);
    let mut side = pod.start("sidecar", &["--until-marker", &m, "--", "sleep", "600"]);
    side.wait_for_line("until: waiting", LONG);
    still_running(&mut side, &[&owner]);
    (m, go, owner, side)
}

#[test]
fn waits_for_a_running_owner_then_stops_on_its_marker() {
    let pod = Pod::new("until-owner");
    let (m, go, mut owner, mut side) = owner_and_waiting_sidecar(&pod);
    let t = Instant::now();
    fs::write(&go, "").unwrap();
    owner.assert_exit(0, LONG, &[&side]);
    assert_eq!(
        support::pod::read_marker(std::path::Path::new(&m))["status"],
        "exited"
    );
    side.assert_exit(0, LONG, &[&owner]);
    ended_within(&side, t, PROMPT, &[&owner]);
    let err = side.stderr();
    assert!(
        err.contains("finished (marker written)"),
        "{}",
        side.explain()
    );
    assert!(!err.contains("warning"), "{}", side.explain());
    pod.assert_nothing_left(&[&owner, &side]);
}

#[test]
fn a_marker_renamed_in_while_blocked_on_the_lock_counts() {
    let pod = Pod::new("until-race");
    // The sidecar finds the lock held: its flock thread blocks while the owner lives.
    let (m, go, mut owner, mut side) = owner_and_waiting_sidecar(&pod);
    let tmp = pod.ws(".cmd.json.by-hand");
    fs::write(&tmp, "{}\n").unwrap();
    let t = Instant::now();
    fs::rename(&tmp, &m).unwrap();
    side.assert_exit(0, LONG, &[&owner]);
    ended_within(&side, t, PROMPT, &[&owner]);
    assert!(
        owner.running(),
        "the owner still holds its lock\n{}",
        owner.explain()
    );
    fs::write(&go, "").unwrap();
    owner.assert_exit(0, LONG, &[&side]);
    pod.assert_nothing_left(&[&owner, &side]);
}

#[test]
fn a_sigkilled_owner_is_noticed_within_a_second() {
    let pod = Pod::new("until-kill");
    let m = pod.ws("cmd.json");
    let mut owner = pod.start("owner", &["--marker", &m, "--", "sleep", "600"]);
    owner.wait_for_line("child started", LONG);
    // The sidecar finds the lock held and blocks on it.
    let mut side = pod.start("sidecar", &["--until-marker", &m, "--", "sleep", "600"]);
    side.wait_for_line("until: waiting", LONG);
    still_running(&mut side, &[&owner]);
    let t = Instant::now();
    owner.signal(libc::SIGKILL);
    side.assert_exit(0, LONG, &[&owner]);
    ended_within(&side, t, Duration::from_millis(1500), &[&owner]);
    assert!(!std::path::Path::new(&m).exists());
    let err = side.stderr();
    assert!(
        err.contains("without a marker") && err.contains(&m),
        "{}",
        side.explain()
    );
    let _ = owner.wait(LONG, &[]);
    pod.assert_nothing_left(&[&owner, &side]);
}

#[test]
fn markers_in_a_folder_that_does_not_exist_yet() {
    let pod = Pod::new("until-deep");
    let m = pod.ws("markers/step/cmd.json");
    let mut side = pod.start("sidecar", &["--until-marker", &m, "--", "sleep", "600"]);
    side.wait_for_line("until: waiting", LONG);
    still_running(&mut side, &[]);
    let mut owner = pod.start("owner", &["--marker", &m, "--", "true"]);
    owner.assert_exit(0, LONG, &[&side]);
    let t = owner.ended.unwrap_or_else(Instant::now);
    side.assert_exit(0, LONG, &[&owner]);
    ended_within(&side, t, PROMPT, &[&owner]);
    pod.assert_nothing_left(&[&owner, &side]);
}

#[test]
fn until_file_waits_for_every_path() {
    let pod = Pod::new("until-file");
    let (a, b) = (pod.ws("a"), pod.ws("sub/b"));
    let mut side = pod.start(
        "sidecar",
        &["--until-file", &a, "--until-file", &b, "--", "sleep", "600"],
    );
    let mut bare = pod.start("bare", &["--until-file", &a, "--until-file", &b]);
    side.wait_for_line("until: waiting", LONG);
    bare.wait_for_line("until: waiting", LONG);
    fs::write(&a, "").unwrap();
    still_running(&mut side, &[]);
    assert!(bare.running(), "{}", bare.explain());
    let t = Instant::now();
    fs::create_dir_all(pod.ws("sub")).unwrap();
    fs::write(&b, "").unwrap();
    side.assert_exit(0, LONG, &[]);
    bare.assert_exit(0, LONG, &[]);
    ended_within(&side, t, PROMPT, &[]);
    ended_within(&bare, t, PROMPT, &[]);
    pod.assert_nothing_left(&[&side, &bare]);
}

#[test]
fn a_command_that_ends_first_returns_its_own_status() {
    let pod = Pod::new("until-first");
    let never = pod.ws("never");
    let mut side = pod.start(
        "sidecar",
        &["--until-file", &never, "--", "sh", "-c", "exit 5"],
    );
    side.assert_exit(5, LONG, &[]);
    pod.assert_nothing_left(&[&side]);
}

#[test]
fn sigterm_ends_a_bare_until_wait_with_0() {
    let pod = Pod::new("until-term");
    let never = pod.ws("never");
    let mut bare = pod.start("bare", &["--until-file", &never]);
    bare.wait_for_line("until: waiting", LONG);
    bare.signal(libc::SIGTERM);
    bare.assert_exit(0, LONG, &[]);
    pod.assert_nothing_left(&[&bare]);
}

/// A UID whose inotify instances the test uses up; nothing else on the machine runs as it.
const NO_INOTIFY_UID: &str = "65533";

/// `setpriv` to that UID.
fn as_hogged_uid() -> std::process::Command {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        "--reuid",
        NO_INOTIFY_UID,
        "--regid",
        NO_INOTIFY_UID,
        "--clear-groups",
    ]);
    cmd
}

#[test]
fn polls_where_inotify_is_unavailable() {
    let dir = support::TempDir::new("until-poll");
    let target = dir.path().join("done");
    // Hold every inotify instance this UID may have (fs.inotify.max_user_instances).
    let hog = "import ctypes, os, resource, sys\n\
               soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
               resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
               libc = ctypes.CDLL(None)\n\
               fds = [libc.inotify_init1(0) for _ in range(100000)]\n\
               assert fds[-1] < 0, 'no limit reached'\n\
               os.close(os.open('/dev/null', os.O_RDONLY))  # the UID's limit, not our fds\n\
               print('ready', flush=True)\n\
               sys.stdin.read()\n";
    let mut holder = as_hogged_uid()
        // Debian's python3: a user-local one (pyenv) may not be readable by this UID.
        .args(["/usr/bin/python3", "-c", hog])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the inotify hog");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("hog stdout")),
        &mut line,
    )
    .expect("read from the hog");
    assert_eq!(line.trim(), "ready", "the hog failed");
    let mut setpriv = as_hogged_uid();
    setpriv
        .arg(support::podvisor_bin())
        .arg("--until-file")
        .arg(&target)
        .args(["--interval", "200ms"])
        .stderr(std::process::Stdio::piped());
    let mut side = setpriv.spawn().expect("start podvisor as the hogged UID");
    // Let it reach its polling loop, then create the file.
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    fs::write(&target, "").unwrap();
    let status = loop {
        if let Some(s) = side.try_wait().expect("try_wait") {
            break s;
        }
        if t.elapsed() > LONG {
            let _ = side.kill();
            break side.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = t.elapsed();
    drop(holder.stdin.take());
    let _ = holder.wait();
    let mut err = String::new();
    if let Some(mut e) = side.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "{status:?}\n{err}");
    assert!(err.contains("checking every 200ms"), "it polls:\n{err}");
    assert!(took < PROMPT, "noticed after {took:?}\n{err}");
}

/// Where the kernel refuses flock (tests/support/bin/noflock: a seccomp filter answering ENOLCK,
/// what a file system without flock support says), the sidecar waits for the marker only.
#[test]
fn without_flock_the_sidecar_waits_for_the_marker_only() {
    let pod = Pod::new("until-noflock");
    let m = pod.ws("cmd.json");
    // A lock file nobody holds: with flock this means "owner died" (the test above); without
    // flock nothing can be told from it, so it must not end the wait.
    fs::write(format!("{m}.lock"), "").unwrap();
    let noflock = support::noflock();
    let mut side = pod.start_under(
        &[&noflock],
        "sidecar",
        &["--until-marker", &m, "--", "sleep", "600"],
    );
    side.wait_for_line("marker only", LONG);
    still_running(&mut side, &[]);
    let tmp = pod.ws("cmd.json.tmp");
    fs::write(&tmp, "{}\n").unwrap();
    let t = Instant::now();
    fs::rename(&tmp, &m).unwrap();
    side.assert_exit(0, LONG, &[]);
    ended_within(&side, t, PROMPT, &[]);
    let err = side.stderr();
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "one warning line\n{}", side.explain());
    assert!(
        warnings[0].contains("no flock") && warnings[0].contains(&format!("{m}.lock")),
        "the warning names the missing flock and the lock file\n{}",
        side.explain()
    );
    assert!(
        err.contains("finished (marker written)"),
        "{}",
        side.explain()
    );
    pod.assert_nothing_left(&[&side]);
}

#[test]
fn until_marker_creates_the_folders_so_a_step_of_another_uid_can_write_its_marker() {
    // The volume is root:root 0755 (podman's emptyDir); the sidecar runs as root, the step as
    // nobody: the sidecar makes the marker's folder 1777 before it waits.
    let pod = Pod::new("until-mkdir");
    let vol = pod.ws("vol");
    fs::create_dir(&vol).unwrap();
    fs::set_permissions(&vol, fs::Permissions::from_mode(0o755)).unwrap();
    let m = pod.ws("vol/podvisor/step.json");
    let mut side = pod.start("sidecar", &["--until-marker", &m, "--", "sleep", "600"]);
    side.wait_for_line("until: waiting", LONG);
    let folder = std::path::Path::new(&vol).join("podvisor");
    let mode = fs::metadata(&folder).map(|md| md.permissions().mode() & 0o7777);
    assert_eq!(mode.ok(), Some(0o1777), "{}", side.explain());
    let step = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(support::podvisor_bin())
        .args(["--marker", &m, "--", "true"])
        .output()
        .expect("run setpriv");
    assert!(
        step.status.success() && !String::from_utf8_lossy(&step.stderr).contains("error"),
        "the step as nobody: {:?}\n{}",
        step.status,
        String::from_utf8_lossy(&step.stderr)
    );
    side.assert_exit(0, LONG, &[]);
    pod.assert_nothing_left(&[&side]);
}

#[test]
fn a_waiting_sidecar_says_what_it_waits_for_at_growing_intervals() {
    let pod = Pod::new("until-progress");
    let running = pod.ws("running.json");
    let later = pod.ws("later.json");
    let file = pod.ws("file");
    let owner = pod.start("owner", &["--marker", &running, "--", "sleep", "600"]);
    owner.wait_for_line("child started", LONG);
    let mut side = pod.start(
        "sidecar",
        &[
            "--until-marker",
            &running,
            "--until-marker",
            &later,
            "--until-file",
            &file,
        ],
    );
    side.wait_for_line("until: waiting", LONG);
    // The first report comes after 10 s.
    side.wait_for_line("until: still waiting after 10s", LONG);
    let line = side
        .stderr()
        .lines()
        .find(|l| l.contains("still waiting after 10s"))
        .map(str::to_owned)
        .unwrap_or_default();
    for needle in [
        format!("marker {running} is not finished: running ({running}.lock is held"),
        format!("marker {later} is not finished: not started (no {later}.lock"),
        format!("file {file} does not exist"),
    ] {
        assert!(line.contains(&needle), "{needle}\n{}", side.explain());
    }
    assert!(
        !side.stderr().contains("after 20s"),
        "the next report is 20 s later\n{}",
        side.explain()
    );
    fs::write(&running, "{}\n").unwrap();
    fs::write(&later, "{}\n").unwrap();
    fs::write(&file, "").unwrap();
    side.assert_exit(0, LONG, &[&owner]);
}
