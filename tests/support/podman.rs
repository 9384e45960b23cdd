//! Test helpers for the podman tests: a private podman store, the images (built locally, none
//! can be pulled), the Kubernetes examples turned into pods for `podman kube play`, and pods
//! removed on drop.
//!
//! podman 4.3 (Debian bookworm) as root, and what it needs here:
//! - its own store: `--root` under CACHE_DIR (images survive between runs), `--runroot` and
//!   `--tmpdir` under /run (cleared at boot where /run is a tmpfs, as podman's own defaults
//!   are), so the tests never touch the machine's podman state nor clash with it;
//! - a containers.conf of our own (CONTAINERS_CONF): runc pinned; `default_ulimits`, because
//!   runc otherwise fails to start any container where podman has no CAP_SYS_RESOURCE ("error
//!   setting rlimit type 7: operation not permitted"), as in a container or a CI sandbox;
//!   cgroupfs and a file event log, so that no systemd or journald is needed;
//! - `--network none`: a pod still has its own network namespace with a loopback, which is all
//!   the examples use (`localhost:80`), and no bridge or firewall is needed.
//!
//! Pods are named `podvisor-test-<pid>-<n>-<tag>` and images tagged `pid-<pid>`; what test
//! processes that died without cleaning up left behind is removed before the first podman call.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::docker::{self, bounded, Done, CACHE_DIR};
use super::TempDir;

/// The image store, kept between runs (the Debian base is 230 MB).
const ROOT: &str = "/var/cache/podvisor-tests/podman/root";
/// Runtime state: cleared at boot where /run is a tmpfs, which is what podman expects.
const RUN: &str = "/run/podvisor-tests/podman";
/// Our containers.conf (see the module doc for each line).
const CONTAINERS_CONF: &str = r#"# Written by tests/support/podman.rs.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"#;
/// What podman calls the image's stop signal when none is set: SIGTERM.
pub const NGINX_STOPSIGNAL: &str = "SIGQUIT";
/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const K8S_GRACE_SECONDS: u32 = 30;
/// The annotation that keeps a kube-played pod's init containers (and their exit codes and
/// logs) after they ran; without it podman 4.3 deletes them.
const KEEP_INIT: &str = "io.podman.annotations.init.container.type";

fn conf_path() -> PathBuf {
    Path::new(CACHE_DIR).join("podman").join("containers.conf")
}

/// `podman` with the private store and configuration.
fn command() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", conf_path())
        .args(["--root", ROOT, "--storage-driver", "overlay"])
        .arg("--runroot")
        .arg(Path::new(RUN).join("storage"))
        .arg("--tmpdir")
        .arg(Path::new(RUN).join("libpod"));
    cmd
}

/// `podman ARGS...`, bounded by `timeout`.
pub fn podman<I, S>(args: I, timeout: Duration) -> Done
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    setup();
    let mut cmd = command();
    cmd.args(args);
    bounded(cmd, timeout)
}

/// A podman call expected to succeed within two minutes; its trimmed stdout.
pub fn podman_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    podman(args, Duration::from_secs(120))
        .expect_ok()
        .trim()
        .to_string()
}

/// The configuration, then the leftovers of dead test processes swept; once per process.
fn setup() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let conf = conf_path();
        let dir = conf.parent().unwrap_or(Path::new(CACHE_DIR));
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // Written atomically: a parallel test process may be reading it.
        let tmp = conf.with_extension(format!("conf.{}", std::process::id()));
        fs::write(&tmp, CONTAINERS_CONF).map_err(|e| format!("{}: {e}", tmp.display()))?;
        fs::rename(&tmp, &conf).map_err(|e| format!("{}: {e}", conf.display()))?;
        let mut version = command();
        version.arg("--version");
        let v = bounded(version, Duration::from_secs(60));
        if !v.ok() {
            return Err(format!(
                "these tests need podman (Debian's podman 4.3: .ci/install)\n{}",
                v.explain()
            ));
        }
        sweep();
        Ok(())
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The pid in `podvisor-test-<pid>-...` (pods, volumes) or `...:pid-<pid>` (image tags).
fn owner(name: &str) -> Option<&str> {
    let rest = name
        .strip_prefix("podvisor-test-")
        .or_else(|| name.rsplit_once(":pid-").map(|(_, pid)| pid))?;
    let pid = rest.split('-').next()?;
    pid.chars().all(|c| c.is_ascii_digit()).then_some(pid)
}

