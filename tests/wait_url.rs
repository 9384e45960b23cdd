//! `--wait URL`: every scheme parsed and shown, options and their errors, `PODVISOR_WAIT`'s
//! split rule, passwords never printed, and `tcp://...#hold=` against servers that accept and
//! then reset, close, or hold the connection.

mod support;

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use support::wait::{free_port, Reply, Server, V4};
use support::{Run, TempDir, TestCommand};

/// What a scripted server does with every connection it accepts.
#[derive(Clone, Copy)]
enum Then {
    /// Waits this long, then resets (SO_LINGER 0, then close: an RST, as Envoy sends when its
    /// upstream is down).
    Reset(Duration),
    /// Waits this long, then closes (FIN).
    Close(Duration),
    /// Keeps it open until the server is dropped.
    Hold,
}

/// A TCP server on 127.0.0.1 that accepts every connect (like a proxy) and then does `then`.
struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(then: Then) -> Self {
        let listener = support::wait::listen_any(V4);
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                match then {
                    Then::Hold => held.push(stream),
                    Then::Close(after) => {
                        std::thread::spawn(move || {
                            std::thread::sleep(after);
                            drop(stream);
                        });
                    }
                    Then::Reset(after) => {
                        std::thread::spawn(move || {
                            std::thread::sleep(after);
                            reset(stream);
                        });
                    }
                }
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Closes with an RST instead of a FIN (socket(7): SO_LINGER with a zero timeout).
fn reset(stream: TcpStream) {
    use nix::libc;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
    drop(stream);
}

fn wait_once(target: &str) -> Run {
    TestCommand::new()
        .args(["--retries", "0", "--wait", target, "--", "echo", "STEP-RAN"])
        .run()
}

#[test]
fn hold_counts_a_reset_soon_after_connect_as_not_ready() {
    let proxy = Proxy::start(Then::Reset(Duration::from_millis(40)));
    let target = format!("tcp://127.0.0.1:{}#hold=1s", proxy.port);
    let run = wait_once(&target);
    run.assert_code(124)
        .assert_stderr_has(&format!("{target} not ready"))
        .assert_stderr_has("connection reset ")
        .assert_stderr_has(" ms after connect");
    assert!(!run.stdout().contains("STEP-RAN"), "{}", run.explain());
    // Without hold, the same server is "ready": that is what hold is for.
    wait_once(&format!("tcp://127.0.0.1:{}", proxy.port)).assert_code(0);
}

#[test]
fn hold_counts_an_eof_soon_after_connect_as_not_ready() {
    let proxy = Proxy::start(Then::Close(Duration::from_millis(40)));
    wait_once(&format!("tcp://127.0.0.1:{}#hold=1s", proxy.port))
        .assert_code(124)
        .assert_stderr_has("connection closed ")
        .assert_stderr_has(" ms after connect");
}

#[test]
fn hold_is_ready_when_the_connection_stays_open() {
    let proxy = Proxy::start(Then::Hold);
    let target = format!("tcp://127.0.0.1:{}#hold=300ms", proxy.port);
    let run = wait_once(&target);
    run.assert_code(0)
        .assert_stdout_has("STEP-RAN")
        .assert_stderr_has(&format!("{target} is ready after"))
        .assert_stderr_has("held the connection 300ms");
    assert!(
        run.elapsed >= Duration::from_millis(300),
        "ready before the hold ran out\n{}",
        run.explain()
    );
}

#[test]
fn a_hold_as_long_as_an_attempt_is_a_config_error() {
    let run = TestCommand::new()
        .args(["--attempt-timeout", "1s", "--wait", "tcp://db:1#hold=1s"])
        .args(["--", "echo", "STEP-RAN"])
        .run();
    run.assert_code(125)
        .assert_stderr_has("shorter than --attempt-timeout");
}

#[test]
fn every_scheme_is_parsed_and_shown() {
    let port = free_port(V4);
    let run = TestCommand::new()
        .args(["--retries", "0", "--no-strict", "--log-level", "info"])
        .args(["--wait", &format!("tcp://127.0.0.1:{port}#hold=100ms")])
        .args([
            "--wait",
            &format!("http://127.0.0.1:{port}/h?x=1#status=200-299,401&body=ok"),
        ])
        .args([
            "--wait",
            &format!("https://127.0.0.1:{port}/#insecure&ca=/x.pem"),
        ])
        .args(["--wait", "unix:///nonexistent/s.sock"])
        .args(["--wait", "file:///nonexistent/ready"])
        .args(["--wait", &format!("postgres://app@127.0.0.1:{port}/db")])
        .args(["--wait", &format!("postgresql://127.0.0.1:{port}")])
        .args(["--wait", &format!("redis://127.0.0.1:{port}/2")])
        .args(["--wait", &format!("mysql://root@127.0.0.1:{port}")])
        .args(["--wait", &format!("mariadb://127.0.0.1:{port}/x")])
        .args(["--wait", "log:///nonexistent/x.log#regex=ready&count=2"])
        .args(["--", "echo", "STEP-RAN"])
        .run();
    run.assert_code(0).assert_stdout_has("STEP-RAN");
    for shown in [
        format!("tcp://127.0.0.1:{port}#hold=100ms"),
        format!("http://127.0.0.1:{port}/h?x=1#status=200-299,401&body=ok"),
        format!("https://127.0.0.1:{port}/#insecure&ca=/x.pem"),
        "unix:///nonexistent/s.sock".to_owned(),
        "file:///nonexistent/ready".to_owned(),
        format!("postgres://app@127.0.0.1:{port}/db"),
        format!("postgresql://127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}/2"),
        format!("mysql://root@127.0.0.1:{port}"),
        format!("mariadb://127.0.0.1:{port}/x"),
        "log:///nonexistent/x.log#regex=ready&count=2".to_owned(),
    ] {
        run.assert_stderr_has(&format!("{shown} not ready"));
    }
    // Default ports.
    let run = TestCommand::new()
        .args(["--retries", "0", "--no-strict", "--timeout", "3s"])
        .args([
            "--wait",
            "postgres://localhost",
            "--wait",
            "redis://localhost",
        ])
        .args(["--wait", "mysql://localhost", "--", "true"])
        .run();
    run.assert_stderr_has("postgres://localhost:5432")
        .assert_stderr_has("redis://localhost:6379")
        .assert_stderr_has("mysql://localhost:3306");
}

#[test]
fn unknown_options_are_125_with_the_closest_one() {
    for (target, says) in [
        (
            "https://es:9200/#stauts=200",
            "unknown option 'stauts' in https://es:9200/#stauts=200; did you mean 'status'?",
        ),
        (
            "tcp://db:5432#hodl=1s",
            "unknown option 'hodl' in tcp://db:5432#hodl=1s; did you mean 'hold'?",
        ),
        (
            "http://x/#ca=/ca.pem",
            "option 'ca' does not apply to http:// targets",
        ),
        ("redis://cache#body=PONG", "redis:// takes no options"),
        ("gopher://x/", "unknown scheme gopher://"),
    ] {
        let run = TestCommand::new()
            .args(["--wait", target, "--", "echo", "STEP-RAN"])
            .run();
        run.assert_code(125)
            .assert_stderr_has("--wait")
            .assert_stderr_has(says);
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.explain());
        assert!(!run.stdout().contains("STEP-RAN"), "{}", run.explain());
    }
    // From the environment, the variable is named.
    TestCommand::new()
        .env("PODVISOR_WAIT", "tcp://a:1, https://es/#insecur")
        .args(["--", "true"])
        .run()
        .assert_code(125)
        .assert_stderr_has("PODVISOR_WAIT")
        .assert_stderr_has("did you mean 'insecure'?");
}

