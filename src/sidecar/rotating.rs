//! The bounded file behind `--log-to PATH`: two files, PATH (newest) and PATH.1 (the half
//! before it), each at most half of `--log-size`. When PATH is full at its half it is renamed
//! to PATH.1 (replacing the older one) and a new PATH starts (a write that does not fit is
//! split there), so the newest output is
//! always kept and the pair never holds more than `--log-size`. Readers (`--show-logs`, the log
//! wait) read PATH.1 then PATH.
//!
//! Every write goes straight to the kernel (no buffer here), so what was written survives
//! podvisor's SIGKILL.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file that rotates at half the bound.
pub struct Rotating {
    /// PATH.
    path: PathBuf,
    /// PATH.1.
    older: PathBuf,
    /// The most PATH holds before it rotates.
    half: u64,
    /// PATH, open for appending.
    file: File,
    /// Bytes in PATH.
    written: u64,
    /// Whether the last byte written ended a line (markers must start on a line of their own).
    at_line_start: bool,
}

/// The older half of the copy at PATH: PATH.1.
pub fn older(path: &Path) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

impl Rotating {
    /// Starts a new copy at `path`, bounded by `size` bytes: a previous run's copy is replaced,
    /// so that the copy (and a wait on it) is about this run only.
    pub fn create(path: &Path, size: u64) -> io::Result<Self> {
        let older = older(path);
        match std::fs::remove_file(&older) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(Self {
            file: open_new(path)?,
            path: path.to_owned(),
            older,
            half: (size / 2).max(1),
            written: 0,
            at_line_start: true,
        })
    }

    /// The bound: PATH and PATH.1 together hold at most this.
    pub fn bound(&self) -> u64 {
        self.half * 2
    }

    /// The most PATH holds before it rotates.
    pub fn half(&self) -> u64 {
        self.half
    }

    /// Empties the copy (PATH.1 removed, PATH truncated): what comes next replaces all of it.
    /// Readers that follow PATH see a truncation.
    pub fn restart(&mut self) -> io::Result<()> {
        match std::fs::remove_file(&self.older) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.written = 0;
        self.at_line_start = true;
        Ok(())
    }

    /// Writes all of `buf`: PATH is filled up to its half, then rotated and the rest goes to
    /// the new PATH. On an error the bytes that did get written are accounted for; the error
    /// says how many did not.
    pub fn write(&mut self, mut buf: &[u8]) -> Result<(), (io::Error, usize)> {
        let half = usize::try_from(self.half).unwrap_or(usize::MAX);
        if buf.len() / 3 > half {
            // Only its newest part can stay: whole halves off its start leave the rest where
            // it would have been, with 2 or 3 rotations instead of one per half.
            let halves = (buf.len() - 2 * half) / half;
            buf = &buf[halves * half..];
        }
        while !buf.is_empty() {
            if self.written >= self.half {
                self.rotate().map_err(|e| (e, buf.len()))?;
            }
            let room = usize::try_from(self.half - self.written).unwrap_or(usize::MAX);
            let (now, rest) = buf.split_at(room.min(buf.len()));
            self.write_here(now)
                .map_err(|(e, lost)| (e, lost + rest.len()))?;
            buf = rest;
        }
        Ok(())
    }

    /// Writes all of `buf` to PATH as it is.
    fn write_here(&mut self, mut buf: &[u8]) -> Result<(), (io::Error, usize)> {
        while !buf.is_empty() {
            match self.file.write(buf) {
                Ok(0) => return Err((io::ErrorKind::WriteZero.into(), buf.len())),
                Ok(n) => {
                    self.written += n as u64;
                    self.at_line_start = buf[n - 1] == b'\n';
                    buf = &buf[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((e, buf.len())),
            }
        }
        Ok(())
    }

    /// Writes one line of podvisor's own on a line of its own.
    pub fn write_line(&mut self, line: &str) -> Result<(), (io::Error, usize)> {
        let mut text = String::with_capacity(line.len() + 2);
        if !self.at_line_start {
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
        self.write(text.as_bytes())
    }

    /// Frees space on a full volume for a line of `room` bytes: first the older half (the
    /// oldest output), then the end of PATH down to a page boundary (tmpfs and most file systems
    /// free whole blocks). Returns whether anything was freed.
    pub fn make_room(&mut self, room: u64) -> bool {
        if std::fs::remove_file(&self.older).is_ok() {
            return true;
        }
        const PAGE: u64 = 4096;
        let keep = self.written.saturating_sub(room + 1) / PAGE * PAGE;
        if keep >= self.written || self.file.set_len(keep).is_err() {
            return false;
        }
        self.written = keep;
        // The cut may fall inside a line.
        self.at_line_start = keep == 0;
        true
    }

    fn rotate(&mut self) -> io::Result<()> {
        // Unlinked first: a rename that replaces a file makes ext4 (auto_da_alloc) start
        // writing the renamed file's data out, ~0.4 ms and a disk write per rotation.
        let _ = std::fs::remove_file(&self.older);
        std::fs::rename(&self.path, &self.older)?;
        self.file = open_new(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

fn open_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .custom_flags(nix::libc::O_CLOEXEC)
        .mode(0o644)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_within_the_bound() {
        let dir = std::env::temp_dir().join(format!("podvisor-rot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.log");
        let mut r = Rotating::create(&path, 100).unwrap();
        for i in 0..30 {
            r.write(format!("line {i:02}\n").as_bytes()).unwrap();
        }
        let new = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(older(&path)).unwrap();
        assert!(new.len() + old.len() <= 100, "{old:?} {new:?}");
        assert!(new.ends_with("line 29\n"), "{new:?}");
        assert!((old + &new).contains("line 24\nline 25\n"));
        // A write bigger than the bound: its newest part, contiguous, split where PATH is full.
        let big: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        r.write(&big).unwrap();
        let both = [
            std::fs::read(older(&path)).unwrap(),
            std::fs::read(&path).unwrap(),
        ]
        .concat();
        assert_eq!(std::fs::read(older(&path)).unwrap().len(), 50);
        assert!(both.len() <= 100 && big.ends_with(&both), "{both:?}");
        // A second run starts over.
        Rotating::create(&path, 100).unwrap();
        assert!(!older(&path).exists());
        assert_eq!(std::fs::read(&path).unwrap().len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
