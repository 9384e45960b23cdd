//! The runner in a CPU cgroup of its own for a while, as a pod's processes are in their
//! container's. The kernel's per-session autogroups apply only in the root CPU cgroup, and row 4
//! falls into another regime with them than without (bench/notes.md, sixth pass).

use std::path::PathBuf;

/// The whole runner process moved into a new CPU cgroup; moved back and the cgroup removed on
/// drop. Whatever the runner starts meanwhile starts there too.
pub struct OwnCgroup {
    dir: PathBuf,
    back: PathBuf,
}

impl OwnCgroup {
    /// A CPU cgroup beside the root one's other children: v1's cpu hierarchy, or v2's unified one
    /// when the root hands the cpu controller down. The reason when there is none (not root, no
    /// controller).
    pub fn enter() -> Result<Self, String> {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let v1 = cgroups
            .lines()
            .find_map(|l| l.split_once(":cpu:").map(|(_, p)| p.to_owned()));
        let (mount, current) = match v1 {
            Some(path) => (PathBuf::from("/sys/fs/cgroup/cpu"), path),
            None => {
                let path = cgroups
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .ok_or("no cpu cgroup in /proc/self/cgroup")?;
                let handed = std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
                    .unwrap_or_default();
                if !handed.split_whitespace().any(|c| c == "cpu") {
                    return Err("the root cgroup does not hand the cpu controller down".into());
                }
                (PathBuf::from("/sys/fs/cgroup"), path.to_owned())
            }
        };
        let back = mount.join(current.trim_start_matches('/'));
        let dir = mount.join(format!("podvisor-bench-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let moved = Self { dir, back };
        moved.put_in(&moved.dir.clone())?;
        Ok(moved)
    }

    fn put_in(&self, dir: &std::path::Path) -> Result<(), String> {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, std::process::id().to_string())
            .map_err(|e| format!("{}: {e}", procs.display()))
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        let back = self.back.clone();
        if let Err(e) = self.put_in(&back) {
            eprintln!("bench: moving back: {e}");
        }
        // Empty once its last child is reaped, which the rows wait for.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
