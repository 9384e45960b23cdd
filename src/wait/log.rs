//! Log readiness: a file has COUNT lines matching a regular expression.
//!
//! The file is followed like `tail -F`: read from where the last check stopped, lines counted
//! once. The `--log-to` copy rotates (PATH moves to PATH.1, a new PATH starts) and a sidecar may
//! truncate its log: a new inode at PATH means the old one is read to its end through the open
//! descriptor first, then the new one from its start; a file shorter than what was read means it
//! was truncated, and it is read again from its start; so is a file whose first bytes, or the
//! last bytes read, are no longer what they were (truncated from outside, `: > PATH`, and
//! written again past the old length before this check saw it short). Lines already in PATH.1 at the first
//! check count too. Every change in the folder (inotify, `IN_MODIFY` included) triggers a check;
//! the policy's regular attempts are the fallback where inotify is unavailable.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::Duration;

use regex_lite::Regex;

use super::file::Watcher;
use super::target::Log;

/// A line longer than this counts as a line of its own (a writer that never ends its line must
/// not grow memory).
const MAX_LINE: usize = 64 * 1024;

/// Follows one log file across checks.
pub struct Follower {
    /// What is waited for.
    spec: Log,
    /// The compiled pattern.
    regex: Regex,
    /// The file read so far.
    open: Option<Current>,
    /// Whether PATH.1 was read (once, at the first check).
    started: bool,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
    /// Matching lines seen.
    matched: u32,
    /// The last complete line seen, for the reason when not ready.
    last_line: Option<String>,
    /// Folder events (modify, create, move) that trigger a check.
    watcher: Watcher,
}

/// The file at PATH as far as it was read.
struct Current {
    file: File,
    /// Its inode: another one at PATH means it was rotated or replaced.
    ino: u64,
    seen: Seen,
}

/// What was read of a file: how far, and enough of it to tell a rewrite.
#[derive(Default)]
struct Seen {
    /// Bytes read.
    offset: u64,
    /// Its first bytes (up to `PRINT`).
    head: Vec<u8>,
    /// The last bytes read (up to `PRINT`), ending at `offset`.
    tail: Vec<u8>,
}

/// How many of the first and of the last bytes read are kept to tell a rewrite.
const PRINT: usize = 64;

impl Current {
    fn new(file: File, ino: u64) -> Self {
        Self {
            file,
            ino,
            seen: Seen::default(),
        }
    }

    /// Whether the bytes read are no longer there: the file was truncated and written again
    /// (a truncation the checks never saw short, since the new content already reaches past
    /// `offset`). The same bytes written again cannot be told apart, and need not be.
    fn rewritten(&self) -> bool {
        let differs = |at: u64, seen: &[u8]| {
            let mut now = vec![0u8; seen.len()];
            self.file.read_exact_at(&mut now, at).is_err() || now != seen
        };
        let seen = &self.seen;
        differs(0, &seen.head) || differs(seen.offset - seen.tail.len() as u64, &seen.tail)
    }
}

impl Seen {
    /// Notes `bytes`, just read at `offset`.
    fn saw(&mut self, bytes: &[u8]) {
        if self.head.len() < PRINT && self.offset == self.head.len() as u64 {
            let n = (PRINT - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
        }
        self.offset += bytes.len() as u64;
        let keep = bytes.len().min(PRINT);
        self.tail.extend_from_slice(&bytes[bytes.len() - keep..]);
        let extra = self.tail.len().saturating_sub(PRINT);
        self.tail.drain(..extra);
    }
}

impl Follower {
    /// A follower for `spec` (its pattern compiled by the configuration).
    pub fn new(spec: &Log) -> Self {
        Self {
            spec: spec.clone(),
            regex: spec.regex.0.clone(),
            open: None,
            started: false,
            partial: Vec::new(),
            matched: 0,
            last_line: None,
            watcher: Watcher::with_modify(&spec.path).retired_late(),
        }
    }

    /// Reads what is new; Ok once COUNT matching lines were seen, else why not.
    pub fn check(&mut self) -> Result<(), String> {
        // Moves the watch first, so that whatever is written after this read raises an event.
        self.watcher.check();
        self.read_new();
        if self.matched >= self.spec.count {
            return Ok(());
        }
        Err(self.reason())
    }

