//! `--wait redis://`: against a real redis-server (no password, a password, an ACL user, a big
//! dataset loading at start-up), and a scripted server for the exact replies.

mod support;

use std::time::Duration;

use support::servers::{
    assert_step_runs, marker_wait, wait_debug, wait_once, First, Redis, RedisOptions, Scripted,
};
use support::wait::Background;
use support::{TempDir, TestCommand};

const PASSWORD: &str = "s3cret-Pa55";

fn with_password() -> Redis {
    Redis::start(RedisOptions {
        password: Some(PASSWORD.into()),
        ..RedisOptions::default()
    })
}

/// Neither stderr nor the marker shows the password.
fn assert_hidden(run: &support::Run, marker: &std::path::Path, secret: &str) {
    let marker_text = std::fs::read_to_string(marker).unwrap_or_default();
    assert!(!marker_text.is_empty(), "no marker\n{}", run.explain());
    for (what, text) in [("stderr", run.stderr()), ("marker", marker_text)] {
        assert!(
            !text.contains(secret),
            "the password is in the {what}:\n{text}"
        );
    }
}

#[test]
fn a_running_server_answers_pong() {
    let redis = Redis::start(RedisOptions::default());
    let target = format!("redis://127.0.0.1:{}/0", redis.port);
    assert_step_runs(&target).assert_stderr_has(": PONG");
}

#[test]
fn a_password_server_without_the_password_says_to_put_it_in_the_url() {
    let redis = with_password();
    let target = format!("redis://127.0.0.1:{}", redis.port);
    let run = TestCommand::new()
        .args(["--timeout", "700ms", "--wait", &target, "--", "true"])
        .run();
    run.assert_code(124)
        .assert_stderr_has(&format!("{target} not ready after "))
        .assert_stderr_has(
            "redis requires a password (NOAUTH): put it in the URL, as redis://:PASSWORD@host:6379",
        );
}

#[test]
fn the_password_in_the_url_is_used_and_shown_as_stars() {
    let redis = with_password();
    let dir = TempDir::new("redis-pw");
    let marker = dir.path().join("marker.json");
    let target = format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port);
    let shown = format!("redis://:***@127.0.0.1:{}", redis.port);
    let run = TestCommand::new()
        .args(["--timeout", "20s", "--wait", &target])
        .arg("--marker")
        .arg(&marker)
        .args(["--", "true"])
        .run();
    run.assert_code(0)
        .assert_stderr_has(&format!("{shown} is ready after "));
    assert_hidden(&run, &marker, PASSWORD);
    assert_eq!(marker_wait(&marker, 0)["target"], shown.as_str());
}

#[test]
fn a_wrong_password_is_not_ready_with_the_servers_reason() {
    let redis = with_password();
    let dir = TempDir::new("redis-wrong");
    let marker = dir.path().join("marker.json");
    let wrong = "not-the-Pa55";
    let target = format!("redis://:{wrong}@127.0.0.1:{}", redis.port);
    let run = TestCommand::new()
        .args(["--timeout", "700ms", "--wait", &target])
        .arg("--marker")
        .arg(&marker)
        .args(["--", "true"])
        .run();
    run.assert_code(124).assert_stderr_has(
        "redis refused the credentials (WRONGPASS invalid username-password pair or user is disabled.)",
    );
    assert_hidden(&run, &marker, wrong);
    let last = marker_wait(&marker, 0)["last_error"].clone();
    assert!(
        last.as_str()
            .unwrap_or_default()
            .contains("redis refused the credentials (WRONGPASS"),
        "{last}"
    );
}

#[test]
fn an_acl_user_authenticates_with_user_and_password() {
    let redis = with_password();
    let created = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port.to_string()])
        .env("REDISCLI_AUTH", PASSWORD)
        .args(["ACL", "SETUSER", "app", "on", ">app-Pa55", "+ping"])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&created.stdout).trim(), "OK");
    let target = format!("redis://app:app-Pa55@127.0.0.1:{}", redis.port);
    let run = wait_once(&target);
    run.assert_code(0).assert_stderr_has(&format!(
        "redis://app:***@127.0.0.1:{} is ready after ",
        redis.port
    ));
    assert!(!run.stderr().contains("app-Pa55"), "{}", run.explain());
}

