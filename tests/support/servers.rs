//! Real database servers for the protocol probes' tests (postgres, redis, mariadb), each on a
//! private port and data folder, started ready and stopped (with its folder removed) on drop;
//! and a scripted server that sends a protocol's exact bytes, for the states a real server
//! cannot be made to show on demand.
//!
//! The slow set-up (postgres initdb, mariadb-install-db, a big redis dataset) is made once into
//! `CARGO_TARGET_TMPDIR` and copied per server, so a test pays for a start, not an install.
//! Readiness is judged by the servers' own clients (`pg_isready`, `redis-cli`,
//! `mariadb-admin`), never by the code under test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::wait::{free_port, V4};
use super::TempDir;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs a set-up command to success, or panics with its output.
fn must(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e} (installed by .ci/install?)"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// uid and gid of a system user (postgres refuses to run as root).
fn ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| {
        must(Command::new("id").args([flag, user]), "id")
            .trim()
            .parse::<u32>()
            .unwrap_or_else(|e| panic!("id {flag} {user}: {e}"))
    };
    (id("-u"), id("-g"))
}

/// A folder made once per machine (per target dir): `make` fills a fresh folder, which is then
/// renamed into place, so that test binaries running at once never see half of it.
fn cached(name: &str, make: impl FnOnce(&Path)) -> PathBuf {
    // Tests of one binary run on threads of one process: the temp name below is per process,
    // so they take turns (the first makes it, the others find it).
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    if dir.exists() {
        return dir;
    }
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("create the cache folder");
    make(&tmp);
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another test binary got there first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// `cp -a` (keeps owners and modes: postgres wants its data folder 0700 and its own).
fn copy_tree(from: &Path, to: &Path) {
    must(Command::new("cp").arg("-a").arg(from).arg(to), "cp -a");
}

/// Makes the folder `path` writable for a system user (postgres writes its socket there).
fn open_to_all(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
}

/// Polls `check` until it says ready; panics with `log` if the process dies or time runs out.
fn until_ready(
    child: &mut Child,
    what: &str,
    log: &Path,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{what} exited ({status}) before it was ready:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what} not ready after {timeout:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a server on a free port, again on another port if it lost the port to someone else
/// between `free_port` and its bind.
fn on_free_port<T>(what: &str, mut start: impl FnMut(u16) -> Result<T, String>) -> T {
    let mut errors = Vec::new();
    for _ in 0..3 {
        match start(free_port(V4)) {
            Ok(server) => return server,
            Err(e) => errors.push(e),
        }
    }
    panic!("cannot start {what}:\n{}", errors.join("\n---\n"));
}

/// Stops a server process: `signal`, then SIGKILL if it is not gone within 10 s.
fn stop(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// postgres

/// How a postgres server is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgMode {
    /// Trust authentication: no password.
    Trust,
    /// TCP connections need a SCRAM password (`secret` for `postgres`).
    Password,
    /// A standby that never reaches a primary, with hot_standby off: it stays in recovery and
    /// answers every connection with 57P03 until promoted.
    Recovering,
    /// Archive recovery (recovery.signal) whose restore_command takes a second to find nothing,
    /// a few times: it answers 57P03 for seconds, then finishes recovery and accepts
    /// connections by itself.
    ArchiveRecovery,
}

/// The password of `postgres` in `PgMode::Password`.
pub const PG_PASSWORD: &str = "secret";

/// A postgres 15 server (Debian's), run as the postgres user.
pub struct Postgres {
    pub port: u16,
    dir: TempDir,
    child: Child,
}

impl Postgres {
    pub fn start(mode: PgMode) -> Self {
        let template = cached("pg15-template", |dir| {
            let (uid, gid) = ids("postgres");
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown");
            let pw = dir.join("pw");
            std::fs::write(&pw, format!("{PG_PASSWORD}\n")).expect("write pw");
            open_to_all(dir);
            must(
                Command::new(format!("{PG_BIN}/initdb"))
                    .arg("-D")
                    .arg(dir.join("data"))
                    .arg(format!("--pwfile={}", pw.display()))
                    .args(["-U", "postgres", "-N", "--no-locale", "-E", "UTF8"])
                    // 1 MB WAL segments, not 16: a third of the copy per server.
                    .arg("--wal-segsize=1")
                    .args(["--auth-local=trust", "--auth-host=trust"])
                    .uid(uid)
                    .gid(gid),
                "initdb",
            );
        });
        let dir = TempDir::new("pg");
        open_to_all(dir.path());
        let data = dir.path().join("data");
        copy_tree(&template.join("data"), &data);
        let (uid, gid) = ids("postgres");
        let as_postgres = |path: &Path, text: &str| {
            std::fs::write(path, text).expect("write a postgres file");
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
        };
        match mode {
            PgMode::Trust => {}
            PgMode::Password => as_postgres(
                &data.join("pg_hba.conf"),
                "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n\
                 host all all ::1/128 scram-sha-256\n",
            ),
            PgMode::Recovering => as_postgres(&data.join("standby.signal"), ""),
            PgMode::ArchiveRecovery => as_postgres(&data.join("recovery.signal"), ""),
        }
        let restore = match mode {
            PgMode::ArchiveRecovery => "restore_command=sleep 1; false",
            _ => "restore_command=",
        };
        let log = dir.path().join("postgres.log");
        let started = on_free_port("postgres", |port| {
            let out = std::fs::File::create(&log).expect("create the log");
            let mut child = Command::new(format!("{PG_BIN}/postgres"))
                .arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(dir.path())
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off", "-c", "hot_standby=off"])
                .args(["-c", "log_connections=on", "-c", restore])
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .uid(uid)
                .gid(gid)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
            // pg_isready: 0 accepting, 1 rejecting (57P03: what Recovering wants), 2 no answer.
            let want = match mode {
                PgMode::Recovering | PgMode::ArchiveRecovery => 1,
                PgMode::Trust | PgMode::Password => 0,
            };
            match until_ready(
                &mut child,
                "postgres",
                &log,
                Duration::from_secs(60),
                || pg_isready(port) == Some(want),
            ) {
                Ok(()) => Ok((port, child)),
                Err(e) => {
                    stop(&mut child, "KILL");
                    Err(e)
                }
            }
        });
        let (port, child) = started;
        Self { port, dir, child }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Ends recovery (`pg_ctl promote`): the standby becomes a primary and accepts connections.
    pub fn promote(&self) {
        let (uid, gid) = ids("postgres");
        must(
            Command::new(format!("{PG_BIN}/pg_ctl"))
                .arg("promote")
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .arg("--no-wait")
                .uid(uid)
                .gid(gid),
            "pg_ctl promote",
        );
    }

    /// `pg_isready`'s verdict now.
    pub fn isready(&self) -> Option<i32> {
        pg_isready(self.port)
    }
}

fn pg_isready(port: u16) -> Option<i32> {
    Command::new(format!("{PG_BIN}/pg_isready"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "2"])
        .args(["-U", "postgres", "-d", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .and_then(|s| s.code())
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown; postgres ends its children and removes its shared memory.
        stop(&mut self.child, "QUIT");
    }
}

// ---------------------------------------------------------------------------------------------
// redis

/// A redis server (Debian's redis-server), run as root in its own folder.
pub struct Redis {
    pub port: u16,
    dir: TempDir,
    child: Child,
}

/// How a redis server starts.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// `requirepass`.
    pub password: Option<String>,
    /// Load the cached big dataset at start-up; the server is returned while still loading.
    pub big_dataset: bool,
    /// redis's `key-load-delay` (a testing knob): N > 0 sleeps N µs at every key loaded, -N
    /// sleeps 1 µs at one key in N; it makes loading last long enough on any machine.
    pub key_load_delay: i32,
    /// More `--name value` arguments for redis-server.
    pub args: Vec<String>,
}

/// Keys in the big dataset: about 25 MB of RDB, which takes seconds to load.
pub const BIG_DATASET_KEYS: u32 = 1_000_000;

impl Redis {
    pub fn start(options: RedisOptions) -> Self {
        let dir = TempDir::new("redis");
        if options.big_dataset {
            let rdb = big_dataset();
            std::fs::copy(&rdb, dir.path().join("dump.rdb")).expect("copy the dataset");
        }
        let log = dir.path().join("redis.log");
        let (port, child) = on_free_port("redis-server", |port| {
            let mut cmd = Command::new("redis-server");
            cmd.arg("--port")
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--enable-debug-command", "local"])
                .arg("--dir")
                .arg(dir.path())
                .arg("--logfile")
                .arg(&log)
                .arg("--key-load-delay")
                .arg(options.key_load_delay.to_string())
                // Events (connections) are served every 64 KiB read while loading, not 2 MiB.
                .args(["--loading-process-events-interval-bytes", "65536"]);
            if let Some(pw) = &options.password {
                cmd.arg("--requirepass").arg(pw);
            }
            cmd.args(&options.args);
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
            // Ready for the test when it answers at all: PONG, NOAUTH, or LOADING.
            let password = options.password.clone();
            match until_ready(&mut child, "redis", &log, Duration::from_secs(30), || {
                redis_cli(port, password.as_deref(), &["PING"]).is_some()
            }) {
                Ok(()) => Ok((port, child)),
                Err(e) => {
                    stop(&mut child, "KILL");
                    Err(e)
                }
            }
        });
        Self { port, dir, child }
    }

    /// `redis-cli PING` (with the password) now: `PONG`, `LOADING ...`, or None (no answer).
    pub fn ping(&self, password: Option<&str>) -> Option<String> {
        redis_cli(self.port, password, &["PING"])
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

/// redis-cli's answer, trimmed; None when it could not connect.
fn redis_cli(port: u16, password: Option<&str>, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(pw) = password {
        cmd.env("REDISCLI_AUTH", pw);
    }
    let out = cmd.args(args).stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!text.is_empty() && !text.starts_with("Could not connect")).then_some(text)
}

/// The big dataset's RDB file, made once: DEBUG POPULATE into a scratch server, then SAVE.
fn big_dataset() -> PathBuf {
    let dir = cached(&format!("redis-{BIG_DATASET_KEYS}-keys"), |dir| {
        let server = Redis::start(RedisOptions::default());
        let n = BIG_DATASET_KEYS.to_string();
        for args in [&["DEBUG", "POPULATE", n.as_str()][..], &["SAVE"][..]] {
            let answer = redis_cli(server.port, None, args);
            assert_eq!(answer.as_deref(), Some("OK"), "redis-cli {args:?}");
        }
        std::fs::copy(server.dir.path().join("dump.rdb"), dir.join("dump.rdb"))
            .expect("keep the dataset");
    });
    dir.join("dump.rdb")
}

impl Drop for Redis {
    fn drop(&mut self) {
        stop(&mut self.child, "KILL");
    }
}

// ---------------------------------------------------------------------------------------------
// mariadb

/// A MariaDB server (Debian's mariadb-server), run as root with `--user=root`.
pub struct Mariadb {
    pub port: u16,
    _dir: TempDir,
    child: Child,
}

/// The server's own options, for install and start alike (small InnoDB files: fast copies).
const MARIADB_OPTIONS: [&str; 4] = [
    "--no-defaults",
    "--innodb-log-file-size=4M",
    "--innodb-buffer-pool-size=16M",
    "--skip-log-bin",
];

impl Mariadb {
    pub fn start() -> Self {
        let template = cached("mariadb-template", |dir| {
            must(
                Command::new("mariadb-install-db")
                    .args(MARIADB_OPTIONS)
                    .arg(format!("--datadir={}", dir.join("data").display()))
                    .args(["--user=root", "--skip-test-db"])
                    .arg("--auth-root-authentication-method=normal"),
                "mariadb-install-db",
            );
        });
        let dir = TempDir::new("mariadb");
        let data = dir.path().join("data");
        copy_tree(&template.join("data"), &data);
        let log = dir.path().join("mariadb.log");
        let (port, child) = on_free_port("mariadbd", |port| {
            let out = std::fs::File::create(&log).expect("create the log");
            let mut child = Command::new("mariadbd")
                .args(MARIADB_OPTIONS)
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", dir.path().join("sock").display()))
                .arg(format!("--pid-file={}", dir.path().join("pid").display()))
                .arg(format!("--port={port}"))
                .args(["--bind-address=127.0.0.1", "--user=root"])
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start mariadbd: {e}"));
            let ping = || {
                Command::new("mariadb-admin")
                    .args(["--no-defaults", "-h", "127.0.0.1", "-P", &port.to_string()])
                    .args(["--connect-timeout=2", "ping"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            match until_ready(&mut child, "mariadbd", &log, Duration::from_secs(60), ping) {
                Ok(()) => Ok((port, child)),
                Err(e) => {
                    stop(&mut child, "KILL");
                    Err(e)
                }
            }
        });
        Self {
            port,
            _dir: dir,
            child,
        }
    }

    /// The version the server reports (`SELECT VERSION()` through its own client).
    pub fn version(&self) -> String {
        must(
            Command::new("mariadb")
                .args([
                    "--no-defaults",
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &self.port.to_string(),
                ])
                .args(["-uroot", "-N", "-B", "-e", "SELECT VERSION()"]),
            "mariadb SELECT VERSION()",
        )
        .trim()
        .to_owned()
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        stop(&mut self.child, "KILL");
    }
}

// ---------------------------------------------------------------------------------------------
// scripted servers

/// A TCP server on 127.0.0.1 that answers the n-th connection with `script[n]` (then `then` to
/// every later one), as a protocol's exact bytes, and records what each client sent.
pub struct Scripted {
    pub addr: SocketAddr,
    /// What each connection's client sent, in order (complete once the client closed).
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Who speaks first on a scripted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum First {
    /// The server (mysql): it sends its bytes at once.
    Server,
    /// The client (postgres, redis): the server answers once the client has sent something.
    Client,
}

impl Scripted {
    pub fn start(first: First, script: Vec<Vec<u8>>, then: Vec<u8>) -> Self {
        let listener = super::wait::listen_any(V4);
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (stop2, received2) = (stop.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !stop2.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let answer = script.get(n).cloned().unwrap_or_else(|| then.clone());
                let slot = {
                    let mut r = received2.lock().expect("lock");
                    r.push(Vec::new());
                    r.len() - 1
                };
                n += 1;
                let received3 = received2.clone();
                std::thread::spawn(move || converse(stream, first, &answer, &received3, slot));
            }
        });
        Self {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.received.lock().expect("lock").len()
    }
}

/// One scripted connection: answer, then record everything until the client closes (or 5 s).
fn converse(
    mut stream: TcpStream,
    first: First,
    answer: &[u8],
    received: &Mutex<Vec<Vec<u8>>>,
    slot: usize,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answered = false;
    if first == First::Server {
        let _ = stream.write_all(answer);
        answered = true;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        received.lock().expect("lock")[slot].extend_from_slice(&buf[..n]);
        if !answered {
            let _ = stream.write_all(answer);
            answered = true;
        }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A postgres ErrorResponse (severity FATAL) with this SQLSTATE and message, byte for byte as
/// postgres sends it.
pub fn pg_error(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, value) in [
        ("S", "FATAL"),
        ("V", "FATAL"),
        ("C", code),
        ("M", message),
        ("F", "postmaster.c"),
        ("L", "2406"),
        ("R", "ProcessStartupPacket"),
    ] {
        body.extend_from_slice(kind.as_bytes());
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&u32::try_from(body.len() + 4).expect("small").to_be_bytes());
    msg.extend(body);
    msg
}

/// AuthenticationOk, then ReadyForQuery (a trust server's session start, shortened).
pub fn pg_auth_ok() -> Vec<u8> {
    let mut msg = vec![b'R', 0, 0, 0, 8, 0, 0, 0, 0];
    msg.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
    msg
}

/// A mysql packet (sequence 0) with this payload.
pub fn mysql_packet(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small").to_le_bytes();
    let mut p = vec![len[0], len[1], len[2], 0];
    p.extend_from_slice(payload);
    p
}

/// A mysql ERR packet as a server sends it before the handshake (no SQLSTATE marker).
pub fn mysql_err(code: u16, message: &str) -> Vec<u8> {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&code.to_le_bytes());
    payload.extend_from_slice(message.as_bytes());
    mysql_packet(&payload)
}

/// A MySQL 8 HandshakeV10 greeting with this version.
pub fn mysql_greeting(version: &str) -> Vec<u8> {
    let mut payload = vec![0x0a];
    payload.extend_from_slice(version.as_bytes());
    payload.push(0);
    payload.extend_from_slice(&[8, 0, 0, 0]); // connection id
    payload.extend_from_slice(b"abcdefgh\0"); // auth data, part 1
    payload.extend_from_slice(&[0xff, 0xff, 0xff, 0x02, 0x00, 0xff, 0xdf, 0x15]);
    payload.extend_from_slice(&[0; 10]);
    payload.extend_from_slice(b"ijklmnopqrst\0caching_sha2_password\0");
    mysql_packet(&payload)
}

/// Entry `i` of the marker's `waits`.
pub fn marker_wait(path: &Path, i: usize) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no marker at {}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the marker is not JSON ({e}):\n{text}"));
    v["waits"][i].clone()
}

/// `podvisor --timeout 20s --retries 0 --wait TARGET`: one attempt, its verdict.
pub fn wait_once(target: &str) -> super::Run {
    super::TestCommand::new()
        .args(["--timeout", "20s", "--retries", "0", "--wait", target])
        .run()
}

/// `podvisor --timeout 20s --interval 20ms --log-level debug --wait TARGET -- true`: every
/// failed attempt's reason is a debug line.
pub fn wait_debug(target: &str) -> super::Run {
    super::TestCommand::new()
        .args([
            "--timeout",
            "20s",
            "--interval",
            "20ms",
            "--log-level",
            "debug",
        ])
        .args(["--wait", target, "--", "true"])
        .run()
}

/// `podvisor --timeout 30s --wait TARGET -- echo step`, asserted to exit 0 after TARGET's ready
/// line, with the step run.
pub fn assert_step_runs(target: &str) -> super::Run {
    let run = super::TestCommand::new()
        .args(["--timeout", "30s", "--wait", target, "--", "echo", "step"])
        .run();
    run.assert_code(0)
        .assert_stdout_has("step")
        .assert_stderr_has(&format!("{target} is ready after "));
    run
}

/// One attempt at a scripted server that answers every connection with `answer`, asserted
/// ready with `detail` in the ready line.
pub fn assert_scripted_ready(scheme: &str, first: First, answer: Vec<u8>, detail: &str) {
    let server = Scripted::start(first, vec![], answer);
    let target = format!("{scheme}://127.0.0.1:{}", server.port());
    wait_once(&target)
        .assert_code(0)
        .assert_stderr_has(&format!("{target} is ready after "))
        .assert_stderr_has(detail);
}
