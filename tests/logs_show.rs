//! Real failing sidecars under `--log-to`, and the step's `--show-logs`, `--wait-log` and
//! termination message: postgres with a bad setting, nginx with errors in its log.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::wait::{free_port, V4};
use support::{poll_until, TempDir, TestCommand};

const POSTGRES: &str = "/usr/lib/postgresql/15/bin/postgres";
const INITDB: &str = "/usr/lib/postgresql/15/bin/initdb";

/// A fresh postgres data folder in `dir`, owned by the postgres user, made by initdb.
fn initdb(dir: &Path) -> PathBuf {
    assert!(
        Path::new(POSTGRES).exists(),
        "postgres is missing: .ci/install installs Debian's postgresql"
    );
    let _ = Command::new("chmod").arg("a+rx").arg(dir).status();
    let pg = dir.join("pg");
    std::fs::create_dir(&pg).unwrap();
    let chown = Command::new("chown")
        .arg("postgres")
        .arg(&pg)
        .status()
        .unwrap();
    assert!(chown.success());
    let data = pg.join("data");
    let out = Command::new("runuser")
        .args([
            "-u", "postgres", "--", INITDB, "-A", "trust", "-U", "postgres", "-D",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb failed\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

/// `runuser -u postgres -- postgres -D DATA` on 127.0.0.1:PORT, its socket in the data folder.
fn postgres(data: &Path, port: u16, extra: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = ["runuser", "-u", "postgres", "--", POSTGRES, "-D"]
        .map(String::from)
        .to_vec();
    argv.push(data.display().to_string());
    for setting in [
        format!("port={port}"),
        "listen_addresses=127.0.0.1".into(),
        format!("unix_socket_directories={}", data.display()),
    ] {
        argv.extend(["-c".into(), setting]);
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv
}

/// The text after the header of `name`'s tail in `stderr`.
fn tail_of<'a>(stderr: &'a str, name: &str) -> &'a str {
    let header = format!("podvisor: ==> {name}: last ");
    let at = stderr
        .find(&header)
        .unwrap_or_else(|| panic!("no header for {name} in stderr:\n{stderr}"));
    &stderr[at..]
}

#[test]
fn a_postgres_that_fails_at_once_shows_its_fatal_line_in_the_steps_log() {
    let dir = TempDir::new("logs-pg-bad");
    let data = initdb(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let port = free_port(V4);
    // The sidecar: postgres refuses a bad setting and exits at once.
    let sidecar = TestCommand::new()
        .arg("--log-to")
        .arg(logs.join("postgres.log"))
        .arg("--")
        .args(postgres(&data, port, &["-c", "shared_buffers=nonsense"]))
        .run();
    sidecar.assert_code(1);
    // The passthrough: the container's own log (kubectl logs) still has the line.
    sidecar.assert_stderr_has("FATAL:  invalid value for parameter \"shared_buffers\"");
    // The step: its wait fails, and its log shows why.
    let term = dir.path().join("termination-log");
    let step = TestCommand::new()
        .arg("--show-logs")
        .arg(&logs)
        .args([
            "--wait-tcp",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "2s",
        ])
        .arg("--termination-log")
        .arg(&term)
        .args(["--", "true"])
        .run();
    step.assert_code(124);
    let stderr = step.stderr();
    let tail = tail_of(&stderr, "postgres");
    assert!(
        tail.contains("FATAL:  invalid value for parameter \"shared_buffers\": \"nonsense\""),
        "{}",
        step.explain()
    );
    assert!(
        tail.contains("podvisor: child ended (exited with 1)"),
        "{}",
        step.explain()
    );
    let message = std::fs::read_to_string(&term).unwrap();
    assert!(
        message.starts_with(&format!("wait failed after 2s: tcp://127.0.0.1:{port} "))
            && message.contains("Connection refused")
            && message.ends_with(" attempts)"),
        "{message:?}"
    );
}

#[test]
fn the_step_waits_for_postgres_to_say_it_is_ready_then_the_sidecar_stops() {
    let dir = TempDir::new("logs-pg-ready");
    let data = initdb(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("postgres.log");
    let done = dir.path().join("done");
    let port = free_port(V4);
    let (mut sidecar, shown) = TestCommand::new()
        .arg("--log-to")
        .arg(&log)
        .arg("--until-file")
        .arg(&done)
        .arg("--")
        .args(postgres(&data, port, &[]))
        .spawn();
    let wait = format!("{}#regex=ready to accept connections", log.display());
    let step = TestCommand::new()
        .args(["--wait-log", &wait, "--timeout", "60s"])
        .args(["--wait-tcp", &format!("127.0.0.1:{port}"), "--", "touch"])
        .arg(&done)
        .run();
    step.assert_code(0);
    step.assert_stderr_has(&format!("log://{wait} is ready after"));
    let status = poll_until(Duration::from_secs(60), "the sidecar to stop", || {
        sidecar.try_wait().unwrap()
    });
    let copy = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "{shown}\n{copy}");
    let at = |needle: &str| {
        copy.find(needle)
            .unwrap_or_else(|| panic!("the copy lacks {needle:?}:\n{copy}"))
    };
    assert!(
        at("ready to accept connections")
            < at("until-condition holds, stopping the child with SIGTERM")
    );
    assert!(at("stopping the child with SIGTERM") < at("database system is shut down"));
    assert!(at("database system is shut down") < at("podvisor: child ended"));
    assert!(copy.trim_end().ends_with("podvisor: exit code 0"), "{copy}");
}

#[test]
fn a_wait_log_that_fails_names_the_last_line() {
    let dir = TempDir::new("logs-waitlog");
    let log = dir.path().join("app.log");
    std::fs::write(&log, "booting\nready 1\nstill booting\n").unwrap();
    let run = TestCommand::new()
        .arg("--wait")
        .arg(format!("log://{}#regex=^ready&count=2", log.display()))
        .args(["--timeout", "500ms", "--", "true"])
        .run();
    run.assert_code(124);
    run.assert_stderr_has("1 of 2 lines match /^ready/");
    run.assert_stderr_has("last line: \"still booting\"");
}

#[test]
fn a_wait_log_is_woken_by_the_write_not_by_polling() {
    let dir = TempDir::new("logs-waitlog-event");
    let log = dir.path().join("app.log");
    std::fs::write(&log, "booting\n").unwrap();
    // A 30 s interval: only an inotify event can make it ready in time.
    let (mut child, shown) = TestCommand::new()
        .arg("--wait-log")
        .arg(format!("{}#regex=ready", log.display()))
        .args([
            "--interval",
            "30s",
            "--timeout",
            "60s",
            "--log-level",
            "debug",
            "--",
            "true",
        ])
        .spawn();
    // The first attempt has failed: from now on podvisor sleeps for 30 s unless woken.
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("attempt 1 failed")) {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => seen.push(line),
            Err(e) => panic!(
                "no failed first attempt ({e}): {shown}\n{}",
                seen.join("\n")
            ),
        }
    }
    let start = std::time::Instant::now();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"now ready\n").unwrap();
    let status = poll_until(Duration::from_secs(20), "podvisor to exit", || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0), "{shown}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// nginx's prefix and command line, serving 127.0.0.1:PORT with its error log on stderr and
/// `broken` inserted in its server block.
fn nginx(dir: &Path, port: u16, broken: &str) -> Vec<String> {
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("html")).unwrap();
    let p = prefix.display();
    let conf = format!(
        "worker_processes 1;\npid {p}/nginx.pid;\nerror_log stderr notice;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n\
           client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
           fastcgi_temp_path {p}/fastcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
           server {{ listen 127.0.0.1:{port}; {broken} location / {{ root {p}/html; }} }}\n}}\n"
    );
    std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
    let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status();
    [
        "nginx",
        "-p",
        &p.to_string(),
        "-c",
        &format!("{p}/nginx.conf"),
        "-g",
        "daemon off;",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn nginx_errors_reach_the_steps_log_under_its_header() {
    let dir = TempDir::new("logs-nginx");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("nginx.log");
    let port = free_port(V4);
    // A running nginx whose page is missing: each request logs an error.
    let (mut sidecar, shown) = TestCommand::new()
        .arg("--log-to")
        .arg(&log)
        .args(["--sidecar", "--stop-signal", "QUIT", "--"])
        .args(nginx(dir.path(), port, ""))
        .spawn();
    let step = TestCommand::new()
        .args(["--show-logs"])
        .arg(&log)
        .args([
            "--show-lines",
            "5",
            "--wait-http",
            &format!("http://127.0.0.1:{port}/missing"),
        ])
        .args(["--timeout", "2s", "--", "true"])
        .run();
    step.assert_code(124);
    let stderr = step.stderr();
    let tail = tail_of(&stderr, "nginx");
    assert!(
        tail.contains("[error]")
            && tail.contains("/missing\" failed (2: No such file or directory)"),
        "{}",
        step.explain()
    );
    assert!(tail.lines().count() <= 6, "{tail}");
    // The sidecar stops gracefully on SIGTERM (QUIT to nginx), and its copy says so.
    support::sigs::kill(sidecar.id() as i32, nix::libc::SIGTERM);
    let status = poll_until(Duration::from_secs(30), "nginx to stop", || {
        sidecar.try_wait().unwrap()
    });
    let copy = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "{shown}\n{copy}");
    assert!(copy.contains("stopping the child with SIGQUIT"), "{copy}");
    assert!(copy.contains("gracefully shutting down"), "{copy}");
}

