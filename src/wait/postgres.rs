//! postgres readiness, decided as libpq's `PQping` decides: a StartupMessage (protocol 3.0),
//! then the server's first message. Any authentication request, or a protocol negotiation,
//! means the server accepts connections: ready, without a password (credentials are the step's
//! business). An ErrorResponse with SQLSTATE 57P03 (`cannot_connect_now`: starting up, in
//! recovery, shutting down) is not ready; any other SQLSTATE (`28P01`, `28000`, `3D000`,
//! `53300`, ...) comes from a server that accepts connections, so it is ready too.
//!
//! Why not a TCP connect: the server listens long before it accepts sessions (start-up, crash
//! recovery, a standby that has not reached consistency), and the official image runs a
//! temporary server during initdb (docker-library/postgres #880, #146).

use super::target::Db;
use super::wire::{self, c_string, shown, Verdict};
use super::Attempt;

/// Protocol 3.0, as the StartupMessage's version field (major 3 in the high 16 bits).
const PROTOCOL_3_0: u32 = 3 << 16;

/// SQLSTATE `cannot_connect_now`.
const CANNOT_CONNECT_NOW: &str = "57P03";

/// The Terminate message: what a client sends to end a session it will not use.
pub const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// The StartupMessage for `user` and `database` (the server's default, the user's name, when
/// None). `application_name` lets a DBA see who knocked in `pg_stat_activity` and the logs.
pub fn startup_message(user: &str, database: Option<&str>) -> Vec<u8> {
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    let mut param = |name: &str, value: &str| {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    };
    param("user", user);
    if let Some(db) = database.filter(|d| !d.is_empty()) {
        param("database", db);
    }
    param("application_name", "podvisor");
    body.push(0);
    // The length counts itself; a message this small always fits in an i32.
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut msg = len.to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

/// The server's first message, once enough of it has arrived (None: read more).
pub fn decide(buf: &[u8]) -> Option<Verdict> {
    let (&tag, rest) = buf.split_first()?;
    if !matches!(tag, b'R' | b'v' | b'E' | b'N') {
        return Some(Err(format!(
            "not a postgres server: it answered {}",
            shown(buf)
        )));
    }
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    // Real first messages are a few hundred bytes; anything else is another protocol (or a
    // pre-7.4 server, whose messages have no length).
    if !(4..=8192).contains(&len) {
        return Some(Err(format!(
            "not a postgres server: it answered {}",
            shown(buf)
        )));
    }
    let body = rest.get(4..len)?;
    Some(match tag {
        b'R' => Ok(format!(
            "postgres accepts connections ({})",
            auth_request(body)
        )),
        b'v' => Ok("postgres accepts connections (it negotiated the protocol version)".into()),
        b'N' => {
            // A notice before anything else is legal; the decision is in the next message.
            return decide(&rest[len..]);
        }
        _ => error_response(body),
    })
}

/// What an AuthenticationRequest asks for, for the ready line.
fn auth_request(body: &[u8]) -> String {
    let code = body
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes);
    match code {
        Some(0) => "no password needed".into(),
        Some(3) => "it asks for a password".into(),
        Some(5) => "it asks for an MD5 password".into(),
        Some(10) => "it asks for SASL (SCRAM) authentication".into(),
        Some(7 | 8) => "it asks for GSSAPI authentication".into(),
        Some(n) => format!("authentication request {n}"),
        None => "authentication request".into(),
    }
}

/// An ErrorResponse: its fields are `type byte, NUL-terminated text`, then a NUL.
fn error_response(body: &[u8]) -> Verdict {
    let (mut code, mut message) = (String::new(), String::new());
    let mut fields = body;
    while let Some((&kind, rest)) = fields.split_first() {
        let Some((value, next)) = c_string(rest) else {
            break;
        };
        match kind {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
        fields = next;
    }
    if code == CANNOT_CONNECT_NOW {
        // The message says which (starting up, in recovery, shutting down) unless the server
        // speaks another language; "starting up" is what it means to a waiting step.
        let what = if message.contains("shutting down") {
            "shutting down"
        } else {
            "starting up"
        };
        return Err(format!(
            "postgres is {what} ({CANNOT_CONNECT_NOW}): {message}"
        ));
    }
    Ok(format!(
        "postgres accepts connections; it answered {code}: {message}"
    ))
}

/// Whether the first message was AuthenticationOk: then the session exists and gets a
/// Terminate. To any other request (a password) libpq's ping just closes, which the server
/// takes silently; a Terminate there is logged as "expected password response".
fn wants_terminate(buf: &[u8]) -> bool {
    buf.get(..9) == Some(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0][..])
}

