//! `--install-to DIR`: copy this executable into DIR, atomically, mode 0755. An init container
//! running the podvisor image (no shell, no cp) hands podvisor to the pod through /workspace.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Copies the running executable to `DIR/podvisor`; returns the installed path.
pub fn install_to(dir: &Path) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dest = dir.join("podvisor");
    let tmp = dir.join(format!(".podvisor.{}.tmp", std::process::id()));
    let result = (|| {
        fs::copy(&me, &tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
        fs::File::open(&tmp)?.sync_all()?;
        // rename(2) replaces atomically, even over a copy another container is running.
        fs::rename(&tmp, &dest)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(format!("cannot install into {}: {e}", dir.display()));
    }
    Ok(dest)
}
