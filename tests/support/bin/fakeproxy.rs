//! A fake mesh or proxy sidecar for the shutdown-call tests: HTTP/1.1 on 127.0.0.1, not ready at
//! first, ready later, every request recorded, and an exit on its shutdown call.
//!
//! fakeproxy [--ready PORT/PATH] [--shutdown PORT/PATH] [--ready-after MS] [--status N] [--stay]
//!           [--marker PATH] [--ready-file PATH]
//!
//! - `--ready PORT/PATH`: a GET of PATH answers 503 until `--ready-after` MS have passed (and,
//!   with `--ready-file`, until that file exists: the test decides), then 200.
//! - `--shutdown PORT/PATH`: a POST of PATH answers `--status` (200), then the process exits 0,
//!   unless `--stay` (then it keeps answering, so that a second call would be seen).
//! - `--marker PATH`: at the shutdown call, print what a sidecar would see of podvisor's marker
//!   then: `marker-at-call: <PATH's one line, or ->` and `lock-at-call: busy|free|-`.
//! - Anything else answers 404. One listener per distinct port.
//!
//! stdout: `listening` once every port is bound, then one line per request, as it is answered:
//! `GET /healthz/ready 503 port=15021 content-length=-`, `POST /quitquitquit 200 port=15020
//! content-length=0` (plus ` auth=...` when an Authorization header came), and `exiting` before
//! an exit on the shutdown call.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::libc;

struct Spec {
    ready: Option<(u16, String)>,
    shutdown: Option<(u16, String)>,
    ready_at: Instant,
    status: u16,
    stay: bool,
    marker: Option<String>,
    ready_file: Option<String>,
}

fn port_path(text: &str) -> (u16, String) {
    let (port, path) = text.split_once('/').unwrap_or((text, ""));
    let port = port
        .parse()
        .unwrap_or_else(|_| die(&format!("bad PORT/PATH {text}")));
    (port, format!("/{path}"))
}

fn die(why: &str) -> ! {
    eprintln!("fakeproxy: {why}");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut ready = None;
    let mut shutdown = None;
    let mut ready_after = 0u64;
    let mut status = 200u16;
    let mut stay = false;
    let mut marker = None;
    let mut ready_file = None;
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--ready" => ready = Some(port_path(&value())),
            "--shutdown" => shutdown = Some(port_path(&value())),
            "--ready-after" => ready_after = value().parse().unwrap_or_else(|_| die("bad MS")),
            "--status" => status = value().parse().unwrap_or_else(|_| die("bad status")),
            "--stay" => stay = true,
            "--marker" => marker = Some(value()),
            "--ready-file" => ready_file = Some(value()),
            other => die(&format!("unknown argument {other}")),
        }
    }
    let spec = Arc::new(Spec {
        ready,
        shutdown,
        ready_at: Instant::now() + Duration::from_millis(ready_after),
        status,
        stay,
        marker,
        ready_file,
    });
    let ports: BTreeSet<u16> = [&spec.ready, &spec.shutdown]
        .into_iter()
        .flatten()
        .map(|(p, _)| *p)
        .collect();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let mut threads = Vec::new();
    for port in ports {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| die(&format!("cannot listen on 127.0.0.1:{port}: {e}")));
        let (spec, out) = (spec.clone(), out.clone());
        threads.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, port, &spec, &out);
            }
        }));
    }
    say(&out, "listening");
    for t in threads {
        let _ = t.join();
    }
}

fn say(out: &Mutex<std::io::Stdout>, line: &str) {
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One request per connection (podvisor sends `Connection: close`, and so do we).
fn serve(stream: TcpStream, port: u16, spec: &Spec, out: &Mutex<std::io::Stdout>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut length: Option<usize> = None;
    let mut auth = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':') {
                    if name.trim().eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().ok();
                    }
                    if name.trim().eq_ignore_ascii_case("authorization") {
                        auth = format!(" auth={}", value.trim());
                    }
                }
            }
        }
    }
    let mut body = vec![0; length.unwrap_or(0)];
    let _ = reader.read_exact(&mut body);
    // Routed by path alone, as servers do: the query is the request's own business.
    let route_path = path.split('?').next().unwrap_or_default();
    let is = |route: &Option<(u16, String)>, m: &str| {
        route
            .as_ref()
            .is_some_and(|(p, want)| *p == port && want == route_path)
            && method == m
    };
    let (code, exit) = if is(&spec.ready, "GET") {
        let file_there = spec
            .ready_file
            .as_ref()
            .is_none_or(|f| std::path::Path::new(f).exists());
        let code = if Instant::now() >= spec.ready_at && file_there {
            200
        } else {
            503
        };
        (code, false)
    } else if is(&spec.shutdown, "POST") {
        if let Some(path) = &spec.marker {
            look_at_marker(path, out);
        }
        (spec.status, !spec.stay)
    } else {
        (404, false)
    };
    let shown_length = length.map_or("-".to_owned(), |l| l.to_string());
    let mut writer = &stream;
    let _ = write!(
        writer,
        "HTTP/1.1 {code} Fake\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = writer.flush();
    say(
        out,
        &format!("{method} {path} {code} port={port} content-length={shown_length}{auth}"),
    );
    if exit {
        say(out, "exiting");
        std::process::exit(0);
    }
}

/// What a file-watching sidecar sees of the marker at this moment.
fn look_at_marker(path: &str, out: &Mutex<std::io::Stdout>) {
    use std::os::fd::AsRawFd;
    let content = std::fs::read_to_string(path).map_or("-".to_owned(), |c| c.trim().to_owned());
    say(out, &format!("marker-at-call: {content}"));
    let lock = match std::fs::File::open(format!("{path}.lock")) {
        Err(_) => "-",
        // SAFETY: flock on an fd we own; a lock taken here goes with the fd at the end of the arm.
        Ok(f) => match unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } {
            0 => "free",
            _ => "busy",
        },
    };
    say(out, &format!("lock-at-call: {lock}"));
}
