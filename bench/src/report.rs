//! The budgets of issues 6 and 14 checked against a run, and docs/benchmarks.md.

use std::fmt::Write;

use crate::ctx::Section;
use crate::signal;
use crate::stats::{Line, Unit};

/// One budget and how this run fared.
pub struct Verdict {
    /// What is measured.
    pub row: String,
    /// The budget, in words.
    pub budget: String,
    /// The figures it was judged on.
    pub measured: String,
    /// `None` when a figure is missing (row not run, or failed).
    pub pass: Option<bool>,
}

fn line<'a>(sections: &'a [Section], key: &str, tool: &str) -> Option<(&'a Section, &'a Line)> {
    let s = sections.iter().find(|s| s.key == key)?;
    Some((s, s.line(tool)?))
}

/// A budget on one statistic of one line: `stat <= limit`.
fn limit(
    sections: &[Section],
    row: &str,
    (key, tool): (&str, &str),
    stat: Stat,
    max: f64,
    budget: &str,
) -> Verdict {
    let got = line(sections, key, tool).and_then(|(s, l)| Some((s.unit, stat.of(l)?)));
    Verdict {
        row: row.into(),
        budget: budget.into(),
        measured: got.map_or("not measured".into(), |(u, v)| {
            format!("{} {}", stat.name(), u.show(v))
        }),
        pass: got.map(|(_, v)| v <= max),
    }
}

/// A budget relative to a peer in the same run: podvisor's median <= the peer's.
fn versus(sections: &[Section], row: &str, key: &str, ours: &str, peer: &str) -> Verdict {
    let a = line(sections, key, ours).and_then(|(s, l)| Some((s.unit, l.median()?)));
    let b = line(sections, key, peer).and_then(|(_, l)| l.median());
    Verdict {
        row: row.into(),
        budget: format!("median <= {peer}'s, same run"),
        measured: match (a, b) {
            (Some((u, a)), Some(b)) => format!("{} vs {peer} {}", u.show(a), u.show(b)),
            _ => "not measured".into(),
        },
        pass: a.zip(b).map(|((_, a), b)| a <= b),
    }
}

/// podvisor's median <= `factor` × the best (lowest) median among `peers`, same run.
fn versus_best(
    sections: &[Section],
    row: &str,
    key: &str,
    ours: &str,
    peers: &[&str],
    factor: f64,
) -> Verdict {
    let a = line(sections, key, ours).and_then(|(s, l)| Some((s.unit, l.median()?)));
    let best = best_peer(sections, key, peers);
    let times = if factor == 1.0 {
        String::new()
    } else {
        format!("{factor} × ")
    };
    let who = if peers.len() == 1 {
        format!("{}'s", peers[0])
    } else {
        "the best peer's".to_owned()
    };
    Verdict {
        row: row.into(),
        budget: format!("median <= {times}{who}, same run"),
        measured: match (a, best) {
            (Some((u, a)), Some((p, b))) => format!("{} vs {p} {}", u.show(a), u.show(b)),
            _ => "not measured".into(),
        },
        pass: a.zip(best).map(|((_, a), (_, b))| a <= factor * b),
    }
}

/// The peer with the lowest median in row `key`, and that median.
fn best_peer<'a>(sections: &[Section], key: &str, peers: &[&'a str]) -> Option<(&'a str, f64)> {
    peers
        .iter()
        .filter_map(|p| Some((*p, line(sections, key, p)?.1.median()?)))
        .min_by(|x, y| x.1.total_cmp(&y.1))
}

/// Signal forwarding, judged as `versus_best` judges it, with what tells a lead from the noise
/// beside the medians: in how many rounds podvisor was the quicker of the two, and the median
/// of tini-static's second line (the same binary in its own slot of every round).
fn forwarding(sections: &[Section], peers: &[&str]) -> Verdict {
    let mut verdict = versus_best(
        sections,
        "signal forwarding",
        "signal",
        "podvisor",
        peers,
        1.0,
    );
    let ours = line(sections, "signal", "podvisor").map(|(_, l)| l);
    if let Some((peer, _)) = best_peer(sections, "signal", peers) {
        let theirs = line(sections, "signal", peer).map(|(_, l)| l);
        if let Some((won, of)) = ours.zip(theirs).and_then(|(a, b)| a.quicker_than(b)) {
            let _ = write!(verdict.measured, "; quicker in {won} of {of} rounds");
        }
    }
    if let Some((s, again)) = line(sections, "signal", signal::AGAIN) {
        if let Some(m) = again.median() {
            let _ = write!(verdict.measured, "; {} {}", signal::AGAIN, s.unit.show(m));
        }
    }
    verdict
}

