//! Test helpers for the docker tests: the static binary, bounded docker calls, unique names,
//! cleanup on drop, and the cached Debian base image.
//!
//! Every container, volume, network and image a test creates carries the label
//! `podvisor-test=<pid of the test process>`; resources of test processes that died without
//! cleaning up (SIGKILL, a crashed runner) are swept before the first docker call.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::TempDir;

/// The target of the static binary that goes into images.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";
/// The label on everything the tests create.
pub const LABEL: &str = "podvisor-test";
/// Where the Debian base is cached between runs on one machine (never in the repo).
pub const CACHE_DIR: &str = "/var/cache/podvisor-tests";
/// The cached base image: Debian bookworm minbase with nginx-light and curl.
pub const BASE_IMAGE: &str = "podvisor-test-base:bookworm-minbase-nginx-light-curl";
const BASE_TARBALL: &str = "bookworm-minbase-nginx-light-curl.tar";
const MIRROR: &str = "http://deb.debian.org/debian";

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The static musl binary, built here once per test process.
///
/// scripts/test builds it before `cargo test`, so this is normally a no-op of about a second;
/// building here anyway means a test never puts a stale binary (older than the sources) into
/// an image, and `cargo test --test docker_image` works on its own.
pub fn static_binary() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(repo_root())
                .args(["build", "--release", "--target", STATIC_TARGET]);
            let out = bounded(cmd, Duration::from_secs(900));
            // Where cargo puts it: CARGO_TARGET_DIR (relative to the repository) or target/.
            let target_dir = std::env::var_os("CARGO_TARGET_DIR")
                .map(|d| repo_root().join(d))
                .unwrap_or_else(|| repo_root().join("target"));
            let bin = target_dir
                .join(STATIC_TARGET)
                .join("release")
                .join("podvisor");
            if out.ok() && bin.is_file() {
                Ok(bin)
            } else {
                Err(format!(
                    "cannot build the static binary {} (is the {STATIC_TARGET} target installed? \
                     `rustup target add {STATIC_TARGET}`)\n{}",
                    bin.display(),
                    out.explain()
                ))
            }
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A finished (or timed-out) command.
pub struct Done {
    pub shown: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Done {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn explain(&self) -> String {
        format!(
            "command: {}\nstatus: {:?}{}\nelapsed: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.shown,
            self.code,
            if self.timed_out {
                " (timed out, killed)"
            } else {
                ""
            },
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }

    /// Panics with everything known unless the command exited 0; returns stdout.
    pub fn expect_ok(&self) -> &str {
        assert!(self.ok(), "\n{}", self.explain());
        &self.stdout
    }
}

/// Runs `cmd` to its end or kills it after `timeout`, capturing stdout and stderr.
pub fn bounded(mut cmd: Command, timeout: Duration) -> Done {
    let shown = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Done {
                shown,
                code: None,
                stdout: String::new(),
                stderr: format!("cannot start: {e}"),
                elapsed: start.elapsed(),
                timed_out: false,
            }
        }
    };
    // Readers on threads, so a chatty command never blocks on a full pipe.
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(child.stdout.take().map(|s| Box::new(s) as _));
    let err = reader(child.stderr.take().map(|s| Box::new(s) as _));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    Done {
        shown,
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
        timed_out,
    }
}

/// `docker ARGS...`, bounded by `timeout`.
pub fn docker<I, S>(args: I, timeout: Duration) -> Done
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    sweep_once();
    let mut cmd = Command::new("docker");
    cmd.args(args);
    bounded(cmd, timeout)
}

/// A docker call expected to succeed quickly; returns its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    docker(args, Duration::from_secs(120))
        .expect_ok()
        .trim()
        .to_string()
}

/// A name unique to this test process and call: `podvisor-test-<pid>-<n>-<tag>`.
pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "podvisor-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// `--label podvisor-test=<pid>`, for `docker run`, `volume create`, `build`...
pub fn label_args() -> [String; 2] {
    ["--label".into(), format!("{LABEL}={}", std::process::id())]
}

/// Everything one test created, removed on drop (also when the test panics).
#[derive(Default)]
pub struct Cleanup {
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
    images: Vec<String>,
    compose: Vec<(PathBuf, String)>,
}

