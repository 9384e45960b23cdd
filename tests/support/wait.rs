//! Test helpers for the wait tests: targets that become ready later (TCP and HTTP servers,
//! unix sockets, files), and clocks to prove that COMMAND started only after.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// Nanoseconds since the epoch, the unit of `date +%s%N`.
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

/// A COMMAND that prints the wall-clock time it started at, in `now_ns` units.
pub fn clock_command() -> [&'static str; 4] {
    ["--", "sh", "-c", "date +%s%N"]
}

/// The time printed by `clock_command`.
pub fn printed_ns(stdout: &str) -> u128 {
    stdout
        .trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no time in stdout {stdout:?}"))
}

/// Every port this test binary handed out or listened on through [`free_port`] and
/// [`listen_any`].
static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A free port on `ip` (bound, then released), never one handed out before in this test
/// binary: the kernel may give a released port to the next bind, and two tests running at once
/// then shared it (a "closed" port of one turned ready when the other's server listened late).
pub fn free_port(ip: IpAddr) -> u16 {
    listen_any(ip).local_addr().expect("local addr").port()
}

/// A listener on a port of the kernel's choice, never one [`free_port`] handed out before in
/// this test binary, so that a server of one test cannot open another test's "closed" port.
pub fn listen_any(ip: IpAddr) -> TcpListener {
    loop {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind a free port");
        let port = listener.local_addr().expect("local addr").port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return listener;
        }
    }
}

/// The wall-clock time at which a delayed action ran (taken just before it), once it has.
#[derive(Clone, Default)]
pub struct ReadyAt(Arc<Mutex<Option<u128>>>);

impl ReadyAt {
    fn mark(&self) {
        *self.0.lock().expect("lock") = Some(now_ns());
    }

    /// When it became ready; panics if it never did.
    pub fn get(&self) -> u128 {
        self.0
            .lock()
            .expect("lock")
            .expect("the target never became ready")
    }
}

/// Runs `action` after `delay` in a thread (the delay is the scenario, not a synchronisation).
pub fn after(delay: Duration, action: impl FnOnce() + Send + 'static) -> ReadyAt {
    let at = ReadyAt::default();
    let mark = at.clone();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        mark.mark();
        action();
    });
    at
}

/// Creates a file (and its folders) after `delay`.
pub fn create_file_after(path: &Path, delay: Duration) -> ReadyAt {
    let path = path.to_owned();
    after(delay, move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create folders");
        }
        std::fs::write(&path, b"ready").expect("create the file");
    })
}

/// What a server answers to the n-th connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Accept and close (plain TCP).
    Close,
    /// Read an HTTP request and answer with this status.
    Status(u16),
    /// Accept, then never answer (hold the connection open).
    Silent,
}

/// One HTTP request as the server saw it.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// `GET /path HTTP/1.1`
    pub request_line: String,
    /// The Host header, if any.
    pub host: Option<String>,
    /// The Authorization header, if any.
    pub authorization: Option<String>,
}

/// A TCP server on a loopback address that starts listening after a delay and answers by a
/// script; stopped on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub ready_at: ReadyAt,
    /// Connections accepted so far.
    pub accepted: Arc<Mutex<u32>>,
    /// HTTP requests read so far.
    pub requests: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Plain TCP, listening now.
    pub fn tcp(ip: IpAddr) -> Self {
        Self::start(ip, 0, Duration::ZERO, vec![], Reply::Close)
    }

    /// Plain TCP on a free port, listening after `delay`.
    pub fn tcp_after(ip: IpAddr, delay: Duration) -> Self {
        Self::start(ip, free_port(ip), delay, vec![], Reply::Close)
    }

    /// HTTP, listening now: answers `script` in order, then `then` to every later request.
    pub fn http(ip: IpAddr, script: Vec<Reply>, then: Reply) -> Self {
        Self::start(ip, 0, Duration::ZERO, script, then)
    }

    /// HTTP 200 on a free port, listening after `delay`.
    pub fn http_after(ip: IpAddr, delay: Duration) -> Self {
        Self::start(ip, free_port(ip), delay, vec![], Reply::Status(200))
    }

    fn start(ip: IpAddr, port: u16, delay: Duration, script: Vec<Reply>, then: Reply) -> Self {
        let addr = SocketAddr::new(ip, port);
        let ready_at = ReadyAt::default();
        let bind = |addr| {
            let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            l.set_nonblocking(true).expect("nonblocking listener");
            l
        };
        // Bound now when there is no delay, so that the target is ready when this returns.
        let now = delay.is_zero().then(|| {
            ready_at.mark();
            bind(addr)
        });
        let addr = now
            .as_ref()
            .map_or(addr, |l| l.local_addr().expect("local addr"));
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, accepted2, requests2, mark) = (
            stop.clone(),
            accepted.clone(),
            requests.clone(),
            ready_at.clone(),
        );
        let thread = std::thread::spawn(move || {
            let listener = match now {
                Some(l) => l,
                None => {
                    std::thread::sleep(delay);
                    mark.mark();
                    bind(addr)
                }
            };
            let mut held = Vec::new();
            let mut n = 0usize;
            while !stop2.load(Ordering::SeqCst) {
                let stream = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                *accepted2.lock().expect("lock") += 1;
                let reply = script.get(n).copied().unwrap_or(then);
                n += 1;
                match reply {
                    Reply::Close => {}
                    Reply::Silent => held.push(stream),
                    Reply::Status(code) => {
                        if let Some(seen) = answer(stream, code) {
                            requests2.lock().expect("lock").push(seen);
                        }
                    }
                }
            }
        });
        Self {
            addr,
            ready_at,
            accepted,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT` or `[::1]:PORT`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// `http://ADDR` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request head and answers `code`; the request as seen.
fn answer(stream: TcpStream, code: u16) -> Option<Seen> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut seen = Seen::default();
    let mut line = String::new();
    while reader.read_line(&mut line).ok()? > 0 {
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if seen.request_line.is_empty() {
            seen.request_line = l.to_owned();
        } else if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("host") {
                seen.host = Some(v.trim().to_owned());
            } else if k.eq_ignore_ascii_case("authorization") {
                seen.authorization = Some(v.trim().to_owned());
            }
        }
        line.clear();
    }
    let mut stream = stream;
    let body = format!("status {code}\n");
    let _ = write!(
        stream,
        "HTTP/1.1 {code} Test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    Some(seen)
}

