//! A marker that cannot be prepared at start is tried again after the wait phase and at the end:
//! on a root-owned volume the step (another UID) may start before the sidecar whose
//! `--until-marker` makes the marker's folder 1777.

mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::pod::read_marker;
use support::TempDir;

/// The volume: a root-owned 0755 folder, like podman's emptyDir.
fn root_volume(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        fs::metadata(dir.path()).unwrap().uid(),
        0,
        "the test runs as root"
    );
    dir
}

/// podvisor as UID 65534 (root would ignore the permissions under test), its stderr read line by
/// line on a thread so that the test can act on what it says.
struct Step {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    shown: String,
}

impl Step {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "--",
            ])
            .arg(support::podvisor_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run setpriv");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            shown: format!("setpriv (uid 65534) podvisor {}", args.join(" ")),
        }
    }

    fn explain(&self) -> String {
        format!("$ {}\n--- stderr ---\n{}", self.shown, self.seen.join("\n"))
    }

    /// Reads stderr until a line contains `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(e) => panic!("no line with {needle:?} ({e})\n{}", self.explain()),
            }
        }
    }

    /// Waits for the exit (bounded) and reads the rest of stderr; the exit code.
    fn finish(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("podvisor did not exit\n{}", self.explain());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The writer end is closed at exit: the thread ends once it has sent everything.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        status.code().unwrap_or(-1)
    }

    fn errors(&self) -> Vec<&String> {
        self.seen.iter().filter(|l| l.contains("error:")).collect()
    }
}

/// `podvisor --marker MARKER [--wait-file WAIT] -- sh -c SCRIPT` as UID 65534.
fn marker_step(marker: &Path, wait_file: Option<&Path>, script: &str) -> Step {
    let marker = marker.to_string_lossy();
    let mut args = vec!["--marker", &marker];
    let wait = wait_file.map(|w| w.to_string_lossy().into_owned());
    if let Some(w) = &wait {
        args.extend(["--wait-file", w]);
    }
    args.extend(["--", "sh", "-c", script]);
    Step::start(&args)
}

/// What `--until-marker` does for the step: the marker's folder, made as root with mode 1777.
fn make_folder_as_the_sidecar_would(folder: &Path) {
    fs::create_dir(folder).unwrap();
    fs::set_permissions(folder, fs::Permissions::from_mode(0o1777)).unwrap();
}

/// The one error line at start names the folder, its owner and mode, and podvisor's UID/GID.
fn assert_first_error(step: &Step, volume: &Path, marker: &Path, next: &str) {
    let errors = step.errors();
    assert_eq!(errors.len(), 1, "one error line\n{}", step.explain());
    let want = format!(
        "cannot prepare the marker {} ({next}): creating {}: Permission denied (os error 13) \
         ({} is owned by 0:0 with mode 0755; podvisor runs as uid 65534, gid 65534)",
        marker.display(),
        marker.parent().unwrap().display(),
        volume.display()
    );
    assert!(
        errors[0].contains(&want),
        "want {want:?}\n{}",
        step.explain()
    );
}

fn lock_of(marker: &Path) -> PathBuf {
    let mut s = marker.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

#[test]
fn the_marker_is_prepared_after_the_wait_phase_once_its_folder_is_writable() {
    let dir = root_volume("mr-after-wait");
    let folder = dir.path().join("podvisor");
    let marker = folder.join("step.json");
    let lock = lock_of(&marker);
    let ready = dir.path().join("sidecar-ready");
    // The step checks that the lock is held while it runs: flock -n fails on a held lock.
    let script = format!(
        "if flock -n '{}' true; then exit 7; else exit 0; fi",
        lock.display()
    );
    let mut step = marker_step(&marker, Some(&ready), &script);
    step.wait_for("cannot prepare the marker");
    assert!(!folder.exists(), "{}", step.explain());
    make_folder_as_the_sidecar_would(&folder);
    fs::write(&ready, "").unwrap();
    let code = step.finish();
    assert_eq!(
        code,
        0,
        "exit 7: the lock was not held during the step\n{}",
        step.explain()
    );
    assert_first_error(
        &step,
        dir.path(),
        &marker,
        "trying again after the wait phase",
    );
    let retried = step
        .seen
        .iter()
        .position(|l| l.contains("is prepared after the wait phase"));
    let waited = step.seen.iter().position(|l| l.contains("sidecar-ready"));
    assert!(retried.is_some(), "a line says so\n{}", step.explain());
    assert!(
        waited.is_some() && waited < retried,
        "the retry comes after the wait phase\n{}",
        step.explain()
    );
    let m = read_marker(&marker);
    assert_eq!(m["status"], "exited", "{m}");
    assert_eq!(m["exit_code"], 0, "{m}");
    assert_eq!(m["waits"][0]["ready"], true, "{m}");
    let meta = fs::metadata(&lock).expect("the lock file is there");
    assert_eq!(meta.uid(), 65534, "made by the step's podvisor");
    assert_eq!(fs::metadata(&marker).unwrap().uid(), 65534);
}

#[test]
fn a_folder_writable_only_during_the_step_still_gets_the_final_marker() {
    let dir = root_volume("mr-at-end");
    let folder = dir.path().join("podvisor");
    let marker = folder.join("step.json");
    let go = dir.path().join("go");
    let script = format!(
        "until [ -e '{}' ]; do sleep 0.02; done; exit 3",
        go.display()
    );
    let mut step = marker_step(&marker, None, &script);
    step.wait_for("cannot prepare the marker");
    make_folder_as_the_sidecar_would(&folder);
    fs::write(&go, "").unwrap();
    let code = step.finish();
    assert_eq!(code, 3, "the step's status\n{}", step.explain());
    assert_first_error(&step, dir.path(), &marker, "trying again at the end");
    assert!(
        step.seen
            .iter()
            .any(|l| l.contains("is prepared at the end (its lock was not held")),
        "a line says so\n{}",
        step.explain()
    );
    let m = read_marker(&marker);
    assert_eq!(m["status"], "exited", "{m}");
    assert_eq!(m["exit_code"], 3, "{m}");
}

#[test]
fn a_folder_never_writable_is_one_error_line_per_try() {
    let dir = root_volume("mr-never");
    let marker = dir.path().join("podvisor/step.json");
    let ready = dir.path().join("ready");
    fs::write(&ready, "").unwrap();
    let mut step = marker_step(&marker, Some(&ready), "exit 5");
    let code = step.finish();
    assert_eq!(code, 5, "the step's status is kept\n{}", step.explain());
    let errors = step.errors();
    let nexts = [
        "(trying again after the wait phase)",
        "(trying again at the end)",
        "(it will not be written)",
    ];
    assert_eq!(errors.len(), nexts.len(), "{}", step.explain());
    for (line, next) in errors.iter().zip(nexts) {
        assert!(
            line.contains(next)
                && line.contains("is owned by 0:0 with mode 0755; podvisor runs as uid 65534"),
            "{next}\n{}",
            step.explain()
        );
    }
    assert!(!marker.exists());
}