impl Cleanup {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh container name, removed at the end.
    pub fn container(&mut self, tag: &str) -> String {
        let name = unique(tag);
        self.containers.push(name.clone());
        name
    }

    /// A fresh labelled volume, removed at the end.
    pub fn volume(&mut self, tag: &str) -> String {
        let name = unique(tag);
        let mut args = vec!["volume".to_string(), "create".into()];
        args.extend(label_args());
        args.push(name.clone());
        docker(&args, Duration::from_secs(60)).expect_ok();
        self.volumes.push(name.clone());
        name
    }

    /// A fresh image tag, removed at the end.
    pub fn image(&mut self, tag: &str) -> String {
        let name = format!("{}:test", unique(tag));
        self.images.push(name.clone());
        name
    }

    /// A network name, removed at the end.
    pub fn network(&mut self, name: &str) {
        self.networks.push(name.to_string());
    }

    /// `docker run --rm ARGS...` in a fresh labelled container, bounded; the result.
    pub fn run<S: AsRef<str>>(&mut self, args: &[S]) -> Done {
        let name = self.container("run");
        let mut all: Vec<String> = vec!["run".into(), "--rm".into(), "--name".into(), name];
        all.extend(label_args());
        all.extend(args.iter().map(|s| s.as_ref().to_string()));
        docker(&all, Duration::from_secs(120))
    }

    /// `docker run -d --name NAME ARGS...` (NAME from [`Cleanup::container`]); panics with the
    /// output if it cannot start.
    pub fn start<S: AsRef<str>>(&mut self, name: &str, args: &[S]) {
        start_in_background(name, args).join().expect_ok();
    }

    /// A compose project, brought down (containers, volumes, networks, local images) at the end.
    pub fn compose(&mut self, file: &Path, project: &str) {
        self.compose.push((file.to_path_buf(), project.to_string()));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let t = Duration::from_secs(60);
        for (file, project) in &self.compose {
            let mut cmd = compose_command();
            cmd.arg("-f")
                .arg(file)
                .args(["-p", project, "down", "-v", "--rmi", "local", "-t", "1"]);
            bounded(cmd, Duration::from_secs(120));
        }
        if !self.containers.is_empty() {
            docker(
                ["rm", "-f", "-v"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain(self.containers.clone()),
                t,
            );
        }
        for v in &self.volumes {
            docker(["volume", "rm", "-f", v], t);
        }
        for n in &self.networks {
            docker(["network", "rm", n], t);
        }
        for i in &self.images {
            docker(["rmi", "-f", i], t);
        }
    }
}

/// The pod: the podvisor image, the Debian base, a volume as /workspace, and the holder of the
/// network namespace (the empty podvisor image running `holder_args`), all removed at the end.
pub struct Pod {
    pub cleanup: Cleanup,
    /// docker/Dockerfile's `prebuilt` stage: the static binary alone.
    pub image: String,
    /// The cached Debian base (nginx-light, curl).
    pub base: String,
    /// The volume, and its `-v` argument as /workspace.
    pub volume: String,
    pub ws: String,
    /// `container:HOLDER`, the `--network` of every other container.
    pub net: String,
    pub holder: String,
}

impl Pod {
    pub fn new(docker_opts: &[&str], holder_args: &[&str]) -> Self {
        require_docker();
        let mut cleanup = Cleanup::new();
        let image = podvisor_image(&mut cleanup);
        let base = base_image();
        let volume = cleanup.volume("ws");
        let ws = format!("{volume}:/workspace");
        let holder = cleanup.container("pod");
        let mut args: Vec<&str> = docker_opts.to_vec();
        args.extend(["-v", &ws, &image]);
        args.extend(holder_args);
        cleanup.start(&holder, &args);
        let net = format!("container:{holder}");
        Self {
            cleanup,
            image,
            base,
            volume,
            ws,
            net,
            holder,
        }
    }

    pub fn container(&mut self, tag: &str) -> String {
        self.cleanup.container(tag)
    }

