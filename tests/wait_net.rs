//! Network targets: IPv6, name resolution (every address tried, names re-resolved at every
//! attempt), HTTP statuses, the request podvisor sends.
//!
//! Tests that need their own /etc/hosts run podvisor in a private mount namespace
//! (`unshare --mount`) with a file bind-mounted over /etc/hosts; needs root.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::wait::{after, free_port, Reply, Server, V4, V6};
use support::{podvisor_bin, Run, TempDir, TestCommand};

#[test]
fn ipv6_tcp() {
    let server = Server::tcp(V6);
    let target = format!("[::1]:{}", server.port());
    TestCommand::new()
        .args(["--timeout", "10s", "--wait-tcp", &target, "--", "true"])
        .run()
        .assert_code(0)
        .assert_stderr_has(&format!("tcp://{target} is ready"));
}

#[test]
fn ipv6_tcp_ready_later() {
    let server = Server::tcp_after(V6, Duration::from_millis(500));
    let target = format!("[::1]:{}", server.port());
    let run = TestCommand::new()
        .args(["--timeout", "10s", "--wait-tcp", &target, "--", "true"])
        .run();
    run.assert_code(0);
    server.ready_at.get();
    assert!(
        run.elapsed >= Duration::from_millis(500),
        "{}",
        run.explain()
    );
}

#[test]
fn ipv6_http() {
    let server = Server::http(V6, vec![], Reply::Status(200));
    let url = format!("http://[::1]:{}/ready", server.port());
    TestCommand::new()
        .args(["--timeout", "10s", "--wait-http", &url, "--", "true"])
        .run()
        .assert_code(0);
    let seen = server.requests.lock().unwrap().clone();
    assert_eq!(
        seen[0].host.as_deref(),
        Some(format!("[::1]:{}", server.port()).as_str())
    );
}

#[test]
fn localhost_is_resolved() {
    let server = Server::tcp(V4);
    TestCommand::new()
        .args(["--timeout", "10s"])
        .args(["--wait-tcp", &format!("localhost:{}", server.port())])
        .args(["--", "true"])
        .run()
        .assert_code(0)
        .assert_stderr_has(&format!("tcp://localhost:{} is ready", server.port()));
}

#[test]
fn an_unresolvable_name_fails_with_the_resolver_error() {
    let run = TestCommand::new()
        .args(["--retries", "0", "--timeout", "20s"])
        .args(["--wait-tcp", "no-such-host.invalid:80"])
        .run();
    run.assert_code(124)
        .assert_stderr_has("tcp://no-such-host.invalid:80 not ready");
    // A machine without a reachable DNS server may not answer within --attempt-timeout.
    let stderr = run.stderr();
    assert!(
        stderr.contains("cannot resolve no-such-host.invalid")
            || stderr.contains("attempt timed out after 5s"),
        "{}",
        run.explain()
    );
}

/// Runs podvisor with `hosts` bind-mounted over /etc/hosts in a private mount namespace.
fn with_hosts(hosts: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "sh", "-c"])
        .arg(r#"h=$1; shift; mount --bind "$h" /etc/hosts && exec "$@""#)
        .arg("sh")
        .arg(hosts)
        .arg(podvisor_bin())
        .args(args);
    let shown = format!(
        "unshare --mount (hosts {}) podvisor {}",
        hosts.display(),
        args.join(" ")
    );
    let start = Instant::now();
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    Run {
        shown,
        output,
        elapsed: start.elapsed(),
    }
}

/// A hosts file where the name `dual-stack` has both loopback addresses.
fn dual_stack_hosts(dir: &TempDir) -> std::path::PathBuf {
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n127.0.0.1 dual-stack\n::1 dual-stack\n",
    )
    .unwrap();
    hosts
}

#[test]
fn every_address_of_a_name_is_tried() {
    let dir = TempDir::new("hosts-both");
    let hosts = dual_stack_hosts(&dir);
    // Nothing listens: the error names both addresses, so both were tried.
    let port = free_port(V6);
    let run = with_hosts(
        &hosts,
        &[
            "--retries",
            "0",
            "--wait-tcp",
            &format!("dual-stack:{port}"),
        ],
    );
    run.assert_code(124)
        .assert_stderr_has(&format!("127.0.0.1:{port}"))
        .assert_stderr_has(&format!("[::1]:{port}"));
}

#[test]
fn a_name_works_when_only_its_ipv6_address_listens() {
    let dir = TempDir::new("hosts-v6");
    let hosts = dual_stack_hosts(&dir);
    let server = Server::tcp(V6);
    let target = format!("dual-stack:{}", server.port());
    with_hosts(&hosts, &["--retries", "0", "--wait-tcp", &target]).assert_code(0);
}

