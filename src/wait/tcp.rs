//! TCP readiness: a connect succeeds. Names are resolved again at every attempt, because a
//! sidecar's address may only appear (in /etc/hosts or DNS) once it starts.

use tokio::net::{lookup_host, TcpStream};
use tokio::task::JoinSet;

/// Connects to `host:port`, trying every address the name resolves to at once; the first that
/// accepts wins. Trying them one by one would let an address that drops SYNs (an IPv6 record on
/// an IPv4-only network) hold up the others until the attempt times out.
pub async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs: Vec<std::net::SocketAddr> = match loopback_without_hosts_file(host, port) {
        Some(addrs) => addrs,
        None => lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
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

/// `localhost` (and `*.localhost`) when there is no /etc/hosts, as in a bare chroot of the static
/// binary: musl has no built-in answer for it and asks DNS (127.0.0.1:53 when resolv.conf is
/// missing too), so each attempt would hang until --attempt-timeout. RFC 6761 6.3 says these
/// names are the loopback address. With /etc/hosts present (Docker and the kubelet always mount
/// one) the normal lookup runs.
fn loopback_without_hosts_file(host: &str, port: u16) -> Option<Vec<std::net::SocketAddr>> {
    let host = host.to_ascii_lowercase();
    let is_localhost = host == "localhost" || host.ends_with(".localhost");
    if !is_localhost || std::path::Path::new("/etc/hosts").exists() {
        return None;
    }
    Some(vec![
        (std::net::Ipv4Addr::LOCALHOST, port).into(),
        (std::net::Ipv6Addr::LOCALHOST, port).into(),
    ])
}
