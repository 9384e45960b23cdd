//! Row 9: `--log-to`. Throughput: a child writing a lot to stdout (a pipe the runner drains, as a
//! container runtime does) through `podvisor --log-to` against the same child alone. Latency: a
//! line written by the child to the moment it is in the copy on disk.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use crate::ctx::{alternate, which, CpuMeter, Ctx, Section};
use crate::proc::{self, Io};
use crate::stats::Unit;

type Argv = Box<dyn Fn(&Ctx, &Path) -> Vec<String>>;

/// Bytes written per run: 1 GiB, or 64 MiB in the quick mode.
fn amount(ctx: &Ctx) -> u64 {
    if ctx.quick {
        64 << 20
    } else {
        1 << 30
    }
}

pub fn run(ctx: &mut Ctx) -> Result<Vec<Section>, String> {
    Ok(vec![throughput(ctx)?, latency(ctx)?])
}

fn throughput(ctx: &mut Ctx) -> Result<Section, String> {
    let meter = CpuMeter::start();
    let dd = which("dd").ok_or("no dd on PATH")?;
    let blocks = (amount(ctx) >> 16).to_string();
    let child = move |_: &Ctx| {
        vec![
            dd.clone(),
            "if=/dev/zero".to_string(),
            "bs=64K".to_string(),
            format!("count={blocks}"),
            "status=none".to_string(),
        ]
    };
    let alone = child.clone();
    let grown = child.clone();
    let base = child.clone();
    let through = move |podvisor: String| -> Argv {
        let child = base.clone();
        Box::new(move |c: &Ctx, copy: &Path| {
            let mut argv = vec![
                podvisor.clone(),
                "--log-to".into(),
                copy.to_string_lossy().into_owned(),
                "--".into(),
            ];
            argv.extend(child(c));
            argv
        })
    };
    // (name, (the runner's pipe grown to 1 MiB, argv)).
    let mut variants: Vec<(String, (bool, Argv))> = vec![
        (
            "podvisor --log-to (1 MiB copy) -- dd".into(),
            (false, through(ctx.podvisor.clone())),
        ),
        (
            "dd alone".into(),
            (false, Box::new(move |c: &Ctx, _: &Path| alone(c))),
        ),
        (
            // podvisor grows its stdout pipe to 1 MiB: the same pipe for dd alone, as a reference.
            "dd alone, its stdout pipe grown to 1 MiB".into(),
            (true, Box::new(move |c: &Ctx, _: &Path| grown(c))),
        ),
    ];
    if let Some(b) = ctx.baseline_with("--log-to") {
        variants.push((
            "podvisor --log-to (1 MiB copy) -- dd (baseline)".into(),
            (false, through(b)),
        ));
    }
    // Fewer runs: each moves a gibibyte.
    let runs = if ctx.quick { ctx.runs } else { 5 };
    let bytes = amount(ctx);
    let lines = {
        let ctx = &mut *ctx;
        alternate(runs, &variants, |(grow, argv)| {
            let dir = ctx.scratch("logcopy")?;
            let argv = argv(ctx, &dir.join("copy.log"));
            let (mut read, write) = proc::pipe().map_err(|e| e.to_string())?;
            if *grow {
                // SAFETY: fcntl on an open pipe.
                unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
            }
            let io = Io {
                stdin: &ctx.null,
                stdout: &write,
                stderr: &ctx.null,
                fd3: None,
            };
            let t0 = proc::now_ns();
            let pid = proc::spawn(&argv, &io).map_err(|e| e.to_string())?;
            drop(write);
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0u64;
            loop {
                match read.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got += n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        proc::abandon(pid);
                        return Err(e.to_string());
                    }
                }
            }
            let exit = proc::wait(pid).map_err(|e| e.to_string())?;
            if exit.code() != 0 || got != bytes {
                return Err(format!(
                    "{} exited with {} after {got} of {bytes} bytes",
                    argv[0],
                    exit.code()
                ));
            }
            let secs = (exit.at - t0) as f64 / 1e9;
            Ok(bytes as f64 / (1 << 20) as f64 / secs)
        })
    };
    Ok(Section {
        key: "logcopy-throughput",
        title:
            "9. `--log-to` throughput: a child writing to stdout, through podvisor's copy and alone"
                .into(),
        how: format!(
            "`dd if=/dev/zero bs=64K` writes {} MiB to its stdout, a pipe the runner drains \
             (as a container runtime does), from spawn to reaped: alone, and under `podvisor \
             --log-to` (default `--log-size` 1 MiB, so the copy rotates every 512 KiB) in a \
             scratch folder under {}. podvisor grows its stdout pipe to 1 MiB (64 KiB is the \
             default): `dd alone, its stdout pipe grown` is dd alone with that pipe (the \
             runner grows it), the like-for-like reference; the budget judges against plain \
             `dd alone`. MiB/s, higher is better. {runs} runs per variant, alternating.",
            amount(ctx) >> 20,
            ctx.tmp.display()
        ),
        unit: Unit::MiBps,
        lines,
        busy: meter.busy(),
    })
}

