//! What the protocol probes (postgres, redis, mysql) share: connect, say a few bytes, read the
//! server's first answer until a pure decision function has seen enough of it.
//!
//! Each probe is a pure `decide(&[u8]) -> Option<Verdict>` (unit-tested on exact bytes) around
//! this one place that does I/O.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A decision on a server's answer: `Ok(detail)` is ready (the detail goes in the ready line),
/// `Err(reason)` is not ready (the reason goes in the not-ready lines and the marker).
pub type Verdict = Result<String, String>;

impl From<Verdict> for super::Attempt {
    fn from(v: Verdict) -> Self {
        match v {
            Ok(detail) => Self::Ready(detail),
            Err(reason) => Self::NotReady(reason),
        }
    }
}

/// More than any first answer we decide on (a postgres ErrorResponse, a mysql greeting); a
/// server that sends more without a decision is not the server we expected.
const MAX_ANSWER: usize = 16 * 1024;

/// Connects to `host:port`, sends `hello` (if any), and reads until `decide` returns a verdict.
/// Returns the stream and the bytes read too, so that the probe can close politely.
pub async fn exchange(
    host: &str,
    port: u16,
    hello: &[u8],
    server: &str,
    decide: impl Fn(&[u8]) -> Option<Verdict>,
) -> Result<(Verdict, TcpStream, Vec<u8>), String> {
    let mut stream = super::tcp::connect(host, port).await?;
    if !hello.is_empty() {
        stream
            .write_all(hello)
            .await
            .map_err(|e| format!("{server}: sending the first message: {e}"))?;
    }
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            Err(e) if buf.is_empty() => return Err(format!("{server}: {e} before any answer")),
            Err(e) => return Err(format!("{server}: {e} after {}", shown(&buf))),
        };
        if n == 0 {
            return Err(if buf.is_empty() {
                format!("{server}: the connection was closed without an answer")
            } else {
                format!(
                    "{server}: the connection was closed after an incomplete answer: {}",
                    shown(&buf)
                )
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(verdict) = decide(&buf) {
            return Ok((verdict, stream, buf));
        }
        if buf.len() > MAX_ANSWER {
            return Err(format!(
                "{server}: {} bytes without a complete answer: {}",
                buf.len(),
                shown(&buf)
            ));
        }
    }
}

/// Sends the polite goodbye (best effort: the verdict is made) and closes.
pub async fn close(mut stream: TcpStream, goodbye: &[u8]) {
    if !goodbye.is_empty() {
        let _ = stream.write_all(goodbye).await;
    }
    let _ = stream.shutdown().await;
}

/// The start of a strange answer, for a reason line: printable ASCII as it is, other bytes as
/// `\xNN`, at most 40 bytes.
pub fn shown(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(40) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b' '..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > 40 {
        out.push_str("...");
    }
    format!("\"{out}\"")
}

/// A NUL-terminated string at the start of `bytes`, and what follows it.
pub fn c_string(bytes: &[u8]) -> Option<(String, &[u8])> {
    let end = bytes.iter().position(|&b| b == 0)?;
    Some((
        String::from_utf8_lossy(&bytes[..end]).into_owned(),
        &bytes[end + 1..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strange_answers_are_shown_escaped_and_short() {
        assert_eq!(shown(b"HTTP/1.1 400\r\n"), r#""HTTP/1.1 400\r\n""#);
        assert_eq!(shown(&[0, 0xff, b'a']), r#""\x00\xffa""#);
        assert_eq!(shown(&[b'x'; 50]), format!("\"{}...\"", "x".repeat(40)));
    }

    #[test]
    fn c_strings() {
        assert_eq!(c_string(b"ab\0cd"), Some(("ab".to_owned(), &b"cd"[..])));
        assert_eq!(c_string(b"ab"), None);
    }
}
