//! TCP readiness: a connect succeeds. Names are resolved again at every attempt, because a
//! sidecar's address may only appear (in /etc/hosts or DNS) once it starts.

use tokio::net::{lookup_host, TcpStream};
use tokio::task::JoinSet;

/// Connects to `host:port`, trying every address the name resolves to at once; the first that
/// accepts wins. Trying them one by one would let an address that drops SYNs (an IPv6 record on
/// an IPv4-only network) hold up the others until the attempt times out.
pub async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs = lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut tries = JoinSet::new();
    for addr in addrs {
        tries.spawn(async move {
            TcpStream::connect(addr)
                .await
                .map_err(|e| format!("{addr}: {e}"))
        });
    }
    let mut errors = Vec::new();
    // Dropping the set on return aborts the connects still in flight.
    while let Some(joined) = tries.join_next().await {
        match joined {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        return Err(format!("{host} has no address"));
    }
    // Sorted, so that the last-error lines of successive attempts compare equal.
    errors.sort();
    Err(errors.join("; "))
}

/// One attempt.
pub async fn probe(host: &str, port: u16) -> Result<(), String> {
    connect(host, port).await.map(drop)
}
