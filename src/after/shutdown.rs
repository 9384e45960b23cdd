//! Shutdown calls: when podvisor ends, on every path, an empty POST to every `--shutdown-post`
//! URL (and every `--proxy` preset's shutdown endpoint), all at once, under one bound.
//!
//! A mesh or proxy sidecar (Istio, Linkerd, the Cloud SQL Auth Proxy, Dapr) runs on after the
//! step and keeps a Job's pod from completing; it exits when asked over HTTP on localhost. The
//! calls never change podvisor's exit code, and never hold its exit past `--shutdown-timeout`.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::UnixStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::wait::target::{self, Http, Target, DEFAULT_STATUS};
use crate::wait::{basic_auth, tcp_open, tls_connect, Io};

/// Default bound on all the calls together: a proxy answers on localhost in milliseconds, and
/// the pod's terminationGracePeriodSeconds (30 s by default) must still cover the grace period.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Delay before another try after a refused connect (the proxy may be restarting).
const RETRY_DELAY: Duration = Duration::from_millis(100);

/// One call's result, as the marker records it; all `None` while the call is under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallResult {
    /// The URL, a password shown as `***`.
    pub url: String,
    /// The HTTP status of the answer, whatever it was.
    pub status: Option<u16>,
    /// Why there was no answer.
    pub error: Option<String>,
    /// Time from the start of the calls to this result.
    pub after_ms: Option<u64>,
}

/// Parses a shutdown URL with the wait-target parser: `http://` or `https://HOST[:PORT]/PATH?QUERY`,
/// with the options that make sense for a POST after `#`: `ca=PATH`, `insecure`, `unix=PATH`.
pub fn parse_url(text: &str) -> Result<Http, String> {
    let scheme = text
        .trim()
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err("expected a URL starting with http:// or https://".into());
    }
    let Target::Http(h) = target::parse(text)? else {
        return Err("expected an http:// or https:// URL".into());
    };
    if h.status != [DEFAULT_STATUS] || h.body.is_some() || h.body_regex.is_some() {
        return Err(
            "status=, body= and body-regex= are for waits; a shutdown call takes ca=, insecure \
             and unix="
                .into(),
        );
    }
    Ok(h)
}

/// The URL for log lines and the marker: a password becomes `***`, options stay.
pub fn shown(h: &Http) -> String {
    Target::Http(h.clone()).to_string()
}

/// The marker's entries before the calls: every URL, nothing known yet.
pub fn pending(urls: &[Http]) -> Vec<CallResult> {
    urls.iter()
        .map(|u| CallResult {
            url: shown(u),
            status: None,
            error: None,
            after_ms: None,
        })
        .collect()
}

/// POSTs to every URL at once and returns their results in the order given, within `bound`
/// (each call is cut off at the shared deadline). One log line per result.
pub async fn post_all(urls: &[Http], bound: Duration) -> Vec<CallResult> {
    let started = Instant::now();
    let deadline = started + bound;
    let mut calls = JoinSet::new();
    for (i, uri) in urls.iter().cloned().enumerate() {
        calls.spawn(async move {
            let outcome = call(&uri, deadline).await;
            (i, result(&uri, outcome, started.elapsed()))
        });
    }
    let mut results = pending(urls);
    while let Some(joined) = calls.join_next().await {
        // A call task cannot panic short of a bug (panic = "abort" in release anyway).
        if let Ok((i, r)) = joined {
            results[i] = r;
        }
    }
    results
}

/// [`post_all`] on a runtime of its own, for podvisor's errors before its runtime exists.
pub fn post_all_blocking(urls: &[Http], bound: Duration) -> Vec<CallResult> {
    if urls.is_empty() {
        return Vec::new();
    }
    match crate::threads::runtime(true) {
        Ok(runtime) => {
            let results = runtime.block_on(post_all(urls, bound));
            // A stuck name lookup must not hold the exit.
            runtime.shutdown_background();
            results
        }
        Err(e) => {
            tracing::error!("cannot make the shutdown calls: cannot start a runtime: {e}");
            Vec::new()
        }
    }
}

/// One call to its end: an answer, an error, or the deadline. A refused connect is tried again
/// until the deadline; other errors end the call.
async fn call(uri: &Http, deadline: Instant) -> Result<u16, String> {
    let mut attempts = 0u32;
    let mut last_refusal = None;
    let tries = async {
        loop {
            attempts += 1;
            match post(uri).await {
                Ok(status) => return Ok(status),
                Err(Failure::Refused(e)) => {
                    tracing::debug!("shutdown call POST {}: {e}; trying again", shown(uri));
                    last_refusal = Some(e);
                }
                Err(Failure::Other(e)) => return Err(e),
            }
            tokio::time::sleep_until(deadline.min(Instant::now() + RETRY_DELAY)).await;
        }
    };
    match tokio::time::timeout_at(deadline, tries).await {
        Ok(done) => done,
        Err(_) => Err(match last_refusal {
            Some(e) => format!("connection refused ({attempts} attempts): {e}"),
            None => "no answer within the shutdown timeout".into(),
        }),
    }
}