    /// Sleeps for `delay`, checking at every change in the folder; true once ready.
    pub async fn ready_within(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return false,
                _ = self.watcher.changed() => if self.check().is_ok() { return true },
            }
        }
    }

    fn reason(&self) -> String {
        let path = self.spec.path.display();
        let seen = match self.spec.count {
            1 => "no line matches".to_owned(),
            n => format!("{} of {n} lines match", self.matched),
        };
        match (&self.open, &self.last_line) {
            (None, _) => format!("{path} does not exist"),
            (Some(_), None) => format!("{seen} /{}/ in {path}: it is empty", self.regex),
            (Some(_), Some(line)) => {
                format!("{seen} /{}/ in {path}; last line: {line:?}", self.regex)
            }
        }
    }

    fn read_new(&mut self) {
        if !self.started {
            self.started = true;
            let mut older = self.spec.path.as_os_str().to_owned();
            older.push(".1");
            if let Ok(mut f) = File::open(&older) {
                self.read_to_end(&mut f, |_| {});
                self.end_line();
            }
        }
        let current = File::open(&self.spec.path).ok();
        let ino = current
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| (m.ino(), m.len()));
        match (&self.open, ino) {
            (Some(cur), Some((new_ino, _))) if cur.ino != new_ino => {
                // Rotated (or replaced): the rest of the old file first, then the new one.
                if let Some(mut old) = self.open.take() {
                    self.read_to_end(&mut old.file, |_| {});
                    self.end_line();
                }
            }
            (Some(cur), Some((_, len))) if len < cur.seen.offset || cur.rewritten() => {
                // Truncated: it starts over.
                self.open = None;
                self.partial.clear();
            }
            // Moved away and not recreated yet: the rest of what was written before the move,
            // below.
            _ => {}
        }
        if self.open.is_none() {
            if let (Some(f), Some((ino, _))) = (current, ino) {
                self.open = Some(Current::new(f, ino));
            }
        }
        if let Some(mut cur) = self.open.take() {
            self.read_current(&mut cur);
            self.open = Some(cur);
        }
    }

    /// Reads the current file from where it was left to its end.
    fn read_current(&mut self, cur: &mut Current) {
        if cur.file.seek(SeekFrom::Start(cur.seen.offset)).is_err() {
            return;
        }
        let Current { file, seen, .. } = cur;
        self.read_to_end(file, |bytes| seen.saw(bytes));
    }

    /// Reads `f` from its position to its end, each piece also to `saw`.
    fn read_to_end(&mut self, f: &mut File, mut saw: impl FnMut(&[u8])) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    saw(&buf[..n]);
                    self.feed(&buf[..n]);
                }
            }
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..nl]);
            self.end_line();
            bytes = &bytes[nl + 1..];
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() > MAX_LINE {
            self.end_line();
        }
    }

    /// The line collected so far is complete: count it.
    fn end_line(&mut self) {
        if self.partial.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.partial);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if self.regex.is_match(line) {
            self.matched = self.matched.saturating_add(1);
        }
        self.last_line = Some(shorten(line));
        self.partial.clear();
    }
}

/// The last line, cut for a log line.
fn shorten(line: &str) -> String {
    const MAX: usize = 200;
    if line.len() <= MAX {
        return line.to_owned();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn spec(url: &str) -> Log {
        match super::super::target::parse(url) {
            Ok(super::super::target::Target::Log(l)) => l,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn follows_rotation_and_truncation() {
        // The follower's inotify registers with the runtime's reactor.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let dir = std::env::temp_dir().join(format!("podvisor-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.log");
        let mut f = File::create(&path).unwrap();
        writeln!(f, "starting").unwrap();
        let mut follower = Follower::new(&spec(&format!(
            "log://{}#regex=^ready&count=3",
            path.display()
        )));
        let e = follower.check().unwrap_err();
        assert!(e.contains("last line: \"starting\""), "{e}");
        write!(f, "ready 1\nrea").unwrap();
        assert!(follower.check().is_err());
        // Rotation: the end of the line lands in the old file, then a new file starts.
        writeln!(f, "dy 2").unwrap();
        std::fs::rename(&path, dir.join("s.log.1")).unwrap();
        let mut g = File::create(&path).unwrap();
        writeln!(g, "other").unwrap();
        let e = follower.check().unwrap_err();
        assert!(e.contains("2 of 3") && e.contains("\"other\""), "{e}");
        // Truncation: read again from the start.
        g.set_len(0).unwrap();
        assert!(follower.check().is_err());
        let mut g = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        writeln!(g, "ready 3").unwrap();
        assert_eq!(follower.check(), Ok(()));
        // Truncated and written past the old length before a check saw it short (`: > PATH`
        // and a quick writer): the bytes read are gone, so it starts over all the same.
        std::fs::remove_file(dir.join("s.log.1")).unwrap();
        let mut follower = Follower::new(&spec(&format!(
            "log://{}#regex=^ready&count=2",
            path.display()
        )));
        assert!(follower.check().is_err());
        let mut g = File::create(&path).unwrap();
        writeln!(g, "ready 4, and a line longer than what was there").unwrap();
        assert_eq!(follower.check(), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
