//! `--marker PATH`: the lock held while running, the JSON written atomically on every path.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::libc;
use support::pod::read_marker;
use support::{poll_until, Run, TempDir, TestCommand};

const KEYS: [&str; 10] = [
    "command",
    "duration_ms",
    "exit_code",
    "finished_at",
    "reason",
    "signal",
    "started_at",
    "status",
    "version",
    "waits",
];

/// Checks the fields every marker has, and returns it.
fn check_schema(path: &Path, run: &Run) -> serde_json::Value {
    let v = read_marker(path);
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}\n{}", run.explain()))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, KEYS, "{v}");
    assert_eq!(v["version"], 1, "{v}");
    assert_eq!(
        v["exit_code"].as_i64(),
        run.code().map(i64::from),
        "the marker's exit code is podvisor's: {v}\n{}",
        run.explain()
    );
    assert!(
        v["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty() && !r.contains('\n')),
        "{v}"
    );
    assert!(v["command"].is_array(), "{v}");
    for at in ["started_at", "finished_at"] {
        let t = v[at].as_str().unwrap_or_else(|| panic!("{at}: {v}"));
        // RFC3339 in UTC: 2026-12-02T01:56:05.123Z
        let b = t.as_bytes();
        assert!(
            t.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && t.ends_with('Z'),
            "{at} is not RFC3339: {t}"
        );
    }
    assert!(v["started_at"].as_str() <= v["finished_at"].as_str(), "{v}");
    let ms = v["duration_ms"].as_u64().unwrap_or_else(|| panic!("{v}"));
    assert!(
        u128::from(ms) <= run.elapsed.as_millis() + 5,
        "duration_ms {ms} > {:?}",
        run.elapsed
    );
    assert!(v["waits"].is_array(), "{v}");
    let meta = fs::symlink_metadata(path).expect("marker metadata");
    assert!(meta.is_file(), "a regular file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o644, "world-readable");
    v
}

/// Nothing but the marker and its lock is left in the folder (no temp files).
fn only_marker_and_lock(dir: &Path) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["m.json", "m.json.lock"], "in {}", dir.display());
}

/// `flock -n PATH true` from outside: whether the lock is free.
fn lock_free(lock: &Path) -> bool {
    Command::new("flock")
        .arg("-n")
        .arg(lock)
        .arg("true")
        .status()
        .expect("run flock")
        .success()
}

/// `podvisor --marker PATH`.
fn with_marker(path: &Path) -> TestCommand {
    TestCommand::new().arg("--marker").arg(path)
}

fn marker_path(dir: &TempDir) -> std::path::PathBuf {
    dir.path().join("m.json")
}

#[test]
fn exited() {
    let dir = TempDir::new("mk-exited");
    let m = marker_path(&dir);
    let run = with_marker(&m).args(["--", "sh", "-c", "exit 3"]).run();
    run.assert_code(3);
    let v = check_schema(&m, &run);
    assert_eq!(v["status"], "exited", "{v}");
    assert_eq!(v["signal"], serde_json::Value::Null, "{v}");
    assert_eq!(
        v["command"],
        serde_json::json!(["sh", "-c", "exit 3"]),
        "{v}"
    );
    assert_eq!(v["waits"], serde_json::json!([]), "{v}");
    only_marker_and_lock(dir.path());
}

#[test]
fn signaled() {
    let dir = TempDir::new("mk-signaled");
    let m = marker_path(&dir);
    let run = with_marker(&m)
        .args(["--", "sh", "-c", "kill -KILL $$"])
        .run();
    run.assert_code(137);
    let v = check_schema(&m, &run);
    assert_eq!(v["status"], "signaled", "{v}");
    assert_eq!(v["signal"], "SIGKILL", "{v}");
    assert_eq!(v["reason"], "the command was killed by SIGKILL", "{v}");
}