fn latency(ctx: &mut Ctx) -> Result<Section, String> {
    let meter = CpuMeter::start();
    let cat = which("cat").ok_or("no cat on PATH")?;
    let cat2 = cat.clone();
    let cat3 = cat.clone();
    let mut variants: Vec<(String, Argv)> = vec![
        (
            "podvisor --log-to -- cat".into(),
            Box::new(move |c: &Ctx, copy: &Path| {
                vec![
                    c.podvisor.clone(),
                    "--log-to".into(),
                    copy.to_string_lossy().into_owned(),
                    "--".into(),
                    cat.clone(),
                ]
            }),
        ),
        (
            "cat > file (the floor)".into(),
            Box::new(move |_: &Ctx, _: &Path| vec![cat2.clone()]),
        ),
    ];
    if let Some(b) = ctx.baseline_with("--log-to") {
        variants.push((
            "podvisor --log-to -- cat (baseline)".into(),
            Box::new(move |_: &Ctx, copy: &Path| {
                vec![
                    b.clone(),
                    "--log-to".into(),
                    copy.to_string_lossy().into_owned(),
                    "--".into(),
                    cat3.clone(),
                ]
            }),
        ));
    }
    let runs = ctx.runs;
    let lines = {
        let ctx = &mut *ctx;
        let mut n = 0u64;
        alternate(runs, &variants, |argv| {
            n += 1;
            let dir = ctx.scratch("loglatency")?;
            let copy = dir.join("copy.log");
            let argv = argv(ctx, &copy);
            let direct = argv.len() == 1;
            // The floor writes the file itself; podvisor creates its copy.
            let file = if direct {
                File::create(&copy).map_err(|e| e.to_string())?
            } else {
                proc::null().map_err(|e| e.to_string())?
            };
            let (read, mut write) = proc::pipe().map_err(|e| e.to_string())?;
            let io = Io {
                stdin: &read,
                stdout: &file,
                stderr: &ctx.null,
                fd3: None,
            };
            let pid = proc::spawn(&argv, &io).map_err(|e| e.to_string())?;
            drop(read);
            let result = one_line(&copy, direct, &mut write, n);
            drop(write);
            let exit = proc::wait(pid).map_err(|e| e.to_string())?;
            let ms = result?;
            if exit.code() != 0 {
                return Err(format!("{} exited with {}", argv[0], exit.code()));
            }
            Ok(ms)
        })
    };
    Ok(Section {
        key: "logcopy-latency",
        title: "9. `--log-to` latency: a line written by the child to the moment it is in the copy"
            .into(),
        how: format!(
            "`cat` copies what the runner writes to its stdin to its stdout: under `podvisor \
             --log-to COPY` (stdout passed through to /dev/null, the copy written by podvisor's \
             writer thread), and with its stdout redirected to the file itself (the floor). \
             Once the copy has podvisor's `child started` line, the runner writes one line to \
             cat's stdin and stops the clock when inotify reports a write to the file and the \
             line is in it. {runs} runs per variant, alternating."
        ),
        unit: Unit::Ms,
        lines,
        busy: meter.busy(),
    })
}

/// Writes `line N` to the child once the copy is ready; the time until the line is in `copy`.
fn one_line(copy: &Path, direct: bool, input: &mut File, n: u64) -> Result<f64, String> {
    let deadline = proc::now_ns() + 10_000_000_000;
    while !direct
        && !std::fs::read_to_string(copy)
            .unwrap_or_default()
            .contains("child started")
    {
        if proc::now_ns() > deadline {
            return Err("podvisor's copy never said `child started`".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: inotify_init1 returns a new fd or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(format!("inotify: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just created and is owned here.
    let mut inotify = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let path =
        std::ffi::CString::new(copy.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a valid fd and a NUL-terminated path.
    if unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) } < 0 {
        return Err(format!(
            "inotify_add_watch: {}",
            std::io::Error::last_os_error()
        ));
    }
    let line = format!("line {n}\n");
    let t0 = proc::now_ns();
    input
        .write_all(line.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut events = [0u8; 4096];
    loop {
        if !proc::readable(&inotify, Duration::from_secs(5)).map_err(|e| e.to_string())? {
            return Err("the line never reached the file".into());
        }
        let _ = inotify.read(&mut events);
        let t1 = proc::now_ns();
        if std::fs::read_to_string(copy)
            .unwrap_or_default()
            .contains(&line)
        {
            return Ok((t1 - t0) as f64 / 1e6);
        }
    }
}
