//! The marker a command container leaves on the shared volume when its step ends.
//!
//! While the step runs, podvisor holds an exclusive flock on `PATH.lock`; when it ends, on every
//! path, it writes `PATH` (one JSON object) atomically and then lets the lock go. A sidecar knows
//! the step is finished when PATH exists, or when it can take the lock (the owner died without
//! writing PATH: SIGKILL, the OOM killer). docs/design.md explains the protocol.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use nix::errno::Errno;
use nix::libc;
use serde::Serialize;

use crate::after::exit;
use crate::after::exit::{ChildEnd, Outcome};
use crate::after::shutdown::CallResult;
use crate::run::signals;
use crate::wait::Report;

/// Mode of folders podvisor creates: like /tmp, every UID of the pod may add its own markers,
/// and the sticky bit keeps one UID from removing or replacing another's.
const DIR_MODE: u32 = 0o1777;
/// Markers and lock files: everyone reads (and may flock, which needs only a read fd).
const FILE_MODE: u32 = 0o644;

/// The marker of this run, acquired at start and written at the end.
pub struct Marker {
    /// Where the marker goes.
    path: PathBuf,
    /// The open lock file, holding an exclusive flock; `None` where flock is unsupported. Never
    /// read: it is held until the `Marker` is dropped, which lets the lock go.
    _lock: Option<File>,
}

/// What the marker records besides the outcome.
pub struct Record<'a> {
    /// How the run ended.
    pub outcome: &'a Outcome,
    /// The wait phase, if there was one.
    pub waits: &'a Report,
    /// The command as given.
    pub command: &'a [OsString],
    /// When podvisor started, by the wall clock (for started_at).
    pub started_at: SystemTime,
    /// When podvisor started, by the monotonic clock (for duration_ms).
    pub started: Instant,
    /// `--map-exit` is in use: the marker adds `child_exit_code`.
    pub map_exit: bool,
    /// The shutdown calls (pending in the first version, results in the last); the field is
    /// left out when there are none.
    pub shutdown: &'a [CallResult],
}

/// The marker's JSON, field for field as documented in the README.
#[derive(Serialize)]
struct Json<'a> {
    version: u32,
    status: &'static str,
    exit_code: u8,
    /// Only under `--map-exit`, where `exit_code` may differ from it: the command's own code
    /// (null when it did not run). Left out otherwise, so the first schema stays as it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    child_exit_code: Option<Option<u8>>,
    signal: Option<String>,
    reason: String,
    command: Vec<String>,
    started_at: String,
    finished_at: String,
    duration_ms: u64,
    waits: Vec<Wait<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shutdown: Option<&'a [CallResult]>,
}

/// One wait target in the marker.
#[derive(Serialize)]
struct Wait<'a> {
    target: &'a str,
    ready: bool,
    after_ms: u64,
    attempts: u32,
    /// Why it is not ready, in the server's terms; absent when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
}

/// `PATH.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Whether an flock error means the file system has no flock at all (as opposed to "busy").
pub fn flock_unsupported(e: Errno) -> bool {
    matches!(e, Errno::ENOLCK | Errno::EOPNOTSUPP | Errno::EINVAL)
}

