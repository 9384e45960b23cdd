//! Row 7: a command container's marker appears (renamed into place, as podvisor writes it), to the
//! moment the sidecar's `--until-marker` podvisor has exited.

use crate::ctx::{alternate, CpuMeter, Ctx, Section};
use crate::proc;
use crate::stats::Unit;

/// A marker as a finished command container leaves it.
const MARKER: &str = r#"{"version":1,"status":"exited","exit_code":0,"signal":null,"reason":"exited with 0","command":["true"],"started_at":"2026-01-01T00:00:00Z","finished_at":"2026-01-01T00:00:01Z","duration_ms":1000,"waits":[]}"#;

type Argv = Box<dyn Fn(&Ctx, &str) -> Vec<String>>;

pub fn run(ctx: &mut Ctx) -> Result<Vec<Section>, String> {
    let meter = CpuMeter::start();
    let variants: Vec<(String, Argv)> = vec![
        (
            "podvisor --until-marker -- sleep".into(),
            Box::new(|c: &Ctx, m: &str| {
                vec![
                    c.podvisor.clone(),
                    "--until-marker".into(),
                    m.into(),
                    "--".into(),
                    c.sleep.clone(),
                    "60".into(),
                ]
            }),
        ),
        (
            "podvisor --until-marker (no command)".into(),
            Box::new(|c: &Ctx, m: &str| {
                vec![c.podvisor.clone(), "--until-marker".into(), m.into()]
            }),
        ),
        (
            "until [ -f ]; sleep 1".into(),
            Box::new(|c: &Ctx, m: &str| {
                vec![
                    c.sh.clone(),
                    "-c".into(),
                    r#"until [ -f "$1" ]; do sleep 1; done"#.into(),
                    "sh".into(),
                    m.into(),
                ]
            }),
        ),
    ];
    let runs = ctx.runs;
    let lines = {
        let ctx = &mut *ctx;
        alternate(runs, &variants, |argv| {
            let dir = ctx.scratch("sidecar")?;
            let marker = dir.join("step.json");
            let tmp = dir.join(".step.json.tmp");
            std::fs::write(&tmp, MARKER).map_err(|e| format!("{}: {e}", tmp.display()))?;
            let argv = argv(ctx, &marker.to_string_lossy());
            let wait = if ctx.quick {
                ctx.delay_ms(100, 200)
            } else {
                ctx.delay_ms(300, 1300)
            };
            let io = ctx.null_io();
            let pid = proc::spawn(&argv, &io).map_err(|e| e.to_string())?;
            proc::sleep_until(proc::now_ns() + wait);
            let t0 = proc::now_ns();
            if let Err(e) = std::fs::rename(&tmp, &marker) {
                proc::abandon(pid);
                return Err(format!("{}: {e}", marker.display()));
            }
            let exit = proc::wait(pid).map_err(|e| e.to_string())?;
            if exit.code() != 0 {
                return Err(format!("{} exited with {}", argv[0], exit.code()));
            }
            Ok((exit.at - t0) as f64 / 1e6)
        })
    };
    Ok(vec![Section {
        key: "sidecar",
        title: "7. Sidecar stop: marker renamed into place to the sidecar's exit".into(),
        how: format!(
            "The sidecar starts; after a random delay of {} the runner renames a finished \
             marker into place (as the command container's podvisor writes it) and measures \
             until wait4 returns the sidecar's exit 0. With a command, the stop signal (TERM) \
             ends `sleep 60` first. {runs} runs per tool, alternating.",
            if ctx.quick { "100-200 ms" } else { "0.3-1.3 s" }
        ),
        unit: Unit::Ms,
        lines,
        busy: meter.busy(),
    }])
}
