//! Until-conditions of the sidecar role: all `--until-file` paths exist and every
//! `--until-marker` command container is finished.

use std::path::PathBuf;

/// Resolves once every condition holds.
pub async fn until(files: Vec<PathBuf>, markers: Vec<PathBuf>) {
    // Placeholder until the sidecar issue lands: poll existence.
    loop {
        let files_ok = files.iter().all(|f| f.exists());
        let markers_ok = markers.iter().all(|m| m.exists());
        if files_ok && markers_ok {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
