//! Row 10: protocol readiness (postgres, redis, mysql): from "the server is ready" to "the step
//! has started".
//!
//! The server is the runner's own, speaking each protocol's exact first bytes, so that the moment
//! it turns ready is one store the runner timestamps: a postgres that answers every
//! StartupMessage with ErrorResponse 57P03 and then, from the ready moment on, with
//! AuthenticationOk; a redis that answers PING with `-LOADING` and then `+PONG`; a mysql whose
//! port is bound but not listening (its init-time server has no TCP) until listen(), then greets
//! with HandshakeV10. Real servers send the same bytes, but none says when it turned ready to
//! the nanosecond.
//!
//! Peers: a shell loop over the server's own client with `sleep 1`, which is the 1 s default
//! interval of wait4x (not installable here: no Debian package, no network); and the floor, the
//! runner itself in `floor` mode: a loop that connects and reads the first answer every 0.1 ms,
//! then execs the step.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ctx::{alternate, CpuMeter, Ctx, Section};
use crate::proc;
use crate::ready;
use crate::stats::Unit;

/// The protocols measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Postgres,
    Redis,
    Mysql,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::Mysql => "mysql",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Kind::Postgres, Kind::Redis, Kind::Mysql]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// What the client says first (mysql: nothing, the server speaks first).
    fn hello(self) -> &'static [u8] {
        match self {
            // StartupMessage, protocol 3.0, user postgres.
            Kind::Postgres => b"\0\0\0\x17\0\x03\0\0user\0postgres\0\0",
            Kind::Redis => b"*1\r\n$4\r\nPING\r\n",
            Kind::Mysql => b"",
        }
    }

    /// The server's answer, not ready or ready.
    fn answer(self, ready: bool) -> Vec<u8> {
        match (self, ready) {
            (Kind::Postgres, false) => {
                let body = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0";
                let mut m = vec![b'E'];
                m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
                m.extend_from_slice(body);
                m
            }
            (Kind::Postgres, true) => b"R\0\0\0\x08\0\0\0\0".to_vec(),
            (Kind::Redis, false) => b"-LOADING Redis is loading the dataset in memory\r\n".to_vec(),
            (Kind::Redis, true) => b"+PONG\r\n".to_vec(),
            (Kind::Mysql, _) => {
                let payload = b"\x0a8.0.36\0\x08\0\0\0abcdefgh\0\xff\xff\xff\x02\0\xff\xdf\x15\0\0\0\0\0\0\0\0\0\0ijklmnopqrst\0caching_sha2_password\0";
                let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
                p.push(0);
                p.extend_from_slice(payload);
                p
            }
        }
    }

    /// Whether a first answer is the ready one (for the floor loop).
    fn is_ready(self, first: &[u8]) -> bool {
        match self {
            Kind::Postgres => first.first() == Some(&b'R'),
            Kind::Redis => first.starts_with(b"+PONG"),
            Kind::Mysql => first.get(4) == Some(&0x0a),
        }
    }
}

/// The runner's server for one run: accepts on its own thread until dropped.
struct Server {
    port: u16,
    ready: Arc<AtomicBool>,
    /// mysql: the bound socket, listening only from the ready moment.
    bound: Option<OwnedFd>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(kind: Kind) -> Result<Self, String> {
        let ready = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (listener, port, bound) = if kind == Kind::Mysql {
            let port = proc::free_port().map_err(|e| e.to_string())?;
            let fd = proc::bound_socket(port).map_err(|e| e.to_string())?;
            let dup = fd.try_clone().map_err(|e| e.to_string())?;
            (TcpListener::from(dup), port, Some(fd))
        } else {
            let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let port = l.local_addr().map_err(|e| e.to_string())?.port();
            (l, port, None)
        };
        let (r, s) = (ready.clone(), stop.clone());
        let thread = std::thread::spawn(move || serve(kind, listener, &r, &s));
        Ok(Self {
            port,
            ready,
            bound,
            stop,
            thread: Some(thread),
        })
    }

    /// Turns ready now; returns the moment (taken just before the system call or the store).
    fn turn_ready(&self) -> Result<u64, String> {
        let at = proc::now_ns();
        if let Some(fd) = &self.bound {
            proc::listen(fd).map_err(|e| e.to_string())?;
        }
        self.ready.store(true, Ordering::SeqCst);
        Ok(at)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept (a mysql socket that never listened has none running).
        if self.ready.load(Ordering::SeqCst) || self.bound.is_none() {
            let _ = TcpStream::connect(("127.0.0.1", self.port));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(kind: Kind, listener: TcpListener, ready: &AtomicBool, stop: &AtomicBool) {
    // accept(2) on a socket that is not listening fails at once: wait for listen() first.
    while kind == Kind::Mysql && !ready.load(Ordering::SeqCst) {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if !kind.hello().is_empty() && !read_hello(kind, &mut stream) {
            continue;
        }
        let _ = stream.write_all(&kind.answer(ready.load(Ordering::SeqCst)));
        // Closed when dropped: the probe has its answer.
    }
}

/// Reads the client's first message. libpq (pg_isready) first asks for encryption (SSLRequest,
/// GSSENCRequest: 8 bytes); postgres answers `N` (not available) and reads on.
fn read_hello(kind: Kind, stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) if n > 0 => n,
            _ => return false,
        };
        let encryption = kind == Kind::Postgres
            && n == 8
            && matches!(
                buf[4..8],
                [0x04, 0xd2, 0x16, 0x2f] | [0x04, 0xd2, 0x16, 0x30]
            );
        if !encryption {
            return true;
        }
        if stream.write_all(b"N").is_err() {
            return false;
        }
    }
}

