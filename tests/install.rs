//! `--install-to DIR`: a complete copy of the running executable at DIR/podvisor, mode 0755,
//! replaced atomically; 125 and one line on failure.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use support::{docker, podvisor_bin, TempDir, TestCommand};

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

/// Files in `dir` other than `podvisor`: temp files must never be left behind.
fn strays(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "podvisor")
        .collect()
}

#[test]
fn installs_a_runnable_copy_with_mode_0755_into_a_new_folder() {
    let tmp = TempDir::new("install");
    let dir = tmp.path().join("workspace/bin");
    let run = TestCommand::new().arg("--install-to").arg(&dir).run();
    run.assert_code(0).assert_stderr_has("installed");
    let dest = dir.join("podvisor");
    assert_eq!(mode(&dest), 0o755, "\n{}", run.explain());
    assert_eq!(
        fs::read(&dest).expect("read installed"),
        fs::read(podvisor_bin()).expect("read original"),
        "the installed copy differs from the running executable"
    );
    assert!(strays(&dir).is_empty(), "left behind: {:?}", strays(&dir));
    let out = Command::new(&dest)
        .arg("--version")
        .output()
        .expect("run the copy");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("podvisor"));
}

/// A restrictive umask (as some images set) must not make the copy unusable for other UIDs.
#[test]
fn mode_is_0755_even_under_umask_077() {
    let tmp = TempDir::new("install-umask");
    let script = format!(
        "umask 077 && exec {} --install-to {}",
        podvisor_bin().display(),
        tmp.path().display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&tmp.path().join("podvisor")), 0o755);
}

#[test]
fn env_variable_works_like_the_flag() {
    let tmp = TempDir::new("install-env");
    TestCommand::new()
        .env("PODVISOR_INSTALL_TO", tmp.path())
        .run()
        .assert_code(0);
    assert_eq!(mode(&tmp.path().join("podvisor")), 0o755);
}

#[test]
fn replaces_a_copy_that_is_running() {
    let tmp = TempDir::new("install-busy");
    TestCommand::new()
        .arg("--install-to")
        .arg(tmp.path())
        .run()
        .assert_code(0);
    let dest = tmp.path().join("podvisor");
    // The installed copy runs (as in another container of the pod); writing into it in place
    // would fail with ETXTBSY, a rename over it does not.
    let mut busy = Command::new(&dest)
        .args(["--timeout", "60s", "--wait-file"])
        .arg(tmp.path().join("never"))
        .spawn()
        .expect("start the installed copy");
    let run = TestCommand::new().arg("--install-to").arg(tmp.path()).run();
    let still_running = busy.try_wait().expect("try_wait").is_none();
    let _ = busy.kill();
    let _ = busy.wait();
    run.assert_code(0);
    assert!(still_running, "the running copy died during the install");
    assert_eq!(
        fs::metadata(&dest).expect("stat").len(),
        fs::metadata(podvisor_bin()).expect("stat").len()
    );
}

#[test]
fn readers_never_see_a_partial_file() {
    let tmp = TempDir::new("install-atomic");
    let dest = tmp.path().join("podvisor");
    let full = fs::metadata(podvisor_bin()).expect("stat").len();
    TestCommand::new()
        .arg("--install-to")
        .arg(tmp.path())
        .run()
        .assert_code(0);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, dest) = (stop.clone(), dest.clone());
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while !stop.load(Ordering::SeqCst) {
                // Missing or short, even for an instant, is what a container starting
                // /workspace/bin/podvisor at the wrong moment would hit.
                let len = fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
                if len != full {
                    return Err(format!("saw {len} bytes, want {full}"));
                }
                seen += 1;
            }
            Ok(seen)
        })
    };
    for _ in 0..20 {
        TestCommand::new()
            .arg("--install-to")
            .arg(tmp.path())
            .run()
            .assert_code(0);
    }
    stop.store(true, Ordering::SeqCst);
    let seen = reader
        .join()
        .expect("reader thread")
        .expect("atomic install");
    assert!(seen > 0, "the reader never looked");
    assert!(
        strays(tmp.path()).is_empty(),
        "left behind: {:?}",
        strays(tmp.path())
    );
}

