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
    /// A file has COUNT lines matching a regular expression.
    Log(super::log::Spec),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Target::File(p) => write!(f, "file://{}", p.display()),
            Target::Unix(p) => write!(f, "unix://{}", p.display()),
            Target::Http(u) => match userinfo(u) {
                // Never a password in a log line or the marker.
                Some((user, Some(_), host_port)) => write!(
                    f,
                    "http://{user}:***@{host_port}{}",
                    u.path_and_query().map_or("/", |p| p.as_str())
                ),
                _ => write!(f, "{u}"),
            },
            // One line in a log line or the marker, whatever the script.
            Target::Cmd(c) => write!(f, "cmd://{}", c.replace('\n', "\\n")),
            Target::Log(spec) => write!(f, "{spec}"),
        }
    }
}

/// The URL's `user[:password]@` part, if any, as (user, password, host[:port]).
pub fn userinfo(uri: &Uri) -> Option<(&str, Option<&str>, &str)> {
    let (info, host_port) = uri.authority()?.as_str().rsplit_once('@')?;
    Some(match info.split_once(':') {
        Some((user, password)) => (user, Some(password), host_port),
        None => (info, None, host_port),
    })
}

/// Parses `host:port`, `1.2.3.4:80`, `[::1]:80`.
pub fn parse_host_port(text: &str) -> Result<Target, String> {
    if text.contains(',') {
        return Err("one HOST:PORT per flag (comma lists are for PODVISOR_WAIT_TCP)".into());
    }
    if let Some((scheme, _)) = text.split_once("://") {
        return Err(format!(
            "expected HOST:PORT without {scheme}://, e.g. localhost:5432 (URLs are for --wait-http)"
        ));
    }
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
    let port = parse_port(port)?;
    Ok(Target::Tcp {
        host: host.to_owned(),
        port,
    })
}

/// A port from 1 to 65535, digits only (`u16::from_str` would also take `+80`).
fn parse_port(text: &str) -> Result<u16, String> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .filter(|&p| p != 0)
        .ok_or_else(|| "the port must be a number from 1 to 65535".to_owned())
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
        Some(h) if !h.is_empty() => {}
        _ => return Err("the URL has no host".into()),
    }
    // `Uri` takes any text after the colon (its `port()` is then None), and the probe would
    // quietly use port 80 (`http://db:8o80/`): check the text here, as --wait-tcp does.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let after_host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, after)| after),
        None => host_port.find(':').map_or("", |i| &host_port[i..]),
    };
    if let Some(port) = after_host.strip_prefix(':') {
        parse_port(port)?;
    }
    Ok(Target::Http(uri))
}

/// A path must not be empty; any bytes are fine otherwise.
pub fn parse_path(text: &OsStr) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("the path is empty".into());
    }
    Ok(PathBuf::from(text))
}

/// The longest path a unix socket address holds: sun_path is 108 bytes with the final NUL
/// (unix(7)). A longer one could never connect, and would only wait out the whole timeout.
pub const MAX_SOCKET_PATH: usize = 107;

/// A `--wait-unix` path must fit in sun_path.
pub fn check_socket_path(path: &std::path::Path) -> Result<(), String> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(format!(
            "the path is {len} bytes long, a unix socket path can have at most {MAX_SOCKET_PATH}"
        ));
    }
    Ok(())
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
    fn more_host_ports() {
        for (text, host, port) in [
            ("127.0.0.1:80", "127.0.0.1", 80),
            (
                "db.ns.svc.cluster.local:5432",
                "db.ns.svc.cluster.local",
                5432,
            ),
            ("[fe80::1]:65535", "fe80::1", 65535),
            ("h:1", "h", 1),
        ] {
            assert_eq!(
                parse_host_port(text),
                Ok(Target::Tcp {
                    host: host.into(),
                    port
                }),
                "{text}"
            );
        }
        for bad in [
            "h :80", "h/x:80", "[]:80", "h:", "h:+80x", "h:+80", "h:-1", "a:1,b:2",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?}");
        }
        // A URL gets a hint about the scheme, not the one about IPv6 (it has two colons).
        let e = parse_host_port("http://localhost:80").unwrap_err();
        assert!(e.contains("http://") && !e.contains("IPv6"), "{e}");
    }

    #[test]
    fn shown_as_urls() {
        let t = |s: &str| parse_http(s).unwrap().to_string();
        assert_eq!(t("http://[::1]:8080/x?y=1"), "http://[::1]:8080/x?y=1");
        assert_eq!(
            Target::File("/w/ready".into()).to_string(),
            "file:///w/ready"
        );
        assert_eq!(
            Target::Unix("/run/s.sock".into()).to_string(),
            "unix:///run/s.sock"
        );
        assert_eq!(
            Target::Cmd("pg_isready".into()).to_string(),
            "cmd://pg_isready"
        );
    }

    #[test]
    fn passwords_are_never_shown() {
        let t = |s: &str| parse_http(s).unwrap().to_string();
        assert_eq!(
            t("http://me:secret@db:8080/h?x"),
            "http://me:***@db:8080/h?x"
        );
        assert_eq!(t("http://me@db/"), "http://me@db/");
    }

    #[test]
    fn socket_paths_fit_in_sun_path() {
        let path = |n: usize| PathBuf::from(format!("/{}", "s".repeat(n - 1)));
        assert!(check_socket_path(&path(MAX_SOCKET_PATH)).is_ok());
        assert!(check_socket_path(&path(MAX_SOCKET_PATH + 1)).is_err());
    }

    #[test]
    fn empty_paths_are_rejected() {
        assert!(parse_path("".as_ref()).is_err());
        assert_eq!(parse_path("a b".as_ref()), Ok(PathBuf::from("a b")));
    }

    #[test]
    fn urls() {
        assert!(parse_http("http://127.0.0.1:8080/health").is_ok());
        assert!(parse_http("http://localhost/").is_ok());
        assert!(parse_http("http://[::1]:65535/").is_ok());
        for bad in [
            "https://x/",
            "ftp://x/",
            "localhost:80",
            "/path",
            "http://",
            "not a url",
            "http://h:99999/",
            "http://h:65536/",
            "http://h:0/",
            "http://h:abc/",
            "http://h:+80/",
            "http://h:/",
        ] {
            assert!(parse_http(bad).is_err(), "{bad:?}");
        }
    }
}
