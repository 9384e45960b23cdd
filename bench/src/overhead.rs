//! Row 1: what a wrapper costs on every container start, in time and memory.

use std::net::TcpListener;

use crate::ctx::{rounds, CpuMeter, Ctx, Section};
use crate::proc::{self, Io};
use crate::stats::{Line, Unit};

/// `TOOL -- CHILD` for every tool (bare: CHILD alone).
fn variants(ctx: &Ctx, port: u16) -> Vec<(String, Vec<String>)> {
    let tcp = format!("127.0.0.1:{port}");
    let mut v = vec![
        ("podvisor".to_owned(), vec![ctx.podvisor.clone()]),
        ("bare".to_owned(), vec![]),
    ];
    if let Some(b) = &ctx.baseline {
        v.push(("podvisor (baseline)".to_owned(), vec![b.clone()]));
    }
    for peer in ["tini", "tini-static", "dumb-init", "catatonit"] {
        if let Some(p) = ctx.peer(peer) {
            v.push((peer.to_owned(), vec![p.to_owned()]));
        }
    }
    // A wait on a port that is open at once: the whole "wait, then run" path.
    v.push((
        "podvisor --wait-tcp (open)".to_owned(),
        vec![ctx.podvisor.clone(), "--wait-tcp".into(), tcp.clone()],
    ));
    if let Some(p) = ctx.peer("wait-for-it") {
        v.push((
            "wait-for-it (open)".to_owned(),
            vec![p.to_owned(), "-q".into(), tcp],
        ));
    }
    v
}

/// One run of `prefix -- child`: spawn-to-reaped time (ms) and peak RSS (KiB).
fn once(ctx: &Ctx, prefix: &[String], child: &str) -> Result<(f64, f64), String> {
    let mut argv = prefix.to_vec();
    if !argv.is_empty() {
        argv.push("--".into());
    }
    argv.push(child.to_owned());
    let io = ctx.null_io();
    let t0 = proc::now_ns();
    let pid = proc::spawn(&argv, &io).map_err(|e| e.to_string())?;
    let exit = proc::wait(pid).map_err(|e| e.to_string())?;
    if exit.code() != 0 {
        return Err(format!("{} exited with {}", argv.join(" "), exit.code()));
    }
    Ok(((exit.at - t0) as f64 / 1e6, exit.rusage.ru_maxrss as f64))
}

/// Peak RSS (KiB) of `prefix -- stamp`, started by the stamp launcher so that the runner's own
/// memory is not counted (see src/bin/stamp.rs).
fn peak_rss(ctx: &Ctx, prefix: &[String]) -> Result<f64, String> {
    let mut argv = vec![ctx.stamp.clone(), "launch".into()];
    argv.extend(prefix.iter().cloned());
    if !prefix.is_empty() {
        argv.push("--".into());
    }
    argv.push(ctx.stamp.clone());
    let (mut r, w) = proc::pipe().map_err(|e| e.to_string())?;
    let io = Io {
        stdin: &ctx.null,
        stdout: &ctx.null,
        stderr: &ctx.null,
        fd3: Some(&w),
    };
    let pid = proc::spawn(&argv, &io).map_err(|e| e.to_string())?;
    drop(w);
    let mut report = [0u8; 16];
    let read = proc::read_within(&mut r, &mut report, std::time::Duration::from_secs(10));
    let exit = proc::wait(pid).map_err(|e| e.to_string())?;
    read.map_err(|e| format!("no report from the launcher: {e}"))?;
    let maxrss = i64::from_ne_bytes(report[..8].try_into().unwrap_or_default());
    let status = i64::from_ne_bytes(report[8..].try_into().unwrap_or_default());
    if exit.code() != 0 || status != 0 {
        return Err(format!(
            "{} ended with wait status {status}",
            argv[2..].join(" ")
        ));
    }
    Ok(maxrss as f64)
}

