//! TCP readiness: a connect succeeds (and, with `hold`, is not closed for that long). Names are
//! resolved again at every attempt, because a sidecar's address may only appear (in /etc/hosts
//! or DNS) once it starts.

use std::io::ErrorKind;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{lookup_host, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};

use super::target::Tcp;
use super::Attempt;

/// Connects to `host:port`, trying every address the name resolves to at once; the first that
/// accepts wins. Trying them one by one would let an address that drops SYNs (an IPv6 record on
/// an IPv4-only network) hold up the others until the attempt times out.
pub async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    open(host, port).await.map_err(|e| e.message)
}

/// Why a connect failed, for callers that treat a refused connect differently (the shutdown
/// calls retry it: the proxy may be restarting).
#[derive(Debug)]
pub struct ConnectError {
    /// At least one address answered "Connection refused": something is there, not listening.
    pub refused: bool,
    /// Every address's error, one line.
    pub message: String,
}

/// [`connect`], with the refused case told apart.
pub async fn open(host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    let failed = |refused, message| ConnectError { refused, message };
    let addrs: Vec<std::net::SocketAddr> = match loopback(host, port) {
        Some(addrs) => addrs,
        None => lookup_host((host, port))
            .await
            .map_err(|e| failed(false, format!("cannot resolve {host}: {e}")))?
            .collect(),
    };
    let refused = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionRefused;
    if let [addr] = addrs[..] {
        // One address (an IP literal, most names): no task to spawn and wake, which is a
        // quarter of an attempt's system calls while a port stays closed.
        return TcpStream::connect(addr)
            .await
            .map_err(|e| failed(refused(&e), format!("{addr}: {e}")));
    }
    let mut tries = JoinSet::new();
    for addr in addrs {
        tries.spawn(async move {
            TcpStream::connect(addr)
                .await
                .map_err(|e| (refused(&e), format!("{addr}: {e}")))
        });
    }
    let mut errors = Vec::new();
    let mut any_refused = false;
    // Dropping the set on return aborts the connects still in flight.
    while let Some(joined) = tries.join_next().await {
        match joined {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err((was_refused, e))) => {
                any_refused |= was_refused;
                errors.push(e);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        return Err(failed(false, format!("{host} has no address")));
    }
    // Sorted, so that the last-error lines of successive attempts compare equal.
    errors.sort();
    Err(failed(any_refused, errors.join("; ")))
}

/// One attempt.
pub async fn attempt(t: &Tcp) -> Attempt {
    match connect(&t.host, t.port).await {
        Err(e) => Attempt::NotReady(e),
        Ok(stream) => match t.hold {
            None => Attempt::Ready(String::new()),
            Some(hold) => held(stream, hold).await,
        },
    }
}

/// Keeps a fresh connection open for `hold`: a proxy that accepts every connect (Envoy, an
/// istio sidecar) closes or resets it once it finds no upstream (istio/istio#36540). What the
/// server sends meanwhile is read and dropped: a server that speaks first is alive.
async fn held(mut stream: TcpStream, hold: Duration) -> Attempt {
    let start = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        let after = || format!("{} ms after connect", start.elapsed().as_millis());
        match timeout_at(start + hold, stream.read(&mut buf)).await {
            Err(_) => return Attempt::Ready(format!("held the connection {}", show(hold))),
            Ok(Ok(0)) => return Attempt::NotReady(format!("connection closed {}", after())),
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == ErrorKind::ConnectionReset => {
                return Attempt::NotReady(format!("connection reset {}", after()))
            }
            Ok(Err(e)) => return Attempt::NotReady(format!("{e} {}", after())),
        }
    }
}

fn show(d: Duration) -> String {
    crate::config::duration::show(d)
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