/// Removes pods, volumes and images of test processes that are gone.
fn sweep() {
    let t = Duration::from_secs(120);
    let list = |args: &[&str]| -> Vec<String> {
        let mut cmd = command();
        cmd.args(args);
        bounded(cmd, t)
            .stdout
            .lines()
            .map(str::trim)
            .filter(|n| owner(n).is_some_and(docker::pid_gone))
            .map(String::from)
            .collect()
    };
    let remove = |what: &[&str], names: Vec<String>| {
        if !names.is_empty() {
            let mut cmd = command();
            cmd.args(what).args(names);
            bounded(cmd, t);
        }
    };
    remove(
        &["pod", "rm", "-f", "-t", "0"],
        list(&["pod", "ps", "--format", "{{.Name}}"]),
    );
    remove(
        &["volume", "rm", "-f"],
        list(&["volume", "ls", "--format", "{{.Name}}"]),
    );
    remove(
        &["rmi", "-f"],
        list(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
    );
}

/// The images of the pods, built in the private store once per test process.
pub struct Images {
    /// docker/Dockerfile's `prebuilt` stage: the static binary alone, `FROM scratch`.
    pub podvisor: String,
    /// The Debian base with nginx-light, `STOPSIGNAL SIGQUIT` as in the official nginx image.
    pub nginx: String,
    /// The Debian base with curl, running as UID 100 (GID 101) as curlimages/curl does.
    pub curl: String,
    /// The Debian base with `STOPSIGNAL SIGINT`, as in the official postgres image.
    pub interrupt: String,
}

impl Images {
    /// The local image that stands for an image reference of the examples.
    pub fn for_reference(&self, reference: &str) -> Option<&str> {
        match reference {
            "ghcr.io/example/podvisor:latest" => Some(&self.podvisor),
            "nginx:latest" => Some(&self.nginx),
            "curlimages/curl:latest" => Some(&self.curl),
            _ => None,
        }
    }
}

/// The images, built on first use.
pub fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let base = base_image();
        let ctx = docker::binary_context();
        let tag = |name: &str| format!("localhost/podvisor-test-{name}:pid-{}", std::process::id());
        let build = |name: &str, dockerfile: &Path, target: Option<&str>| {
            let image = tag(name);
            let mut args: Vec<String> = vec!["build".into(), "-q".into(), "--pull=never".into()];
            if let Some(target) = target {
                args.extend(["--target".into(), target.into()]);
            }
            args.extend(["-f".into(), dockerfile.display().to_string()]);
            args.extend(["-t".into(), image.clone()]);
            args.push(ctx.path().display().to_string());
            podman(&args, Duration::from_secs(300)).expect_ok();
            image
        };
        let derived = |name: &str, lines: &str| {
            let file = ctx.path().join(format!("{name}.Dockerfile"));
            fs::write(&file, format!("FROM {base}\n{lines}\n"))
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            build(name, &file, None)
        };
        Images {
            podvisor: build(
                "podvisor",
                &docker::repo_root().join("docker").join("Dockerfile"),
                Some("prebuilt"),
            ),
            nginx: derived(
                "nginx",
                &format!("STOPSIGNAL {NGINX_STOPSIGNAL}\nCMD [\"nginx\", \"-g\", \"daemon off;\"]"),
            ),
            curl: derived("curl", "USER 100:101\nCMD [\"curl\"]"),
            interrupt: derived("interrupt", "STOPSIGNAL SIGINT"),
        }
    })
}

/// docker's cached Debian base (tests/support/docker.rs), copied into the private store when
/// it is not there or not the same image (`docker save | podman load` keeps the image ID).
fn base_image() -> String {
    let base = docker::base_image();
    let id = docker::docker_ok(&["image", "inspect", "-f", "{{.Id}}", &base]);
    let lock = fs::File::create(Path::new(CACHE_DIR).join("podman.lock"))
        .unwrap_or_else(|e| panic!("{CACHE_DIR}/podman.lock: {e}"));
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock {CACHE_DIR}/podman.lock: {e}"));
    let local = format!("localhost/{base}");
    let have = podman(
        ["image", "inspect", "--format", "{{.Id}}", &local],
        Duration::from_secs(60),
    );
    if have.ok() && id.ends_with(have.stdout.trim()) {
        return local;
    }
    let dir = TempDir::new("podman-base");
    let tar = dir.path().join("base.tar");
    let tar = tar.display().to_string();
    docker::docker(["save", "-o", &tar, &base], Duration::from_secs(600)).expect_ok();
    podman(["load", "-q", "-i", &tar], Duration::from_secs(600)).expect_ok();
    local
}

