//! HTTP readiness: a GET answers a status of the expected set (2xx by default), and its body
//! holds what is asked for. One code path for http, https and HTTP over a unix socket: only
//! the stream under hyper differs. hyper speaks the protocol; nothing is parsed by hand.

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, HOST, USER_AGENT};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;

use super::target::{percent_decode, Http, DEFAULT_STATUS};
use super::Attempt;

/// Whatever hyper talks over: TCP, TLS over TCP, a unix socket.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The most of a body read for `body=` and `body-regex=`: health pages are small, and a huge
/// one must not hold the attempt.
const MAX_BODY: usize = 1 << 20;

/// One attempt.
pub async fn attempt(h: &Http) -> Attempt {
    match get(h).await {
        Ok(detail) => Attempt::Ready(detail),
        Err(e) => Attempt::NotReady(e),
    }
}

async fn get(h: &Http) -> Result<String, String> {
    let uri = &h.uri;
    let host = uri.host().ok_or("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream: Box<dyn Io> = match &h.unix {
        Some(path) => Box::new(
            UnixStream::connect(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?,
        ),
        None => {
            let port = uri.port_u16().unwrap_or(if h.tls { 443 } else { 80 });
            Box::new(super::tcp::connect(host, port).await?)
        }
    };
    let stream = if h.tls {
        super::tls::connect(stream, host, h).await?
    } else {
        stream
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // The connection is driven beside the request and dropped with this attempt.
    let driver = tokio::spawn(conn);
    let result = exchange(&mut sender, h, host).await;
    driver.abort();
    result
}

async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    h: &Http,
    host: &str,
) -> Result<String, String> {
    let uri = &h.uri;
    // Host is host[:port] as written (brackets kept for IPv6), never the URL's user:password@.
    let authority = match (uri.host(), uri.port()) {
        (Some(h), Some(p)) => format!("{h}:{}", p.as_str()),
        (Some(h), None) => h.to_owned(),
        (None, _) => host.to_owned(),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::get(path)
        .header(HOST, authority)
        .header(USER_AGENT, concat!("podvisor/", env!("CARGO_PKG_VERSION")));
    // `http://user:password@host/` sends Basic credentials, as curl does (RFC 7617); the URL's
    // %XX escapes are decoded first.
    if let Some(credentials) = basic_auth(uri) {
        request = request.header(AUTHORIZATION, credentials);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let code = status.as_u16();
    if !h.status.iter().any(|&(lo, hi)| (lo..=hi).contains(&code)) {
        return Err(if h.status == [DEFAULT_STATUS] {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status} (expected {})", show_status(&h.status))
        });
    }
    if h.body.is_none() && h.body_regex.is_none() {
        return Ok(format!("HTTP {code}"));
    }
    let body = read_body(response).await?;
    let text = String::from_utf8_lossy(&body);
    if let Some(want) = &h.body {
        if !text.contains(want.as_str()) {
            return Err(format!(
                "HTTP {code}, body does not contain '{want}': {}",
                excerpt(&text)
            ));
        }
    }
    if let Some(re) = &h.body_regex {
        if !re.0.is_match(&text) {
            return Err(format!(
                "HTTP {code}, body does not match /{}/: {}",
                re.0.as_str(),
                excerpt(&text)
            ));
        }
    }
    Ok(format!("HTTP {code}"))
}

/// The body, up to MAX_BODY bytes.
async fn read_body(response: Response<Incoming>) -> Result<Vec<u8>, String> {
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the body: {e}"))?;
        if let Ok(data) = frame.into_data() {
            let room = MAX_BODY - out.len();
            out.extend_from_slice(&data[..data.len().min(room)]);
            if out.len() == MAX_BODY {
                break;
            }
        }
    }
    Ok(out)
}

/// The start of a body, on one line, for a reason.
fn excerpt(text: &str) -> String {
    const MAX: usize = 80;
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None if one_line.is_empty() => "(empty)".to_owned(),
        None => one_line,
    }
}

/// `200-299,401`, as the option is written.
fn show_status(set: &[(u16, u16)]) -> String {
    set.iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The `Authorization: Basic ...` value for a URL's `user:password@` (%XX decoded first), or
/// None without userinfo. Shared by the HTTP wait and the shutdown call.
pub(crate) fn basic_auth(uri: &hyper::Uri) -> Option<String> {
    let (user, password, _) = super::target::userinfo(uri)?;
    let mut pair = percent_decode(user);
    pair.push(b':');
    pair.extend(percent_decode(password.unwrap_or("")));
    Some(format!("Basic {}", base64(&pair)))
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials only.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{base64, excerpt, show_status};

    #[test]
    fn statuses_and_excerpts_read_as_written() {
        assert_eq!(show_status(&[(200, 299), (401, 401)]), "200-299,401");
        assert_eq!(excerpt(""), "(empty)");
        assert_eq!(excerpt(" a\n  b "), "a b");
        assert_eq!(excerpt(&"x".repeat(100)), format!("{}...", "x".repeat(80)));
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }
}
