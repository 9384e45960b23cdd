//! Unix socket readiness: a connect succeeds (the file alone may be a stale socket).

use std::path::Path;

use tokio::net::UnixStream;

use super::Attempt;

/// One attempt.
pub async fn attempt(path: &Path) -> Attempt {
    match UnixStream::connect(path).await {
        Ok(_) => Attempt::Ready(String::new()),
        Err(e) => Attempt::NotReady(e.to_string()),
    }
}