#[test]
fn wait_failed_records_every_target() {
    let dir = TempDir::new("mk-waitfail");
    let m = marker_path(&dir);
    let present = dir.path().join("present");
    fs::write(&present, "").unwrap();
    let run = with_marker(&m)
        .arg("--wait-file")
        .arg(&present)
        .args(["--wait-tcp", "127.0.0.1:1", "--timeout", "400ms"])
        .args(["--", "echo", "SHOULD-NOT-RUN"])
        .run();
    run.assert_code(124);
    assert!(
        !run.stdout().contains("SHOULD-NOT-RUN"),
        "{}",
        run.explain()
    );
    let v = check_schema(&m, &run);
    assert_eq!(v["status"], "wait_failed", "{v}");
    assert!(
        v["reason"].as_str().unwrap_or("").contains("127.0.0.1:1"),
        "{v}"
    );
    let waits = v["waits"].as_array().expect("waits");
    assert_eq!(waits.len(), 2, "{v}");
    let target = |name: &str| {
        waits
            .iter()
            .find(|w| w["target"] == name)
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    let file = target(&format!("file://{}", present.display()));
    assert_eq!(file["ready"], true, "{v}");
    assert_eq!(file["attempts"], 1, "{v}");
    assert!(file["after_ms"].as_u64() < Some(300), "{v}");
    let tcp = target("tcp://127.0.0.1:1");
    assert_eq!(tcp["ready"], false, "{v}");
    assert!(tcp["attempts"].as_u64() >= Some(2), "{v}");
    assert!(tcp["after_ms"].as_u64() >= Some(350), "{v}");
}

#[test]
fn cancelled_in_the_wait_phase() {
    let dir = TempDir::new("mk-cancelled");
    let m = marker_path(&dir);
    let lock = dir.path().join("m.json.lock");
    let start = std::time::Instant::now();
    let present = dir.path().join("present");
    fs::write(&present, "").unwrap();
    let (mut child, shown) = with_marker(&m)
        .arg("--wait-file")
        .arg(dir.path().join("never"))
        .arg("--wait-file")
        .arg(&present)
        .args(["--wait-tcp", "127.0.0.1:1", "--interval", "50ms"])
        .args(["--log-level", "debug"])
        .args(["--timeout", "0", "--", "echo", "SHOULD-NOT-RUN"])
        .spawn();
    // The lock exists (and signals are blocked) before the wait phase starts.
    poll_until(Duration::from_secs(10), "the lock file", || {
        lock.exists().then_some(())
    });
    assert!(!lock_free(&lock), "locked during the wait phase");
    // Cancel once one target is ready and the tcp one has failed three times.
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    while !(seen.contains("is ready after") && seen.contains("127.0.0.1:1: attempt 3 failed")) {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap_or(0) == 0 {
            panic!("podvisor ended its stderr before that:\n{seen}");
        }
        seen.push_str(&line);
    }

    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut output = child.wait_with_output().expect("wait for podvisor");
    std::io::Read::read_to_end(&mut stderr, &mut output.stderr).expect("read stderr");
    output.stderr.splice(0..0, seen.into_bytes());
    let run = Run {
        shown,
        output,
        elapsed: start.elapsed(),
    };
    run.assert_code(143);
    let v = check_schema(&m, &run);
    assert_eq!(v["status"], "cancelled", "{v}");
    assert_eq!(v["signal"], "SIGTERM", "{v}");
    assert!(lock_free(&lock), "released at the end");
    // Every target, as far as it got when the signal came.
    let waits = v["waits"].as_array().expect("waits");
    assert_eq!(waits.len(), 3, "{v}\n{}", run.explain());
    let target = |name: String| {
        waits
            .iter()
            .find(|w| w["target"] == name.as_str())
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    let never = target(format!("file://{}", dir.path().join("never").display()));
    assert_eq!(never["ready"], false, "{v}");
    assert!(never["attempts"].as_u64() >= Some(1), "{v}");
    let file = target(format!("file://{}", present.display()));
    assert_eq!(file["ready"], true, "{v}");
    assert_eq!(file["attempts"], 1, "{v}");
    let tcp = target("tcp://127.0.0.1:1".into());
    assert_eq!(tcp["ready"], false, "{v}");
    assert!(tcp["attempts"].as_u64() >= Some(3), "{v}");
    assert!(tcp["after_ms"].as_u64() >= Some(100), "{v}");
    assert!(tcp["after_ms"] == never["after_ms"], "{v}");
}

#[test]
fn spawn_failed() {
    let dir = TempDir::new("mk-spawn");
    let m = marker_path(&dir);
    let run = with_marker(&m).args(["--", "no-such-command-xyz"]).run();
    run.assert_code(127);
    let v = check_schema(&m, &run);
    assert_eq!(v["status"], "spawn_failed", "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no-such-command-xyz"),
        "{v}"
    );
}

#[test]
fn creates_shared_folders_and_removes_a_stale_marker() {
    let dir = TempDir::new("mk-stale");
    let sub = dir.path().join("markers/deep");
    let m = sub.join("m.json");
    fs::create_dir_all(&sub).unwrap();
    fs::write(&m, "stale, not even JSON").unwrap();
    let script = format!("test ! -e {}", m.display());
    let run = with_marker(&m).args(["--", "sh", "-c", &script]).run();
    run.assert_code(0);
    assert_eq!(check_schema(&m, &run)["status"], "exited");

    // Missing folders are made for every UID of the pod (1777, like /tmp).
    let fresh = dir.path().join("new/a/m.json");
    let run = with_marker(&fresh).args(["--", "true"]).run();
    run.assert_code(0);
    check_schema(&fresh, &run);
    for d in ["new", "new/a"] {
        let mode = fs::metadata(dir.path().join(d))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1777, "{d}: {mode:o}");
    }
}

