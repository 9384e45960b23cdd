//! Running the step: stdin, stdout and stderr inherited byte-exact, arguments passed
//! byte-exact and without a shell, flags after COMMAND belong to COMMAND, --sh.

mod support;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::process::Stdio;
use std::time::Instant;

use support::wait::Server;
use support::{Run, TempDir, TestCommand};

/// Deterministic bytes covering every value (xorshift), `len` long.
fn binary(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// FNV-1a, to show a short fingerprint of big outputs in failure messages.
fn fingerprint(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{} bytes, fnv1a {h:016x}", bytes.len())
}

fn assert_same(what: &str, got: &[u8], want: &[u8], run: &Run) {
    assert!(
        got == want,
        "{what} differs: got {}, want {}\ncommand: {}\nstatus: {:?}\nstderr: {}",
        fingerprint(got),
        fingerprint(want),
        run.shown,
        run.output.status,
        run.stderr()
    );
}

#[test]
fn ten_megabytes_of_binary_stdout_pass_byte_exact() {
    let dir = TempDir::new("bigout");
    let data = binary(10 * 1024 * 1024);
    let f = dir.path().join("data");
    std::fs::write(&f, &data).unwrap();
    let server = Server::tcp(support::wait::V4);
    // Through the whole pipeline: a wait first, then the step.
    let run = TestCommand::new()
        .args(["--wait-tcp", &server.host_port(), "--", "cat"])
        .arg(&f)
        .run();
    run.assert_code(0);
    assert_same("stdout", &run.output.stdout, &data, &run);
}

#[test]
fn binary_stderr_passes_byte_exact() {
    let dir = TempDir::new("bigerr");
    let data = binary(1024 * 1024);
    let f = dir.path().join("data");
    std::fs::write(&f, &data).unwrap();
    // -q: podvisor itself writes nothing, so stderr is the child's alone.
    let run = TestCommand::new()
        .args(["-q", "--", "sh", "-c", "cat \"$1\" >&2", "sh"])
        .arg(&f)
        .run();
    run.assert_code(0);
    assert_same("stderr", &run.output.stderr, &data, &run);
    assert!(run.output.stdout.is_empty());
}

#[test]
fn stdin_passes_byte_exact() {
    let data = binary(2 * 1024 * 1024);
    let mut cmd = TestCommand::new().args(["--", "cat"]);
    let start = Instant::now();
    let mut child = cmd
        .command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start podvisor");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    let run = Run {
        shown: "podvisor -- cat < 2 MB".into(),
        output,
        elapsed: start.elapsed(),
    };
    run.assert_code(0);
    assert_same("stdout", &run.output.stdout, &data, &run);
}

#[test]
fn non_utf8_arguments_pass_byte_exact() {
    let args: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, b'a'],
        b"caf\xc3\xa9 \xe9t\xe9".to_vec(),
        b"".to_vec(),
        b"two words\nand a newline".to_vec(),
        b"$HOME;`id`*".to_vec(),
    ];
    let mut cmd = TestCommand::new().args(["--", "printf", "%s\\0"]);
    let mut want = Vec::new();
    for a in &args {
        cmd = cmd.arg(OsString::from_vec(a.clone()));
        want.extend_from_slice(a);
        want.push(0);
    }
    let run = cmd.run();
    run.assert_code(0);
    assert_same("printed arguments", &run.output.stdout, &want, &run);
}

#[test]
fn flags_after_command_belong_to_command() {
    let server = Server::tcp(support::wait::V4);
    for sep in [&["--"][..], &[][..]] {
        let run = TestCommand::new()
            .args(["--wait-tcp", &server.host_port()])
            .args(sep)
            .args(["echo", "--timeout", "5", "-q", "--wait-tcp", "nonsense"])
            .run();
        run.assert_code(0);
        assert_eq!(
            run.stdout(),
            "--timeout 5 -q --wait-tcp nonsense\n",
            "{}",
            run.explain()
        );
    }
}

#[test]
fn a_command_named_like_a_flag_after_double_dash_is_looked_up() {
    TestCommand::new()
        .args(["--", "--help"])
        .run()
        .assert_code(127)
        .assert_stderr_has("--help: command not found");
}

#[test]
fn sh_runs_a_shell_string() {
    let run = TestCommand::new()
        .args(["--sh", "echo $((6*7)); exit 3"])
        .run();
    run.assert_code(3);
    assert_eq!(run.stdout(), "42\n", "{}", run.explain());
    let run = TestCommand::new().env("PODVISOR_SH", "echo from-env").run();
    run.assert_code(0).assert_stdout_has("from-env");
}

#[test]
fn nothing_to_wait_for_nor_run_is_success() {
    let run = TestCommand::new().run();
    run.assert_code(0);
    assert!(run.stdout().is_empty(), "{}", run.explain());
}

/// Whether `pid` blocks any signal (its SigBlk in /proc is not all zero).
fn blocks_signals(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("SigBlk:")
                    .map(|m| m.trim().trim_start_matches('0').is_empty())
            })
        })
        .is_some_and(|empty| !empty)
}

#[test]
fn a_signal_while_the_configuration_is_parsed_is_forwarded_never_fatal() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::Duration;
    // A thousand unknown PODVISOR_* variables (each gets a warning with a suggestion) make
    // podvisor spend a good half second on its configuration, so that a signal can be sent
    // while it parses. podvisor must block its signals before that, first thing in main: the
    // SIGUSR1 goes out as soon as SigBlk shows it (or after 300 ms at the latest, long before
    // the parsing ends). Not blocked yet, its default action would kill podvisor itself (the
    // wait status says "signaled"); blocked, it is queued and forwarded to the step once that
    // runs (the step dies of it: podvisor exits 128+10).
    for n in 0..3 {
        let mut c = TestCommand::new().args(["--", "sleep", "5"]);
        let cmd = c.command();
        for i in 0..1000 {
            cmd.env(format!("PODVISOR_WAIT_TPC_{i}"), "x");
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let start = Instant::now();
        let child = cmd.spawn().expect("spawn podvisor");
        while !blocks_signals(child.id()) && start.elapsed() < Duration::from_millis(300) {
            std::thread::yield_now();
        }
        let sent_after = start.elapsed();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .expect("kill");
        let out = child.wait_with_output().expect("wait for podvisor");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            (out.status.signal(), out.status.code()),
            (None, Some(138)),
            "run {n}: podvisor -- sleep 5, SIGUSR1 after {sent_after:?}: {:?}\n--- stderr (last lines) ---\n{}",
            out.status,
            stderr.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        );
    }
}
