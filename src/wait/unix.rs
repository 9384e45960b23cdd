//! Unix socket readiness: a connect succeeds (the file alone may be a stale socket).

use std::path::Path;

use tokio::net::UnixStream;

/// One attempt.
pub async fn probe(path: &Path) -> Result<(), String> {
    UnixStream::connect(path)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
