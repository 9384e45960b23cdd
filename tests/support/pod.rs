//! A pod on this machine: a network namespace as the pod's network (so `localhost` is shared),
//! a temp folder as `/workspace`, and each container as its own PID namespace joined to that
//! network (`ip netns exec NS unshare --pid --fork --mount-proc podvisor ...`), so podvisor is
//! PID 1 as in Kubernetes. Everything is torn down on drop, also when a test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::chaos::first_child;
use super::{podvisor_bin, poll_until, TempDir};

/// The port nginx listens on inside every pod (each pod has its own network).
pub const PORT: u16 = 8080;

/// One pod: its network namespace, its folders and the log files of its containers.
pub struct Pod {
    /// Network namespace name, `pv-<pid>-<n>`: unique among tests running in parallel.
    pub ns: String,
    /// Holds the workspace and everything else of the pod; removed on drop.
    dir: TempDir,
    /// The shared volume (`/workspace`).
    pub workspace: PathBuf,
}

/// A running container: the `unshare` process whose child is podvisor (PID 1 inside).
pub struct Container {
    /// Name for messages.
    pub name: String,
    /// The command line, for messages.
    pub shown: String,
    /// `unshare`; it returns podvisor's exit status (and is killed, with its child, on drop).
    child: Child,
    /// When it was started.
    pub started: Instant,
    /// Files holding its stdout and stderr.
    out: PathBuf,
    err: PathBuf,
    /// Its status once collected.
    status: Option<ExitStatus>,
    /// When it was seen to end.
    pub ended: Option<Instant>,
}

impl Pod {
    /// A fresh pod with its loopback up.
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let ns = format!(
            "pv-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        run_ok(Command::new("ip").args(["netns", "add", &ns]));
        let dir = TempDir::new(&format!("pod-{tag}"));
        let workspace = dir.path().join("workspace");
        // From here on, drop deletes the namespace even if a step below fails.
        let pod = Self { ns, dir, workspace };
        run_ok(Command::new("ip").args(["-n", &pod.ns, "link", "set", "lo", "up"]));
        fs::create_dir_all(&pod.workspace).expect("create workspace");
        pod
    }

    /// A path in the workspace, as a string for command lines.
    pub fn ws(&self, name: &str) -> String {
        self.workspace.join(name).display().to_string()
    }

    /// Starts a container whose PID 1 is `podvisor ARGS`.
    pub fn start(&self, name: &str, args: &[&str]) -> Container {
        self.start_under(&[], name, args)
    }

    /// Starts a container whose PID 1 is `WRAPPER... podvisor ARGS`, a wrapper being a helper
    /// that changes what the kernel allows and then execs the rest (tests/support/bin/noflock).
    pub fn start_under(&self, wrapper: &[&Path], name: &str, args: &[&str]) -> Container {
        let logs = self.dir.path().join("logs");
        fs::create_dir_all(&logs).expect("create logs folder");
        let out = logs.join(format!("{name}.out"));
        let err = logs.join(format!("{name}.err"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .args(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"])
            .args(wrapper)
            .arg(podvisor_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("create stdout file"))
            .stderr(fs::File::create(&err).expect("create stderr file"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PODVISOR_") {
                cmd.env_remove(k);
            }
        }
        let wrapped: String = wrapper
            .iter()
            .map(|w| format!("{} ", w.display()))
            .collect();
        let shown = format!("[{name}] {wrapped}podvisor {}", args.join(" "));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        Container {
            name: name.into(),
            shown,
            child,
            started: Instant::now(),
            out,
            err,
            status: None,
            ended: None,
        }
    }

    /// nginx's command line, serving `hello from the sidecar` on 127.0.0.1:PORT, with its own
    /// prefix (config, pid file, logs) outside the workspace.
    pub fn nginx(&self) -> Vec<String> {
        let prefix = self.dir.path().join("nginx");
        fs::create_dir_all(prefix.join("html")).expect("create nginx prefix");
        fs::write(prefix.join("html/index.html"), "hello from the sidecar\n").expect("write page");
        let p = prefix.display();
        let conf = format!(
            "worker_processes 1;\n\
             pid {p}/nginx.pid;\n\
             error_log {p}/error.log notice;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log {p}/access.log;\n\
               client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
               fastcgi_temp_path {p}/fastcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
               server {{ listen 127.0.0.1:{PORT}; location / {{ root {p}/html; }} }}\n\
             }}\n"
        );
        fs::write(prefix.join("nginx.conf"), conf).expect("write nginx.conf");
        // The workers run as nobody and must read the page.
        let _ = Command::new("chmod")
            .arg("a+rx")
            .arg(self.dir.path())
            .status();
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&prefix)
            .status();
        vec![
            "nginx".into(),
            "-p".into(),
            p.to_string(),
            "-c".into(),
            format!("{p}/nginx.conf"),
            "-g".into(),
            "daemon off;".into(),
        ]
    }