#[test]
fn symlink_at_path_is_replaced_and_its_target_untouched() {
    let dir = TempDir::new("mk-symlink");
    let m = marker_path(&dir);
    let target = dir.path().join("precious");
    fs::write(&target, "precious").unwrap();
    // Planted while the step runs, after the stale marker is gone.
    let script = format!("ln -s {} {}", target.display(), m.display());
    let run = with_marker(&m).args(["--", "sh", "-c", &script]).run();
    run.assert_code(0);
    check_schema(&m, &run); // a regular file now, not the link
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
}

#[test]
fn a_reader_never_sees_a_partial_marker() {
    let dir = TempDir::new("mk-atomic");
    let m = marker_path(&dir);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (m, stop) = (m.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut reads, mut bad) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                if let Ok(bytes) = fs::read(&m) {
                    reads += 1;
                    if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
                        bad.push(String::from_utf8_lossy(&bytes).into_owned());
                    }
                }
            }
            (reads, bad)
        })
    };
    // A long command line makes a bigger object, so a torn write would show.
    let long = "x".repeat(20_000);
    for _ in 0..20 {
        with_marker(&m)
            .args(["--", "echo", &long])
            .run()
            .assert_code(0);
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, bad) = reader.join().expect("reader thread");
    assert!(reads > 0, "the reader saw the marker at least once");
    assert!(
        bad.is_empty(),
        "{} partial reads, first: {:.200}",
        bad.len(),
        bad[0]
    );
}

#[test]
fn lock_is_held_while_running_and_released_at_the_end() {
    let dir = TempDir::new("mk-lock");
    let m = marker_path(&dir);
    let lock = dir.path().join("m.json.lock");
    let mut cmd = with_marker(&m).args(["--", "sh", "-c", "read x; exit 0"]);
    cmd.command().stdin(Stdio::piped());
    let (mut child, _shown) = cmd.spawn();
    poll_until(Duration::from_secs(10), "the lock file", || {
        lock.exists().then_some(())
    });
    assert!(!lock_free(&lock), "flock -n fails while podvisor runs");
    assert!(!m.exists(), "no marker while running");
    drop(child.stdin.take()); // the step reads EOF and ends
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert!(lock_free(&lock), "flock -n succeeds after");
    assert_eq!(read_marker(&m)["status"], "exited");
}

