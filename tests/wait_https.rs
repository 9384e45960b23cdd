//! `https://` and HTTP expectations against a real nginx (Debian's nginx-light, from
//! .ci/install), with certificates made by openssl at test time: trusted through `ca=`, refused
//! without it (the reason line asserted), accepted with `insecure`; status sets; body contains
//! and matches; HTTP over a unix socket. Each test runs its own nginx on free ports, with its
//! own config and prefix in a fresh folder.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::wait::{free_port, V4};
use support::{poll_until, Run, TempDir, TestCommand};

/// Runs openssl with ARGS (split at blanks) in DIR; it must succeed.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (.ci/install installs it): {e}"));
    assert!(
        out.status.success(),
        "openssl {args} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Certificates made for one test: a CA and a server certificate it signed (for `localhost`
/// only), and a self-signed one as `openssl req -x509` makes it (CA:TRUE, for `localhost` and
/// 127.0.0.1).
struct Certs {
    ca: PathBuf,
    signed: (PathBuf, PathBuf),
    self_signed: (PathBuf, PathBuf),
}

fn make_certs(dir: &Path) -> Certs {
    let p = |name: &str| dir.join(name);
    let key = "-newkey rsa:2048 -nodes -days 2";
    openssl(
        dir,
        &format!("req -x509 {key} -subj /CN=testCA -keyout ca.key -out ca.pem"),
    );
    openssl(
        dir,
        &format!("req {key} -subj /CN=localhost -keyout server.key -out server.csr"),
    );
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext.cnf");
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
         -extfile ext.cnf -out server.pem",
    );
    openssl(
        dir,
        &format!(
            "req -x509 {key} -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
             -keyout self.key -out self.pem"
        ),
    );
    Certs {
        ca: p("ca.pem"),
        signed: (p("server.pem"), p("server.key")),
        self_signed: (p("self.pem"), p("self.key")),
    }
}

/// nginx in the foreground as one process (no master, no workers to outlive it), killed on drop.
struct Nginx {
    child: Child,
    /// HTTPS with the CA-signed certificate.
    signed: u16,
    /// HTTPS with the self-signed certificate.
    self_signed: u16,
    /// Plain HTTP.
    plain: u16,
    /// HTTPS with the CA-signed certificate, TLS 1.2 only.
    tls12: u16,
    /// Plain HTTP on a unix socket.
    socket: PathBuf,
    certs: Certs,
    dir: TempDir,
}

/// What every server of the test nginx answers.
const LOCATIONS: &str = r#"
    location /health { default_type text/plain; return 200 '{"cluster":"es","status":"green"}'; }
    location /down { return 503 'starting'; }
    location /auth { return 401 'who are you'; }
    location /_ping { default_type text/plain; return 200 'OK host=$host'; }
"#;

impl Nginx {
    fn start() -> Self {
        let dir = TempDir::new("nginx");
        let d = dir.path().to_owned();
        let certs = make_certs(&d);
        let (signed, self_signed, plain) = (free_port(V4), free_port(V4), free_port(V4));
        let tls12 = free_port(V4);
        let socket = d.join("h.sock");
        let tls = |port: u16, (cert, key): &(PathBuf, PathBuf), protocols: &str| {
            format!(
                "server {{ listen 127.0.0.1:{port} ssl; ssl_protocols {protocols}; ssl_certificate {}; ssl_certificate_key {}; {LOCATIONS} }}",
                cert.display(),
                key.display()
            )
        };
        let conf = format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  {}
  {}
  {}
  server {{ listen 127.0.0.1:{plain}; {LOCATIONS} }}
  server {{ listen unix:{}; {LOCATIONS} }}
}}
",
            tls(signed, &certs.signed, "TLSv1.2 TLSv1.3"),
            tls(self_signed, &certs.self_signed, "TLSv1.2 TLSv1.3"),
            tls(tls12, &certs.signed, "TLSv1.2"),
            socket.display(),
            d = d.display(),
        );
        std::fs::write(d.join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx (.ci/install installs it): {e}"));
        let mut nginx = Self {
            child,
            signed,
            self_signed,
            plain,
            tls12,
            socket,
            certs,
            dir,
        };
        poll_until(Duration::from_secs(10), "nginx listening", || {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited with {status}:\n{}", nginx.error_log());
            }
            let up = [signed, self_signed, plain, tls12]
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
                && nginx.socket.exists();
            up.then_some(())
        });
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One attempt at the target (`--retries 0`): ready (0) or not (124) at once.
fn once(target: &str) -> Run {
    TestCommand::new()
        .args(["--retries", "0", "--timeout", "20s", "--wait", target])
        .args(["--", "echo", "STEP-RAN"])
        .run()
}

fn ready(target: String) {
    once(&target)
        .assert_code(0)
        .assert_stdout_has("STEP-RAN")
        .assert_stderr_has(&format!("{target} is ready after"));
}

fn not_ready(target: String, reason: &str) {
    let run = once(&target);
    run.assert_code(124)
        .assert_stderr_has(&format!("{target} not ready"))
        .assert_stderr_has(reason);
    assert!(!run.stdout().contains("STEP-RAN"), "{}", run.explain());
}

