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
    /// Another podvisor build measured beside it in rows 1 and 4 (before/after a change).
    pub baseline: Option<String>,
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
    /// Row 4: from the child's ready byte to the signal (`--signal-delay MS`, default 10).
    pub signal_delay: std::time::Duration,
}

impl Ctx {
    /// /dev/null as stdin, stdout and stderr, and no fd 3: a tool run only for its timing.
    pub fn null_io(&self) -> crate::proc::Io<'_> {
        crate::proc::Io {
            stdin: &self.null,
            stdout: &self.null,
            stderr: &self.null,
            fd3: None,
        }
    }

    /// Runs for the rows whose medians differ by less than their noise at 20 runs (1 and 4):
    /// ten times as many, at least 200; a few in quick mode.
    pub fn many_runs(&self) -> usize {
        if self.quick {
            self.runs.max(5)
        } else {
            (self.runs * 10).max(200)
        }
    }

    /// The `--baseline` build, if it has `flag` (its `--help` names it): a build from before a
    /// row's feature has no line in that row.
    pub fn baseline_with(&self, flag: &str) -> Option<String> {
        let b = self.baseline.as_ref()?;
        let has = std::process::Command::new(b)
            .arg("--help")
            .output()
            .is_ok_and(|help| String::from_utf8_lossy(&help.stdout).contains(flag));
        if !has {
            eprintln!("bench: the baseline's --help names no {flag}; its line is left out");
        }
        has.then(|| b.clone())
    }

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
    /// Share of the machine's CPU time that other processes used while the row ran (negative
    /// when the row runs nothing).
    pub busy: f64,
}

impl Section {
    /// The line of `tool`.
    pub fn line(&self, tool: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.tool == tool)
    }
}

/// `runs` rounds of the indices `0..n`, each round in a new random order: a busy moment of the
/// machine hits every tool alike, and no tool always follows the same one. A fixed rotation
/// did: what ran just before moved a tool's median by 10% (row 1: the same podvisor build
/// 1.377 ms in one slot, 1.237 ms in another, same run), which is more than the tools differ.
pub fn rounds(runs: usize, n: usize) -> impl Iterator<Item = Vec<usize>> {
    let mut rng = Rng::new(crate::proc::now_ns());
    let mut order: Vec<usize> = (0..n).collect();
    (0..runs).map(move |_| {
        rng.shuffle(&mut order);
        order.clone()
    })
}

/// Runs `once` `runs` times for every variant, all variants in each round ([`rounds`]).
pub fn alternate<V>(
    runs: usize,
    variants: &[(String, V)],
    mut once: impl FnMut(&V) -> Result<f64, String>,
) -> Vec<Line> {
    let mut lines: Vec<Line> = variants.iter().map(|(n, _)| Line::new(n.clone())).collect();
    for order in rounds(runs, variants.len()) {
        for i in order {
            lines[i].record(once(&variants[i].1));
        }
    }
    lines
}

/// How busy the machine was with other work (other helpers' builds, say) while a row ran:
/// the busy share of all CPUs from /proc/stat, less the CPU time of the bench itself and of
/// every process it started and reaped.
pub struct CpuMeter {
    busy: u64,
    total: u64,
    own: f64,
}

impl CpuMeter {
    /// Reads /proc/stat and our own usage now.
    pub fn start() -> Self {
        let (busy, total) = cpu_ticks();
        Self {
            busy,
            total,
            own: own_cpu_secs(),
        }
    }

    /// The share of all CPUs, 0..1, that other processes used since `start`.
    pub fn busy(&self) -> f64 {
        let (busy, total) = cpu_ticks();
        let dt = total.saturating_sub(self.total) as f64 / ticks_per_sec();
        if dt <= 0.0 {
            return 0.0;
        }
        let all = busy.saturating_sub(self.busy) as f64 / ticks_per_sec();
        let own = own_cpu_secs() - self.own;
        ((all - own) / dt).clamp(0.0, 1.0)
    }
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// User + system seconds of this process and its reaped descendants.
fn own_cpu_secs() -> f64 {
    let mut sum = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage writes into a local struct.
        let mut ru = unsafe { std::mem::zeroed::<libc::rusage>() };
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            sum += tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    sum
}

/// (busy, total) jiffies of all CPUs.
fn cpu_ticks() -> (u64, u64) {
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