    /// Starts `name` from `image` inside the pod (its network namespace and /workspace).
    pub fn start(&mut self, name: &str, image: &str, rest: &[&str]) {
        self.start_in_background(name, image, rest)
            .join()
            .expect_ok();
    }

    /// As `start`, without waiting for `docker run -d` to return: containers of a pod start
    /// at once. Join the handle for its result.
    pub fn start_in_background<S: AsRef<str>>(
        &self,
        name: &str,
        image: &str,
        rest: &[S],
    ) -> Starting {
        let mut args = vec!["--network", &self.net, "-v", &self.ws, image];
        args.extend(rest.iter().map(AsRef::as_ref));
        start_in_background(name, &args)
    }

    /// The volume's folder on this machine (what the containers see as /workspace).
    pub fn volume_dir(&self) -> PathBuf {
        PathBuf::from(docker_ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Mountpoint}}",
            &self.volume,
        ]))
    }

    /// The init container: the podvisor image copies itself to /workspace/bin.
    pub fn install_podvisor(&mut self) {
        let init = self.container("init");
        let image = self.image.clone();
        self.start(&init, &image, &["--install-to", "/workspace/bin"]);
        let code = wait_exit(&init, Duration::from_secs(60));
        assert_eq!(code, 0, "{}", logs(&init));
    }
}

/// A `docker run -d` under way.
pub struct Starting(std::thread::JoinHandle<Done>);

impl Starting {
    /// Its result, once `docker run -d` has returned.
    pub fn join(self) -> Done {
        self.0
            .join()
            .unwrap_or_else(|_| panic!("a docker run thread panicked"))
    }

    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

/// `docker run -d --name NAME ARGS...` (labelled) on a thread of its own.
pub fn start_in_background<S: AsRef<str>>(name: &str, args: &[S]) -> Starting {
    let mut all: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.into()];
    all.extend(label_args());
    all.extend(args.iter().map(|s| s.as_ref().to_string()));
    Starting(std::thread::spawn(move || {
        docker(&all, Duration::from_secs(60))
    }))
}

/// `docker compose` (v2) when the client has it, else the v1 binary `docker-compose`.
pub fn compose_command() -> Command {
    static V2: OnceLock<bool> = OnceLock::new();
    let v2 = *V2.get_or_init(|| {
        let mut cmd = Command::new("docker");
        cmd.args(["compose", "version"]);
        bounded(cmd, Duration::from_secs(30)).ok()
    });
    if v2 {
        let mut cmd = Command::new("docker");
        cmd.arg("compose");
        cmd
    } else {
        Command::new("docker-compose")
    }
}

/// Whether the test process `pid` is gone, or a zombie nobody has reaped yet (its /proc entry
/// stays until then): what it created may be removed.
pub fn pid_gone(pid: &str) -> bool {
    let stat = fs::read_to_string(Path::new("/proc").join(pid.trim()).join("stat"));
    stat.map_or(true, |s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// Removes what earlier test processes left behind: labelled resources whose pid is gone.
fn sweep_once() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let t = Duration::from_secs(60);
        let dead = pid_gone;
        let list = |args: &[&str]| -> Vec<(String, String)> {
            let mut cmd = Command::new("docker");
            cmd.args(args);
            bounded(cmd, t)
                .stdout
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(id, pid)| (id.to_string(), pid.to_string()))
                .filter(|(_, pid)| dead(pid))
                .collect()
        };
        let filter = format!("label={LABEL}");
        let fmt = format!("{{{{.ID}}}} {{{{.Label \"{LABEL}\"}}}}");
        let rm = |what: &[&str], ids: Vec<(String, String)>| {
            for (id, _) in ids {
                let mut cmd = Command::new("docker");
                cmd.args(what).arg(id);
                bounded(cmd, t);
            }
        };
        rm(
            &["rm", "-f", "-v"],
            list(&["ps", "-a", "--filter", &filter, "--format", &fmt]),
        );
        let vfmt = format!("{{{{.Name}}}} {{{{.Label \"{LABEL}\"}}}}");
        rm(
            &["volume", "rm", "-f"],
            list(&["volume", "ls", "--filter", &filter, "--format", &vfmt]),
        );
        rm(
            &["network", "rm"],
            list(&["network", "ls", "--filter", &filter, "--format", &fmt]),
        );
        // `docker images --format` has no .Label: list by label, then read each one's value.
        let images: Vec<(String, String)> = {
            let mut cmd = Command::new("docker");
            cmd.args(["images", "-q", "--filter", &filter]);
            bounded(cmd, t)
                .stdout
                .lines()
                .filter_map(|id| {
                    let mut cmd = Command::new("docker");
                    let fmt = format!("{{{{index .Config.Labels \"{LABEL}\"}}}}");
                    cmd.args(["image", "inspect", "-f", &fmt, id]);
                    let pid = bounded(cmd, t).stdout.trim().to_string();
                    dead(&pid).then(|| (id.to_string(), pid))
                })
                .collect()
        };
        rm(&["rmi", "-f"], images);
    });
}

