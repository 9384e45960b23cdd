//! TCP readiness: a connect succeeds. Names are resolved again at every attempt, because a
//! sidecar's address may only appear (in /etc/hosts or DNS) once it starts.

use tokio::net::{lookup_host, TcpStream};

/// Connects to the first address of `host:port` that accepts.
pub async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs: Vec<std::net::SocketAddr> = match loopback_without_hosts_file(host, port) {
        Some(addrs) => addrs,
        None => lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
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