/// The floor: `podvisor-bench floor KIND PORT STAMP` connects, says hello and reads the first
/// answer every 0.1 ms until it is the ready one, then execs STAMP.
pub fn floor(args: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let (Some(kind), Some(port), Some(stamp)) = (
        args.first().and_then(|k| Kind::parse(k)),
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
        args.get(2),
    ) else {
        eprintln!("usage: podvisor-bench floor postgres|redis|mysql PORT STAMP");
        return 2;
    };
    let ready = || -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let mut buf = [0u8; 256];
        s.write_all(kind.hello()).is_ok()
            && matches!(s.read(&mut buf), Ok(n) if kind.is_ready(&buf[..n]))
    };
    // 0.1 ms between attempts: a refused connect returns at once, and a loop without any pause
    // would take a CPU from the server it waits for (2 CPUs here).
    while !ready() {
        std::thread::sleep(Duration::from_micros(100));
    }
    let e = std::process::Command::new(stamp).exec();
    eprintln!("exec {stamp}: {e}");
    127
}

type Argv = Rc<dyn Fn(&Ctx, u16) -> Vec<String>>;

/// The variants measured for one protocol.
fn variants(kind: Kind) -> Vec<(String, Argv)> {
    let url = move |port: u16| format!("{}://127.0.0.1:{port}", kind.name());
    let mut v: Vec<(String, Argv)> = vec![
        (
            "podvisor (defaults)".into(),
            Rc::new(move |c: &Ctx, p: u16| {
                vec![
                    c.podvisor.clone(),
                    "--wait".into(),
                    url(p),
                    "--".into(),
                    c.stamp.clone(),
                ]
            }),
        ),
        (
            "podvisor --interval 10ms".into(),
            Rc::new(move |c: &Ctx, p: u16| {
                vec![
                    c.podvisor.clone(),
                    "--interval".into(),
                    "10ms".into(),
                    "--wait".into(),
                    url(p),
                    "--".into(),
                    c.stamp.clone(),
                ]
            }),
        ),
    ];
    // The server's own client every second: what wait4x's 1 s default interval gives.
    let client = match kind {
        Kind::Postgres => crate::ctx::which("pg_isready").map(|c| {
            (
                "until pg_isready; sleep 1".to_owned(),
                format!(r#"until "{c}" -q -h 127.0.0.1 -p "$1"; do sleep 1; done; exec "$2""#),
            )
        }),
        Kind::Redis => crate::ctx::which("redis-cli").map(|c| {
            (
                "until redis-cli ping = PONG; sleep 1".to_owned(),
                format!(
                    r#"until [ "$("{c}" -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; do sleep 1; done; exec "$2""#
                ),
            )
        }),
        Kind::Mysql => None,
    };
    if let Some((name, script)) = client {
        v.push((
            name,
            Rc::new(move |c: &Ctx, p: u16| {
                vec![
                    c.sh.clone(),
                    "-c".into(),
                    script.clone(),
                    "sh".into(),
                    p.to_string(),
                    c.stamp.clone(),
                ]
            }),
        ));
    }
    v.push((
        "floor: connect-and-read loop every 0.1 ms".into(),
        Rc::new(move |c: &Ctx, p: u16| {
            vec![
                c.runner.clone(),
                "floor".into(),
                kind.name().into(),
                p.to_string(),
                c.stamp.clone(),
            ]
        }),
    ));
    v
}

/// One run: start the server (not ready), the tool, turn ready after a random delay, measure.
fn once(ctx: &mut Ctx, kind: Kind, argv: &Argv) -> Result<f64, String> {
    let server = Server::start(kind)?;
    let argv = argv(ctx, server.port);
    let wait = ready::delay(ctx);
    let (pid, out) = ready::start(ctx, &argv)?;
    proc::sleep_until(proc::now_ns() + wait);
    let ready_at = server.turn_ready()?;
    ready::finish(pid, out, ready_at, &argv[0])
}

/// Row 10, one section per protocol.
pub fn run(ctx: &mut Ctx) -> Result<Vec<Section>, String> {
    let mut sections = Vec::new();
    for (kind, key) in [
        (Kind::Postgres, "proto-postgres"),
        (Kind::Redis, "proto-redis"),
        (Kind::Mysql, "proto-mysql"),
    ] {
        let meter = CpuMeter::start();
        let variants = variants(kind);
        let runs = ctx.runs;
        let lines = {
            let ctx = &mut *ctx;
            alternate(runs, &variants, |argv| once(ctx, kind, argv))
        };
        let (before, after) = match kind {
            Kind::Postgres => (
                "answers every StartupMessage with ErrorResponse 57P03",
                "with AuthenticationOk",
            ),
            Kind::Redis => ("answers PING with -LOADING", "with +PONG"),
            Kind::Mysql => (
                "is bound but not listening (connects refused)",
                "listens and greets with HandshakeV10",
            ),
        };
        sections.push(Section {
            key,
            title: format!(
                "10. {} readiness: server ready to the step's start",
                kind.name()
            ),
            how: format!(
                "The runner's {name} server {before}; after a random delay of {delay} it \
                 answers {after} (the clock starts just before), and the run ends at the \
                 child's stamp. The `sleep 1` loop over the server's own client stands for \
                 wait4x's 1 s default interval (wait4x is not installable here: no Debian \
                 package); the floor is a loop that connects and reads every 0.1 ms, then \
                 execs the child. {runs} runs per tool, alternating.",
                name = kind.name(),
                delay = if ctx.quick { "30-130 ms" } else { "0.2-1.2 s" },
            ),
            unit: Unit::Ms,
            lines,
            busy: meter.busy(),
        });
    }
    Ok(sections)
}
