//! Row 4: SIGTERM sent to the wrapper, to the moment the child's sigwait returns.

use std::io::Write;
use std::time::Duration;

use crate::cgroup::OwnCgroup;
use crate::ctx::{alternate, CpuMeter, Ctx, Section};
use crate::load::Spinners;
use crate::proc::{self, Io};
use crate::stats::{Line, Unit};

/// The child of this row (`podvisor-bench sigwait`): blocks SIGTERM, writes `r` to stdout, waits
/// for SIGTERM with sigwait, then writes CLOCK_MONOTONIC (8 bytes) and exits 0.
pub fn child() -> i32 {
    // SAFETY: plain sigset manipulation and sigwait on this thread's own mask.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut out = std::io::stdout().lock();
        if out.write_all(b"r").and_then(|()| out.flush()).is_err() {
            return 1;
        }
        let mut got = 0;
        if libc::sigwait(&set, &mut got) != 0 {
            return 1;
        }
        let at = proc::now_ns();
        if out
            .write_all(&at.to_ne_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return 1;
        }
    }
    0
}

/// tini-static's second line: the same binary in a slot of its own in every round.
pub const AGAIN: &str = "tini-static, second line";

pub fn run(ctx: &mut Ctx) -> Result<Vec<Section>, String> {
    let meter = CpuMeter::start();
    let mut variants: Vec<(String, Vec<String>)> = vec![
        ("podvisor".into(), vec![ctx.podvisor.clone(), "--".into()]),
        ("direct kill (no wrapper)".into(), vec![]),
    ];
    if let Some(b) = &ctx.baseline {
        variants.push(("podvisor (baseline)".into(), vec![b.clone(), "--".into()]));
    }
    for peer in ["tini", "tini-static", "dumb-init", "catatonit"] {
        if let Some(p) = ctx.peer(peer) {
            variants.push((peer.into(), vec![p.to_owned(), "--".into()]));
        }
    }
    // The medians of this row lie within microseconds of each other; a second line of one
    // peer shows how far two lines of the same binary fall apart in one run.
    if let Some(p) = ctx.peer("tini-static") {
        variants.push((AGAIN.into(), vec![p.to_owned(), "--".into()]));
    }
    // A run costs 12 ms, and a median of 20 moved by 10-20% between full runs.
    let runs = ctx.many_runs();
    let lines = measure(ctx, runs, &variants);
    let busy = meter.busy();
    let delay = ctx.signal_delay.as_millis();
    let how = format!(
        "The child blocks SIGTERM, says it is ready, and stamps CLOCK_MONOTONIC when sigwait \
         returns; {delay} ms after the ready byte the runner takes the time and sends SIGTERM \
         to the wrapper's pid. `direct kill` sends it to the child itself (the floor). \
         `{AGAIN}` runs tini-static again, in a slot of its own: how far its median falls \
         from tini-static's is how far two lines of one binary differ in one run. {runs} runs \
         per tool, alternating."
    );
    let mut sections = vec![Section {
        key: "signal",
        title: "4. Signal forwarding: kill(wrapper, SIGTERM) to the child's sigwait".into(),
        how,
        unit: Unit::Ms,
        lines,
        busy,
    }];
    // The same again where a pod's processes run: in a CPU cgroup of their own.
    let meter = CpuMeter::start();
    match OwnCgroup::enter() {
        Ok(cgroup) => {
            let lines = measure(ctx, runs, &variants);
            drop(cgroup);
            sections.push(Section {
                key: "signal-cgroup",
                title: "4. Signal forwarding in a CPU cgroup of its own, as in a pod".into(),
                how: format!(
                    "Row 4 again, the runner and all it starts moved into a new CPU cgroup \
                     beside the root's other children, where the kernel's per-session \
                     autogroups do not apply, as they do not in a container's cgroup. No \
                     budget: the row above is the one judged. {runs} runs per tool, \
                     alternating."
                ),
                unit: Unit::Ms,
                lines,
                busy: meter.busy(),
            });
        }
        Err(e) => eprintln!("bench: row 4 in a cgroup of its own left out: {e}"),
    }
    // And where a CI step keeps every CPU busy.
    let meter = CpuMeter::start();
    match Spinners::start(ctx) {
        Ok(spinners) => {
            let lines = measure(ctx, runs, &variants);
            let cpus = spinners.count();
            // Reaped before the meter reads: their CPU time is the bench's own.
            drop(spinners);
            sections.push(Section {
                key: "signal-busy",
                title: "4. Signal forwarding with every CPU busy, as in a CI step".into(),
                how: format!(
                    "Row 4 again in the runner's cgroup, while {cpus} spinning process(es), \
                     one pinned to each CPU at the runner's nice, keep every CPU busy, as a \
                     step's compile jobs do: a woken wrapper, and then its child, wait for \
                     the scheduler to preempt a spinner. No budget. {runs} runs per tool, \
                     alternating."
                ),
                unit: Unit::Ms,
                lines,
                busy: meter.busy(),
            });
        }
        Err(e) => eprintln!("bench: row 4 with every CPU busy left out: {e}"),
    }
    Ok(sections)
}

/// One line per variant: `runs` rounds of SIGTERM to the wrapper, to the child's stamp.
fn measure(ctx: &Ctx, runs: usize, variants: &[(String, Vec<String>)]) -> Vec<Line> {
    alternate(runs, variants, |prefix| {
        let mut argv = prefix.clone();
        argv.push(ctx.runner.clone());
        argv.push("sigwait".into());
        let (mut r, w) = proc::pipe().map_err(|e| e.to_string())?;
        let io = Io {
            stdin: &ctx.null,
            stdout: &w,
            stderr: &ctx.null,
            fd3: None,
        };
        let pid = proc::spawn(&argv, &io).map_err(|e| e.to_string())?;
        drop(w);
        let mut ready = [0u8; 1];
        if let Err(e) = proc::read_within(&mut r, &mut ready, Duration::from_secs(10)) {
            proc::abandon(pid);
            return Err(format!("{}: child not ready: {e}", argv[0]));
        }
        // Let the wrapper settle into its wait after spawning.
        std::thread::sleep(ctx.signal_delay);
        let t0 = proc::now_ns();
        proc::kill(pid, libc::SIGTERM).map_err(|e| e.to_string())?;
        let stamp = match proc::read_stamp(&mut r, Duration::from_secs(10)) {
            Ok(s) => s,
            Err(e) => {
                proc::abandon(pid);
                return Err(format!("{}: no stamp after SIGTERM: {e}", argv[0]));
            }
        };
        let exit = proc::wait(pid).map_err(|e| e.to_string())?;
        if exit.code() != 0 {
            return Err(format!("{} exited with {}", argv[0], exit.code()));
        }
        Ok(stamp.saturating_sub(t0) as f64 / 1e6)
    })
}
