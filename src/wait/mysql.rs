//! mysql / mariadb readiness: the server speaks first. Its first packet (3-byte length, 1-byte
//! sequence number, payload) is a HandshakeV10 greeting (`0x0a`) from a server that accepts
//! connections: ready, and the version it names goes in the ready line. An ERR packet (`0xff`)
//! that only a live server sends (1040 too many connections, 1129 host blocked, 1130 host not
//! allowed) is ready too, as `mysqladmin ping` decides; any other ERR is not ready, with the
//! server's message. Then the connection is closed: no login, so no password is ever needed.
//!
//! The official images' init-time server listens on a socket only (docker-library/mysql #930),
//! so a greeting over TCP comes from the real server.

use super::target::Db;
use super::wire::{self, c_string, shown, Verdict};
use super::Attempt;

/// Larger than any greeting or ERR packet; a bigger first packet is another protocol.
const MAX_FIRST_PACKET: usize = 4096;

/// The ERR codes that prove a live server: it would accept connections but for the limits.
const LIVE_ERRORS: [(u16, &str); 3] = [
    (1040, "too many connections"),
    (1129, "host blocked"),
    (1130, "host not allowed"),
];

/// The server's first packet, once all of it has arrived (None: read more).
pub fn decide(buf: &[u8]) -> Option<Verdict> {
    let header = buf.get(..4)?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len == 0 || len > MAX_FIRST_PACKET {
        return Some(Err(format!(
            "not a mysql server: it answered {}",
            shown(buf)
        )));
    }
    let payload = buf.get(4..4 + len)?;
    Some(match payload[0] {
        0x0a => greeting(&payload[1..]),
        0xff => error(&payload[1..]),
        _ => Err(format!("not a mysql server: it answered {}", shown(buf))),
    })
}

/// HandshakeV10: the version is the NUL-terminated string after the protocol byte.
fn greeting(after_protocol: &[u8]) -> Verdict {
    let Some((version, _)) = c_string(after_protocol) else {
        return Err("mysql: a greeting without a version".into());
    };
    // MariaDB prefixes "5.5.5-" for old replication clients; clients strip it, and so do we.
    let version = match version.strip_prefix("5.5.5-") {
        Some(v) if v.contains("MariaDB") => v.to_owned(),
        _ => version,
    };
    Ok(format!("server version {version}"))
}

/// An ERR packet: code (2 bytes, little-endian), `#` and a 5-character SQLSTATE when the server
/// knows the client speaks protocol 4.1 (never before the handshake), then the message.
fn error(after_marker: &[u8]) -> Verdict {
    let Some(code) = after_marker
        .get(..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
    else {
        return Err("mysql: an ERR packet without a code".into());
    };
    let rest = &after_marker[2..];
    let message = match rest.strip_prefix(b"#") {
        Some(state) if state.len() >= 5 => &state[5..],
        _ => rest,
    };
    let message = String::from_utf8_lossy(message);
    match LIVE_ERRORS.iter().find(|(c, _)| *c == code) {
        Some((_, what)) => Ok(format!("the server is live ({what}: ERR {code} {message})")),
        None => Err(format!("mysql answered ERR {code}: {message}")),
    }
}

/// One attempt. The server sees a client that leaves before logging in (it counts one
/// `Aborted_connects`); the wait ends at the first greeting, so that is once per run, far from
/// `max_connect_errors` (and a successful login from the host resets that count anyway).
pub async fn attempt(db: &Db) -> Attempt {
    match wire::exchange(&db.host, db.port, &[], "mysql", decide).await {
        Ok((verdict, stream, _)) => {
            wire::close(stream, &[]).await;
            verdict.into()
        }
        Err(e) => Attempt::NotReady(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet with sequence number 0.
    fn packet(payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut p = len.to_le_bytes()[..3].to_vec();
        p.push(0);
        p.extend_from_slice(payload);
        p
    }

    fn err(code: u16, message: &str) -> Vec<u8> {
        let mut payload = vec![0xff];
        payload.extend_from_slice(&code.to_le_bytes());
        payload.extend_from_slice(message.as_bytes());
        packet(&payload)
    }

    #[test]
    fn a_greeting_is_ready_with_its_version() {
        // The start of a real MariaDB 10.11 greeting.
        let real = b"d\x00\x00\x00\n5.5.5-10.11.19-MariaDB-0+deb12u1\x00\x04\x00\x00\x003bq6V0*#\x00\xfe\xf7\x08\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00p,($z_J4btC/\x00mysql_native_password\x00";
        assert_eq!(
            decide(real),
            Some(Ok("server version 10.11.19-MariaDB-0+deb12u1".into()))
        );
        assert_eq!(decide(&real[..20]), None);
        let mysql = packet(b"\n8.0.36\0rest");
        assert_eq!(decide(&mysql), Some(Ok("server version 8.0.36".into())));
        // Only MariaDB's prefix is stripped.
        let old = packet(b"\n5.5.5-custom\0");
        assert_eq!(decide(&old), Some(Ok("server version 5.5.5-custom".into())));
    }

    #[test]
    fn errors_of_a_live_server_are_ready() {
        for code in [1040, 1129, 1130] {
            let detail = decide(&err(code, "Too many connections")).unwrap().unwrap();
            assert!(detail.contains(&format!("ERR {code}")), "{detail}");
        }
    }

    #[test]
    fn other_errors_are_not_ready() {
        assert_eq!(
            decide(&err(1045, "Access denied")),
            Some(Err("mysql answered ERR 1045: Access denied".into()))
        );
        // With the SQLSTATE marker.
        let mut payload = vec![0xff, 0x15, 0x04, b'#'];
        payload.extend_from_slice(b"08S01Bad handshake");
        assert_eq!(
            decide(&packet(&payload)),
            Some(Err("mysql answered ERR 1045: Bad handshake".into()))
        );
    }

    #[test]
    fn other_protocols_are_not_mysql() {
        for answer in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            b"+PONG\r\n",
            b"\0\0\0\0",
        ] {
            let reason = decide(answer).unwrap().unwrap_err();
            assert!(reason.starts_with("not a mysql server"), "{reason}");
        }
        assert!(decide(&packet(b"\x09")).unwrap().is_err());
        assert_eq!(decide(b"d\0\0"), None);
    }
}
