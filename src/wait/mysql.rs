//! MySQL/MariaDB readiness: the server's greeting.
//!
//! For now a TCP connect, like `tcp://`; the protocol probe is issue 11 item 4.

use super::target::Db;
use super::Attempt;

/// One attempt.
pub async fn attempt(db: &Db) -> Attempt {
    match super::tcp::connect(&db.host, db.port).await {
        Ok(_) => Attempt::Ready(String::new()),
        Err(e) => Attempt::NotReady(e),
    }
}
