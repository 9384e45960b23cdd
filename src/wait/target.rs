//! What the wait phase waits for, parsed from the flags.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;

use hyper::Uri;

/// One dependency that must be ready before COMMAND starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP connect to host:port succeeds; names are re-resolved at every attempt.
    Tcp { host: String, port: u16 },
    /// The path exists.
    File(PathBuf),
    /// A connect to the unix socket succeeds.
    Unix(PathBuf),
    /// A GET answers 2xx.
    Http(Uri),
    /// `/bin/sh -c` of it exits 0.
    Cmd(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Target::File(p) => write!(f, "file://{}", p.display()),
            Target::Unix(p) => write!(f, "unix://{}", p.display()),
            Target::Http(u) => write!(f, "{u}"),
            Target::Cmd(c) => write!(f, "cmd://{c}"),
        }
    }
}

/// Parses `host:port`, `1.2.3.4:80`, `[::1]:80`.
pub fn parse_host_port(text: &str) -> Result<Target, String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or("expected HOST:PORT, e.g. localhost:5432 or [::1]:80")?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
            .ok_or("expected an IPv6 address inside [ ]")?,
        None if host.contains(':') => return Err("write IPv6 addresses as [ADDR]:PORT".into()),
        None => host,
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        return Err("expected HOST:PORT with a host name or address".into());
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or("the port must be a number from 1 to 65535")?;
    Ok(Target::Tcp {
        host: host.to_owned(),
        port,
    })
}

/// Parses an `http://` URL.
pub fn parse_http(text: &str) -> Result<Target, String> {
    let uri: Uri = text.parse().map_err(|e| format!("not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => return Err(format!("scheme {other}:// is not supported, only http://")),
        None => return Err("expected an absolute URL starting with http://".into()),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(Target::Http(uri)),
        _ => Err("the URL has no host".into()),
    }
}

/// A path must not be empty; any bytes are fine otherwise.
pub fn parse_path(text: &OsStr) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("the path is empty".into());
    }
    Ok(PathBuf::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(
            parse_host_port("localhost:5432"),
            Ok(Target::Tcp {
                host: "localhost".into(),
                port: 5432
            })
        );
        assert_eq!(
            parse_host_port("[::1]:80"),
            Ok(Target::Tcp {
                host: "::1".into(),
                port: 80
            })
        );
        for bad in [
            "localhost",
            ":80",
            "h:0",
            "h:65536",
            "h:x",
            "::1:80",
            "[::1:80",
            "[zz]:80",
            "",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_host_port("[::1]:80").unwrap().to_string(),
            "tcp://[::1]:80"
        );
    }

    #[test]
    fn urls() {
        assert!(parse_http("http://127.0.0.1:8080/health").is_ok());
        assert!(parse_http("http://localhost/").is_ok());
        for bad in [
            "https://x/",
            "ftp://x/",
            "localhost:80",
            "/path",
            "http://",
            "not a url",
        ] {
            assert!(parse_http(bad).is_err(), "{bad:?}");
        }
    }
}
