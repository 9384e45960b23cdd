//! The runner's CPU cgroup, and the runner in one of its own for a while, as a pod's processes
//! are in their container's. The kernel's per-session autogroups apply only in the root CPU
//! cgroup, and row 4 falls into another regime with them than without (bench/notes.md, sixth
//! pass).

use std::path::{Path, PathBuf};

/// The runner's CPU cgroup: the mount of v1's cpu hierarchy (`cpu` alone or with others, as
/// `cpu,cpuacct`) or else of v2's unified one, the path under it, and whether it is v2.
fn current() -> Result<(PathBuf, String, bool), String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    match parse(&cgroups).ok_or("no CPU cgroup in /proc/self/cgroup")? {
        Hierarchy::V1 { controllers, path } => {
            let named = Path::new("/sys/fs/cgroup").join(controllers);
            let mount = if named.is_dir() {
                named
            } else {
                PathBuf::from("/sys/fs/cgroup/cpu")
            };
            Ok((mount, path.to_owned(), false))
        }
        Hierarchy::V2 { path } => Ok((PathBuf::from("/sys/fs/cgroup"), path.to_owned(), true)),
    }
}

/// Where `/proc/self/cgroup` puts a process for its CPU.
#[derive(Debug, PartialEq)]
enum Hierarchy<'a> {
    /// A v1 hierarchy with the cpu controller, mounted (by convention) under its controllers'
    /// names.
    V1 { controllers: &'a str, path: &'a str },
    /// The unified hierarchy, when no v1 one has the cpu controller.
    V2 { path: &'a str },
}

/// The CPU hierarchy named in `cgroups` (the text of `/proc/PID/cgroup`: `ID:CONTROLLERS:PATH`
/// lines, v2's with ID 0 and no controllers).
fn parse(cgroups: &str) -> Option<Hierarchy<'_>> {
    let mut unified = None;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "cpu") {
            return Some(Hierarchy::V1 { controllers, path });
        }
        if id == "0" && controllers.is_empty() {
            unified = Some(Hierarchy::V2 { path });
        }
    }
    unified
}

/// The runner's CPU cgroup as `/proc/self/cgroup` names it, for the report.
pub fn name() -> String {
    current().map_or_else(|_| "?".into(), |(_, path, _)| path)
}

/// The whole runner process moved into a new CPU cgroup; moved back and the cgroup removed on
/// drop. Whatever the runner starts meanwhile starts there too.
pub struct OwnCgroup {
    dir: PathBuf,
    back: PathBuf,
}

impl OwnCgroup {
    /// A new CPU cgroup beside the root's other children. The reason when there can be none
    /// (not root; on v2, a root that does not hand the cpu controller down).
    pub fn enter() -> Result<Self, String> {
        let (mount, current, v2) = current()?;
        if v2 {
            let handed =
                std::fs::read_to_string(mount.join("cgroup.subtree_control")).unwrap_or_default();
            if !handed.split_whitespace().any(|c| c == "cpu") {
                return Err("the root cgroup does not hand the cpu controller down".into());
            }
        }
        let back = mount.join(current.trim_start_matches('/'));
        let dir = mount.join(format!("podvisor-bench-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let own = Self { dir, back };
        // On failure `own` is dropped: the runner stays where it was and the folder goes.
        move_to(&own.dir)?;
        Ok(own)
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        if let Err(e) = move_to(&self.back) {
            eprintln!("bench: moving back: {e}");
        }
        // Empty once its last process is reaped, which the rows wait for.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Moves the runner (every thread of it) into the cgroup `dir`.
fn move_to(dir: &Path) -> Result<(), String> {
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .map_err(|e| format!("{}: {e}", procs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cpu_hierarchy() {
        // This VM: v1, cpu on its own, beside a v2 hierarchy with no controllers.
        let v1 = "4:memory:/a\n2:cpuacct:/\n1:cpu:/pvbench\n0::/\n";
        assert_eq!(
            parse(v1),
            Some(Hierarchy::V1 {
                controllers: "cpu",
                path: "/pvbench"
            })
        );
        // systemd's v1: cpu co-mounted with cpuacct.
        let comounted = "5:cpu,cpuacct:/system.slice/x.service\n1:name=systemd:/\n";
        assert_eq!(
            parse(comounted),
            Some(Hierarchy::V1 {
                controllers: "cpu,cpuacct",
                path: "/system.slice/x.service"
            })
        );
        // cpuset is not cpu.
        assert_eq!(parse("3:cpuset:/\n"), None);
        // v2 only.
        assert_eq!(
            parse("0::/user.slice/user-0.slice/session-1.scope\n"),
            Some(Hierarchy::V2 {
                path: "/user.slice/user-0.slice/session-1.scope"
            })
        );
        assert_eq!(parse(""), None);
    }
}
