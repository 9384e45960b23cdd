//! A private cgroup with small limits (memory, pids), for the exhausted-resource and OOM tests:
//! cgroup v2 where it is mounted, else the v1 controller's own hierarchy.

use std::ffi::CString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::libc;

/// One controller's cgroup, removed on drop (once its processes are gone).
pub struct Cgroup {
    pub dir: PathBuf,
    pub v2: bool,
}

impl Cgroup {
    /// A fresh cgroup with `controller` (`memory` or `pids`), or None (with the reason printed)
    /// where this machine cannot make one.
    pub fn new(controller: &str, tag: &str) -> Option<Cgroup> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("podvisor-test-{tag}-{}-{n}", std::process::id());
        let root = Path::new("/sys/fs/cgroup");
        let (base, v2) = if root.join("cgroup.controllers").exists() {
            let controllers = match fs::read_to_string(root.join("cgroup.controllers")) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("skipped: cannot read cgroup.controllers: {e}");
                    return None;
                }
            };
            if !controllers.split_whitespace().any(|c| c == controller) {
                eprintln!("skipped: cgroup v2 without the {controller} controller");
                return None;
            }
            let _ = fs::write(
                root.join("cgroup.subtree_control"),
                format!("+{controller}"),
            );
            (root.to_path_buf(), true)
        } else if root.join(controller).join("cgroup.procs").exists() {
            (root.join(controller), false)
        } else {
            eprintln!("skipped: no {controller} cgroup controller mounted");
            return None;
        };
        let dir = base.join(name);
        if let Err(e) = fs::create_dir(&dir) {
            eprintln!("skipped: cannot create {}: {e}", dir.display());
            return None;
        }
        Some(Cgroup { dir, v2 })
    }

    /// Writes a control file (`memory.max` / `memory.limit_in_bytes`, `pids.max`).
    pub fn set(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        fs::write(&path, value).unwrap_or_else(|e| panic!("write {value} to {path:?}: {e}"));
    }

    /// The memory limit, in the file this cgroup version has.
    pub fn limit_memory(&self, bytes: u64) {
        if self.v2 {
            self.set("memory.max", &bytes.to_string());
            let _ = fs::write(self.dir.join("memory.swap.max"), "0");
        } else {
            self.set("memory.limit_in_bytes", &bytes.to_string());
        }
    }

    /// How many OOM kills happened in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Makes `cmd` start inside this cgroup (it moves itself in between fork and exec).
    pub fn enter(&self, cmd: &mut Command) {
        let procs = CString::new(self.dir.join("cgroup.procs").as_os_str().as_encoded_bytes())
            .expect("no NUL in a cgroup path");
        // SAFETY: open/write/close only, on data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // "0" is the writing process itself.
                let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if ok {
                    Ok(())
                } else {
                    Err(err)
                }
            });
        }
    }

    /// Runs `c` inside this cgroup, to its end.
    pub fn run(&self, mut c: super::TestCommand) -> super::Run {
        self.enter(c.command());
        c.run()
    }

    /// The pids still in the cgroup.
    pub fn procs(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for pid in self.procs() {
            // SAFETY: kill(2) on a pid that is in our private cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Whether this process has CAP_SYS_RESOURCE (capability 24: what lowering an oom_score_adj
/// needs).
pub fn has_sys_resource() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}
