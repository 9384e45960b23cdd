//! Helpers for the signal, init and tty tests: podvisor running the `sigecho` helper in the
//! background, its stdout read line by line with deadlines, signals sent to it or its group.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::libc;

/// How long any expected line may take (the machine is small and noisy).
pub const LINE_TIMEOUT: Duration = Duration::from_secs(15);

/// The sigecho helper, built once per test binary (`cargo test --test X` builds no examples).
pub fn sigecho() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| super::build_example("sigecho"))
        .clone()
}

/// Sends `sig` to `pid` (negative: a process group); false if it is gone.
pub fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) with plain numbers.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// The fields of /proc/PID/stat after the command name: (state, ppid, pgrp).
pub fn proc_stat(pid: i32) -> Option<(char, i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat[stat.rfind(')')? + 2..].split(' ');
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

/// Whether PID exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(state, _, _)| state != 'Z')
}

/// The test process's own process group (never to be killed by cleanup).
fn our_group() -> i32 {
    // SAFETY: a getter.
    unsafe { libc::getpgrp() }
}

/// One `pid=.. ppid=.. pgid=..` line of sigecho, with its name prefix (`""` for the main one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    pub name: String,
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
}

impl Echo {
    pub fn parse(line: &str) -> Option<Echo> {
        let (name, rest) = match line.find("pid=") {
            Some(0) => ("", line),
            Some(i) => (line[..i].trim(), &line[i..]),
            None => return None,
        };
        let mut fields = rest
            .split_whitespace()
            .map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse::<i32>().ok()));
        Some(Echo {
            name: name.to_owned(),
            pid: fields.next()??,
            ppid: fields.next()??,
            pgid: fields.next()??,
        })
    }
}

/// podvisor (or any command) running in the background, its stdout read line by line.
pub struct Supervised {
    pub child: Child,
    pub shown: String,
    /// Every stdout line seen so far, `\r` removed.
    pub lines: Vec<String>,
    /// Lines received but not yet taken by an `expect`.
    unread: VecDeque<String>,
    rx: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    pub started: Instant,
}

/// A finished run.
pub struct Finished {
    pub shown: String,
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub stderr: String,
    /// From start to exit.
    pub elapsed: Duration,
}

/// `podvisor FLAGS -- sigecho ARGS` with a clean PODVISOR_* environment.
pub fn podvisor_sigecho(flags: &[&str], args: &[&str]) -> Command {
    let mut cmd = podvisor(flags);
    cmd.arg("--").arg(sigecho()).args(args);
    cmd
}

/// `podvisor FLAGS` with a clean PODVISOR_* environment and stdin from /dev/null.
pub fn podvisor(flags: &[&str]) -> Command {
    podvisor_at(&super::podvisor_bin(), flags)
}

/// The same with another build of podvisor (the static musl one).
pub fn podvisor_at(bin: &std::path::Path, flags: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PODVISOR_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(flags).stdin(Stdio::null());
    cmd
}

/// A line without its end, carriage returns and ANSI escape sequences.
fn strip_escapes(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // ESC [ params letter, or ESC and one character.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() || c == '~' {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' | '\n' => {}
            c => out.push(c),
        }
    }
    out
}

