//! TCP readiness: a connect succeeds. Names are resolved again at every attempt, because a
//! sidecar's address may only appear (in /etc/hosts or DNS) once it starts.

use tokio::net::{lookup_host, TcpStream};
use tokio::task::JoinSet;

/// Connects to `host:port`, trying every address the name resolves to at once; the first that
/// accepts wins. Trying them one by one would let an address that drops SYNs (an IPv6 record on
/// an IPv4-only network) hold up the others until the attempt times out.
pub async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs: Vec<std::net::SocketAddr> = match loopback(host, port) {
        Some(addrs) => addrs,
        None => lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    if let [addr] = addrs[..] {
        // One address (an IP literal, most names): no task to spawn and wake, which is a
        // quarter of an attempt's system calls while a port stays closed.
        return super::connect::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"));
    }
    let mut tries = JoinSet::new();
    for addr in addrs {
        tries.spawn(async move {
            super::connect::connect(addr)
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

/// `localhost` and `*.localhost` are both loopback addresses, whatever /etc/hosts says (RFC 6761
/// 6.3): a sidecar in the pod listens on one of them, and which one the hosts file lists varies
/// (some list only 127.0.0.1, and `--wait-tcp localhost:80` would then never see a sidecar on
/// [::1]:80). The resolver is not asked at all, which also spares the static (musl) binary a
/// DNS query per attempt where there is no /etc/hosts (a bare chroot), each hanging until
/// --attempt-timeout.
fn loopback(host: &str, port: u16) -> Option<Vec<std::net::SocketAddr>> {
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    if host != "localhost" && !host.ends_with(".localhost") {
        return None;
    }
    Some(vec![
        (std::net::Ipv4Addr::LOCALHOST, port).into(),
        (std::net::Ipv6Addr::LOCALHOST, port).into(),
    ])
}

#[cfg(test)]
mod tests {
    use super::loopback;

    #[test]
    fn localhost_names_are_both_loopbacks() {
        for name in ["localhost", "LocalHost", "localhost.", "db.localhost"] {
            let addrs = loopback(name, 80).expect(name);
            assert_eq!(addrs.len(), 2, "{name}");
            assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
        }
        for name in ["notlocalhost", "localhost.example", "127.0.0.1", "::1"] {
            assert!(loopback(name, 80).is_none(), "{name}");
        }
    }
}