impl Marker {
    /// Prepares PATH: parent folders, PATH.lock held, stale marker removed.
    ///
    /// The lock goes in before the stale marker goes out: a watcher then sees "finished (stale)"
    /// turn straight into "running", never a lock-less moment that reads as "owner died".
    pub fn acquire(path: &Path) -> Result<Self, String> {
        let dir = folder(path);
        create_folders(&dir)
            .map_err(|e| format!("creating {}: {e} ({})", dir.display(), who_can_write(&dir)))?;
        let lock_path = lock_path(path);
        let temp = locked_temp(&dir, path).map_err(|e| format!("{e} ({})", who_can_write(&dir)))?;
        let lock = match temp {
            Some((tmp, file)) => {
                // Renamed into place already locked: nobody can see a fresh, unlocked lock file.
                fs::rename(&tmp, &lock_path).map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    format!("renaming the lock into {}: {e}", lock_path.display())
                })?;
                Some(file)
            }
            None => {
                // A stale lock file would read as "owner died" to a sidecar that can flock here.
                remove_if_present(&lock_path)?;
                None
            }
        };
        // Only the removal failed (a folder at PATH, say): keep the lock all the same, so that a
        // sidecar sees this step as running, and say it once. The final write will most likely
        // fail as well, with an error line of its own, and the step's status is kept.
        if let Err(e) = remove_if_present(path) {
            tracing::error!("cannot clear the marker's place: {e}");
        }
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// Writes the marker atomically, keeping the lock: a later write replaces it whole (the
    /// shutdown calls' results). Dropping the `Marker` releases the lock, so the marker is in
    /// place (or never will be) before the lock goes: a sidecar that takes the lock and finds no
    /// marker may rightly say the owner died without one.
    pub fn write(&self, record: &Record<'_>) -> Result<(), String> {
        write_atomically(&self.path, &render(record, SystemTime::now()))
    }

    /// Where the marker goes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The marker as far as it could be prepared. On a root-owned volume the step's podvisor (another
/// UID) may start before the sidecar that creates the marker's folder (1777, `--until-marker`):
/// then it tries again once the wait phase is over, and once more at the end.
pub enum Slot {
    /// No `--marker`.
    Off,
    /// Not prepared yet: every try so far failed (each with one error line).
    Pending(PathBuf),
    /// The lock is held; the marker is written at the end.
    Held(Marker),
}

impl Slot {
    /// The first try, at start. `next` says when the next one comes, for the error line.
    pub fn acquire(path: Option<&Path>, next: &str) -> Self {
        let Some(path) = path else {
            return Self::Off;
        };
        let mut slot = Self::Pending(path.to_owned());
        slot.try_again(None, next);
        slot
    }

    /// Another try if the marker is still pending: `when` names this moment for the line that
    /// says it worked (`None` at start), `next` what follows a failure.
    pub fn try_again(&mut self, when: Option<&str>, next: &str) {
        let Self::Pending(path) = self else {
            return;
        };
        match Marker::acquire(path) {
            Ok(marker) => {
                if let Some(when) = when {
                    tracing::info!("the marker {} is prepared {when}", path.display());
                }
                *self = Self::Held(marker);
            }
            Err(e) => tracing::error!("cannot prepare the marker {} ({next}): {e}", path.display()),
        }
    }

    /// The marker, once prepared.
    pub fn held(&self) -> Option<&Marker> {
        match self {
            Self::Held(marker) => Some(marker),
            Self::Off | Self::Pending(_) => None,
        }
    }
}

/// The folder PATH lives in (`.` for a bare name).
pub fn folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Creates every missing folder above PATH with mode 1777; existing ones are left as they are.
/// The sidecar side (`--until-marker`) does it too, before it waits: a step running as another
/// UID can then write its marker on a root-owned volume (podman's emptyDir is root:root 0755).
pub fn create_folders(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
        .collect();
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            // set_permissions, not the create mode: the umask would strip the bits.
            Ok(()) => fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))?,
            // Another container of the pod made it at the same moment: theirs is as good.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Why a folder may not be writable, for an error line: the nearest existing folder at or above
/// `dir` with its owner and mode, and who podvisor runs as:
/// `/workspace is owned by 0:0 with mode 0755; podvisor runs as uid 65534, gid 65534`.
pub fn who_can_write(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let me = format!("podvisor runs as uid {uid}, gid {gid}");
    let found = dir
        .ancestors()
        .filter(|d| !d.as_os_str().is_empty())
        .find_map(|d| fs::metadata(d).ok().map(|m| (d, m)));
    match found {
        Some((d, m)) => format!(
            "{} is owned by {}:{} with mode {:04o}; {me}",
            d.display(),
            m.uid(),
            m.gid(),
            m.mode() & 0o7777
        ),
        None => me,
    }
}

