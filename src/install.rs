//! `--install-to DIR`: copy this executable into DIR, atomically, mode 0755. An init container
//! running the podvisor image (no shell, no cp) hands podvisor to the pod through /workspace.
//!
//! Atomic means a container of the pod never sees a partial `DIR/podvisor`: the copy goes to a
//! temp file in DIR (same file system), is made 0755 and fsynced, then renamed over the old one.
//! rename(2) also works while another container runs the old copy, where writing into it would
//! fail with ETXTBSY.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The installed file's name inside DIR.
pub const NAME: &str = "podvisor";

/// Copies the running executable to `DIR/podvisor`; returns the installed path.
pub fn install_to(dir: &Path) -> Result<PathBuf, String> {
    let (mut source, from) = open_self()?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dest = dir.join(NAME);
    let (mut out, tmp) = create_temp(dir)?;
    let result = (|| {
        io::copy(&mut source, &mut out)?;
        // The umask may have narrowed the creation mode; other UIDs of the pod must run it.
        out.set_permissions(fs::Permissions::from_mode(0o755))?;
        out.sync_all()?;
        fs::rename(&tmp, &dest)?;
        // Make the rename itself durable (best effort: some file systems refuse a dir fsync).
        let _ = File::open(dir).and_then(|d| d.sync_all());
        Ok::<(), io::Error>(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(format!(
            "cannot install {} into {}: {e}",
            from.display(),
            dest.display()
        ));
    }
    Ok(dest)
}

/// Creates a fresh temp file in `dir` (create_new: never writing through something already
/// there). PID alone is not unique: every container's podvisor is PID 1, and init containers of
/// several pods may install into one shared hostPath at once; so the name also holds the time,
/// and a name already taken is retried with the next suffix.
fn create_temp(dir: &Path) -> Result<(File, PathBuf), String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut last = None;
    for n in 0..100 {
        let tmp = dir.join(format!(".{NAME}.{}.{nanos}.{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(format!(
                    "cannot create a temp file in {}: {e}",
                    dir.display()
                ))
            }
        }
    }
    Err(format!(
        "cannot create a temp file in {}: {}",
        dir.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Opens the running executable. /proc/self/exe is the file actually running, even when its
/// path has been replaced or deleted since; without /proc (a bare chroot), argv[0] is used,
/// which in a `FROM scratch` image is the absolute ENTRYPOINT `/podvisor`.
fn open_self() -> Result<(File, PathBuf), String> {
    let proc_exe = Path::new("/proc/self/exe");
    if let Ok(f) = File::open(proc_exe) {
        return Ok((
            f,
            std::env::current_exe().unwrap_or_else(|_| proc_exe.into()),
        ));
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let path = from_argv0(&argv0).ok_or_else(|| {
        format!(
            "cannot find my own executable: /proc/self/exe is not readable and argv[0] {:?} is not a path",
            argv0
        )
    })?;
    File::open(&path)
        .map(|f| (f, path.clone()))
        .map_err(|e| format!("cannot read my own executable {}: {e}", path.display()))
}

/// argv[0] as a path: taken as is when it holds a slash, else looked up on PATH like a shell.
fn from_argv0(argv0: &OsString) -> Option<PathBuf> {
    if argv0.is_empty() {
        return None;
    }
    let p = PathBuf::from(argv0);
    if argv0.as_encoded_bytes().contains(&b'/') {
        return Some(p);
    }
    which::which(&p).ok()
}