#[test]
fn replaces_a_symlink_without_touching_its_target() {
    let tmp = TempDir::new("install-symlink");
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"keep me").expect("write victim");
    let dir = tmp.path().join("bin");
    fs::create_dir(&dir).expect("mkdir");
    std::os::unix::fs::symlink(&victim, dir.join("podvisor")).expect("symlink");
    TestCommand::new()
        .arg("--install-to")
        .arg(&dir)
        .run()
        .assert_code(0);
    assert_eq!(fs::read(&victim).expect("read victim"), b"keep me");
    let meta = fs::symlink_metadata(dir.join("podvisor")).expect("lstat");
    assert!(meta.file_type().is_file(), "still a symlink: {meta:?}");
}

#[test]
fn failure_is_125_with_one_line_naming_the_folder() {
    let tmp = TempDir::new("install-fail");
    let file = tmp.path().join("a-file");
    fs::write(&file, b"").expect("write");
    // A folder below a regular file cannot exist (ENOTDIR), even for root.
    let below_file = file.join("bin");
    let run = TestCommand::new()
        .arg("--install-to")
        .arg(&below_file)
        .run();
    run.assert_code(125);
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "\n{}", run.explain());
    assert!(
        stderr.starts_with("podvisor: error: ") && stderr.contains(&*below_file.to_string_lossy()),
        "\n{}",
        run.explain()
    );

    // DIR/podvisor is a non-empty folder: the rename fails, the temp file is removed.
    let dir = tmp.path().join("bin");
    fs::create_dir_all(dir.join("podvisor/x")).expect("mkdir");
    let run = TestCommand::new().arg("--install-to").arg(&dir).run();
    run.assert_code(125);
    assert_eq!(run.stderr().lines().count(), 1, "\n{}", run.explain());
    assert!(strays(&dir).is_empty(), "left behind: {:?}", strays(&dir));
}

/// In an empty root without /proc (a bare chroot), the copy comes from argv[0].
#[test]
fn works_without_proc_in_an_empty_root() {
    let root = TempDir::new("install-chroot");
    let bin = docker::static_binary();
    fs::copy(&bin, root.path().join("podvisor")).expect("copy the static binary");
    let out = Command::new("chroot")
        .arg(root.path())
        .args(["/podvisor", "--install-to", "/out/bin"])
        .output()
        .expect("run chroot");
    assert!(out.status.success(), "{out:?}");
    let dest = root.path().join("out/bin/podvisor");
    assert_eq!(mode(&dest), 0o755);
    assert_eq!(
        fs::read(&dest).expect("read"),
        fs::read(&bin).expect("read")
    );
}

/// Init containers of several pods may install into one shared hostPath at the same moment,
/// each as PID 1 (here: each in its own PID namespace): every install succeeds and the result
/// is one complete copy.
#[test]
fn concurrent_installs_as_pid_1_into_one_folder_all_succeed() {
    let tmp = TempDir::new("install-concurrent");
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let dir = tmp.path().to_path_buf();
            std::thread::spawn(move || {
                Command::new("unshare")
                    .args(["--pid", "--fork", "--mount-proc"])
                    .arg(podvisor_bin())
                    .arg("--install-to")
                    .arg(dir)
                    .output()
                    .expect("run unshare")
            })
        })
        .collect();
    for run in runs {
        let out = run.join().expect("install thread");
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("installed"),
            "{out:?}"
        );
    }
    assert_eq!(
        fs::read(tmp.path().join("podvisor")).expect("read"),
        fs::read(podvisor_bin()).expect("read")
    );
    assert!(
        strays(tmp.path()).is_empty(),
        "left behind: {:?}",
        strays(tmp.path())
    );
}