#[test]
fn a_broken_nginx_config_under_buildkite_is_a_folded_group_and_the_reason_is_open() {
    let dir = TempDir::new("logs-nginx-bk");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let port = free_port(V4);
    TestCommand::new()
        .arg("--log-to")
        .arg(logs.join("nginx.log"))
        .arg("--")
        .args(nginx(dir.path(), port, "bogus_directive on;"))
        .run()
        .assert_code(1)
        .assert_stderr_has("[emerg]");
    let step = TestCommand::new()
        .env("BUILDKITE", "true")
        .arg("--show-logs")
        .arg(&logs)
        .arg("--show-logs")
        .arg(dir.path().join("no-such.log"))
        .args(["--wait-tcp", &format!("127.0.0.1:{port}"), "--retries", "0"])
        .args(["--", "true"])
        .run();
    step.assert_code(124);
    let stderr = step.stderr();
    let group = stderr
        .find("--- nginx: last ")
        .unwrap_or_else(|| panic!("no collapsed group\n{}", step.explain()));
    let emerg = stderr
        .find("unknown directive \"bogus_directive\"")
        .expect("the emerg line");
    let missing = stderr
        .find("podvisor: no log of no-such: ")
        .unwrap_or_else(|| panic!("no line for the missing log\n{}", step.explain()));
    let open = stderr
        .find("+++ podvisor: wait failed after ")
        .unwrap_or_else(|| panic!("no expanded group\n{}", step.explain()));
    assert!(
        group < emerg && emerg < missing && missing < open,
        "{}",
        step.explain()
    );
}

