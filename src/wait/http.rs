//! HTTP readiness: a GET answers 2xx. hyper speaks the protocol; nothing is parsed by hand.

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::header::{HOST, USER_AGENT};
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
    let request = Request::get(path)
        .header(HOST, authority)
        .header(USER_AGENT, concat!("podvisor/", env!("CARGO_PKG_VERSION")))
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