#[test]
fn a_certificate_is_trusted_through_ca_refused_without_it_and_accepted_with_insecure() {
    let n = Nginx::start();
    let url = format!("https://localhost:{}/health", n.signed);
    not_ready(
        url.clone(),
        "TLS: certificate not trusted (give ca= or insecure)",
    );
    ready(format!("{url}#ca={}", n.certs.ca.display()));
    ready(format!("{url}#insecure"));
    // The name is checked too: the certificate holds `localhost`, not 127.0.0.1.
    not_ready(
        format!(
            "https://127.0.0.1:{}/health#ca={}",
            n.signed,
            n.certs.ca.display()
        ),
        "TLS: certificate not valid for 127.0.0.1",
    );
    // A ca= file that does not exist (yet) is a reason, not an error.
    not_ready(
        format!("{url}#ca={}/late.pem", n.dir.path().display()),
        "cannot read the ca= file",
    );
}

#[test]
fn a_self_signed_certificate_is_trusted_when_given_as_ca() {
    let n = Nginx::start();
    let url = format!("https://localhost:{}/health", n.self_signed);
    not_ready(
        url.clone(),
        "TLS: certificate not trusted (give ca= or insecure)",
    );
    let cert = n.certs.self_signed.0.display();
    ready(format!("{url}#ca={cert}"));
    ready(format!(
        "https://127.0.0.1:{}/health#ca={cert}",
        n.self_signed
    ));
    ready(format!("{url}#insecure&body=green"));
}

#[test]
fn status_sets() {
    let n = Nginx::start();
    let http = |path: &str| format!("http://127.0.0.1:{}{path}", n.plain);
    not_ready(http("/down"), "HTTP 503 Service Unavailable");
    ready(format!("{}#status=503", http("/down")));
    ready(format!("{}#status=200-299,401", http("/auth")));
    not_ready(
        format!("{}#status=200-299,401", http("/down")),
        "HTTP 503 Service Unavailable (expected 200-299,401)",
    );
    not_ready(http("/auth"), "HTTP 401");
    // A server without TLS 1.3 is named as such.
    not_ready(
        format!("https://localhost:{}/health#insecure", n.tls12),
        "TLS: the server does not speak TLS 1.3",
    );
    // The wrong scheme either way is named.
    not_ready(
        format!("https://127.0.0.1:{}/health#insecure", n.plain),
        "TLS: the server does not speak TLS",
    );
    // Over TLS the same.
    not_ready(
        format!("https://localhost:{}/down#insecure", n.signed),
        "HTTP 503",
    );
    ready(format!(
        "https://localhost:{}/down#insecure&status=500-599",
        n.signed
    ));
}

#[test]
fn body_contains_and_matches() {
    let n = Nginx::start();
    let url = format!("http://127.0.0.1:{}/health", n.plain);
    ready(format!("{url}#body=green"));
    not_ready(
        format!("{url}#body=yellow"),
        r#"body does not contain 'yellow': {"cluster":"es","status":"green"}"#,
    );
    ready(format!(
        "{url}#body-regex=%22status%22:%22(green|yellow)%22"
    ));
    not_ready(
        format!("{url}#body-regex=^green"),
        "body does not match /^green/",
    );
    // Both, and a status set: every expectation must hold.
    ready(format!("{url}#status=200&body=es&body-regex=gre+n"));
    not_ready(format!("{url}#body=es&body-regex=red"), "does not match");
}

#[test]
fn http_over_a_unix_socket_sends_the_urls_host() {
    let n = Nginx::start();
    let sock = n.socket.display();
    ready(format!(
        "http://localhost/_ping#unix={sock}&body=OK%20host=localhost"
    ));
    ready(format!(
        "http://docker/_ping#unix={sock}&body-regex=^OK host=docker$"
    ));
    not_ready(
        format!(
            "http://localhost/_ping#unix={}/missing.sock",
            n.dir.path().display()
        ),
        "missing.sock: No such file or directory",
    );
    // The shorthand takes the same URL.
    TestCommand::new()
        .args(["--retries", "0", "--wait-http"])
        .arg(format!("http://localhost/_ping#unix={sock}"))
        .run()
        .assert_code(0);
}

#[test]
fn an_env_list_carries_options_with_commas() {
    let n = Nginx::start();
    let list = format!(
        "https://localhost:{}/auth#ca={}&status=200-299,401 , http://127.0.0.1:{}/health#body=green,",
        n.signed,
        n.certs.ca.display(),
        n.plain
    );
    let run = TestCommand::new()
        .env("PODVISOR_WAIT", &list)
        .args(["--retries", "0", "--", "echo", "STEP-RAN"])
        .run();
    run.assert_code(0)
        .assert_stdout_has("STEP-RAN")
        .assert_stderr_has(&format!(
            "https://localhost:{}/auth#ca={}&status=200-299,401 is ready",
            n.signed,
            n.certs.ca.display()
        ))
        .assert_stderr_has(&format!(
            "http://127.0.0.1:{}/health#body=green is ready",
            n.plain
        ));
}

#[test]
fn the_marker_names_what_the_server_said() {
    let n = Nginx::start();
    let marker = n.dir.path().join("marker.json");
    let url = format!("https://localhost:{}/health", n.signed);
    let run = TestCommand::new()
        .args(["--retries", "1", "--interval", "10ms", "--marker"])
        .arg(&marker)
        .args(["--wait", &url, "--", "true"])
        .run();
    run.assert_code(124);
    let text = std::fs::read_to_string(&marker)
        .unwrap_or_else(|e| panic!("marker: {e}\n{}", run.explain()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("marker is JSON");
    let wait = &v["waits"][0];
    assert_eq!(wait["target"], url.as_str(), "{text}");
    // An attempt still in flight at the deadline prefixes the reason of the one before.
    assert!(
        wait["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("TLS: certificate not trusted (give ca= or insecure)"),
        "{text}"
    );
}