#[test]
fn tails_are_shown_on_failure_only_unless_always() {
    let dir = TempDir::new("logs-when");
    let log = dir.path().join("side.log");
    std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
    let show = |when: Option<&str>, cmd: &[&str]| {
        let mut c = TestCommand::new().arg("--show-logs").arg(&log);
        if let Some(when) = when {
            c = c.env("PODVISOR_SHOW_LOGS_WHEN", when);
        }
        c.env("PODVISOR_SHOW_LINES", "2").arg("--").args(cmd).run()
    };
    let ok = show(None, &["true"]);
    ok.assert_code(0);
    assert!(!ok.stderr().contains("==> side"), "{}", ok.explain());
    let failed = show(None, &["sh", "-c", "exit 3"]);
    failed.assert_code(3);
    assert!(
        failed
            .stderr()
            .contains("podvisor: ==> side: last 2 lines of")
            && failed.stderr().contains("two\nthree\n")
            && !failed.stderr().contains("one"),
        "{}",
        failed.explain()
    );
    let always = show(Some("always"), &["true"]);
    always.assert_code(0);
    always.assert_stderr_has("==> side: last 2 lines");
    // Killed by a signal, and a command that cannot start, are failures too.
    show(None, &["sh", "-c", "kill -TERM $$"])
        .assert_code(143)
        .assert_stderr_has("==> side");
    show(None, &["/no/such/command"])
        .assert_code(127)
        .assert_stderr_has("==> side");
}

