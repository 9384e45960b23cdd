//! A TCP connect that goes through the reactor only when it has to.
//!
//! tokio's `TcpStream::connect` registers the socket with epoll, waits for writability, asks
//! for the error and deregisters: 7 system calls and a trip through the scheduler per attempt.
//! On loopback (a sidecar in the same pod) the kernel has usually decided before `connect`
//! returns: the SYN and the RST or SYN-ACK are handled in the same call. So a
//! refusal is read from `SO_ERROR` at once, and only a connection still in progress is handed
//! to tokio. A refused attempt is then socket, connect, getsockopt, close (bench row 5), as a
//! C poller's blocking connect is socket, connect, close.

use std::io;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::libc;
use tokio::net::TcpStream;

/// Connects to `addr`.
pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    match start(addr)? {
        // Never registered with the reactor at all.
        Started::Connected(fd) => TcpStream::from_std(std::net::TcpStream::from(fd)),
        Started::InProgress(fd) => {
            let stream = TcpStream::from_std(std::net::TcpStream::from(fd))?;
            stream.writable().await?;
            match stream.take_error()? {
                Some(e) => Err(e),
                None => Ok(stream),
            }
        }
    }
}

/// A non-blocking socket with its connect started.
enum Started {
    /// The connection is up.
    Connected(OwnedFd),
    /// The kernel has not decided yet.
    InProgress(OwnedFd),
}

/// Starts a non-blocking connect; a refusal the kernel has already decided is the error.
fn start(addr: SocketAddr) -> io::Result<Started> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) with constants; the fd is owned from here on.
    let fd = unsafe {
        let raw = libc::socket(family, kind, 0);
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        OwnedFd::from_raw_fd(raw)
    };
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes for this family.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), (&raw const storage).cast(), len) };
    if rc == 0 {
        return Ok(Started::Connected(fd));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINPROGRESS) {
        return Err(e);
    }
    // A refusal is in SO_ERROR already (the RST came back within the connect): one call tells.
    let socket = std::net::TcpStream::from(fd);
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    // Connected already, or still deciding: tokio's writability says which (the success is
    // once per target, the refusals are what repeats).
    Ok(Started::InProgress(OwnedFd::from(socket)))
}

/// `addr` as the kernel takes it.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage; the family's struct fits in it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is suitably aligned.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::connect;

    #[tokio::test]
    async fn refused_and_accepted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        assert!(connect(open).await.is_ok());
        // Bound, not listening: refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let e = connect(addr).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
        if let Ok(v6) = std::net::TcpListener::bind("[::1]:0") {
            assert!(connect(v6.local_addr().unwrap()).await.is_ok());
        }
    }
}
