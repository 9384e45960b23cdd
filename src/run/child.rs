//! Building and spawning the step: PATH lookup, process group, terminal, signal mask.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::libc;
use nix::unistd::{self, Pid};
use tokio::sync::oneshot;

use crate::after::exit::{ChildEnd, Outcome, NOT_EXECUTABLE, NOT_FOUND, OWN_ERROR};
use crate::run::reaper::Reaper;
use crate::run::{dispositions, signals, vfork};
use crate::sidecar::logcopy;

/// Why COMMAND could not start: exit code 126, 127 or 125 and a line naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnError {
    /// 126 (not executable), 127 (not found) or 125 (out of processes, memory or descriptors).
    pub code: u8,
    /// One line for the user.
    pub reason: String,
}

impl From<SpawnError> for Outcome {
    fn from(e: SpawnError) -> Self {
        Outcome::SpawnFailed {
            code: e.code,
            reason: e.reason,
        }
    }
}

/// The running step.
pub struct Child {
    /// The main child's pid.
    pub pid: Pid,
    /// Whether the child leads its own process group (signals go to `-pid`).
    pub group: bool,
    /// Resolves when the reaper collects the main child.
    pub end: oneshot::Receiver<ChildEnd>,
    /// Set when the child's group was made the terminal's foreground group.
    pub terminal: Option<Terminal>,
}

/// The terminal whose foreground group was handed to the child; handed back on drop.
pub struct Terminal {
    our_group: Pid,
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // SIGTTOU is blocked in podvisor, so taking the terminal back cannot stop it.
        let _ = unistd::tcsetpgrp(io::stdin(), self.our_group);
    }
}

/// The search path when PATH is unset: Docker's default.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds COMMAND like execvp would, telling "not found" (127) from "not executable" (126).
pub fn resolve(program: &OsStr) -> Result<PathBuf, SpawnError> {
    let shown = crate::logging::show_bytes(program);
    if program.as_bytes().contains(&b'/') {
        let path = Path::new(program);
        return match path.metadata() {
            Err(_) => Err(SpawnError {
                code: NOT_FOUND,
                reason: format!("{shown}: no such file"),
            }),
            Ok(m) if m.is_dir() || m.permissions().mode() & 0o111 == 0 => Err(SpawnError {
                code: NOT_EXECUTABLE,
                reason: format!("{shown}: not executable"),
            }),
            Ok(_) => Ok(path.to_owned()),
        };
    }
    // PATH unset (`env -i`, Command::env_clear) is searched like execvp(3), tini and the shell
    // do: a default path (Docker's). PATH set but empty stays empty.
    let (path_var, unset) = match std::env::var_os("PATH") {
        Some(p) => (p, ""),
        None => (DEFAULT_PATH.into(), " (PATH is unset, so the default)"),
    };
    match which::which_in(program, Some(&path_var), "/") {
        Ok(found) => Ok(found),
        Err(_) => {
            // which skips files without an execute bit; a file that is there but cannot be run
            // is 126, as in the shell.
            let present = std::env::split_paths(&path_var).any(|dir| dir.join(program).is_file());
            if present {
                Err(SpawnError {
                    code: NOT_EXECUTABLE,
                    reason: format!("{shown}: found in PATH but not executable"),
                })
            } else {
                Err(SpawnError {
                    code: NOT_FOUND,
                    reason: format!(
                        "{shown}: command not found in PATH={}{unset}",
                        path_var.to_string_lossy()
                    ),
                })
            }
        }
    }
}

/// A `Command` for `argv` that starts like a fresh process: empty signal mask, every signal at
/// its default disposition, optionally its own process group and the terminal's foreground.
pub fn command(program: &Path, argv: &[OsString], group: bool, foreground: bool) -> Command {
    let mut cmd = Command::new(program);
    if let Some(arg0) = argv.first() {
        cmd.arg0(arg0);
    }
    cmd.args(argv.iter().skip(1));
    // Built here: the child between fork and exec must not allocate.
    let everything = signals::raw_sigset(1..=64);
    let ignored = dispositions::ignored();
    // SAFETY: only async-signal-safe libc calls on local data, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            // Everything blocked first: SIGTTOU until the terminal is ours, and any signal aimed
            // at podvisor's group while we still belonged to it.
            signals::raw_sigprocmask(libc::SIG_SETMASK, &everything, std::ptr::null_mut());
            clean_start(group, ignored)?;
            if foreground {
                libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
            }
            unblock_all();
            Ok(())
        });
    }
    cmd
}

/// The clean-start steps both spawn paths take in the child, every signal still blocked: its
/// own process group when `group`, default dispositions ([`reset_dispositions`]), the
/// oom_score_adj podvisor inherited rather than its protection. System calls on prepared data
/// only: safe between fork (or vfork) and exec. An error is setpgid's, errno set.
///
/// # Safety
/// Call only in the child between fork (or vfork) and exec.
pub(crate) unsafe fn clean_start(group: bool, ignored: u64) -> io::Result<()> {
    if group && libc::setpgid(0, 0) != 0 {
        return Err(io::Error::last_os_error());
    }
    reset_dispositions(ignored);
    // The step gets the oom_score_adj podvisor inherited, not podvisor's protection.
    crate::run::oom::restore_in_child();
    Ok(())
}