/// A pod of this test process, removed with its volumes on drop (also when the test panics).
pub struct PodGuard {
    pub name: String,
    volumes: Vec<String>,
    /// The containers whose logs explain a failure.
    containers: Vec<String>,
}

impl PodGuard {
    pub fn new(tag: &str) -> Self {
        Self {
            name: docker::unique(tag),
            volumes: Vec::new(),
            containers: Vec::new(),
        }
    }

    /// The name of the pod's container `name` (`POD-NAME`, as kube play names them), whose
    /// logs go into failure messages.
    pub fn container(&mut self, name: &str) -> String {
        let full = format!("{}-{name}", self.name);
        self.containers.push(full.clone());
        full
    }

    /// Every container's logs, then `podman ps` of the pod: what a failure message needs.
    pub fn explain(&self) -> String {
        let mut s: String = self
            .containers
            .iter()
            .map(|c| format!("--- {c} ---\n{}", logs(c)))
            .collect::<Vec<_>>()
            .join("\n");
        s.push_str(&format!("--- podman ps ---\n{}", self.ps()));
        s
    }

    /// A fresh volume of this pod with its top folder at `mode` (root-owned): 0o777 as the
    /// kubelet's emptyDir, 0o755 as podman's own.
    pub fn volume(&mut self, tag: &str, mode: u32) -> String {
        let name = format!("{}-{tag}", self.name);
        podman_ok(&["volume", "create", &name]);
        self.volumes.push(name.clone());
        let dir = podman_ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", &name]);
        let perm = std::os::unix::fs::PermissionsExt::from_mode(mode);
        fs::set_permissions(&dir, perm).unwrap_or_else(|e| panic!("chmod {dir}: {e}"));
        name
    }

    /// A volume's folder on this machine.
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        PathBuf::from(podman_ok(&[
            "volume",
            "inspect",
            "--format",
            "{{.Mountpoint}}",
            name,
        ]))
    }

    /// Remembers a volume that podman made for the pod (kube play's emptyDir).
    pub fn adopt_volume(&mut self, name: &str) {
        self.volumes.push(name.to_string());
    }

    /// The pod's state: `Running`, `Degraded`, `Exited`...
    pub fn state(&self) -> String {
        podman(
            ["pod", "inspect", "--format", "{{.State}}", &self.name],
            Duration::from_secs(60),
        )
        .stdout
        .trim()
        .to_string()
    }

    /// Waits until the pod has completed: every container, the infra container included, has
    /// exited, the infra container with 0. Panics with everything known after `timeout`.
    pub fn wait_completed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.state();
            if state == "Exited" {
                let infra = podman_ok(&[
                    "pod",
                    "inspect",
                    "--format",
                    "{{.InfraContainerID}}",
                    &self.name,
                ]);
                let code = ended(&infra).code;
                assert_eq!(code, 0, "the infra container\n{}", self.explain());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pod {} not completed within {timeout:?} (state {state:?})\n{}",
                self.name,
                self.explain()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `podman ps` of this pod's containers, for failure messages.
    pub fn ps(&self) -> String {
        let filter = format!("pod={}", self.name);
        let fmt = "{{.Names}} {{.Status}} (exit code {{.ExitCode}})";
        podman(
            ["ps", "-a", "--filter", &filter, "--format", fmt],
            Duration::from_secs(60),
        )
        .stdout
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        let t = Duration::from_secs(120);
        podman(["pod", "rm", "-f", "-t", "0", &self.name], t);
        for v in &self.volumes {
            podman(["volume", "rm", "-f", v], t);
        }
    }
}

/// A container's end as podman saw it: its exit code and when it ended (ns since the epoch;
/// podman takes it from conmon's exit file, to a few ms).
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub code: i32,
    pub finished_ns: i128,
}