/// Shows a command as it would be typed.
pub fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Supervised {
    /// Starts `cmd` with piped stdout and stderr; `own_group` puts it in a process group of its
    /// own (as a CI agent starts a job), so that signalling the group cannot hit the test.
    pub fn start(mut cmd: Command, own_group: bool) -> Supervised {
        use std::os::unix::process::CommandExt;
        if own_group {
            cmd.process_group(0);
        }
        let shown = show(&cmd);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        Self::reading(child, shown, stdout, Some(stderr))
    }

    /// Starts `cmd` as the session leader of a new pseudo-terminal (stdin, stdout and stderr on
    /// it, echo off), as `docker run -it` or Buildkite's agent starts a step. stdout lines are
    /// read from the master, so podvisor's stderr is among them; the master is returned for
    /// typing (`\x03` is Ctrl-C) and for asking the terminal's foreground group.
    pub fn start_on_pty(mut cmd: Command) -> (Supervised, std::os::fd::OwnedFd) {
        use nix::sys::termios::{self, LocalFlags, SetArg};
        use std::os::unix::process::CommandExt;
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut attrs = termios::tcgetattr(&pty.slave).expect("tcgetattr");
        attrs.local_flags.remove(LocalFlags::ECHO);
        termios::tcsetattr(&pty.slave, SetArg::TCSANOW, &attrs).expect("tcsetattr");
        let slave = std::fs::File::from(pty.slave);
        cmd.stdin(slave.try_clone().expect("dup slave"))
            .stdout(slave.try_clone().expect("dup slave"))
            .stderr(slave.try_clone().expect("dup slave"));
        // SAFETY: setsid and ioctl only, in the forked child.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let shown = show(&cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        // Our copies of the slave must close, or the master never sees the end.
        drop(cmd);
        drop(slave);
        let master = pty.master;
        let reader = std::fs::File::from(master.try_clone().expect("dup master"));
        (
            Self::reading(child, shown, reader, None::<std::fs::File>),
            master,
        )
    }

    fn reading(
        child: Child,
        shown: String,
        stdout: impl Read + Send + 'static,
        stderr_pipe: Option<impl Read + Send + 'static>,
    ) -> Supervised {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Split on \n, drop \r and terminal escapes (a shell's prompt decorations).
            let mut reader = BufReader::new(stdout);
            let mut raw = Vec::new();
            while matches!(reader.read_until(b'\n', &mut raw), Ok(n) if n > 0) {
                let line = strip_escapes(&String::from_utf8_lossy(&raw));
                raw.clear();
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = stderr_pipe {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&text);
                }
            });
        }
        Supervised {
            child,
            shown,
            lines: Vec::new(),
            unread: VecDeque::new(),
            rx,
            stderr,
            started: Instant::now(),
        }
    }

    /// podvisor's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What podvisor wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Everything needed to understand a failure.
    pub fn explain(&self) -> String {
        format!(
            "command: {}\nafter: {:?}\n--- stdout lines ---\n{}\n--- stderr ---\n{}",
            self.shown,
            self.started.elapsed(),
            self.lines.join("\n"),
            self.stderr()
        )
    }

    /// Waits for a line that satisfies `pred` and takes it; lines that do not stay available
    /// to later calls, so lines of several processes can be awaited in any order.
    pub fn expect_that(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(i) = self.unread.iter().position(|l| pred(l)) {
            return self.unread.remove(i).expect("position found");
        }
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                    self.unread.push_back(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line {what} within {LINE_TIMEOUT:?}\n{}", self.explain())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stdout closed before a line {what}\n{}", self.explain())
                }
            }
        }
    }

    /// Waits for the line `want`, exactly.
    pub fn expect(&mut self, want: &str) -> String {
        self.expect_that(&format!("{want:?}"), |l| l == want)
    }

    /// Waits until every line of `want` was seen, in any order.
    pub fn expect_all(&mut self, want: &[&str]) {
        for w in want {
            self.expect(w);
        }
    }

    /// Waits for sigecho's `pid=` lines of the main one and of children `c1`..`cN`, in any order.
    pub fn expect_echoes(&mut self, children: usize) -> Vec<Echo> {
        let mut found: Vec<Option<Echo>> = vec![None; children + 1];
        while found.iter().any(Option::is_none) {
            let line = self.expect_that("pid= lines", |l| Echo::parse(l).is_some());
            let echo = Echo::parse(&line).expect("parsed above");
            let index = match echo.name.strip_prefix('c') {
                Some(n) => n.parse::<usize>().unwrap_or(usize::MAX),
                None => 0,
            };
            if let Some(slot) = found.get_mut(index) {
                *slot = Some(echo);
            }
        }
        found.into_iter().flatten().collect()
    }

    /// Waits for sigecho's `pid=` line (with `name` prefix, "" for the main one).
    pub fn expect_echo(&mut self, name: &str) -> Echo {
        let line = self.expect_that(&format!("pid= of {name:?}"), |l| {
            Echo::parse(l).is_some_and(|e| e.name == name)
        });
        Echo::parse(&line).expect("parsed above")
    }

    /// Waits until podvisor's stderr contains `needle`.
    pub fn expect_stderr(&self, needle: &str) {
        let deadline = Instant::now() + LINE_TIMEOUT;
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "stderr never showed {needle:?}\n{}",
                self.explain()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` to podvisor.
    pub fn signal(&self, sig: i32) {
        assert!(
            kill(self.pid(), sig),
            "cannot signal podvisor\n{}",
            self.explain()
        );
    }

    /// Sends `sig` to podvisor's whole process group (started with `own_group`), as Buildkite's
    /// agent cancels a job.
    pub fn signal_group(&self, sig: i32) {
        assert_ne!(self.pid(), our_group(), "would signal the test itself");
        assert!(
            kill(-self.pid(), sig),
            "cannot signal the group\n{}",
            self.explain()
        );
    }

    /// Waits for podvisor to exit (killing it after `timeout`), then collects the rest of stdout.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let explain = self.explain();
                    self.cleanup();
                    panic!("podvisor did not exit within {timeout:?}\n{explain}");
                }
            }
        };
        let elapsed = self.started.elapsed();
        // The rest of stdout; the pipe closes once nothing of the step is left holding it.
        let drain_until = Instant::now() + Duration::from_secs(5);
        loop {
            let left = drain_until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(_) => break,
            }
        }
        // Let the stderr reader reach the end too.
        std::thread::sleep(Duration::from_millis(20));
        self.cleanup();
        Finished {
            shown: self.shown.clone(),
            status,
            lines: std::mem::take(&mut self.lines),
            stderr: self.stderr(),
            elapsed,
        }
    }

    /// Kills podvisor and every sigecho it reported, whatever state the test left them in.
    /// Only live processes that still run sigecho are touched: a pid may have been recycled.
    fn cleanup(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let ours = our_group();
        let echoes: Vec<Echo> = self.lines.iter().filter_map(|l| Echo::parse(l)).collect();
        if echoes.is_empty() {
            return;
        }
        for pid in all_pids() {
            let Some((state, _, pgrp)) = proc_stat(pid) else {
                continue;
            };
            let ours_to_kill = echoes
                .iter()
                .any(|e| e.pid == pid || (e.pgid == pgrp && pgrp != ours));
            if ours_to_kill && state != 'Z' && runs_sigecho(pid) {
                kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn runs_sigecho(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("sigecho"))
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.cleanup();
    }
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn explain(&self) -> String {
        format!(
            "command: {}\nstatus: {:?}\nelapsed: {:?}\n--- stdout lines ---\n{}\n--- stderr ---\n{}",
            self.shown,
            self.status,
            self.elapsed,
            self.lines.join("\n"),
            self.stderr
        )
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "\n{}", self.explain());
        self
    }

    pub fn assert_stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.explain()
        );
        self
    }

    /// How many stdout lines are exactly `line`.
    pub fn count(&self, line: &str) -> usize {
        self.lines.iter().filter(|l| *l == line).count()
    }
}
