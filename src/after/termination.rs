//! The termination message: when podvisor ends with a failure, one line saying why, where
//! Kubernetes shows it (`kubectl describe pod`, agent-stack-k8s' failure table): `--termination-log
//! PATH`, or else `/dev/termination-log` when that file exists and is writable (the kubelet
//! mounts it; podvisor never creates it). At most 4096 bytes, Kubernetes' limit; never a
//! password (`user:***@`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::after::exit::{ChildEnd, Outcome};
use crate::config::duration;
use crate::config::Config;
use crate::run::signals;
use crate::wait::{self, Report};

/// Where the kubelet mounts the termination message file.
pub const KUBERNETES_PATH: &str = "/dev/termination-log";
/// Kubernetes keeps at most this much of the message.
pub const MAX_BYTES: usize = 4096;

/// Set when the child was sent SIGKILL because the grace period ran out.
static GRACE_KILL: AtomicBool = AtomicBool::new(false);

/// Notes that the grace period ran out and SIGKILL went to the child.
pub fn grace_period_expired() {
    GRACE_KILL.store(true, Ordering::Relaxed);
}

/// The reason for a failed outcome; `None` when it did not fail.
pub fn reason(config: &Config, outcome: &Outcome, report: &Report) -> Option<String> {
    let command = config.command.first().map_or_else(
        || "COMMAND".to_owned(),
        |c| c.to_string_lossy().into_owned(),
    );
    let text = match outcome {
        Outcome::Stopped(_) | Outcome::Done | Outcome::Child(ChildEnd::Exited(0)) => return None,
        Outcome::Child(end) => ended(config, &command, *end),
        Outcome::Mapped { code: 0, .. } => return None,
        Outcome::Mapped { end, code } => format!(
            "{} (exit code {code} by --map-exit)",
            ended(config, &command, *end)
        ),
        Outcome::WaitFailed(why) => {
            wait_failed(config, report).unwrap_or_else(|| format!("wait failed: {why}"))
        }
        Outcome::Cancelled(sig) => format!(
            "{} during the wait phase; {command} never ran",
            signals::name(*sig)
        ),
        Outcome::SpawnFailed { reason, .. } => format!("cannot start {command}: {reason}"),
        Outcome::Error(e) => format!("podvisor error: {e}"),
    };
    Some(limit(&hide_passwords(&one_line(&text))))
}

/// How COMMAND ended, in words.
fn ended(config: &Config, command: &str, end: ChildEnd) -> String {
    match end {
        ChildEnd::Exited(code) => format!("{command} exited with {code}"),
        ChildEnd::Signaled(sig)
            if sig == nix::libc::SIGKILL && GRACE_KILL.load(Ordering::Relaxed) =>
        {
            format!(
                "{command} killed by SIGKILL after the {} grace period",
                duration::show(config.grace_period)
            )
        }
        ChildEnd::Signaled(sig) => format!("{command} killed by {}", signals::name(sig)),
    }
}

/// "wait failed after 60s: tcp://localhost:5432 connection refused (600 attempts)".
fn wait_failed(config: &Config, report: &Report) -> Option<String> {
    let failed: Vec<_> = report.targets.iter().filter(|t| !t.ready).collect();
    let after = failed.iter().map(|t| t.after).max()?;
    let after = match config.policy.timeout {
        Some(t) if after >= t => t,
        _ => Duration::from_millis(after.as_millis() as u64),
    };
    let targets: Vec<String> = failed
        .iter()
        .map(|t| {
            format!(
                "{} {} ({})",
                t.target,
                t.last_error.as_deref().unwrap_or("no attempt finished"),
                wait::count(t.attempts, "attempt")
            )
        })
        .collect();
    Some(format!(
        "wait failed after {}: {}",
        duration::show(after),
        targets.join("; ")
    ))
}

/// Writes `reason` where the configuration or Kubernetes says; a failure is a warning.
pub fn write(config: &Config, reason: &str) {
    write_to(config.termination_log.as_deref(), reason);
}

/// Writes `reason` to `path`, or to /dev/termination-log when it exists and is writable.
pub fn write_to(path: Option<&Path>, reason: &str) {
    let line = limit(&hide_passwords(&one_line(reason)));
    let result = match path {
        Some(path) => OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| (path.to_owned(), e)),
        None => {
            let path = Path::new(KUBERNETES_PATH);
            // Only the kubelet's file: never create one in /dev.
            match OpenOptions::new().write(true).truncate(true).open(path) {
                Ok(mut f) => f
                    .write_all(line.as_bytes())
                    .map_err(|e| (path.to_owned(), e)),
                Err(_) => Ok(()),
            }
        }
    };
    if let Err((path, e)) = result {
        tracing::warn!(
            "cannot write the termination message to {}: {e}",
            path.display()
        );
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// `scheme://user:secret@host` -> `scheme://user:***@host`, wherever it appears.
pub fn hide_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (before, after) = rest.split_at(i + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                let info = &authority[..at];
                match info.split_once(':') {
                    Some((user, pass)) if pass != "***" => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    _ => out.push_str(info),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// At most `MAX_BYTES`, cut at a character boundary.
fn limit(text: &str) -> String {
    if text.len() <= MAX_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_BYTES - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_length() {
        assert_eq!(
            hide_passwords("postgres://me:s3cret@db:5432/x not ready; redis://:pw@r"),
            "postgres://me:***@db:5432/x not ready; redis://:***@r"
        );
        assert_eq!(hide_passwords("http://me@h/ ok"), "http://me@h/ ok");
        assert_eq!(hide_passwords("http://me:***@h/"), "http://me:***@h/");
        let long = "é".repeat(5000);
        let cut = limit(&long);
        assert!(cut.len() <= MAX_BYTES && cut.ends_with("..."));
    }
}