#[test]
fn a_name_works_when_only_its_ipv4_address_listens() {
    let dir = TempDir::new("hosts-v4");
    let hosts = dual_stack_hosts(&dir);
    let server = Server::tcp(V4);
    let target = format!("dual-stack:{}", server.port());
    with_hosts(&hosts, &["--retries", "0", "--wait-tcp", &target]).assert_code(0);
}

#[test]
fn localhost_is_both_loopbacks_whatever_the_hosts_file_lists() {
    let dir = TempDir::new("hosts-localhost");
    for (listed, ip) in [("127.0.0.1", V6), ("::1", V4)] {
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, format!("{listed} localhost\n")).unwrap();
        let server = Server::tcp(ip);
        let target = format!("localhost:{}", server.port());
        with_hosts(&hosts, &["--retries", "0", "--wait-tcp", &target]).assert_code(0);
        // And over HTTP.
        let http = Server::http(ip, vec![], Reply::Status(200));
        let url = format!("http://localhost:{}/", http.port());
        with_hosts(&hosts, &["--retries", "0", "--wait-http", &url]).assert_code(0);
    }
}

#[test]
fn names_are_resolved_again_at_every_attempt() {
    // The sidecar's name only appears in /etc/hosts later (rewritten in place, so the bind
    // mount sees it).
    let dir = TempDir::new("hosts-late");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let server = Server::tcp(V4);
    let h = hosts.clone();
    let named_at = after(Duration::from_millis(800), move || {
        std::fs::write(&h, "127.0.0.1 localhost\n127.0.0.1 late-sidecar\n").unwrap();
    });
    let run = with_hosts(
        &hosts,
        &[
            "--timeout",
            "10s",
            "--wait-tcp",
            &format!("late-sidecar:{}", server.port()),
            "--",
            "true",
        ],
    );
    run.assert_code(0);
    named_at.get();
    assert!(
        run.elapsed >= Duration::from_millis(800),
        "{}",
        run.explain()
    );
}

#[test]
fn http_503_then_200() {
    let server = Server::http(
        V4,
        vec![Reply::Status(503), Reply::Status(503), Reply::Status(503)],
        Reply::Status(200),
    );
    let url = server.url("/");
    let run = TestCommand::new()
        .args([
            "--timeout",
            "10s",
            "--interval",
            "50ms",
            "--wait-http",
            &url,
        ])
        .args(["--", "true"])
        .run();
    run.assert_code(0)
        .assert_stderr_has(&format!("{url} is ready after"))
        .assert_stderr_has("(4 attempts)");
    assert_eq!(
        server.requests.lock().unwrap().len(),
        4,
        "{}",
        run.explain()
    );
}

#[test]
fn http_non_2xx_is_not_ready_and_named() {
    let server = Server::http(V4, vec![], Reply::Status(404));
    TestCommand::new()
        .args(["--timeout", "500ms", "--wait-http", &server.url("/missing")])
        .args(["--", "echo", "SHOULD-NOT-RUN"])
        .run()
        .assert_code(124)
        .assert_stderr_has("HTTP 404");
}

#[test]
fn http_sends_the_path_query_and_host_header() {
    let server = Server::http(V4, vec![], Reply::Status(204));
    let url = format!("http://localhost:{}/health/ready?verbose=1", server.port());
    TestCommand::new()
        .args(["--timeout", "10s", "--wait-http", &url, "--", "true"])
        .run()
        .assert_code(0);
    let seen = server.requests.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].request_line, "GET /health/ready?verbose=1 HTTP/1.1");
    assert_eq!(
        seen[0].host.as_deref(),
        Some(format!("localhost:{}", server.port()).as_str())
    );
}

#[test]
fn http_credentials_are_sent_but_never_logged() {
    let server = Server::http(V4, vec![], Reply::Status(200));
    let url = format!("http://Aladdin:open%20sesame@127.0.0.1:{}/", server.port());
    let run = TestCommand::new()
        .args(["--timeout", "10s", "--wait-http", &url, "--", "true"])
        .run();
    run.assert_code(0)
        .assert_stderr_has(&format!("http://Aladdin:***@127.0.0.1:{}/", server.port()));
    assert!(!run.stderr().contains("sesame"), "{}", run.explain());
    let seen = server.requests.lock().unwrap().clone();
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        "the userinfo, %-decoded, base64 (RFC 7617's example)"
    );
    assert_eq!(
        seen[0].host.as_deref(),
        Some(format!("127.0.0.1:{}", server.port()).as_str())
    );
}