/// Fails the test with a clear message when no Docker engine answers.
pub fn require_docker() {
    let info = docker(
        ["info", "--format", "{{.ServerVersion}}"],
        Duration::from_secs(30),
    );
    assert!(
        info.ok(),
        "these tests need a running Docker engine (they are part of CI: .ci/run)\n{}",
        info.explain()
    );
}

/// A build context holding only the static binary, as `podvisor`.
pub fn binary_context() -> TempDir {
    let ctx = TempDir::new("docker-ctx");
    fs::copy(static_binary(), ctx.path().join("podvisor")).expect("copy the static binary");
    ctx
}

// Every build passes --force-rm: the legacy builder otherwise keeps the container of a failed
// RUN step (and its image) around. And --no-cache: tests build in parallel, and with shared
// cached layers one test's `rmi` of its image deletes the untagged parent layer another test's
// build is just reusing ("No such image: sha256:...").

/// Builds docker/Dockerfile's `prebuilt` stage (the image from a binary built outside Docker)
/// and returns its tag.
pub fn podvisor_image(cleanup: &mut Cleanup) -> String {
    let ctx = binary_context();
    let dockerfile = repo_root().join("docker").join("Dockerfile");
    build_image(
        cleanup,
        "podvisor",
        &dockerfile,
        ctx.path(),
        &[],
        Some("prebuilt"),
    )
}

/// Builds `dockerfile` (up to stage `target`) with `context` and build args; returns the tag.
pub fn build_image(
    cleanup: &mut Cleanup,
    tag: &str,
    dockerfile: &Path,
    context: &Path,
    build_args: &[(&str, &str)],
    target: Option<&str>,
) -> String {
    let tag = cleanup.image(tag);
    let mut args: Vec<String> = vec![
        "build".into(),
        "-q".into(),
        "--force-rm".into(),
        "--no-cache".into(),
    ];
    args.extend(label_args());
    if let Some(target) = target {
        args.extend(["--target".into(), target.into()]);
    }
    for (k, v) in build_args {
        args.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    args.extend(["-f".into(), dockerfile.display().to_string()]);
    args.extend(["-t".into(), tag.clone()]);
    args.push(context.display().to_string());
    docker(&args, Duration::from_secs(300)).expect_ok();
    tag
}

/// The cached Debian base image (bookworm minbase + nginx-light + curl), made once per machine.
///
/// Under an exclusive flock, so that parallel test processes build it once: the image tag is
/// reused when present; else the tarball in CACHE_DIR is imported; else debootstrap makes the
/// root file system (about 30 s with a near mirror), it is tarred into CACHE_DIR and imported.
pub fn base_image() -> String {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(make_base)
        .clone()
        .unwrap_or_else(|e| panic!("cannot make the Debian base image: {e}"));
    BASE_IMAGE.to_string()
}

fn make_base() -> Result<(), String> {
    let t = Duration::from_secs(60);
    fs::create_dir_all(CACHE_DIR).map_err(|e| format!("{CACHE_DIR}: {e}"))?;
    let lock = File::create(Path::new(CACHE_DIR).join("base.lock"))
        .map_err(|e| format!("{CACHE_DIR}/base.lock: {e}"))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("flock {CACHE_DIR}/base.lock: {e}"))?;
    if docker(["image", "inspect", BASE_IMAGE], t).ok() {
        return Ok(());
    }
    let tarball = Path::new(CACHE_DIR).join(BASE_TARBALL);
    if !tarball.is_file() {
        let rootfs = Path::new(CACHE_DIR).join(format!("rootfs.{}", std::process::id()));
        let _ = fs::remove_dir_all(&rootfs);
        let mut cmd = Command::new("debootstrap");
        cmd.args([
            "--variant=minbase",
            "--include=nginx-light,curl",
            "bookworm",
        ])
        .arg(&rootfs)
        .arg(MIRROR);
        let boot = bounded(cmd, Duration::from_secs(1200));
        if !boot.ok() {
            let _ = fs::remove_dir_all(&rootfs);
            return Err(format!("debootstrap failed\n{}", boot.explain()));
        }
        let tmp = tarball.with_extension("tar.tmp");
        let mut cmd = Command::new("tar");
        cmd.arg("-C").arg(&rootfs).arg("-cf").arg(&tmp).arg(".");
        let tar = bounded(cmd, Duration::from_secs(600));
        let _ = fs::remove_dir_all(&rootfs);
        if !tar.ok() {
            return Err(format!("tar failed\n{}", tar.explain()));
        }
        fs::rename(&tmp, &tarball).map_err(|e| format!("{}: {e}", tarball.display()))?;
    }
    let tarball = tarball.display().to_string();
    let import = docker(["import", &tarball, BASE_IMAGE], Duration::from_secs(600));
    if !import.ok() {
        return Err(format!("docker import failed\n{}", import.explain()));
    }
    Ok(())
}