/// A fresh file next to `path`, named so that no other writer (another container's PID 1
/// included) picks the same name: `.NAME.PID.NANOS.tmp`.
fn create_temp(dir: &Path, path: &Path, what: &str) -> Result<(PathBuf, File), String> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = path.file_name().unwrap_or(OsStr::new("marker"));
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{what}.{}.{nanos}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    if let Err(e) = file.set_permissions(fs::Permissions::from_mode(FILE_MODE)) {
        let _ = fs::remove_file(&tmp);
        return Err(format!("chmod {}: {e}", tmp.display()));
    }
    Ok((tmp, file))
}

/// A temp lock file already holding an exclusive flock; `None` (with a warning) where the file
/// system has no flock, so that markers still work without liveness.
fn locked_temp(dir: &Path, path: &Path) -> Result<Option<(PathBuf, File)>, String> {
    let (tmp, file) = create_temp(dir, path, "lock")?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some((tmp, file)));
    }
    let e = Errno::last();
    let _ = fs::remove_file(&tmp);
    if flock_unsupported(e) {
        tracing::warn!(
            "no flock on the file system of {}: {e}; without a lock, a sidecar cannot tell that \
             this podvisor died without writing its marker",
            dir.display()
        );
        return Ok(None);
    }
    Err(format!("locking {}: {e}", tmp.display()))
}

fn remove_if_present(path: &Path) -> Result<(), String> {
    match fs::remove_file(path) {
        Ok(()) => {
            tracing::debug!("removed stale {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing stale {}: {e}", path.display())),
    }
}

/// Temp file in the same folder, fsync, rename over PATH, fsync the folder. rename(2) replaces
/// whatever is at PATH, a planted symlink included (the link goes, its target is untouched), and
/// a reader sees either no marker or the whole object, never part of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = folder(path);
    let (tmp, mut file) = create_temp(&dir, path, "marker")?;
    let result = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {}: {e}", tmp.display()))
        .and_then(|()| {
            fs::rename(&tmp, path).map_err(|e| format!("renaming into {}: {e}", path.display()))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // The rename itself is durable only once the folder is synced; a failure here (some file
    // systems refuse fsync on folders) leaves a marker that is in place for every reader now.
    if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
        tracing::debug!("fsync {}: {e}", dir.display());
    }
    Ok(())
}

/// The marker's bytes: one JSON object and a newline.
fn render(record: &Record<'_>, finished_at: SystemTime) -> Vec<u8> {
    let outcome = record.outcome;
    let (status, signal) = match outcome {
        Outcome::Child(ChildEnd::Signaled(s))
        | Outcome::Mapped {
            end: ChildEnd::Signaled(s),
            ..
        } => ("signaled", Some(signals::name(*s))),
        Outcome::Cancelled(s) => ("cancelled", Some(signals::name(*s))),
        // A stopped sidecar's end is its success, whatever the child died of.
        Outcome::Child(ChildEnd::Exited(_))
        | Outcome::Stopped(_)
        | Outcome::Mapped {
            end: ChildEnd::Exited(_),
            ..
        }
        | Outcome::Done => ("exited", None),
        Outcome::WaitFailed(_) => ("wait_failed", None),
        // podvisor's own failure before the step could start is a failure to start it.
        Outcome::SpawnFailed { .. } | Outcome::Error(_) => ("spawn_failed", None),
    };
    let json = Json {
        version: 1,
        status,
        exit_code: outcome.code(),
        child_exit_code: record.map_exit.then(|| outcome.child_code()),
        signal,
        reason: reason(outcome),
        command: record
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        started_at: rfc3339(record.started_at),
        finished_at: rfc3339(finished_at),
        duration_ms: millis(record.started.elapsed()),
        waits: record
            .waits
            .targets
            .iter()
            .map(|t| Wait {
                target: &t.target,
                ready: t.ready,
                after_ms: millis(t.after),
                attempts: t.attempts,
                last_error: t.last_error.as_deref(),
            })
            .collect(),
        shutdown: (!record.shutdown.is_empty()).then_some(record.shutdown),
    };
    let mut bytes = serde_json::to_vec(&json).unwrap_or_else(|e| {
        // Serializing plain strings and numbers cannot fail; keep a valid object regardless.
        format!("{{\"version\":1,\"status\":\"{status}\",\"reason\":\"{e}\"}}").into_bytes()
    });
    bytes.push(b'\n');
    bytes
}

