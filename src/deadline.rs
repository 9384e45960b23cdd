//! Optional deadlines for `select!` arms: no deadline is a future that never resolves, so the
//! arm stays in the select without a timer (and without waking the runtime).

use tokio::time::{sleep_until, Instant};

/// Sleeps until `at`, or forever when there is no deadline.
pub async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
