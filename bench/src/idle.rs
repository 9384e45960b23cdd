//! Row 5: what a wrapper costs while nothing happens: supervising a sleeping child, and waiting
//! on a port that never opens. Idle costs are not disturbed by running side by side, so every
//! instance of every tool runs at once, in one window.

use std::path::Path;
use std::time::Duration;

use crate::ctx::{CpuMeter, Ctx, Section};
use crate::proc;
use crate::stats::{Line, Unit};

/// Context switches (voluntary + involuntary) of every thread of `pid`: each wake-up is one.
fn switches(pid: i32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum = 0;
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).ok()?;
        for l in status.lines() {
            if l.starts_with("voluntary_ctxt_switches")
                || l.starts_with("nonvoluntary_ctxt_switches")
            {
                sum += l.split_whitespace().nth(1)?.parse::<u64>().ok()?;
            }
        }
    }
    Some(sum)
}

/// The `calls` of strace -c's total line.
pub fn strace_calls(path: &Path) -> Result<f64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(total) = text.lines().rev().find(|l| l.trim_end().ends_with("total")) else {
        // strace -c writes nothing at all when it saw no call.
        return if text.trim().is_empty() {
            Ok(0.0)
        } else {
            Err(format!("no total in strace output: {text}"))
        };
    };
    total
        .split_whitespace()
        .nth(3)
        .and_then(|c| c.parse::<f64>().ok())
        .ok_or_else(|| format!("cannot read the calls in {total:?}"))
}

fn spawn_quiet(ctx: &Ctx, argv: &[String]) -> Result<i32, String> {
    let io = ctx.null_io();
    proc::spawn(argv, &io).map_err(|e| format!("{}: {e}", argv[0]))
}

/// Supervising `sleep`: wake-ups per second from /proc, syscalls per second from strace -p.
pub fn supervising(ctx: &mut Ctx) -> Result<Vec<Section>, String> {
    let meter = CpuMeter::start();
    let (settle, window) = if ctx.quick {
        (Duration::from_millis(250), Duration::from_secs(1))
    } else {
        (Duration::from_millis(500), Duration::from_secs(4))
    };
    let sleep_s = format!("{}", (settle + window).as_secs_f64() + 1.0);
    let mut tools = vec![("podvisor".to_owned(), ctx.podvisor.clone())];
    for peer in ["tini", "tini-static", "dumb-init", "catatonit"] {
        if let Some(p) = ctx.peer(peer) {
            tools.push((peer.to_owned(), p.to_owned()));
        }
    }
    let traced_runs = if ctx.quick { 1 } else { ctx.runs.min(5) };
    let dir = ctx.scratch("idle")?;
    // (tool index, pid, strace pid and output for traced instances)
    let mut counted: Vec<(usize, i32)> = Vec::new();
    let mut traced: Vec<(usize, i32, std::path::PathBuf)> = Vec::new();
    for round in 0..ctx.runs + traced_runs {
        for (i, (_, path)) in tools.iter().enumerate() {
            let argv = vec![
                path.clone(),
                "--".into(),
                ctx.sleep.clone(),
                sleep_s.clone(),
            ];
            let pid = spawn_quiet(ctx, &argv)?;
            if round < ctx.runs {
                counted.push((i, pid));
            } else {
                traced.push((i, pid, dir.join(format!("strace-{pid}"))));
            }
        }
    }
    std::thread::sleep(settle);
    let before: Vec<Option<u64>> = counted.iter().map(|&(_, pid)| switches(pid)).collect();
    let mut stracers = Vec::new();
    if let Some(strace) = &ctx.strace {
        for (_, pid, out) in &traced {
            let argv = vec![
                strace.clone(),
                "-c".into(),
                "-f".into(),
                "-o".into(),
                out.to_string_lossy().into_owned(),
                "-p".into(),
                pid.to_string(),
            ];
            stracers.push(spawn_quiet(ctx, &argv)?);
        }
    }
    let t0 = proc::now_ns();
    std::thread::sleep(window);
    let after: Vec<Option<u64>> = counted.iter().map(|&(_, pid)| switches(pid)).collect();
    let secs = (proc::now_ns() - t0) as f64 / 1e9;
    for &s in &stracers {
        // strace prints its summary when interrupted.
        let _ = proc::kill(s, libc::SIGINT);
    }
    for &s in &stracers {
        let _ = proc::wait(s);
    }
    let mut wakeups: Vec<Line> = tools.iter().map(|(n, _)| Line::new(n.clone())).collect();
    let mut calls = wakeups.clone();
    for (k, &(i, pid)) in counted.iter().enumerate() {
        wakeups[i].record(match (before[k], after[k]) {
            (Some(b), Some(a)) => Ok(a.saturating_sub(b) as f64 / secs),
            _ => Err(format!("pid {pid} ended before the window did")),
        });
    }
    if ctx.strace.is_some() {
        for (i, _, out) in &traced {
            calls[*i].record(strace_calls(out).map(|c| c / secs));
        }
    }
    for &(i, pid) in &counted {
        let exit = proc::wait(pid).map_err(|e| e.to_string())?;
        if exit.code() != 0 {
            wakeups[i].record(Err(format!("exited with {}", exit.code())));
        }
    }
    for (_, pid, _) in &traced {
        let _ = proc::wait(*pid);
    }
    let busy = meter.busy();
    let n = ctx.runs;
    Ok(vec![
        Section {
            key: "idle-wakeups",
            title: "5. Idle while supervising `sleep`: wake-ups per second".into(),
            how: format!(
                "{n} instances of every tool supervise `sleep {sleep_s}` side by side; after \
                 {} ms of settling, the context switches of all the wrapper's threads \
                 (voluntary + involuntary, /proc/PID/task/*/status) are counted over {:.1} s.",
                settle.as_millis(),
                window.as_secs_f64()
            ),
            unit: Unit::PerSec,
            lines: wakeups,
            busy,
        },
        Section {
            key: "idle-syscalls",
            title: "5. Idle while supervising `sleep`: system calls per second".into(),
            how: format!(
                "{traced_runs} more instance(s) per tool, each under `strace -c -f -p PID` for the \
                 same window. Attaching interrupts the wrapper's blocking call once, so one \
                 restarted call in the window is strace's, not the tool's."
            ),
            unit: Unit::PerSec,
            lines: calls,
            busy,
        },
    ])
}

