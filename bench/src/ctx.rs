//! What every row needs: the tools, the mode, and the alternation of variants.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::stats::{Line, Rng, Unit};

/// The peers measured against podvisor, by their Debian command names.
pub const PEERS: [&str; 5] = [
    "tini",
    "tini-static",
    "dumb-init",
    "catatonit",
    "wait-for-it",
];

/// The run's settings and tools.
pub struct Ctx {
    /// CI mode: a few runs per row and shorter windows, only to prove the benchmark works.
    pub quick: bool,
    /// Runs per variant in each row.
    pub runs: usize,
    /// The podvisor binary measured.
    pub podvisor: String,
    /// The stamp child (see src/bin/stamp.rs).
    pub stamp: String,
    /// This binary, which doubles as the sigwait child.
    pub runner: String,
    /// Peers found on PATH, by name.
    pub peers: BTreeMap<&'static str, String>,
    /// Programs the rows use besides the tools (sh, sleep, strace, true).
    pub sh: String,
    pub sleep: String,
    pub strace: Option<String>,
    /// /dev/null for the tools' stdin and log lines.
    pub null: File,
    /// Random delays.
    pub rng: Rng,
    /// A scratch folder, removed at the end.
    pub tmp: PathBuf,
}

impl Ctx {
    /// A peer's path, if it is installed.
    pub fn peer(&self, name: &str) -> Option<&str> {
        self.peers.get(name).map(String::as_str)
    }

    /// A fresh scratch folder for one run.
    pub fn scratch(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self.tmp.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// A random delay in [lo, hi) milliseconds, as nanoseconds.
    pub fn delay_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.between(lo * 1_000_000, hi * 1_000_000)
    }
}

/// Finds `name` on PATH.
pub fn which(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .map(|p| p.to_string_lossy().into_owned())
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A result table: one row of the benchmark (or one metric of it), one line per tool.
#[derive(Debug, Clone)]
pub struct Section {
    /// Short key used by the budgets, e.g. `overhead`.
    pub key: &'static str,
    /// The heading.
    pub title: String,
    /// How it is measured, one paragraph.
    pub how: String,
    /// The unit of every sample.
    pub unit: Unit,
    /// One line per tool; the first is podvisor's reference line for the ratios.
    pub lines: Vec<Line>,
    /// Share of the machine's CPU time that was busy while the row ran (all processes).
    pub busy: f64,
}

impl Section {
    /// The line of `tool`.
    pub fn line(&self, tool: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.tool == tool)
    }
}

/// Runs `once` `runs` times for every variant, alternating variants within each round (and
/// rotating who goes first), so that a busy moment of the machine hits every tool alike.
pub fn alternate<V>(
    runs: usize,
    variants: &[(String, V)],
    mut once: impl FnMut(&V) -> Result<f64, String>,
) -> Vec<Line> {
    let mut lines: Vec<Line> = variants.iter().map(|(n, _)| Line::new(n.clone())).collect();
    let n = variants.len();
    for round in 0..runs {
        for k in 0..n {
            let i = (round + k) % n;
            lines[i].record(once(&variants[i].1));
        }
    }
    lines
}

/// Busy share of all CPUs between two readings of /proc/stat.
pub struct CpuMeter {
    busy: u64,
    total: u64,
}

impl CpuMeter {
    /// Reads /proc/stat now.
    pub fn start() -> Self {
        let (busy, total) = cpu_times();
        Self { busy, total }
    }

    /// The busy share since `start`, 0..1.
    pub fn busy(&self) -> f64 {
        let (busy, total) = cpu_times();
        let dt = total.saturating_sub(self.total);
        if dt == 0 {
            return 0.0;
        }
        busy.saturating_sub(self.busy) as f64 / dt as f64
    }
}

fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}
