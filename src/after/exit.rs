//! Every way podvisor ends, and the one exit code each maps to.
//!
//! | outcome                                               | exit code |
//! |-------------------------------------------------------|-----------|
//! | COMMAND exited with N                                 | N         |
//! | COMMAND killed by signal N (forwarded, its own, the grace SIGKILL) | 128+N |
//! | COMMAND's N or 128+N matches `--map-exit FROM:TO`     | TO        |
//! | sidecar stopped on request (first TERM/INT/QUIT/HUP, until-condition; also in the wait phase) | 0 |
//! | no COMMAND, waits and until-conditions done           | 0         |
//! | wait failed (strict, or `--no-strict` with no COMMAND) | 124      |
//! | podvisor's own error, configuration errors            | 125       |
//! | no process, memory or descriptor to start COMMAND     | 125       |
//! | COMMAND found, not executable                         | 126       |
//! | COMMAND not found                                     | 127       |
//! | terminating signal N during the wait phase (not a sidecar) | 128+N |
//!
//! `--map-exit` applies to COMMAND's own end only ([`Outcome::map_exit`]). No signal kills
//! podvisor itself (all are blocked and read, see run/signals.rs) but KILL, which the
//! shell shows as 137, and a genuine crash of its own.

/// Exit code for a failed wait phase (as `timeout(1)`).
pub const WAIT_FAILED: u8 = 124;
/// Exit code for podvisor's own errors, configuration errors included.
pub const OWN_ERROR: u8 = 125;
/// Exit code when COMMAND exists but cannot be executed.
pub const NOT_EXECUTABLE: u8 = 126;
/// Exit code when COMMAND is not found.
pub const NOT_FOUND: u8 = 127;

/// How the main child ended, as waitpid reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl ChildEnd {
    /// The shell's convention: the status, or 128+N.
    pub fn code(self) -> u8 {
        match self {
            ChildEnd::Exited(c) => (c & 0xff) as u8,
            ChildEnd::Signaled(s) => (128 + s).clamp(0, 255) as u8,
        }
    }
}

/// The end of a podvisor run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// COMMAND ran and ended by itself (or by a forwarded signal).
    Child(ChildEnd),
    /// COMMAND ended so, and `--map-exit` turned its code into `code`.
    Mapped { end: ChildEnd, code: u8 },
    /// COMMAND was stopped because the sidecar's work is done; counts as success.
    Stopped(ChildEnd),
    /// Nothing to run: the waits (and until-conditions) were satisfied.
    Done,
    /// The wait phase failed in strict mode; COMMAND never ran.
    WaitFailed(String),
    /// A terminating signal arrived before COMMAND started.
    Cancelled(i32),
    /// COMMAND could not be started; the code is 126 or 127, or 125 when the system is out of
    /// processes, memory or descriptors.
    SpawnFailed { code: u8, reason: String },
    /// podvisor itself failed.
    Error(String),
}

impl Outcome {
    /// The process exit code of this outcome.
    pub fn code(&self) -> u8 {
        match self {
            Outcome::Child(end) => end.code(),
            Outcome::Mapped { code, .. } => *code,
            Outcome::Stopped(_) | Outcome::Done => 0,
            Outcome::WaitFailed(_) => WAIT_FAILED,
            Outcome::Cancelled(sig) => ChildEnd::Signaled(*sig).code(),
            Outcome::SpawnFailed { code, .. } => *code,
            Outcome::Error(_) => OWN_ERROR,
        }
    }
}

impl Outcome {
    /// How COMMAND itself ended, when it ran: the code podvisor would return for it (its
    /// status, or 128+N) before `--map-exit` and the sidecar's "stopped is success".
    pub fn child_code(&self) -> Option<u8> {
        match self {
            Outcome::Child(end) | Outcome::Stopped(end) | Outcome::Mapped { end, .. } => {
                Some(end.code())
            }
            _ => None,
        }
    }

    /// Applies `--map-exit FROM:TO` (first match wins) to COMMAND's own end. podvisor's own
    /// outcomes (a failed or cancelled wait, a spawn failure, its errors, a sidecar's stop, no
    /// COMMAND) keep their codes.
    pub fn map_exit(self, table: &[(u8, u8)]) -> Outcome {
        match self {
            Outcome::Child(end) => match table.iter().find(|&&(from, _)| from == end.code()) {
                Some(&(_, code)) => Outcome::Mapped { end, code },
                None => self,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_table() {
        assert_eq!(Outcome::Child(ChildEnd::Exited(42)).code(), 42);
        assert_eq!(Outcome::Child(ChildEnd::Exited(256 + 3)).code(), 3);
        assert_eq!(Outcome::Child(ChildEnd::Signaled(15)).code(), 143);
        assert_eq!(Outcome::Stopped(ChildEnd::Signaled(15)).code(), 0);
        assert_eq!(Outcome::WaitFailed(String::new()).code(), 124);
        assert_eq!(Outcome::Cancelled(2).code(), 130);
        assert_eq!(Outcome::Error(String::new()).code(), 125);
    }

    #[test]
    fn map_exit_touches_only_the_commands_own_end() {
        let table = [(143, 0), (3, 7), (3, 9), (124, 0)];
        let term = Outcome::Child(ChildEnd::Signaled(15)).map_exit(&table);
        assert_eq!(term.code(), 0);
        assert_eq!(term.child_code(), Some(143));
        assert_eq!(
            Outcome::Child(ChildEnd::Exited(143))
                .map_exit(&table)
                .code(),
            0
        );
        assert_eq!(
            Outcome::Child(ChildEnd::Exited(3)).map_exit(&table).code(),
            7
        );
        assert_eq!(
            Outcome::Child(ChildEnd::Exited(4)).map_exit(&table).code(),
            4
        );
        let failed = Outcome::WaitFailed(String::new()).map_exit(&table);
        assert_eq!((failed.code(), failed.child_code()), (124, None));
        assert_eq!(Outcome::Cancelled(15).map_exit(&table).code(), 143);
        let stopped = Outcome::Stopped(ChildEnd::Exited(3)).map_exit(&table);
        assert_eq!((stopped.code(), stopped.child_code()), (0, Some(3)));
    }
}