/// System calls of `prefix -- /bin/true` under `strace -f -c`, plus `podvisor -q`.
fn syscalls(ctx: &Ctx, variants: &[(String, Vec<String>)]) -> Result<Vec<Line>, String> {
    let Some(strace) = &ctx.strace else {
        return Ok(Vec::new());
    };
    let mut tools: Vec<(String, Vec<String>)> = vec![(
        "podvisor -q".to_owned(),
        vec![ctx.podvisor.clone(), "-q".into()],
    )];
    tools.extend(variants.iter().cloned());
    let dir = ctx.scratch("overhead-strace")?;
    let mut lines = Vec::new();
    for (name, prefix) in &tools {
        let mut line = Line::new(name.clone());
        for run in 0..3 {
            let out = dir.join(format!("{}-{run}", lines.len()));
            let mut argv = vec![
                strace.clone(),
                "-f".into(),
                "-c".into(),
                "-o".into(),
                out.to_string_lossy().into_owned(),
            ];
            argv.extend(prefix.iter().cloned());
            if !prefix.is_empty() {
                argv.push("--".into());
            }
            argv.push("/bin/true".into());
            let io = ctx.null_io();
            let pid = proc::spawn(&argv, &io).map_err(|e| e.to_string())?;
            proc::wait(pid).map_err(|e| e.to_string())?;
            line.record(crate::idle::strace_calls(&out));
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Overhead with /bin/true as the child; peak RSS with the stamp child, whose own few pages
/// cannot hide the wrapper's (ru_maxrss is the maximum over the wrapper and its reaped children).
pub fn run(ctx: &mut Ctx) -> Result<Vec<Section>, String> {
    let meter = CpuMeter::start();
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let variants = variants(ctx, port);
    let runs = ctx.many_runs();
    let mut time: Vec<Line> = variants.iter().map(|(n, _)| Line::new(n.clone())).collect();
    let mut rss_true = time.clone();
    let mut rss = time.clone();
    for order in rounds(runs, variants.len()) {
        for i in order {
            let prefix = &variants[i].1;
            match once(ctx, prefix, "/bin/true") {
                Ok((ms, kib)) => {
                    time[i].values.push(ms);
                    rss_true[i].values.push(kib);
                }
                Err(e) => {
                    time[i].record(Err(e.clone()));
                    rss_true[i].errors.push(e);
                }
            }
            rss[i].record(peak_rss(ctx, prefix));
        }
        // The open port's backlog fills with the probes' connections: drain it.
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        while listener.accept().is_ok() {}
    }
    let busy = meter.busy();
    let calls = syscalls(ctx, &variants)?;
    Ok(vec![
        Section {
            key: "overhead",
            title: "1. Wrapper overhead: `TOOL -- /bin/true`, spawn to reaped".into(),
            how: format!(
                "The runner calls posix_spawn, then wait4, and takes CLOCK_MONOTONIC around both; \
                 {runs} runs per tool, tools alternating. `bare` is /bin/true alone (the floor). \
                 The `(open)` lines wait for a port that is already listening before running \
                 /bin/true (wait-for-it cannot run without a target)."
            ),
            unit: Unit::Ms,
            lines: time,
            busy,
        },
        Section {
            key: "rss",
            title: "1. Wrapper peak RSS: `TOOL -- stamp`".into(),
            how: "ru_maxrss from wait4 is the maximum over the waited process and its reaped \
                  descendants, and also counts the memory it had before its exec. So the child \
                  here is the bench's static stamp program (a few pages), and the wrapper is \
                  forked from the stamp launcher (a few pages) rather than from the runner: the \
                  figure is the wrapper's own peak. `bare` is the stamp alone."
                .into(),
            unit: Unit::KiB,
            lines: rss,
            busy,
        },
        Section {
            key: "syscalls",
            title: "1. System calls of `TOOL -- /bin/true`".into(),
            how: "`strace -f -c` of one run per tool (3 runs, the median), children included: \
                  `bare` is /bin/true's own share, in every other line too. `podvisor -q` logs \
                  errors only (no \"child started\" lines)."
                .into(),
            unit: Unit::Count,
            lines: calls,
            busy,
        },
        Section {
            key: "rss-true",
            title: "1. ru_maxrss of `TOOL -- /bin/true` as the runner sees it (not the wrapper's)"
                .into(),
            how: "ru_maxrss of the overhead runs, for comparison: forked from the runner, so \
                  the runner's own resident set is in every figure (the floor, as `bare` shows)."
                .into(),
            unit: Unit::KiB,
            lines: rss_true,
            busy,
        },
    ])
}
