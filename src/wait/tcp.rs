//! TCP readiness: a connect succeeds. Names are resolved again at every attempt, because a
//! sidecar's address may only appear (in /etc/hosts or DNS) once it starts.

use tokio::net::{lookup_host, TcpStream};

/// Connects to the first address of `host:port` that accepts.
pub async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs = lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

/// One attempt.
pub async fn probe(host: &str, port: u16) -> Result<(), String> {
    connect(host, port).await.map(drop)
}