/// One line for humans.
fn reason(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Child(end) => the_command(*end),
        Outcome::Stopped(end) => format!("stopped on request: {}", the_command(*end)),
        Outcome::Mapped { end, code } => format!(
            "{}; --map-exit {}:{code} made it exit {code}",
            the_command(*end),
            end.code()
        ),
        Outcome::Done => "no command to run; every condition held".into(),
        Outcome::WaitFailed(why) => format!("wait failed (exit {}): {why}", exit::WAIT_FAILED),
        Outcome::Cancelled(s) => format!(
            "{} during the wait phase; the command did not run",
            signals::name(*s)
        ),
        Outcome::SpawnFailed { reason, .. } => reason.clone(),
        Outcome::Error(why) => format!("podvisor error: {why}"),
    }
}

/// `the command exited with 3`, `the command was killed by SIGTERM`: a sentence, unlike the
/// log's `child ended (killed by SIGTERM)`.
fn the_command(end: ChildEnd) -> String {
    match end {
        ChildEnd::Exited(c) => format!("the command exited with {c}"),
        ChildEnd::Signaled(s) => format!("the command was killed by {}", signals::name(s)),
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `2026-12-02T01:56:05.123Z` (humantime is already a dependency, for durations).
fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::TargetReport;
    use std::time::Duration;

    fn parse(outcome: Outcome) -> serde_json::Value {
        parse_with(outcome, true)
    }

    fn parse_with(outcome: Outcome, map_exit: bool) -> serde_json::Value {
        let waits = Report {
            targets: vec![TargetReport {
                target: "tcp://localhost:80".into(),
                ready: true,
                after: Duration::from_millis(123),
                attempts: 4,
                last_error: None,
            }],
        };
        let command = [OsString::from("make"), OsString::from("test")];
        let started_at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let record = Record {
            outcome: &outcome,
            waits: &waits,
            command: &command,
            started_at,
            started: Instant::now(),
            map_exit,
            shutdown: &[],
        };
        let bytes = render(&record, started_at + Duration::from_secs(2));
        assert_eq!(bytes.last(), Some(&b'\n'));
        serde_json::from_slice(&bytes).expect("marker is JSON")
    }

    #[test]
    fn reasons_are_sentences() {
        let reason_of = |o: Outcome| parse(o)["reason"].as_str().unwrap_or("").to_owned();
        assert_eq!(
            reason_of(Outcome::Child(ChildEnd::Exited(3))),
            "the command exited with 3"
        );
        assert_eq!(
            reason_of(Outcome::Child(ChildEnd::Signaled(libc::SIGTERM))),
            "the command was killed by SIGTERM"
        );
        assert_eq!(
            reason_of(Outcome::Stopped(ChildEnd::Signaled(libc::SIGQUIT))),
            "stopped on request: the command was killed by SIGQUIT"
        );
        assert_eq!(
            reason_of(Outcome::Mapped {
                end: ChildEnd::Exited(143),
                code: 0
            }),
            "the command exited with 143; --map-exit 143:0 made it exit 0"
        );
    }

    #[test]
    fn schema_of_every_status() {
        let cases = [
            (Outcome::Child(ChildEnd::Exited(3)), "exited", 3, None),
            (
                Outcome::Mapped {
                    end: ChildEnd::Signaled(libc::SIGTERM),
                    code: 0,
                },
                "signaled",
                0,
                Some("SIGTERM"),
            ),
            (
                Outcome::Child(ChildEnd::Signaled(libc::SIGKILL)),
                "signaled",
                137,
                Some("SIGKILL"),
            ),
            (
                Outcome::Stopped(ChildEnd::Signaled(libc::SIGTERM)),
                "exited",
                0,
                None,
            ),
            (Outcome::Done, "exited", 0, None),
            (
                Outcome::WaitFailed("x not ready".into()),
                "wait_failed",
                124,
                None,
            ),
            (
                Outcome::Cancelled(libc::SIGTERM),
                "cancelled",
                143,
                Some("SIGTERM"),
            ),
            (
                Outcome::SpawnFailed {
                    code: 127,
                    reason: "nope: not found".into(),
                },
                "spawn_failed",
                127,
                None,
            ),
        ];
        for (outcome, status, code, signal) in cases {
            let v = parse(outcome.clone());
            let obj = v.as_object().expect("an object");
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            let mut want = [
                "version",
                "status",
                "exit_code",
                "child_exit_code",
                "signal",
                "reason",
                "command",
                "started_at",
                "finished_at",
                "duration_ms",
                "waits",
            ];
            want.sort_unstable();
            let mut got = keys.clone();
            got.sort_unstable();
            assert_eq!(got, want, "{outcome:?}");
            assert_eq!(v["version"], 1);
            assert_eq!(v["status"], status, "{outcome:?}");
            assert_eq!(v["exit_code"], code, "{outcome:?}");
            assert_eq!(v["signal"].as_str(), signal, "{outcome:?}");
            let child = outcome.child_code().map(serde_json::Value::from);
            assert_eq!(
                v["child_exit_code"],
                child.unwrap_or(serde_json::Value::Null),
                "{outcome:?}"
            );
            assert!(!v["reason"].as_str().unwrap_or("").is_empty());
            assert!(!v["reason"].as_str().unwrap_or("\n").contains('\n'));
            assert_eq!(v["command"], serde_json::json!(["make", "test"]));
            assert_eq!(v["started_at"], "2023-11-14T22:13:20.123Z");
            assert_eq!(v["finished_at"], "2023-11-14T22:13:22.123Z");
            assert!(v["duration_ms"].is_u64());
            assert_eq!(
                v["waits"],
                serde_json::json!([{"target":"tcp://localhost:80","ready":true,"after_ms":123,"attempts":4}])
            );
        }
    }

    #[test]
    fn child_exit_code_only_under_map_exit() {
        let v = parse_with(Outcome::Child(ChildEnd::Exited(3)), false);
        assert!(v.get("child_exit_code").is_none(), "{v}");
        let v = parse_with(Outcome::WaitFailed(String::new()), true);
        assert!(v["child_exit_code"].is_null(), "{v}");
    }

    #[test]
    fn shutdown_calls_are_listed_only_when_there_are_some() {
        let calls = [CallResult {
            url: "http://localhost:15020/quitquitquit".into(),
            status: Some(200),
            error: None,
            after_ms: Some(3),
        }];
        let waits = Report::default();
        let outcome = Outcome::Done;
        let mut record = Record {
            outcome: &outcome,
            waits: &waits,
            command: &[],
            started_at: SystemTime::UNIX_EPOCH,
            started: Instant::now(),
            map_exit: false,
            shutdown: &calls,
        };
        let json = |r: &Record<'_>| -> serde_json::Value {
            serde_json::from_slice(&render(r, SystemTime::UNIX_EPOCH)).expect("marker is JSON")
        };
        assert_eq!(
            json(&record)["shutdown"],
            serde_json::json!([{"url":"http://localhost:15020/quitquitquit","status":200,"error":null,"after_ms":3}])
        );
        record.shutdown = &[];
        assert!(json(&record).get("shutdown").is_none());
    }

    #[test]
    fn lock_path_appends() {
        assert_eq!(
            lock_path(Path::new("/w/m.json")),
            PathBuf::from("/w/m.json.lock")
        );
    }
}