#[test]
fn podvisor_wait_splits_only_before_a_scheme() {
    let a = Server::http(V4, vec![], Reply::Status(401));
    let b = Server::tcp(V4);
    let list = format!(
        " http://127.0.0.1:{}/#status=200-299,401,tcp://127.0.0.1:{} ,, ",
        a.port(),
        b.port()
    );
    let run = TestCommand::new()
        .env("PODVISOR_WAIT", &list)
        .args(["--timeout", "10s", "--", "echo", "STEP-RAN"])
        .run();
    run.assert_code(0)
        .assert_stdout_has("STEP-RAN")
        .assert_stderr_has(&format!(
            "http://127.0.0.1:{}/#status=200-299,401 is ready",
            a.port()
        ))
        .assert_stderr_has(&format!("tcp://127.0.0.1:{} is ready", b.port()));
    // A flag replaces the variable's whole list.
    let run = TestCommand::new()
        .env("PODVISOR_WAIT", "tcp://127.0.0.1:1")
        .args(["--wait", &format!("tcp://127.0.0.1:{}", b.port())])
        .args(["--timeout", "10s", "--", "true"])
        .run();
    run.assert_code(0);
    assert!(!run.stderr().contains("127.0.0.1:1 "), "{}", run.explain());
}

#[test]
fn passwords_are_never_printed() {
    let dir = TempDir::new("wait-url-pw");
    let marker = dir.path().join("m.json");
    let port = free_port(V4);
    let run = TestCommand::new()
        .args([
            "--retries",
            "1",
            "--interval",
            "10ms",
            "--log-level",
            "debug",
            "--marker",
        ])
        .arg(&marker)
        .args([
            "--wait",
            &format!("postgres://app:S3cr3t@127.0.0.1:{port}/db"),
        ])
        .args(["--wait", &format!("redis://:S3cr3t@127.0.0.1:{port}")])
        .args(["--wait", &format!("mysql://root:S3cr3t@127.0.0.1:{port}")])
        .args([
            "--wait",
            &format!("https://me:S3cr3t@127.0.0.1:{port}/#insecure"),
        ])
        .args(["--", "true"])
        .run();
    run.assert_code(124)
        .assert_stderr_has(&format!("postgres://app:***@127.0.0.1:{port}/db"))
        .assert_stderr_has(&format!("redis://:***@127.0.0.1:{port}"))
        .assert_stderr_has(&format!("mysql://root:***@127.0.0.1:{port}"))
        .assert_stderr_has(&format!("https://me:***@127.0.0.1:{port}/#insecure"));
    assert!(!run.stderr().contains("S3cr3t"), "{}", run.explain());
    let text = std::fs::read_to_string(&marker).expect("marker");
    assert!(text.contains("app:***@"), "{text}");
    assert!(!text.contains("S3cr3t"), "{text}");
    // Nor in a configuration error.
    for bad in [
        "postgres://app:S3cr3t@db/x#stauts",
        "https://me:S3cr3t@es:99999/",
        "redis://:S3cr3t@cache/notanumber",
    ] {
        let run = TestCommand::new().args(["--wait", bad, "--", "true"]).run();
        run.assert_code(125).assert_stderr_has(":***@");
        assert!(!run.stderr().contains("S3cr3t"), "{}", run.explain());
    }
}