/// How `name` ended; panics if it is still running or unknown.
pub fn ended(name: &str) -> Ended {
    let fmt = "{{.State.Status}} {{.State.ExitCode}} {{.State.FinishedAt.UnixNano}}";
    let out = podman_ok(&["inspect", "--format", fmt, name]);
    let fields: Vec<&str> = out.split_whitespace().collect();
    match fields[..] {
        [status, code, ns] if status != "running" => Ended {
            code: code.parse().unwrap_or_else(|_| panic!("{name}: {out}")),
            finished_ns: ns.parse().unwrap_or_else(|_| panic!("{name}: {out}")),
        },
        _ => panic!("container {name} has not ended: {out}"),
    }
}

/// The container's stop signal as podman will send it (a number).
pub fn stop_signal(name: &str) -> String {
    podman_ok(&["inspect", "--format", "{{.Config.StopSignal}}", name])
}

/// A container's stdout and stderr.
pub fn logs(name: &str) -> String {
    let done = podman(["logs", name], Duration::from_secs(60));
    format!("{}{}", done.stdout, done.stderr)
}

/// Polls the container's logs until they contain `needle`.
pub fn wait_for_log(name: &str, needle: &str, timeout: Duration, explain: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !logs(name).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "container {name}: no {needle:?} in its logs within {timeout:?}\n{}",
            explain()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// This moment, as an `Ended` (code 0) to measure from.
pub fn now() -> Ended {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    Ended {
        code: 0,
        finished_ns: ns,
    }
}

/// The milliseconds from one container's end to another's (negative if `later` ended first).
pub fn ms_between(earlier: Ended, later: Ended) -> f64 {
    (later.finished_ns - earlier.finished_ns) as f64 / 1e6
}

/// A Kubernetes example read as JSON (YAML is parsed by python3-yaml: no YAML crate for tests).
pub fn example_json(file: &str) -> Value {
    let path = docker::repo_root().join("examples").join(file);
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
    ])
    .arg(&path);
    let done = bounded(cmd, Duration::from_secs(60));
    serde_json::from_str(done.expect_ok())
        .unwrap_or_else(|e| panic!("{}: not one YAML document: {e}", path.display()))
}

/// The named container of a pod spec (`containers` or `initContainers`).
pub fn container<'a>(spec: &'a Value, name: &str) -> &'a Value {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|list| spec[list].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name:?} in {spec}"))
}

/// A JSON list of strings as a Vec.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_string()
        })
        .collect()
}

/// A Job example's pod, as podman kube play takes it: the Job's pod template as a Pod (podman
/// refuses `kind: Job`), named after the guard, init containers kept, local images (never
/// pulled), and each volume a fresh one of the guard.
pub struct KubePod {
    pub pod: Value,
    dir: TempDir,
}