/// Logs a call's end and makes its marker entry.
fn result(uri: &Http, outcome: Result<u16, String>, after: Duration) -> CallResult {
    let url = shown(uri);
    let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(status) => {
            if (200..300).contains(&status) {
                tracing::info!("shutdown call POST {url}: HTTP {status} after {after_ms}ms");
            } else {
                tracing::warn!("shutdown call POST {url}: HTTP {status} after {after_ms}ms");
            }
            CallResult {
                url,
                status: Some(status),
                error: None,
                after_ms: Some(after_ms),
            }
        }
        Err(e) => {
            tracing::warn!("shutdown call POST {url} failed after {after_ms}ms: {e}");
            CallResult {
                url,
                status: None,
                error: Some(e),
                after_ms: Some(after_ms),
            }
        }
    }
}

/// Why one attempt failed.
enum Failure {
    /// Nothing listens (yet, or again): worth another try.
    Refused(String),
    /// Anything else.
    Other(String),
}

/// One POST with an empty body; the answer's status.
async fn post(h: &Http) -> Result<u16, Failure> {
    let uri = &h.uri;
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let refused = |refused: bool, message: String| match refused {
        true => Failure::Refused(message),
        false => Failure::Other(message),
    };
    let stream: Box<dyn Io> = match &h.unix {
        Some(path) => Box::new(UnixStream::connect(path).await.map_err(|e| {
            let no_listener = e.kind() == std::io::ErrorKind::ConnectionRefused;
            refused(no_listener, format!("{}: {e}", path.display()))
        })?),
        None => {
            let port = uri.port_u16().unwrap_or(if h.tls { 443 } else { 80 });
            Box::new(
                tcp_open(host, port)
                    .await
                    .map_err(|e| refused(e.refused, e.message))?,
            )
        }
    };
    let stream = match h.tls {
        true => tls_connect(stream, host, h).await.map_err(Failure::Other)?,
        false => stream,
    };
    let other = |e: hyper::Error| Failure::Other(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(other)?;
    let driver = tokio::spawn(conn);
    // Host as written (brackets kept for IPv6), never the URL's user:password@.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let mut request = Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(HOST, host_port)
        .header(USER_AGENT, concat!("podvisor/", env!("CARGO_PKG_VERSION")))
        // Some admin servers answer a bodiless POST without a length with 411 Length Required.
        .header(CONTENT_LENGTH, "0")
        .header(CONNECTION, "close");
    // `user:password@` goes as Basic credentials, as in the HTTP wait (%XX decoded first).
    if let Some(credentials) = basic_auth(uri) {
        request = request.header(AUTHORIZATION, credentials);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| Failure::Other(e.to_string()))?;
    let answer = sender.send_request(request).await;
    driver.abort();
    Ok(answer.map_err(other)?.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for good in [
            "http://localhost:15020/quitquitquit",
            "http://127.0.0.1/x?y=1",
            "http://[::1]:4191/shutdown",
            "http://u:p@h:1/",
            "https://localhost:8443/quit#ca=/w/ca.pem",
            "https://localhost/quit#insecure",
            "http://localhost/v1.0/shutdown#unix=/run/d.sock",
        ] {
            assert!(parse_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://x/",
            "tcp://x:1",
            "localhost:15020",
            "/quitquitquit",
            "http://",
            "http://h:0/",
            "http://h:99999/",
            "http://h:8o80/",
            "not a url",
            "http://h/#status=200",
            "http://h/#body=ok",
            "http://h/#nope",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let e = parse_url("http://h/#status=200").unwrap_err();
        assert!(e.contains("status=") && e.contains("ca="), "{e}");
    }

    #[test]
    fn passwords_are_never_shown() {
        let u = parse_url("http://me:secret@localhost:15020/quitquitquit").unwrap();
        assert_eq!(shown(&u), "http://me:***@localhost:15020/quitquitquit");
        let u = parse_url("http://localhost:15020/quitquitquit").unwrap();
        assert_eq!(shown(&u), "http://localhost:15020/quitquitquit");
        assert_eq!(pending(&[u])[0].status, None);
    }
}
