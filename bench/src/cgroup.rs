//! The runner's CPU cgroup, and the runner in one of its own for a while, as a pod's processes
//! are in their container's. The kernel's per-session autogroups apply only in the root CPU
//! cgroup, and row 4 falls into another regime with them than without (bench/notes.md, sixth
//! pass).

use std::path::{Path, PathBuf};

/// The text of `/proc/self/cgroup`.
fn own() -> Result<String, String> {
    std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))
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

impl Hierarchy<'_> {
    /// The cgroup's path under its hierarchy's mount.
    fn path(&self) -> &str {
        match self {
            Hierarchy::V1 { path, .. } | Hierarchy::V2 { path } => path,
        }
    }

    /// Where the hierarchy is mounted: v1's under its controllers' names (`cpu,cpuacct`), or
    /// `cpu` where only the conventional link is there.
    fn mount(&self) -> PathBuf {
        match self {
            Hierarchy::V1 { controllers, .. } => {
                let named = Path::new("/sys/fs/cgroup").join(controllers);
                if named.is_dir() {
                    named
                } else {
                    PathBuf::from("/sys/fs/cgroup/cpu")
                }
            }
            Hierarchy::V2 { .. } => PathBuf::from("/sys/fs/cgroup"),
        }
    }
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
    own()
        .ok()
        .and_then(|cgroups| parse(&cgroups).map(|h| h.path().to_owned()))
        .unwrap_or_else(|| "?".into())
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
        let cgroups = own()?;
        let hierarchy = parse(&cgroups).ok_or("no CPU cgroup in /proc/self/cgroup")?;
        let mount = hierarchy.mount();
        if let Hierarchy::V2 { .. } = hierarchy {
            let handed =
                std::fs::read_to_string(mount.join("cgroup.subtree_control")).unwrap_or_default();
            if !handed.split_whitespace().any(|c| c == "cpu") {
                return Err("the root cgroup does not hand the cpu controller down".into());
            }
        }
        let back = mount.join(hierarchy.path().trim_start_matches('/'));
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

    /// On the real hierarchy: the runner (here the test process) is in a new cgroup while
    /// `OwnCgroup` lives, and back where it was, with that cgroup gone, after. Without root
    /// there is nothing to move; a v2 root that keeps the cpu controller to itself refuses.
    #[test]
    fn enters_a_cgroup_of_its_own_and_leaves_it() {
        // SAFETY: geteuid reads a number.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let before = name();
        let own = match OwnCgroup::enter() {
            Ok(own) => own,
            Err(e) if e.contains("does not hand the cpu controller down") => return,
            Err(e) => panic!("as root: {e}"),
        };
        assert_eq!(name(), format!("/podvisor-bench-{}", std::process::id()));
        assert!(own.dir.is_dir(), "{}", own.dir.display());
        let dir = own.dir.clone();
        drop(own);
        assert_eq!(name(), before);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