impl KubePod {
    /// `volume_mode`: `Some(mode)` makes each volume beforehand with that mode (kube play then
    /// uses it as the emptyDir); `None` lets podman make it (root:root 0755).
    pub fn from_job(file: &str, guard: &mut PodGuard, volume_mode: Option<u32>) -> Self {
        let job = example_json(file);
        assert_eq!(job["kind"], "Job", "{file}");
        let mut spec = job["spec"]["template"]["spec"].clone();
        assert!(spec.is_object(), "{file}: no spec.template.spec");
        let images = images();
        let mut renamed = Vec::new();
        for v in spec["volumes"].as_array_mut().into_iter().flatten() {
            let old = v["name"].as_str().unwrap_or_default().to_string();
            let new = match volume_mode {
                Some(mode) => guard.volume(&old, mode),
                None => {
                    let name = format!("{}-{old}", guard.name);
                    guard.adopt_volume(&name);
                    name
                }
            };
            v["name"] = json!(new);
            renamed.push((old, new));
        }
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array_mut().into_iter().flatten() {
                let reference = c["image"].as_str().unwrap_or_default().to_string();
                let local = images
                    .for_reference(&reference)
                    .unwrap_or_else(|| panic!("{file}: no local image for {reference:?}"));
                c["image"] = json!(local);
                c["imagePullPolicy"] = json!("Never");
                for m in c["volumeMounts"].as_array_mut().into_iter().flatten() {
                    if let Some((_, new)) = renamed.iter().find(|(old, _)| m["name"] == *old) {
                        m["name"] = json!(new);
                    }
                }
            }
        }
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": guard.name, "annotations": {KEEP_INIT: "always"}},
            "spec": spec,
        });
        Self {
            pod,
            dir: TempDir::new("kube"),
        }
    }

    /// The container `name` (a mutable JSON object).
    pub fn container_mut(&mut self, name: &str) -> &mut Value {
        let spec = &mut self.pod["spec"];
        let found = spec
            .as_object_mut()
            .into_iter()
            .flat_map(|s| s.iter_mut())
            .filter(|(k, _)| *k == "initContainers" || *k == "containers")
            .filter_map(|(_, list)| list.as_array_mut())
            .flatten()
            .find(|c| c["name"] == name);
        found.unwrap_or_else(|| panic!("no container {name:?}"))
    }

    /// Replaces what follows `--` in the container's podvisor command: the step itself.
    pub fn replace_after_dashes(&mut self, name: &str, tail: &[&str]) {
        let c = self.container_mut(name);
        let mut command = strings(&c["command"]);
        let at = command
            .iter()
            .position(|a| a == "--")
            .unwrap_or_else(|| panic!("no -- in {command:?}"));
        command.truncate(at + 1);
        command.extend(tail.iter().map(|s| s.to_string()));
        c["command"] = json!(command);
    }

    /// Inserts podvisor flags right after the executable of the container's command.
    pub fn add_flags(&mut self, name: &str, flags: &[&str]) {
        let c = self.container_mut(name);
        let mut command = strings(&c["command"]);
        for (i, f) in flags.iter().enumerate() {
            command.insert(1 + i, f.to_string());
        }
        c["command"] = json!(command);
    }

    /// The containers' names as podman gives them (`POD-NAME`), init containers first.
    pub fn container_names(&self) -> Vec<String> {
        let pod = self.pod["metadata"]["name"].as_str().unwrap_or_default();
        ["initContainers", "containers"]
            .iter()
            .filter_map(|list| self.pod["spec"][list].as_array())
            .flatten()
            .map(|c| format!("{pod}-{}", c["name"].as_str().unwrap_or_default()))
            .collect()
    }

    /// `podman kube play --network none` of the pod. podman starts the init containers one
    /// after another, then every other container at once, in no fixed order.
    pub fn play(&self) {
        self.kube_play(&[]);
    }

    /// The pod created by `podman kube play --start=false`, then started as the kubelet does:
    /// each init container run to its end (exit 0), then the other containers started one
    /// after another in the order listed.
    pub fn play_in_order(&self) {
        self.kube_play(&["--start=false"]);
        let pod = self.pod["metadata"]["name"].as_str().unwrap_or_default();
        for list in ["initContainers", "containers"] {
            for c in self.pod["spec"][list].as_array().into_iter().flatten() {
                let name = format!("{pod}-{}", c["name"].as_str().unwrap_or_default());
                podman_ok(&["start", &name]);
                if list == "initContainers" {
                    let code = podman_ok(&["wait", &name]);
                    assert_eq!(code, "0", "init container {name}\n{}", logs(&name));
                }
            }
        }
    }

    /// As `play`, on a thread of its own: join the handle for `podman kube play`'s result.
    pub fn play_in_background(&self) -> std::thread::JoinHandle<Done> {
        let args = self.kube_play_args(&[]);
        setup();
        std::thread::spawn(move || podman(&args, Duration::from_secs(180)))
    }

    fn kube_play(&self, flags: &[&str]) {
        let done = podman(self.kube_play_args(flags), Duration::from_secs(180));
        assert!(
            done.ok(),
            "\n{}\n--- the pod ---\n{:#}",
            done.explain(),
            self.pod
        );
    }

    /// The pod written to a file, and `kube play --network none FLAGS FILE`.
    fn kube_play_args(&self, flags: &[&str]) -> Vec<String> {
        let file = self.dir.path().join("pod.json");
        fs::write(&file, self.pod.to_string())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut args: Vec<String> = ["kube", "play", "--network", "none"]
            .iter()
            .chain(flags)
            .map(|s| s.to_string())
            .collect();
        args.push(file.display().to_string());
        args
    }
}