/// `docker wait NAME` bounded by `timeout`: the container's exit code.
pub fn wait_exit(name: &str, timeout: Duration) -> i32 {
    let done = docker(["wait", name], timeout);
    assert!(
        done.ok(),
        "container {name} did not exit within {timeout:?}\n{}\n--- its logs ---\n{}",
        done.explain(),
        logs(name)
    );
    done.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("docker wait {name} said {:?}", done.stdout))
}

/// A container's stdout and stderr, for failure messages and log assertions.
pub fn logs(name: &str) -> String {
    let done = docker(["logs", name], Duration::from_secs(60));
    format!("{}{}", done.stdout, done.stderr)
}

/// Polls `docker logs NAME` until it contains `needle`.
pub fn wait_for_log(name: &str, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let l = logs(name);
        if l.contains(needle) {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "container {name}: no {needle:?} in its logs within {timeout:?}\n--- logs ---\n{l}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The containers among `names` that are still running (none is what a test wants).
pub fn still_running(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            docker(
                ["inspect", "-f", "{{.State.Running}}", n],
                Duration::from_secs(30),
            )
            .stdout
            .trim()
                == "true"
        })
        .cloned()
        .collect()
}

/// How a container ended, as Docker recorded it.
#[derive(Debug, Clone)]
pub struct Ended {
    pub code: i32,
    /// `State.FinishedAt`, ns since the epoch (Docker takes it from containerd's exit event).
    pub finished_ns: i128,
    /// The full container ID.
    pub id: String,
}

/// How `name` ended; panics if it still runs.
pub fn ended(name: &str) -> Ended {
    let fmt = "{{.State.Running}} {{.State.ExitCode}} {{.State.FinishedAt}} {{.Id}}";
    let out = docker_ok(&["inspect", "-f", fmt, name]);
    let fields: Vec<&str> = out.split_whitespace().collect();
    match fields[..] {
        ["false", code, at, id] => Ended {
            code: code.parse().unwrap_or_else(|_| panic!("{name}: {out}")),
            finished_ns: rfc3339_ns(at).unwrap_or_else(|| panic!("{name}: {out}")),
            id: id.to_string(),
        },
        _ => panic!("container {name} has not ended: {out}"),
    }
}

/// This moment in ns since the epoch, to compare with `Ended::finished_ns`.
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// `2026-12-07T00:40:01.123456789Z` (what Docker writes, always UTC) as ns since the epoch.
pub fn rfc3339_ns(at: &str) -> Option<i128> {
    let (date, time) = at.strip_suffix('Z')?.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (hms.next()??, hms.next()??, hms.next()??);
    let ns: i64 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 + s;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(ns))
}