    /// nginx's error log, where its signals and shutdown are recorded.
    pub fn nginx_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("nginx/error.log")).unwrap_or_default()
    }

    /// The pids still in the pod's network: none once every container has ended.
    pub fn pids(&self) -> Vec<i32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .expect("run ip netns pids");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Asserts that nothing of the pod runs any more: no process in its network namespace and
    /// none whose command line names its folder.
    pub fn assert_nothing_left(&self, containers: &[&Container]) {
        let dir = self.dir.path().display().to_string();
        let mine = std::process::id() as i32;
        let left = || {
            let mut left: Vec<String> = self
                .pids()
                .into_iter()
                .map(|p| format!("{p} (in netns): {}", cmdline(p)))
                .collect();
            if let Ok(procs) = fs::read_dir("/proc") {
                for pid in procs
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                    .filter(|&p| p != mine)
                {
                    let line = cmdline(pid);
                    if line.contains(&dir) {
                        left.push(format!("{pid}: {line}"));
                    }
                }
            }
            left
        };
        // A PID namespace is torn down as its PID 1 ends; give the kernel a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut still = left();
        while !still.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            still = left();
        }
        assert!(
            still.is_empty(),
            "processes left running: {still:?}\n{}",
            explain(containers)
        );
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: kill(2) on a pid listed in our own test namespace.
            unsafe { nix::libc::kill(pid, nix::libc::SIGKILL) };
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

impl Container {
    /// podvisor's pid on the host (the child of `unshare`), to signal it as the kubelet would.
    pub fn podvisor_pid(&self) -> i32 {
        poll_until(Duration::from_secs(5), "podvisor to be forked", || {
            self.podvisor_pid_now()
        })
    }

    /// Sends `signo` to podvisor (PID 1 of the container).
    pub fn signal(&self, signo: i32) {
        // SAFETY: kill(2) on our container's podvisor.
        unsafe { nix::libc::kill(self.podvisor_pid(), signo) };
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.collect();
        self.status.is_none()
    }

    fn collect(&mut self) {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                self.ended = Some(Instant::now());
            }
        }
    }

    /// Waits for the end (at most `timeout`): the status as the runtime sees it (a podvisor
    /// killed by a signal included), None if it still runs.
    pub fn wait_status(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.status
    }

    /// podvisor's host pid right now, if it runs (no waiting).
    pub fn podvisor_pid_now(&self) -> Option<i32> {
        first_child(self.child.id() as i32)
    }

    /// The host pid of podvisor's direct child (the step), if it has one now.
    pub fn step_pid(&self) -> Option<i32> {
        first_child(self.podvisor_pid_now()?)
    }

    /// Waits for the end (at most `timeout`) and returns the exit code.
    pub fn wait(&mut self, timeout: Duration, others: &[&Container]) -> i32 {
        let deadline = Instant::now() + timeout;
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let status = self.status.unwrap_or_else(|| {
            panic!(
                "{} still runs after {timeout:?}\n{}\n{}",
                self.name,
                self.explain(),
                explain(others)
            )
        });
        status.code().unwrap_or_else(|| {
            panic!(
                "{} ended by a signal ({status:?})\n{}",
                self.name,
                self.explain()
            )
        })
    }

    /// Waits for the end and asserts the exit code; returns the time from start to end.
    pub fn assert_exit(&mut self, code: i32, timeout: Duration, others: &[&Container]) -> Duration {
        let got = self.wait(timeout, others);
        assert_eq!(
            got,
            code,
            "{} exit code\n{}\n{}",
            self.name,
            self.explain(),
            explain(others)
        );
        self.ended.map_or(Duration::ZERO, |e| e - self.started)
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits until stderr (podvisor's log) or stdout contains `needle`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) {
        let what = format!("{needle:?} from {}", self.name);
        let deadline = Instant::now() + timeout;
        while !(self.stderr().contains(needle) || self.stdout().contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.explain()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything needed to understand a failure.
    pub fn explain(&self) -> String {
        format!(
            "--- {} ---\ncommand: {}\nstatus: {:?} after {:?}\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.shown,
            self.status,
            self.ended.map(|e| e - self.started),
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // --kill-child: SIGKILL to unshare takes podvisor, PID 1, and with it the namespace.
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every container's story.
pub fn explain(containers: &[&Container]) -> String {
    containers
        .iter()
        .map(|c| c.explain())
        .collect::<Vec<_>>()
        .join("\n")
}

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run a setup command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads a marker as JSON (panics with the content when it is not).
pub fn read_marker(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read marker {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("marker {} is not JSON ({e}): {text:?}", path.display()))
}
