//! Shared helpers for black-box tests of the built binary.
#![allow(dead_code)]

// One helper module per area, so that work on one area does not collide with another.
pub mod cgroup;
pub mod chaos;
pub mod docker;
pub mod pod;
pub mod podman;
pub mod proxy;
pub mod rng;
pub mod servers;
pub mod sigs;
pub mod wait;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The podvisor binary under test.
pub fn podvisor_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podvisor"))
}

/// A helper built from `tests/support/bin/NAME.rs` as a cargo example.
pub fn helper_bin(name: &str) -> PathBuf {
    let exe = podvisor_bin();
    exe.parent()
        .map(|d| d.join("examples").join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Builds the helper example NAME (`cargo test --test X` builds no examples) in the profile of
/// the podvisor under test, and returns its path. Call it once per test binary (a OnceLock).
pub fn build_example(name: &str) -> PathBuf {
    let path = helper_bin(name);
    let release = path.components().any(|c| c.as_os_str() == "release");
    let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cmd.args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // What cargo test sets for the test itself (CARGO_PKG_NAME, CARGO_MANIFEST_DIR...): ring's
    // build script watches some of it, so passing it on made every helper build rebuild ring,
    // rustls and podvisor (40 s each on a loaded machine).
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let per_crate = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|p| key.starts_with(p));
        if per_crate || key == "CARGO_PRIMARY_PACKAGE" || key == "CARGO_TARGET_TMPDIR" {
            cmd.env_remove(key);
        }
    }
    if release {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run cargo build --example {name}: {e}"));
    assert!(
        out.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}

/// The noflock helper (tests/support/bin/noflock.rs): runs its arguments with flock(2) refused
/// by the kernel (ENOLCK), like a file system without flock.
pub fn noflock() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build_example("noflock")).clone()
}

/// A podvisor invocation that explains itself when an assertion fails.
pub struct TestCommand {
    cmd: Command,
    shown: String,
}

/// The finished run: status, output and how long it took.
pub struct Run {
    pub shown: String,
    pub output: Output,
    pub elapsed: Duration,
}

/// PROGRAM with no `PODVISOR_*` variable and stdin from /dev/null.
fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PODVISOR_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

impl TestCommand {
    /// `podvisor` with a clean `PODVISOR_*` environment.
    pub fn new() -> Self {
        Self {
            cmd: clean_command(podvisor_bin()),
            shown: "podvisor".into(),
        }
    }

    /// `WRAPPER podvisor` (a helper that changes what the kernel allows, then execs podvisor),
    /// with the same clean environment.
    pub fn under(wrapper: impl AsRef<OsStr>) -> Self {
        let wrapper = wrapper.as_ref();
        let mut cmd = clean_command(wrapper);
        cmd.arg(podvisor_bin());
        Self {
            cmd,
            shown: format!("{} podvisor", wrapper.to_string_lossy()),
        }
    }

    /// `WRAPPER ARGS... podvisor`: podvisor run by a command line that prepares its world first
    /// (`unshare --mount sh -c 'mount ...; exec "$@"' sh`), with the same clean environment.
    pub fn wrapped(wrapper: &[&str]) -> Self {
        let mut cmd = clean_command(wrapper[0]);
        cmd.args(&wrapper[1..]).arg(podvisor_bin());
        Self {
            cmd,
            shown: format!("{} podvisor", wrapper.join(" ")),
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.shown.push(' ');
        self.shown.push_str(&a.as_ref().to_string_lossy());
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Self {
        self.shown = format!("{k}={} {}", v.as_ref().to_string_lossy(), self.shown);
        self.cmd.env(k, v);
        self
    }

    /// The underlying command, for spawning in the background.
    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Runs to the end, capturing stdout and stderr.
    pub fn run(mut self) -> Run {
        let start = Instant::now();
        let output = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.shown));
        Run {
            shown: self.shown,
            output,
            elapsed: start.elapsed(),
        }
    }

    /// Starts in the background with piped stdout/stderr.
    pub fn spawn(mut self) -> (Child, String) {
        let child = self
            .cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.shown));
        (child, self.shown)
    }
}

impl Default for TestCommand {
    fn default() -> Self {
        Self::new()
    }
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Everything needed to understand a failure without rerunning.
    pub fn explain(&self) -> String {
        format!(
            "command: {}\nstatus: {:?}\nelapsed: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.shown,
            self.output.status,
            self.elapsed,
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts the exit code.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "\n{}", self.explain());
        self
    }

    /// Asserts that stderr contains `needle`.
    pub fn assert_stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.explain()
        );
        self
    }

    /// Asserts that stdout contains `needle`.
    pub fn assert_stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.explain()
        );
        self
    }
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn poll_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("podvisor-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