#[test]
fn sigkill_leaves_no_marker_and_a_free_lock() {
    let dir = TempDir::new("mk-sigkill");
    let m = marker_path(&dir);
    let lock = dir.path().join("m.json.lock");
    let (mut child, _shown) = with_marker(&m).args(["--", "sleep", "600"]).spawn();
    let pv = child.id();
    let step: i32 = poll_until(Duration::from_secs(10), "the step to start", || {
        fs::read_to_string(format!("/proc/{pv}/task/{pv}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    });
    assert!(!lock_free(&lock));
    child.kill().expect("SIGKILL podvisor");
    let _ = child.wait();
    // SAFETY: the orphaned step leads its own group; it is ours to clean up.
    unsafe { libc::kill(-step, libc::SIGKILL) };
    assert!(!m.exists(), "nothing could write a marker");
    // Polled: the step may have been caught between fork and exec, still holding a copy of the
    // lock's fd (O_CLOEXEC closes it only at exec) until its SIGKILL lands.
    poll_until(
        Duration::from_secs(5),
        "the kernel to release the lock",
        || lock_free(&lock).then_some(()),
    );
    assert!(!m.exists(), "nothing could write a marker");
}

/// One error line naming the marker, and the step's own status.
fn assert_one_marker_error(run: &Run, marker: &Path, why: &str) {
    assert_marker_errors(run, marker, why, 1);
}

/// `count` error lines, each naming the marker and `why`: a marker that cannot be prepared is
/// tried at start and once more at the end (tests/marker_retry.rs), one line per failed try.
fn assert_marker_errors(run: &Run, marker: &Path, why: &str, count: usize) {
    let errors: Vec<&str> = run
        .output
        .stderr
        .split(|&b| b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|l| l.contains("error"))
        .collect();
    assert_eq!(errors.len(), count, "error lines\n{}", run.explain());
    for line in errors {
        assert!(
            line.contains(&marker.display().to_string()) && line.contains(why),
            "{}",
            run.explain()
        );
    }
}

#[test]
fn a_stale_marker_that_cannot_be_removed_keeps_the_lock_held() {
    let dir = TempDir::new("mk-unremovable");
    let m = marker_path(&dir);
    fs::create_dir(&m).unwrap(); // nothing can remove it, nor rename a marker over it
    let lock = dir.path().join("m.json.lock");
    // The step itself checks that the lock is held while it runs.
    let script = format!(
        "if flock -n '{}' true; then exit 7; else exit 6; fi",
        lock.display()
    );
    let run = with_marker(&m).args(["--", "sh", "-c", &script]).run();
    run.assert_code(6);
    let errors: Vec<String> = run
        .stderr()
        .lines()
        .filter(|l| l.contains("error"))
        .map(str::to_owned)
        .collect();
    let path = m.display().to_string();
    assert!(
        errors.len() == 2 && errors.iter().all(|l| l.contains(&path)),
        "one error line for the removal, one for the write\n{}",
        run.explain()
    );
    assert!(errors[0].contains("removing stale"), "{}", run.explain());
    assert!(
        errors[1].contains("cannot write the marker"),
        "{}",
        run.explain()
    );
    assert!(lock_free(&lock), "released at the end");
}

/// podvisor run as nobody through setpriv (root would ignore the permissions under test).
fn as_nobody(marker: &Path, script: &str) -> Run {
    let start = std::time::Instant::now();
    let output = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(support::podvisor_bin())
        .arg("--marker")
        .arg(marker)
        .args(["--", "sh", "-c", script])
        .output()
        .expect("run setpriv");
    Run {
        shown: format!(
            "setpriv (nobody) podvisor --marker {} -- sh -c '{script}'",
            marker.display()
        ),
        output,
        elapsed: start.elapsed(),
    }
}

#[test]
fn permission_denied_folder_keeps_the_step_status() {
    let dir = TempDir::new("mk-denied");
    let m = dir.path().join("locked/m.json");
    fs::create_dir_all(dir.path().join("locked")).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let run = as_nobody(&m, "exit 7");
    run.assert_code(7);
    assert_marker_errors(&run, &m, "Permission denied", 2);
    // The line says why: whose folder it is, its mode, and who podvisor runs as.
    let folder = dir.path().join("locked");
    run.assert_stderr_has(&format!(
        "{} is owned by 0:0 with mode 0755; podvisor runs as uid 65534, gid 65534",
        folder.display()
    ));
    assert!(!m.exists());
}

#[test]
fn a_folder_nobody_can_create_is_named_with_its_parents_owner_and_mode() {
    // podman's emptyDir (and many hostPath or PVC volumes): root:root 0755, the step another UID.
    let dir = TempDir::new("mk-root-volume");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let m = dir.path().join("podvisor/step.json");
    let run = as_nobody(&m, "exit 0");
    run.assert_code(0);
    assert_marker_errors(&run, &m, "Permission denied", 2);
    run.assert_stderr_has(&format!(
        "{} is owned by 0:0 with mode 0755; podvisor runs as uid 65534, gid 65534",
        dir.path().display()
    ));
}

#[test]
fn folder_turned_read_only_during_the_step() {
    let dir = TempDir::new("mk-late");
    let folder = dir.path().join("w");
    fs::create_dir_all(&folder).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&folder, Some(65534), Some(65534)).unwrap();
    let m = folder.join("m.json");
    let script = format!("chmod 555 {}; exit 5", folder.display());
    let run = as_nobody(&m, &script);
    run.assert_code(5);
    assert_one_marker_error(&run, &m, "cannot write the marker");
    assert!(!m.exists());
    let lock = folder.join("m.json.lock");
    assert_eq!(fs::metadata(&lock).unwrap().uid(), 65534);
    assert!(lock_free(&lock), "the lock is released even so");
}

#[test]
fn read_only_file_system_keeps_the_step_status() {
    let dir = TempDir::new("mk-ro");
    let ro = dir.path().join("ro");
    fs::create_dir_all(&ro).unwrap();
    let m = ro.join("m.json");
    // A private mount namespace with a read-only tmpfs on the folder.
    let output = Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg("mount -t tmpfs -o ro tmpfs \"$1\" && exec \"$2\" --marker \"$1/m.json\" -- sh -c 'exit 7'")
        .arg("sh")
        .arg(&ro)
        .arg(support::podvisor_bin())
        .output()
        .expect("run unshare");
    let run = Run {
        shown: format!(
            "unshare --mount (ro tmpfs on {}) podvisor --marker ...",
            ro.display()
        ),
        output,
        elapsed: Duration::ZERO,
    };
    run.assert_code(7);
    assert_marker_errors(&run, &m, "Read-only file system", 2);
}

/// Where the kernel refuses flock (tests/support/bin/noflock: a seccomp filter answering ENOLCK,
/// what a file system without flock support says), the marker still works, without liveness.
#[test]
fn without_flock_the_marker_is_still_written_after_one_warning() {
    let dir = TempDir::new("mk-noflock");
    let m = dir.path().join("m.json");
    let lock = dir.path().join("m.json.lock");
    // Left by an earlier run that had flock: kept, it would read as "owner died" to a sidecar
    // that can flock here while this step still runs.
    fs::write(&lock, "").unwrap();
    let run = TestCommand::under(support::noflock())
        .arg("--marker")
        .arg(&m)
        .args(["--", "sh", "-c", "exit 3"])
        .run();
    run.assert_code(3);
    let err = run.stderr();
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "one warning line\n{}", run.explain());
    assert!(
        warnings[0].contains("no flock") && warnings[0].contains(&dir.path().display().to_string()),
        "the warning names the missing flock and the folder\n{}",
        run.explain()
    );
    assert!(!err.contains("error"), "{}", run.explain());
    let v = check_schema(&m, &run);
    assert_eq!(v["status"], "exited", "{v}");
    assert!(
        !lock.exists(),
        "the stale lock is removed\n{}",
        run.explain()
    );
    let temps: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "m.json")
        .collect();
    assert!(temps.is_empty(), "nothing else left: {temps:?}");
}