/// One attempt, as the URL's user (default `postgres`) on its database (if any).
pub async fn attempt(db: &Db) -> Attempt {
    let hello = startup_message(
        db.user
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or("postgres"),
        db.database.as_deref(),
    );
    let answer = wire::exchange(&db.host, db.port, &hello, "postgres", decide).await;
    let (verdict, stream, first) = match answer {
        Ok(a) => a,
        Err(e) => return Attempt::NotReady(e),
    };
    let goodbye: &[u8] = if wants_terminate(&first) {
        &TERMINATE
    } else {
        &[]
    };
    wire::close(stream, goodbye).await;
    verdict.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ErrorResponse as the server sends it.
    pub fn error(code: &str, message: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in [("S", "FATAL"), ("V", "FATAL"), ("C", code), ("M", message)] {
            body.extend_from_slice(kind.as_bytes());
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = vec![b'E'];
        msg.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
        msg.extend(body);
        msg
    }

    #[test]
    fn the_startup_message_is_protocol_3_with_user_and_database() {
        let m = startup_message("app", Some("shop"));
        assert_eq!(&m[..4], &(m.len() as u32).to_be_bytes());
        assert_eq!(&m[4..8], &[0, 3, 0, 0]);
        assert_eq!(
            &m[8..],
            b"user\0app\0database\0shop\0application_name\0podvisor\0\0"
        );
        let m = startup_message("postgres", None);
        assert_eq!(&m[8..], b"user\0postgres\0application_name\0podvisor\0\0");
        assert_eq!(startup_message("postgres", Some("")), m);
    }

    #[test]
    fn any_authentication_request_is_ready() {
        for (code, says) in [
            (0u32, "no password needed"),
            (3, "password"),
            (5, "MD5"),
            (10, "SCRAM"),
        ] {
            let mut msg = vec![b'R', 0, 0, 0, 8];
            msg.extend_from_slice(&code.to_be_bytes());
            let detail = decide(&msg).unwrap().unwrap();
            assert!(detail.contains(says), "{code}: {detail}");
            // Not before the whole message is there.
            assert_eq!(decide(&msg[..6]), None);
        }
        assert!(wants_terminate(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]));
        assert!(!wants_terminate(&[b'R', 0, 0, 0, 8, 0, 0, 0, 5]));
    }

    #[test]
    fn a_protocol_negotiation_is_ready() {
        let msg = [b'v', 0, 0, 0, 12, 0, 3, 0, 0, 0, 0, 0, 0];
        assert!(decide(&msg).unwrap().is_ok());
    }

    #[test]
    fn cannot_connect_now_is_not_ready() {
        let msg = error("57P03", "the database system is starting up");
        assert_eq!(
            decide(&msg),
            Some(Err(
                "postgres is starting up (57P03): the database system is starting up".into()
            ))
        );
        assert_eq!(decide(&msg[..msg.len() - 1]), None);
        let msg = error("57P03", "the database system is not accepting connections");
        assert!(decide(&msg)
            .unwrap()
            .unwrap_err()
            .starts_with("postgres is starting up (57P03)"));
        let msg = error("57P03", "the database system is shutting down");
        assert!(decide(&msg)
            .unwrap()
            .unwrap_err()
            .starts_with("postgres is shutting down (57P03)"));
    }

    #[test]
    fn other_errors_come_from_a_server_that_accepts_connections() {
        for code in ["28P01", "28000", "3D000", "53300"] {
            let detail = decide(&error(code, "no")).unwrap().unwrap();
            assert!(detail.contains(code), "{detail}");
        }
    }

    #[test]
    fn a_notice_first_is_skipped() {
        let mut msg = vec![b'N', 0, 0, 0, 4];
        msg.extend(error("57P03", "x"));
        assert!(decide(&msg).unwrap().is_err());
        assert_eq!(decide(&msg[..7]), None);
    }

    #[test]
    fn other_protocols_are_not_postgres() {
        for answer in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            b"-ERR unknown",
            b"E\0\xff\xff\xff",
        ] {
            let reason = decide(answer).unwrap().unwrap_err();
            assert!(reason.starts_with("not a postgres server"), "{reason}");
        }
        assert_eq!(decide(b""), None);
        assert_eq!(decide(b"R\0\0"), None);
    }
}