#[test]
fn a_big_dataset_loading_is_not_ready_until_loaded() {
    // 1M keys (~24 MB of RDB); key-load-delay -20 sleeps 1 µs at one key in 20, so loading
    // lasts seconds on any machine (redis-cli's own PING says LOADING meanwhile).
    let redis = Redis::start(RedisOptions {
        big_dataset: true,
        key_load_delay: -20,
        ..RedisOptions::default()
    });
    let answer = redis.ping(None).unwrap_or_default();
    assert!(
        answer.starts_with("LOADING"),
        "redis-cli ping said {answer:?}"
    );
    let target = format!("redis://127.0.0.1:{}", redis.port);

    let run = TestCommand::new()
        .args([
            "--timeout",
            "500ms",
            "--wait",
            &target,
            "--",
            "echo",
            "must not run",
        ])
        .run();
    run.assert_code(124)
        .assert_stderr_has(&format!("{target} not ready after "))
        .assert_stderr_has("redis is loading its dataset");
    assert!(!run.stdout().contains("must not run"), "{}", run.explain());

    let mut waiting = Background::start(
        TestCommand::new()
            .args(["--timeout", "120s", "--log-level", "debug"])
            .args(["--wait", &target, "--", "echo", "step"]),
    );
    waiting.wait_for_line("redis is loading its dataset", Duration::from_secs(10));
    let run = waiting.finish(Duration::from_secs(120));
    run.assert_code(0)
        .assert_stdout_has("step")
        .assert_stderr_has(&format!("{target} is ready after "));
    assert!(
        redis
            .log()
            .contains("Done loading RDB, keys loaded: 1000000"),
        "{}",
        redis.log()
    );
}

#[test]
fn scripted_loading_then_pong_with_auth_and_ping_on_the_wire() {
    let loading = b"-LOADING Redis is loading the dataset in memory\r\n";
    let mut first = b"+OK\r\n".to_vec();
    first.extend_from_slice(loading);
    let server = Scripted::start(First::Client, vec![first], b"+OK\r\n+PONG\r\n".to_vec());
    let target = format!("redis://app:pw@127.0.0.1:{}", server.port());
    let run = wait_debug(&target);
    run.assert_code(0)
        .assert_stderr_has("redis is loading its dataset")
        .assert_stderr_has("(2 attempts)");
    let received = server.received.lock().expect("lock").clone();
    assert_eq!(
        received[0],
        b"*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n",
        "{:?}",
        String::from_utf8_lossy(&received[0])
    );
}

#[test]
fn scripted_busy_and_masterdown_are_not_ready_with_their_reason() {
    for (reply, reason) in [
        (
            "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.",
            "redis is busy running a script (BUSY Redis is busy running a script.",
        ),
        (
            "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "redis replica has lost its master (MASTERDOWN Link with MASTER is down",
        ),
    ] {
        let server = Scripted::start(First::Client, vec![], format!("{reply}\r\n").into_bytes());
        let target = format!("redis://127.0.0.1:{}", server.port());
        let run = wait_once(&target);
        run.assert_code(124)
            .assert_stderr_has(&format!("{target} not ready after "))
            .assert_stderr_has(reason);
        let received = server.received.lock().expect("lock").clone();
        assert_eq!(received, vec![b"*1\r\n$4\r\nPING\r\n".to_vec()]);
    }
}

#[test]
fn a_real_server_running_a_long_script_is_busy_until_the_script_is_killed() {
    let redis = Redis::start(RedisOptions::default());
    let port = redis.port.to_string();
    let cli = |args: &[&str]| {
        std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .expect("redis-cli")
    };
    // Scripts running longer than this make every other client get -BUSY.
    assert_eq!(cli(&["CONFIG", "SET", "busy-reply-threshold", "50"]), "OK");
    let mut script = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "EVAL",
            "while true do end",
            "0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli EVAL");
    support::poll_until(Duration::from_secs(20), "redis to say BUSY", || {
        cli(&["PING"]).starts_with("BUSY").then_some(())
    });
    let target = format!("redis://127.0.0.1:{port}");
    let run = wait_once(&target);
    run.assert_code(124)
        .assert_stderr_has("redis is busy running a script (BUSY Redis is busy running a script.");
    assert_eq!(cli(&["SCRIPT", "KILL"]), "OK");
    let _ = script.wait();
    let run = TestCommand::new()
        .args(["--timeout", "20s", "--wait", &target])
        .run();
    run.assert_code(0).assert_stderr_has(": PONG");
}

#[test]
fn a_real_replica_without_its_master_is_masterdown_until_promoted() {
    // A replica of a port nobody listens on, told not to serve stale data.
    let nobody = support::wait::free_port(support::wait::V4).to_string();
    let redis = Redis::start(RedisOptions {
        args: [
            "--replicaof",
            "127.0.0.1",
            &nobody,
            "--replica-serve-stale-data",
            "no",
        ]
        .map(String::from)
        .to_vec(),
        ..RedisOptions::default()
    });
    let target = format!("redis://127.0.0.1:{}", redis.port);
    let run = wait_once(&target);
    run.assert_code(124).assert_stderr_has(
        "redis replica has lost its master (MASTERDOWN Link with MASTER is down and \
         replica-serve-stale-data is set to 'no'.)",
    );
    let promoted = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &redis.port.to_string(),
            "REPLICAOF",
            "NO",
            "ONE",
        ])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&promoted.stdout).trim(), "OK");
    let run = TestCommand::new()
        .args(["--timeout", "20s", "--wait", &target])
        .run();
    run.assert_code(0).assert_stderr_has(": PONG");
}
