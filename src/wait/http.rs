//! HTTP readiness: a GET answers 2xx. hyper speaks the protocol; nothing is parsed by hand.

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HOST, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;

/// One attempt.
pub async fn probe(uri: &Uri) -> Result<(), String> {
    let host = uri.host().ok_or("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let stream = super::tcp::connect(host, port).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // The connection is driven beside the request and dropped with this attempt.
    let driver = tokio::spawn(conn);
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
    if let Some((user, password, _)) = super::target::userinfo(uri) {
        let mut pair = percent_decode(user);
        pair.push(b':');
        pair.extend(percent_decode(password.unwrap_or("")));
        request = request.header(AUTHORIZATION, format!("Basic {}", base64(&pair)));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = sender.send_request(request).await;
    driver.abort();
    let response = result.map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// `%XX` escapes decoded; anything else (a stray `%` included) kept as it is.
pub(crate) fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials only.
pub(crate) fn base64(bytes: &[u8]) -> String {
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
    use super::{base64, percent_decode};

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("open%20sesame"), b"open sesame");
        assert_eq!(percent_decode("a%3Ab%40"), b"a:b@");
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
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