/// Reads a child's stderr on a thread, line by line.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stderr = std::io::BufReader::new(child.stderr.take().expect("piped stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for a line of `lines` containing `needle`; panics with everything seen.
fn line_with(lines: &std::sync::mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l| l.contains(needle)) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line with {needle:?} ({e}):\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn a_log_wait_counts_lines_across_a_truncation_from_outside() {
    let dir = TempDir::new("logs-truncate-wait");
    let log = dir.path().join("app.log");
    // One match, then a long line: what is written after each truncation reaches past the old
    // length at once, so a follower that only looks at the length never sees the file short.
    let long = "x".repeat(300);
    std::fs::write(&log, format!("booting\nready 1\n{long}\n")).unwrap();
    let (mut step, shown) = TestCommand::new()
        .arg("--wait-log")
        .arg(format!("{}#regex=^ready&count=3", log.display()))
        .args(["--timeout", "60s", "--log-level", "debug", "--", "true"])
        .spawn();
    let lines = stderr_lines(&mut step);
    let mut seen = Vec::new();
    line_with(&lines, &mut seen, "1 of 3 lines match");
    // `: > PATH` (logrotate's copytruncate does the same), and new lines right after it.
    let truncate_and_write = |ready: &str| {
        let script = ": > \"$0\"; printf '%s\\n%s\\nstarted again\\n' \"$1\" \"$2\" >> \"$0\"";
        let status = Command::new("sh")
            .args(["-c", script])
            .arg(&log)
            .args([ready, &format!("{long}{long}")])
            .status()
            .unwrap();
        assert!(status.success());
    };
    truncate_and_write("ready 2");
    // Counted once, from the new start: not ready yet, and the last line is the new one.
    line_with(&lines, &mut seen, "2 of 3 lines match");
    assert!(
        seen.last()
            .unwrap()
            .contains("last line: \"started again\""),
        "{}",
        seen.join("\n")
    );
    assert!(step.try_wait().unwrap().is_none(), "{shown}");
    truncate_and_write("ready 3");
    let status = poll_until(Duration::from_secs(20), "the step", || {
        step.try_wait().unwrap()
    });
    line_with(&lines, &mut seen, "is ready after");
    assert_eq!(status.code(), Some(0), "{shown}\n{}", seen.join("\n"));
}

#[test]
fn a_log_wait_counts_lines_across_the_copys_rotation() {
    let dir = TempDir::new("logs-rotate-wait");
    let log = dir.path().join("svc.log");
    // The step waits first; the sidecar then writes three READY lines, each after enough
    // filler that the 16 KiB copy rotates on the way.
    let (mut step, step_shown) = TestCommand::new()
        .arg("--wait")
        .arg(format!(
            "log://{}#regex=^READY [0-9]$&count=3",
            log.display()
        ))
        .args(["--timeout", "60s", "--", "true"])
        .spawn();
    let script = "r=0; while [ $r -lt 3 ]; do r=$((r+1)); i=0; \
                  while [ $i -lt 200 ]; do i=$((i+1)); echo \"filler $r $i ..............\"; done; \
                  echo \"READY $r\"; sleep 0.2; done";
    let sidecar = TestCommand::new()
        .arg("--log-to")
        .arg(&log)
        .args(["--log-size", "16K", "--", "sh", "-c", script])
        .run();
    sidecar.assert_code(0);
    assert!(
        dir.path().join("svc.log.1").exists(),
        "the copy never rotated"
    );
    let status = poll_until(Duration::from_secs(30), "the step", || {
        step.try_wait().unwrap()
    });
    let mut err = String::new();
    std::io::Read::read_to_string(&mut step.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{step_shown}\n{err}");
    // The first READY is long gone from the copy: it was counted as it passed.
    let copy = std::fs::read_to_string(dir.path().join("svc.log.1")).unwrap()
        + &std::fs::read_to_string(&log).unwrap();
    assert!(!copy.contains("READY 1\n"), "READY 1 still in the copy");
}
