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