/// Waiting on a port that refuses every connect, at default settings, until the tool gives up.
pub fn closed_port(ctx: &mut Ctx) -> Result<Vec<Section>, String> {
    let meter = CpuMeter::start();
    let secs = if ctx.quick { 1 } else { 5 };
    let port = proc::free_port().map_err(|e| e.to_string())?;
    // Held, bound and never listening: every connect is refused.
    let _closed = proc::bound_socket(port).map_err(|e| e.to_string())?;
    let target = format!("127.0.0.1:{port}");
    // (name, argv, the exit code it must end with: podvisor's is 124, wait-for-it without
    // --strict runs the command anyway)
    let mut tools: Vec<(String, Vec<String>, Option<i32>)> = vec![(
        "podvisor".into(),
        vec![
            ctx.podvisor.clone(),
            "--wait-tcp".into(),
            target.clone(),
            "--timeout".into(),
            format!("{secs}s"),
            "--".into(),
            "/bin/true".into(),
        ],
        Some(124),
    )];
    if let Some(w) = ctx.peer("wait-for-it") {
        tools.push((
            "wait-for-it".into(),
            vec![
                w.to_owned(),
                "-q".into(),
                "-t".into(),
                secs.to_string(),
                target.clone(),
                "--".into(),
                "/bin/true".into(),
            ],
            None,
        ));
    }
    let mut c = crate::ready::c_poller(ctx, &target, 100, secs as u64 * 1000);
    c.truncate(c.len() - 1);
    c.push("/bin/true".into());
    tools.push(("C poller, 100 ms".into(), c, Some(124)));
    let traced_runs = if ctx.quick { 1 } else { ctx.runs.min(5) };
    let dir = ctx.scratch("closed")?;
    let mut counted = Vec::new();
    let mut traced = Vec::new();
    for round in 0..ctx.runs + traced_runs {
        for (i, (_, argv, _)) in tools.iter().enumerate() {
            if round < ctx.runs {
                counted.push((i, spawn_quiet(ctx, argv)?));
            } else if let Some(strace) = &ctx.strace {
                let out = dir.join(format!("strace-{round}-{i}"));
                let mut v = vec![
                    strace.clone(),
                    "-c".into(),
                    "-f".into(),
                    "-o".into(),
                    out.to_string_lossy().into_owned(),
                ];
                v.extend(argv.iter().cloned());
                traced.push((i, spawn_quiet(ctx, &v)?, out));
            }
        }
    }
    let mut cpu: Vec<Line> = tools.iter().map(|(n, _, _)| Line::new(n.clone())).collect();
    let mut wakeups = cpu.clone();
    let mut calls = cpu.clone();
    for &(i, pid) in &counted {
        let exit = proc::wait(pid).map_err(|e| e.to_string())?;
        if let Some(want) = tools[i].2.filter(|&w| w != exit.code()) {
            let e = format!("exited with {}, not {want}", exit.code());
            cpu[i].record(Err(e.clone()));
            wakeups[i].record(Err(e));
            continue;
        }
        cpu[i].record(Ok(exit.cpu_ms()));
        let switches = exit.rusage.ru_nvcsw + exit.rusage.ru_nivcsw;
        wakeups[i].record(Ok(switches as f64 / secs as f64));
    }
    for (i, pid, out) in &traced {
        let _ = proc::wait(*pid);
        calls[*i].record(strace_calls(out));
    }
    let busy = meter.busy();
    let n = ctx.runs;
    let how = format!(
        "{n} instances per tool side by side wait for a port that is bound but never listens \
         (every connect refused), with default settings and a {secs} s deadline; figures are from \
         wait4's rusage, which includes every reaped descendant (wait-for-it's bash, timeout \
         and sleep processes). The C poller (bench/c/poll_tcp.c, 100 ms like podvisor's \
         default) is the reference."
    );
    Ok(vec![
        Section {
            key: "closed-cpu",
            title: format!("5. Waiting {secs} s on a closed port: CPU time (user + system)"),
            how: how.clone(),
            unit: Unit::Ms,
            lines: cpu,
            busy,
        },
        Section {
            key: "closed-wakeups",
            title: format!("5. Waiting {secs} s on a closed port: context switches per second"),
            how,
            unit: Unit::PerSec,
            lines: wakeups,
            busy,
        },
        Section {
            key: "closed-syscalls",
            title: format!("5. Waiting {secs} s on a closed port: system calls in all"),
            how: format!(
                "{traced_runs} more instance(s) per tool under `strace -c -f` (children included)."
            ),
            unit: Unit::Count,
            lines: calls,
            busy,
        },
    ])
}