/// Empties the signal mask, the last step before exec (the raw call: see
/// [`signals::raw_sigprocmask`]).
///
/// # Safety
/// Call only in the child between fork (or vfork) and exec.
pub(crate) unsafe fn unblock_all() {
    let empty = signals::raw_sigset(std::iter::empty());
    signals::raw_sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
}

/// Puts every signal back to its default disposition, in the child between fork and exec.
///
/// Handlers do not survive exec, but "ignored" does: std resets only SIGPIPE, and podvisor may
/// itself have been started with signals ignored (`nohup`, CI agents, a parent's SIG_IGN; glibc's
/// posix_spawn even leaves its two reserved real-time signals ignored in what it starts).
/// Passing through SIG_IGN first also discards anything still pending from the moment between
/// fork and setpgid, when a signal sent to podvisor's whole group reached this child too: the
/// child gets exactly the signals podvisor forwards (sigaction(2): setting SIG_IGN discards a
/// pending signal).
///
/// Only the signals that need it are touched: those `ignored` in podvisor, and those pending
/// (sigpending), usually SIGPIPE alone. Setting all 62 twice while the parent waits for the exec
/// cost ~0.2 ms on every start (bench row 1, same run: 1.80 ms against 1.58 ms).
///
/// # Safety
/// Call only in the forked child: it changes process-wide signal state.
pub(crate) unsafe fn reset_dispositions(ignored: u64) {
    let mut pending = std::mem::zeroed::<libc::sigset_t>();
    if libc::sigpending(&mut pending) != 0 {
        libc::sigfillset(&mut pending);
    }
    for signo in 1..=64 {
        if signo == libc::SIGKILL || signo == libc::SIGSTOP {
            continue;
        }
        let is_pending = libc::sigismember(&pending, signo) == 1;
        if is_pending {
            dispositions::raw_ignore(signo);
        }
        if is_pending || ignored & (1 << (signo - 1)) != 0 {
            dispositions::raw_default(signo);
        }
    }
}

/// Whether podvisor runs in the foreground of the terminal on its stdin.
fn in_terminal_foreground() -> bool {
    unistd::isatty(io::stdin()).unwrap_or(false)
        && unistd::tcgetpgrp(io::stdin()).ok() == Some(unistd::getpgrp())
}

/// What a failed fork or exec means: the command's fault (126, 127) or, when the system is out
/// of something (processes: `pids.max`, `ulimit -u`; memory; descriptors), podvisor's own
/// failure (125), which a retry or a larger limit fixes, not a change to the command.
fn spawn_error(program: &OsStr, e: &io::Error) -> SpawnError {
    let shown = crate::logging::show_bytes(program);
    let out_of = match e.raw_os_error() {
        Some(libc::EAGAIN) => {
            Some("no new process allowed (pids.max of the pids cgroup, or ulimit -u, is reached)")
        }
        Some(libc::ENOMEM) => Some("out of memory"),
        Some(libc::EMFILE | libc::ENFILE) => Some("out of file descriptors"),
        _ => None,
    };
    match out_of {
        Some(what) => SpawnError {
            code: OWN_ERROR,
            reason: format!("cannot start {shown}: {what}: {e}"),
        },
        None => SpawnError {
            code: if e.kind() == io::ErrorKind::NotFound {
                NOT_FOUND
            } else {
                NOT_EXECUTABLE
            },
            reason: format!("{shown}: {e}"),
        },
    }
}

/// Resolves and starts the step under the reaper.
pub fn spawn(reaper: &Reaper, argv: &[OsString], group: bool) -> Result<Child, SpawnError> {
    let program = argv.first().ok_or_else(|| SpawnError {
        code: NOT_FOUND,
        reason: "no command given".into(),
    })?;
    let path = resolve(program)?;
    let foreground = group && in_terminal_foreground();
    let failed = |e: io::Error| spawn_error(program, &e);
    if !foreground && !logcopy::wanted() {
        // No terminal to hand over, no pipes to set: the cheaper vfork path (row 1, vfork.rs).
        let (pid, end) = reaper
            .spawn_with(|| vfork::spawn(&path, argv, group, dispositions::ignored()))
            .map_err(failed)?;
        return Ok(Child {
            pid,
            group,
            end,
            terminal: None,
        });
    }
    let mut cmd = command(&path, argv, group, foreground);
    // With --log-to, COMMAND's stdout and stderr become pipes that podvisor passes through.
    let capture = logcopy::capture(&mut cmd);
    let (pid, end) = reaper.spawn(&mut cmd).map_err(failed)?;
    // Our copies of the pipes' write ends go with the Command, so that COMMAND's end (and its
    // descendants') is the pipes' end.
    drop(cmd);
    if let Some(capture) = capture {
        capture.start();
    }
    let terminal = foreground.then(|| {
        // Also from the parent, as shells do: whichever runs first wins, the other is a no-op.
        let _ = unistd::tcsetpgrp(io::stdin(), pid);
        Terminal {
            our_group: unistd::getpgrp(),
        }
    });
    Ok(Child {
        pid,
        group,
        end,
        terminal,
    })
}
