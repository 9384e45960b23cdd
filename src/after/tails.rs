//! `--show-logs`: the last lines of each sidecar's log on podvisor's stderr when the step failed
//! (or always), each under a header naming the sidecar (the file name without `.log`).
//!
//! Under Buildkite (`BUILDKITE=true`) each log is a collapsed group (`--- `), and one expanded
//! group (`+++ `) with the reason follows them: Buildkite expands the last `--- ` group when no
//! group is expanded, which would unfold a sidecar's log instead of the failure (Buildkite's
//! "Managing log output": collapsed, de-emphasized and expanded groups).
//!
//! A log that is missing or unreadable is one line, never an error: the step's exit code stays
//! what it was.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::after::exit::Outcome;
use crate::config::{Config, ShowWhen};
use crate::logging::escaped;
use crate::sidecar::rotating;

/// The most read from the end of each file: a log that is not a podvisor copy can be huge.
const TAIL_BYTES: u64 = 1 << 20;

/// Prints the tails when the configuration and the outcome ask for it.
pub fn show(config: &Config, outcome: &Outcome, reason: Option<&str>) {
    if config.show_logs.is_empty() {
        return;
    }
    if config.show_logs_when == ShowWhen::Failure && !failed(outcome) {
        return;
    }
    let buildkite = std::env::var("BUILDKITE").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let text = render(&config.show_logs, config.show_lines, buildkite, reason);
    // One write: the tails stay together even when something else writes to stderr.
    let _ = io::stderr().write_all(text.as_bytes());
}

/// Whether the step failed: the wait, the start, a non-zero exit, a signal, podvisor's error.
pub fn failed(outcome: &Outcome) -> bool {
    !matches!(outcome, Outcome::Stopped(_) | Outcome::Done) && outcome.code() != 0
}

/// The whole text for `paths`.
pub fn render(paths: &[PathBuf], lines: usize, buildkite: bool, reason: Option<&str>) -> String {
    let mut out = String::new();
    for path in paths {
        match logs_in(path) {
            Ok(files) if files.is_empty() => {
                out.push_str(&format!("podvisor: no *.log in {}\n", shown(path)));
            }
            Ok(files) => {
                for file in files {
                    one(&mut out, &file, lines, buildkite);
                }
            }
            // A missing path: not known to be a folder, so named as a log.
            Err(_) => one(&mut out, path, lines, buildkite),
        }
    }
    if buildkite {
        out.push_str(&format!(
            "+++ podvisor: {}\n",
            escaped(reason.unwrap_or("the step ended"))
        ));
    }
    out
}

/// A path in one of podvisor's own lines here: control characters escaped, as the log
/// formatter does (these lines are written directly, beside the logs' own text).
fn shown(path: &Path) -> String {
    escaped(&path.display().to_string())
}

/// The `*.log` files of a folder, sorted; a file is itself.
fn logs_in(path: &Path) -> io::Result<Vec<PathBuf>> {
    // One stat (following links, as `is_dir` and `exists` do) for both questions.
    if !std::fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log") && !p.is_dir())
        .collect();
    files.sort();
    Ok(files)
}

/// The sidecar a log belongs to: its file name without `.log`.
pub fn sidecar_name(path: &Path) -> String {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    name.strip_suffix(".log").unwrap_or(&name).to_owned()
}

fn one(out: &mut String, path: &Path, lines: usize, buildkite: bool) {
    let name = escaped(&sidecar_name(path));
    let text = match tail(path, lines) {
        Ok(text) => text,
        Err(e) => {
            out.push_str(&format!(
                "podvisor: no log of {name}: {}: {}\n",
                shown(path),
                plain(&e)
            ));
            return;
        }
    };
    let shown = text.lines().count();
    let header = format!(
        "{name}: last {shown} {} of {}",
        if shown == 1 { "line" } else { "lines" },
        self::shown(path)
    );
    if buildkite {
        out.push_str(&format!("--- {header}\n"));
    } else {
        out.push_str(&format!("podvisor: ==> {header} <==\n"));
    }
    out.push_str(&text);
    if !text.is_empty() && !text.ends_with('\n') {
        out.push('\n');
    }
}

/// "No such file or directory", without " (os error 2)".
fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The last `lines` lines of the log at `path`, reading PATH.1 before it when it is a podvisor
/// copy that rotated.
pub fn tail(path: &Path, lines: usize) -> io::Result<String> {
    let mut bytes = end_of(path)?;
    if count_lines(&bytes) < lines + 1 {
        if let Ok(mut older) = end_of(&rotating::older(path)) {
            older.extend_from_slice(&bytes);
            bytes = older;
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    let mut kept = all[from..].join("\n");
    if !kept.is_empty() {
        kept.push('\n');
    }
    Ok(kept)
}

fn count_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// The last `TAIL_BYTES` of a file, starting at a line's start when cut.
fn end_of(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    if start > 0 {
        if let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            bytes.drain(..=nl);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tails() {
        assert_eq!(sidecar_name(Path::new("/w/logs/postgres.log")), "postgres");
        assert_eq!(sidecar_name(Path::new("/w/nginx")), "nginx");
        let dir = std::env::temp_dir().join(format!("podvisor-tails-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("db.log.1"), "one\ntwo\n").unwrap();
        std::fs::write(dir.join("db.log"), "three\nfour").unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        assert_eq!(tail(&dir.join("db.log"), 3).unwrap(), "two\nthree\nfour\n");
        let text = render(&[dir.clone(), dir.join("gone.log")], 2, false, None);
        assert!(text.contains("podvisor: ==> db: last 2 lines of"), "{text}");
        assert!(text.contains("three\nfour\n"), "{text}");
        assert!(!text.contains("notes"), "{text}");
        assert!(text.contains("podvisor: no log of gone:"), "{text}");
        let text = render(&[dir.join("db.log")], 1, true, Some("exit 3"));
        assert!(text.starts_with("--- db: last 1 line of"), "{text}");
        assert!(text.ends_with("four\n+++ podvisor: exit 3\n"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