/// A budget on a rate relative to another line of the same run: ours >= `min` × theirs.
fn share(
    sections: &[Section],
    row: &str,
    key: &str,
    (ours, base): (&str, &str),
    min: f64,
) -> Verdict {
    let a = line(sections, key, ours).and_then(|(s, l)| Some((s.unit, l.median()?)));
    let b = line(sections, key, base).and_then(|(_, l)| l.median());
    Verdict {
        row: row.into(),
        budget: format!("median >= {:.0}% of {base}'s, same run", min * 100.0),
        measured: match (a, b) {
            (Some((u, a)), Some(b)) => {
                format!("{} vs {}: {:.0}%", u.show(a), u.show(b), a / b * 100.0)
            }
            _ => "not measured".into(),
        },
        pass: a.zip(b).map(|((_, a), b)| a >= min * b),
    }
}

#[derive(Clone, Copy)]
enum Stat {
    Median,
    P90,
}

impl Stat {
    fn of(self, l: &Line) -> Option<f64> {
        match self {
            Stat::Median => l.median(),
            Stat::P90 => l.p90(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stat::Median => "median",
            Stat::P90 => "p90",
        }
    }
}

/// Every budget of issues 6 and 14.
pub fn verdicts(s: &[Section]) -> Vec<Verdict> {
    let mut syscalls = limit(
        s,
        "system calls of `podvisor -q -- /bin/true`",
        ("syscalls", "podvisor -q"),
        Stat::Median,
        100.0,
        "<= 100 (strace -f -c, /bin/true's included)",
    );
    if let Some((_, l)) = line(s, "syscalls", "tini-static") {
        if let Some(m) = l.median() {
            syscalls.measured = format!("{} vs tini-static {m:.0}", syscalls.measured);
        }
    }
    let mut v = vec![
        versus(
            s,
            "overhead `podvisor -- /bin/true`",
            "overhead",
            "podvisor",
            "tini-static",
        ),
        syscalls,
        limit(
            s,
            "wrapper peak RSS",
            ("rss", "podvisor"),
            Stat::Median,
            1024.0,
            "<= 1 MiB",
        ),
        limit(
            s,
            "TCP readiness, defaults",
            ("tcp", "podvisor (defaults)"),
            Stat::P90,
            100.0,
            "p90 <= 100 ms",
        ),
        limit(
            s,
            "TCP readiness, `--interval 10ms`",
            ("tcp", "podvisor --interval 10ms"),
            Stat::P90,
            10.0,
            "p90 <= 10 ms",
        ),
        limit(
            s,
            "file readiness",
            ("file", "podvisor --wait-file"),
            Stat::P90,
            1.0,
            "p90 <= 1.0 ms",
        ),
        forwarding(s, &["tini", "tini-static", "dumb-init", "catatonit"]),
        limit(
            s,
            "idle while supervising",
            ("idle-wakeups", "podvisor"),
            Stat::Median,
            0.0,
            "0 wake-ups per second",
        ),
        versus_best(
            s,
            "waiting on a closed port, defaults (CPU)",
            "closed-cpu",
            "podvisor",
            &["C poller, 100 ms"],
            1.5,
        ),
        limit(
            s,
            "50 targets, defaults",
            ("scale", "podvisor, 50 --wait-tcp"),
            Stat::P90,
            100.0,
            "p90 <= 100 ms after the last opens",
        ),
    ];
    for tool in [
        "podvisor --until-marker -- sleep",
        "podvisor --until-marker (no command)",
    ] {
        let mut verdict = limit(
            s,
            "sidecar stop",
            ("sidecar", tool),
            Stat::P90,
            15.0,
            "p90 <= 15 ms",
        );
        verdict.row = format!("sidecar stop (`{}`)", tool.trim_start_matches("podvisor "));
        v.push(verdict);
    }
    v.push(share(
        s,
        "`--log-to` throughput",
        "logcopy-throughput",
        ("podvisor --log-to (1 MiB copy) -- dd", "dd alone"),
        0.9,
    ));
    v.push(limit(
        s,
        "`--log-to` latency, line to copy",
        ("logcopy-latency", "podvisor --log-to -- cat"),
        Stat::P90,
        5.0,
        "p90 <= 5 ms",
    ));
    for (key, what) in [
        ("proto-postgres", "postgres"),
        ("proto-redis", "redis"),
        ("proto-mysql", "mysql"),
    ] {
        v.push(limit(
            s,
            &format!("{what} readiness, defaults (issue 11)"),
            (key, "podvisor (defaults)"),
            Stat::P90,
            100.0,
            "p90 <= 100 ms, as TCP",
        ));
    }
    v.push(limit(
        s,
        "static binary",
        ("size", "podvisor (static, musl, stripped)"),
        Stat::Median,
        // Issue 11 raised it from 2 MiB, for TLS (rustls and ring, ~0.9 MiB).
        2560.0,
        "<= 2.5 MiB stripped",
    ));
    v
}

fn show(unit: Unit, v: Option<f64>) -> String {
    v.map_or("—".into(), |v| unit.show(v))
}

/// One section as a Markdown table.
fn table(out: &mut String, s: &Section) {
    let _ = writeln!(out, "### {}\n\n{}\n", s.title, s.how);
    // Negative: not measured (row 8 runs nothing).
    if s.busy >= 0.0 {
        let _ = writeln!(
            out,
            "Other work on the machine while this ran: {:.0}% of all CPU time (not the bench's \
             own processes).\n",
            s.busy * 100.0
        );
    }
    let _ = writeln!(
        out,
        "| tool | median | p90 | min | max | median ÷ podvisor's | runs |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let reference = s.lines.first().and_then(Line::median);
    for l in &s.lines {
        let ratio = match (l.median(), reference) {
            (Some(m), Some(r)) if r > 0.0 => format!("{:.2}×", m / r),
            _ => "—".into(),
        };
        let runs = if l.errors.is_empty() {
            l.values.len().to_string()
        } else {
            format!("{} ({} failed)", l.values.len(), l.errors.len())
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            l.tool,
            show(s.unit, l.median()),
            show(s.unit, l.p90()),
            show(s.unit, l.min()),
            show(s.unit, l.max()),
            ratio,
            runs
        );
    }
    for l in &s.lines {
        for e in l.errors.iter().take(3) {
            let _ = writeln!(out, "\n- {} failed: {}", l.tool, e.replace('\n', " "));
        }
    }
    out.push('\n');
}

/// The budget table alone (also printed on stdout).
pub fn budget_table(verdicts: &[Verdict]) -> String {
    let mut out = String::from("| row | budget | measured | result |\n|---|---|---|---|\n");
    for v in verdicts {
        let result = match v.pass {
            Some(true) => "pass",
            Some(false) => "**FAIL**",
            None => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            v.row, v.budget, v.measured, result
        );
    }
    out
}

/// The whole document.
pub fn document(header: &str, verdicts: &[Verdict], sections: &[Section], notes: &str) -> String {
    let mut out = String::new();
    out.push_str(header);
    out.push_str("\n## Budgets\n\n");
    out.push_str(&budget_table(verdicts));
    out.push('\n');
    out.push_str(notes);
    out.push_str("\n## Results\n\n");
    for s in sections {
        table(&mut out, s);
    }
    out
}

/// Every sample of every line, tab-separated: row, tool, then the samples in round order, in
/// the row's unit (tool names hold commas, never tabs).
pub fn raw(sections: &[Section]) -> String {
    let mut out = String::new();
    for s in sections {
        for l in &s.lines {
            let _ = write!(out, "{}\t{}", s.key, l.tool);
            for v in &l.values {
                let _ = write!(out, "\t{v}");
            }
            out.push('\n');
        }
    }
    out
}
