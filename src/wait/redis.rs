//! redis readiness: `AUTH` first when the URL has a password, then `PING`, as RESP arrays in one
//! write. `+PONG` is ready. `-LOADING` (the dataset is still being read from disk), `-BUSY` (a
//! script or function is running) and `-MASTERDOWN` (a replica lost its master) are not ready,
//! with that reason. Why not `redis-cli ping`: it exits 0 on `-LOADING`.
//!
//! An authentication failure is not ready either, with the server's reason: `-NOAUTH` (the
//! server wants a password the URL does not give, with a hint to put it there), a refused
//! password (`-WRONGPASS`, `-ERR invalid password`), or a password given to a server that has
//! none. The step, using the same URL, would fail the same way; and a server whose password is
//! set by a start-up script gets ready once the script has run.

use super::target::Db;
use super::wire::{self, shown, Verdict};
use super::Attempt;

/// A command as a RESP array of bulk strings (what redis-cli sends).
fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `[AUTH [user] password] PING`, in one write.
pub fn hello(user: Option<&str>, password: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    match (user.filter(|u| !u.is_empty()), password) {
        (Some(user), Some(password)) => out.extend(command(&["AUTH", user, password])),
        (None, Some(password)) => out.extend(command(&["AUTH", password])),
        _ => {}
    }
    out.extend(command(&["PING"]));
    out
}

/// The replies to `hello` (`auth`: whether it sent AUTH), once enough has arrived.
pub fn decide(buf: &[u8], auth: bool) -> Option<Verdict> {
    let (first, rest) = reply(buf)?;
    if !auth {
        return Some(ping(first));
    }
    if first != b"+OK" {
        return Some(Err(auth_failure(first)));
    }
    let (second, _) = reply(rest)?;
    Some(ping(second))
}

/// The first reply in `buf` (a line without its CRLF; for a bulk or array reply just its first
/// line), and what follows it; None until the CRLF is there. Anything not starting like a RESP
/// reply is returned as it is, for `ping` to reject.
fn reply(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *buf.first()?;
    if !matches!(first, b'+' | b'-' | b':' | b'$' | b'*') {
        return Some((buf, &[]));
    }
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..end], &buf[end + 2..]))
}

/// The error code of an error reply: `LOADING` of `-LOADING Redis is loading ...`.
fn code(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_prefix(b"-")?;
    Some(line.split(|&b| b == b' ').next().unwrap_or(line))
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

/// The reply to PING.
fn ping(line: &[u8]) -> Verdict {
    if line == b"+PONG" {
        return Ok("PONG".into());
    }
    let Some(code) = code(line) else {
        return Err(format!("not a redis server: it answered {}", shown(line)));
    };
    // The server's own line, code included, in parentheses after what it means.
    let said = text(&line[1..]);
    Err(match code {
        b"LOADING" => "redis is loading its dataset".into(),
        b"BUSY" => format!("redis is busy running a script ({said})"),
        b"MASTERDOWN" => format!("redis replica has lost its master ({said})"),
        b"NOAUTH" => "redis requires a password (NOAUTH): put it in the URL, as \
                      redis://:PASSWORD@host:6379 (or redis://USER:PASSWORD@host:6379)"
            .into(),
        _ => format!("redis answered -{said}"),
    })
}

/// The reply to AUTH, when it was not `+OK`. The password itself is never in it: redis does not
/// repeat it, and the URL is shown with `***`.
fn auth_failure(line: &[u8]) -> String {
    match code(line) {
        Some(b"WRONGPASS") => format!("redis refused the credentials ({})", text(&line[1..])),
        Some(b"ERR") if text(line).contains("invalid password") => {
            "redis refused the password (ERR invalid password)".into()
        }
        Some(b"ERR") if text(line).contains("without any password configured") => {
            "redis has no password set, but the URL gives one (ERR AUTH ... without any \
             password configured)"
                .into()
        }
        Some(_) => format!("AUTH failed: redis answered -{}", text(&line[1..])),
        None => format!("not a redis server: it answered {}", shown(line)),
    }
}

/// One attempt, authenticating as the URL says. The URL's database number is not selected:
/// PING answers the same in every database.
pub async fn attempt(db: &Db) -> Attempt {
    let password = db.password.as_deref();
    let hello = hello(db.user.as_deref(), password);
    let auth = password.is_some();
    let answer = wire::exchange(&db.host, db.port, &hello, "redis", |buf| decide(buf, auth)).await;
    match answer {
        Ok((verdict, stream, _)) => {
            // Closing is enough: redis drops the client silently, and QUIT is deprecated (7.2).
            wire::close(stream, &[]).await;
            verdict.into()
        }
        Err(e) => Attempt::NotReady(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays() {
        assert_eq!(hello(None, None), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            hello(None, Some("s3cret")),
            b"*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n*1\r\n$4\r\nPING\r\n"
        );
        assert_eq!(
            hello(Some("app"), Some("pw")),
            b"*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n"
        );
        // A user without a password is no credential (redis://app@host): plain PING.
        assert_eq!(hello(Some("app"), None), hello(None, None));
        assert_eq!(hello(Some(""), Some("pw")), hello(None, Some("pw")));
    }

    #[test]
    fn pong_is_ready() {
        assert_eq!(decide(b"+PONG\r\n", false), Some(Ok("PONG".into())));
        assert_eq!(decide(b"+PONG", false), None);
        assert_eq!(decide(b"+OK\r\n+PONG\r\n", true), Some(Ok("PONG".into())));
        assert_eq!(decide(b"+OK\r\n+PO", true), None);
    }

    #[test]
    fn busy_states_are_not_ready_with_their_reason() {
        let no = |answer: &[u8]| decide(answer, false).unwrap().unwrap_err();
        assert_eq!(
            no(b"-LOADING Redis is loading the dataset in memory\r\n"),
            "redis is loading its dataset"
        );
        assert_eq!(
            no(b"-BUSY Redis is busy running a script.\r\n"),
            "redis is busy running a script (BUSY Redis is busy running a script.)"
        );
        assert_eq!(
            no(b"-MASTERDOWN Link with MASTER is down\r\n"),
            "redis replica has lost its master (MASTERDOWN Link with MASTER is down)"
        );
        let hint = no(b"-NOAUTH Authentication required.\r\n");
        assert!(hint.contains("redis://:PASSWORD@host:6379"), "{hint}");
        assert_eq!(
            no(b"-DENIED Redis is running in protected mode\r\n"),
            "redis answered -DENIED Redis is running in protected mode"
        );
        // AUTH accepted, then loading (AUTH is allowed while loading, PING is not).
        assert_eq!(
            decide(b"+OK\r\n-LOADING Redis is loading\r\n", true),
            Some(Err("redis is loading its dataset".into()))
        );
    }

    #[test]
    fn refused_credentials_are_not_ready() {
        let no = |answer: &[u8]| decide(answer, true).unwrap().unwrap_err();
        // Decided on AUTH's reply, without waiting for PING's.
        assert!(
            no(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
                .contains("WRONGPASS")
        );
        assert!(no(b"-ERR invalid password\r\n").contains("invalid password"));
        assert!(no(
            b"-ERR AUTH <password> called without any password configured for the default user.\r\n"
        )
        .contains("no password set"));
    }

    #[test]
    fn other_protocols_are_not_redis() {
        let reason = decide(b"HTTP/1.1 400 Bad Request\r\n", false)
            .unwrap()
            .unwrap_err();
        assert!(reason.starts_with("not a redis server"), "{reason}");
        assert!(decide(b"$4\r\nPONG\r\n", false).unwrap().is_err());
    }
}
