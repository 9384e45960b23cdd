//! The podvisor benchmark runner: measures podvisor and its peers side by side in one run and
//! writes the report (docs/benchmarks.md). `bench/run` builds everything and calls it.
//!
//! Usage: podvisor-bench --podvisor PATH [--quick] [--runs N] [--only 1,4] [--out FILE]
//!        [--notes FILE] [--baseline OTHER-PODVISOR] [--busy-limit PCT] [--raw FILE]
//!
//! A row is run again (up to three times in all) while other work used more than PCT% (default
//! 25) of the machine's CPU time during it; the quietest attempt is kept.
//! Also the sigwait child of row 4 (podvisor-bench sigwait), its spinners (podvisor-bench spin
//! CPU) and the floor loop of row 10 (podvisor-bench floor postgres|redis|mysql PORT STAMP).

mod cgroup;
mod ctx;
mod idle;
mod load;
mod logcopy;
mod overhead;
mod proc;
mod protocol;
mod ready;
mod report;
mod sidecar;
mod signal;
mod size;
mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use ctx::{Ctx, Section, PEERS};

/// Command-line settings.
struct Args {
    quick: bool,
    runs: Option<usize>,
    only: Option<Vec<u8>>,
    podvisor: PathBuf,
    baseline: Option<PathBuf>,
    out: Option<PathBuf>,
    notes: Option<PathBuf>,
    raw: Option<PathBuf>,
    busy_limit: f64,
    signal_delay: std::time::Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        runs: None,
        only: None,
        podvisor: PathBuf::new(),
        baseline: None,
        out: None,
        notes: None,
        raw: None,
        busy_limit: 0.25,
        signal_delay: std::time::Duration::from_millis(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => args.quick = true,
            "--runs" => {
                let v = value()?;
                args.runs = Some(v.parse().map_err(|_| format!("--runs {v}: not a number"))?);
            }
            "--only" => {
                let v = value()?;
                let rows = v
                    .split(',')
                    .map(|r| r.trim().parse::<u8>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("--only {v}: not a list of row numbers"))?;
                args.only = Some(rows);
            }
            "--podvisor" => args.podvisor = value()?.into(),
            "--baseline" => args.baseline = Some(value()?.into()),
            "--out" => args.out = Some(value()?.into()),
            "--notes" => args.notes = Some(value()?.into()),
            "--raw" => args.raw = Some(value()?.into()),
            "--busy-limit" => {
                let v = value()?;
                let pct: f64 = v
                    .parse()
                    .map_err(|_| format!("--busy-limit {v}: not a number"))?;
                args.busy_limit = pct / 100.0;
            }
            "--signal-delay" => {
                let v = value()?;
                let ms = v
                    .parse()
                    .map_err(|_| format!("--signal-delay {v}: not a number of milliseconds"))?;
                args.signal_delay = std::time::Duration::from_millis(ms);
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if args.podvisor.as_os_str().is_empty() {
        return Err("--podvisor PATH is required".into());
    }
    Ok(args)
}

fn absolute(p: &std::path::Path) -> Result<String, String> {
    std::fs::canonicalize(p)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| format!("{}: {e}", p.display()))
}

fn context(args: &Args) -> Result<Ctx, String> {
    let runner = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let stamp = runner.with_file_name("stamp");
    let mut peers = BTreeMap::new();
    for p in PEERS {
        match ctx::which(p) {
            Some(path) => {
                peers.insert(p, path);
            }
            None => eprintln!("bench: {p} is not installed; its lines are left out"),
        }
    }
    let tmp = std::env::temp_dir().join(format!("podvisor-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    Ok(Ctx {
        quick: args.quick,
        runs: args.runs.unwrap_or(if args.quick { 3 } else { 20 }),
        podvisor: absolute(&args.podvisor)?,
        baseline: args.baseline.as_deref().map(absolute).transpose()?,
        stamp: absolute(&stamp)?,
        runner: absolute(&runner)?,
        peers,
        sh: ctx::which("sh").ok_or("no sh on PATH")?,
        sleep: ctx::which("sleep").ok_or("no sleep on PATH")?,
        strace: ctx::which("strace"),
        null: proc::null().map_err(|e| format!("/dev/null: {e}"))?,
        rng: stats::Rng::new(proc::now_ns()),
        tmp,
        signal_delay: args.signal_delay,
    })
}

/// The output of a command, trimmed, or `?`.
fn output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn first_line_with(path: &str, prefix: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

/// The commit measured, marked when src/ or the manifest differ from it (docs may be edited
/// while the bench runs).
fn version() -> String {
    let commit = output("git", &["describe", "--always"]);
    let changed = output(
        "git",
        &[
            "status",
            "--porcelain",
            "--",
            "src",
            "Cargo.toml",
            "Cargo.lock",
        ],
    );
    if changed.is_empty() || changed == "?" {
        commit
    } else {
        format!("{commit} with uncommitted changes in src/ or Cargo.*")
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scheduling group the runner and the tools run in: row 4 falls into another regime in a
/// CPU cgroup of its own (as in a pod) than in the root one with the kernel's per-session
/// autogroups (bench/notes.md, sixth pass).
fn sched_group() -> String {
    let cpu = cgroup::name();
    let autogroup = match std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled") {
        Ok(v) if v.trim() == "1" => "on",
        Ok(_) => "off",
        Err(_) => "not in this kernel",
    };
    format!("CPU cgroup `{cpu}`, autogroups {autogroup}")
}

fn header(ctx: &Ctx, started: &str, load_start: &str, elapsed: f64) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let versions: Vec<String> = ["tini", "dumb-init", "catatonit", "wait-for-it"]
        .iter()
        .map(|p| format!("{p} {}", output("dpkg-query", &["-W", "-f=${Version}", p])))
        .collect();
    let mode = if ctx.quick {
        format!(
            "quick (CI: {} runs per row, only proves the benchmark works)",
            ctx.runs
        )
    } else {
        format!(
            "full, {} runs per tool and row (10 times as many for rows 1 and 4)",
            ctx.runs
        )
    };
    format!(
        "# Benchmarks\n\n\
         Written by `bench/run` (see the README's benchmarks section); rerun it to refresh this page.\n\n\
         - Date: {started}, {elapsed:.0} s in all\n\
         - Mode: {mode}\n\
         - Machine: {} × {cores} cores, {} RAM, Linux {}\n\
         - Load average at start {load_start}, at the end {}\n\
         - Scheduling: {}\n\
         - podvisor: {} (`cargo build --release --target x86_64-unknown-linux-musl`)\n\
         - Peers (Debian packages): {}\n{}",
        first_line_with("/proc/cpuinfo", "model name"),
        first_line_with("/proc/meminfo", "MemTotal"),
        output("uname", &["-r"]),
        loadavg(),
        sched_group(),
        version(),
        versions.join(", "),
        ctx.baseline.as_ref().map_or(String::new(), |b| format!(
            "- `podvisor (baseline)` lines: {b} (`--baseline`; rows 1, 2, 3, 4, 6 and 9)\n"
        )),
    )
}

type Row = fn(&mut Ctx) -> Result<Vec<Section>, String>;

/// Waits (a minute at most) for a 2 s window in which other work stays under `limit`.
fn wait_for_quiet(limit: f64) {
    let until = proc::now_ns() + 60_000_000_000;
    while proc::now_ns() < until {
        let meter = ctx::CpuMeter::start();
        std::thread::sleep(std::time::Duration::from_secs(2));
        if meter.busy() <= limit {
            return;
        }
    }
}

/// The other work on the machine during a row: the most of any of its sections.
fn load(sections: &[Section]) -> f64 {
    sections.iter().map(|s| s.busy).fold(0.0, f64::max)
}

fn main() -> ExitCode {
    // The runner's own helpers: row 4's child and spinners, row 10's floor loop.
    let rest: Vec<String> = std::env::args().skip(2).collect();
    match std::env::args().nth(1).as_deref() {
        Some("sigwait") => return ExitCode::from(signal::child() as u8),
        Some("floor") => return ExitCode::from(protocol::floor(&rest) as u8),
        Some("spin") => return ExitCode::from(load::spin(&rest) as u8),
        _ => {}
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ctx = match context(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    let started = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let load_start = loadavg();
    let t0 = proc::now_ns();
    let rows: [(u8, &str, Row); 11] = [
        (1, "overhead and peak RSS", overhead::run),
        (2, "TCP readiness", ready::tcp),
        (3, "file readiness", ready::file),
        (4, "signal forwarding", signal::run),
        (5, "idle while supervising", idle::supervising),
        (5, "waiting on a closed port", idle::closed_port),
        (6, "50 targets", ready::scale),
        (7, "sidecar stop", sidecar::run),
        (8, "binary size", size::run),
        (9, "log copy", logcopy::run),
        (10, "protocol readiness", protocol::run),
    ];
    let mut sections = Vec::new();
    let mut failed = false;
    for (n, name, row) in rows {
        if args.only.as_ref().is_some_and(|o| !o.contains(&n)) {
            continue;
        }
        // A row run while other work kept the machine busy is run again (twice at most); the
        // quietest attempt is kept. The quick mode judges nothing and never retries.
        let mut best: Option<Vec<Section>> = None;
        // Idle costs and sizes do not depend on a quiet machine.
        let tries = if ctx.quick || n == 5 || n == 8 { 1 } else { 3 };
        for attempt in 0..tries {
            if attempt > 0 {
                wait_for_quiet(args.busy_limit);
            }
            let t = proc::now_ns();
            eprintln!("bench: row {n}, {name} ...");
            match row(&mut ctx) {
                Ok(s) => {
                    let busy = load(&s);
                    eprintln!(
                        "bench: row {n} took {:.1} s, other work {:.0}% of the CPUs",
                        (proc::now_ns() - t) as f64 / 1e9,
                        busy * 100.0
                    );
                    if best.as_ref().is_none_or(|b| busy < load(b)) {
                        best = Some(s);
                    }
                    if busy <= args.busy_limit {
                        break;
                    }
                    if attempt + 1 < tries {
                        eprintln!("bench: the machine was busy; row {n} again when it is quieter");
                    }
                }
                Err(e) => {
                    eprintln!("bench: row {n} ({name}) failed: {e}");
                    failed = true;
                    break;
                }
            }
        }
        sections.extend(best.unwrap_or_default());
    }
    let elapsed = (proc::now_ns() - t0) as f64 / 1e9;
    // A run that could not measure something does not work; a missed budget is only reported.
    for s in &sections {
        for l in &s.lines {
            if !l.errors.is_empty() || l.values.is_empty() {
                eprintln!(
                    "bench: {} / {}: {} failed runs",
                    s.key,
                    l.tool,
                    l.errors.len()
                );
                failed = true;
            }
        }
    }
    let verdicts = report::verdicts(&sections);
    println!("{}", report::budget_table(&verdicts));
    let notes = args
        .notes
        .as_ref()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .unwrap_or_default();
    let doc = report::document(
        &header(&ctx, &started, &load_start, elapsed),
        &verdicts,
        &sections,
        &notes,
    );
    if let Some(raw) = &args.raw {
        if let Err(e) = std::fs::write(raw, report::raw(&sections)) {
            eprintln!("bench: {}: {e}", raw.display());
            failed = true;
        }
    }
    if let Some(out) = &args.out {
        match std::fs::write(out, doc) {
            Ok(()) => eprintln!("bench: wrote {}", out.display()),
            Err(e) => {
                eprintln!("bench: {}: {e}", out.display());
                failed = true;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&ctx.tmp);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