/// A unix socket listener that starts after `delay`; stopped (and the socket removed) on drop.
pub struct UnixServer {
    pub path: PathBuf,
    pub ready_at: ReadyAt,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UnixServer {
    pub fn after(path: &Path, delay: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, p) = (stop.clone(), path.to_owned());
        let ready_at = ReadyAt::default();
        let mark = ready_at.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(delay);
            mark.mark();
            let l = UnixListener::bind(&p).unwrap_or_else(|e| panic!("bind {}: {e}", p.display()));
            l.set_nonblocking(true).expect("nonblocking");
            while !stop2.load(Ordering::SeqCst) {
                if l.accept().is_err() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Self {
            path: path.to_owned(),
            ready_at,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Lines of a file (missing file: none).
pub fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// podvisor running in the background, its stderr read line by line; killed on drop.
pub struct Background {
    child: std::process::Child,
    shown: String,
    start: std::time::Instant,
    stderr: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
    stdout: Option<JoinHandle<Vec<u8>>>,
}

impl Background {
    pub fn start(cmd: super::TestCommand) -> Self {
        let start = std::time::Instant::now();
        let (mut child, shown) = cmd.spawn();
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut out = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut buf);
            buf
        });
        Self {
            child,
            shown,
            start,
            stderr: rx,
            seen: Vec::new(),
            stdout: Some(stdout),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a stderr line contains `needle`.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self.seen.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no stderr line with {needle:?} after {timeout:?} from {}\n--- stderr so far ---\n{}",
                    self.shown,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{name} {} failed", self.pid());
    }

    /// Waits for the exit (killing after `timeout`) and collects everything.
    pub fn finish(mut self, timeout: Duration) -> super::Run {
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait");
                self.seen.push(format!("(test: killed after {timeout:?})"));
                break status;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.start.elapsed();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        let stdout = self
            .stdout
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let mut stderr = self.seen.join("\n").into_bytes();
        stderr.push(b'\n');
        super::Run {
            shown: std::mem::take(&mut self.shown),
            output: std::process::Output {
                status,
                stdout,
                stderr,
            },
            elapsed,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SIGTERM first, so that podvisor stops its COMMAND too (a SIGKILL would orphan it).
            let _ = std::process::Command::new("kill")
                .arg(self.pid().to_string())
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pids of live, non-zombie processes whose command line (arguments joined by spaces) starts
/// with `prefix`: `sleep 30.123` finds the sleep itself, not the shell or podvisor that name it.
pub fn processes_with(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !zombie && args.join(" ").starts_with(prefix) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// `setpriv` to `uid` (and the same gid), without supplementary groups.
pub fn as_uid(uid: &str) -> std::process::Command {
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid", uid, "--regid", uid, "--clear-groups"]);
    c
}

/// Holds every inotify instance `uid` may have (fs.inotify.max_user_instances) until dropped,
/// so that podvisor run as `uid` must poll.
pub struct InotifyHog(std::process::Child);

impl InotifyHog {
    pub fn start(uid: &str) -> Self {
        let script = "import ctypes, resource, sys\n\
                      hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n\
                      resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
                      init = ctypes.CDLL(None).inotify_init1\n\
                      held = 0\n\
                      while init(0) >= 0:\n    held += 1\n\
                      print('holding', held, flush=True)\n\
                      sys.stdin.read()\n";
        // Debian's python3: a pyenv one under /root may not be readable by this UID.
        let mut child = as_uid(uid)
            .args(["/usr/bin/python3", "-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the inotify hog");
        let out = child.stdout.take().expect("hog stdout");
        let first = BufReader::new(out).lines().next();
        let line = first.and_then(Result::ok).unwrap_or_default();
        assert!(
            line.starts_with("holding"),
            "the inotify hog failed: {line:?}"
        );
        Self(child)
    }
}

impl Drop for InotifyHog {
    fn drop(&mut self) {
        // Closing its stdin ends it.
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}
