//! `--log-to`: the passthrough stays byte for byte, the copy is bounded, in order, survives a
//! SIGKILL, and drops (saying so) on a full volume rather than slowing or losing the passthrough.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{poll_until, TempDir, TestCommand};

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// PATH.1 then PATH, as the readers see the copy.
fn copy_of(path: &Path) -> String {
    let mut older = path.as_os_str().to_owned();
    older.push(".1");
    read(Path::new(&older)) + &read(path)
}

/// Reads the child's stdout to its end on a thread, so that a full pipe never blocks it.
fn read_stdout_in_background(child: &mut std::process::Child) -> std::thread::JoinHandle<Vec<u8>> {
    let mut out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    })
}

/// `podvisor --log-to LOG -- sh -c SCRIPT [ARG]`, started with piped stdout and stderr.
fn spawn_copying(log: &Path, script: &str, arg: Option<&Path>) -> (std::process::Child, String) {
    let mut cmd = TestCommand::new()
        .arg("--log-to")
        .arg(log)
        .args(["--", "sh", "-c", script]);
    if let Some(arg) = arg {
        cmd = cmd.arg(arg);
    }
    cmd.spawn()
}

/// `seq 1 N` through `cmd --log-to LOG --log-size SIZE`: it exits 0 and every line passed
/// through.
fn seq_through(cmd: TestCommand, log: &Path, size: &str, n: u64) -> support::Run {
    let run = cmd
        .arg("--log-to")
        .arg(log)
        .args(["--log-size", size, "--", "seq", "1", &n.to_string()])
        .run();
    run.assert_code(0);
    let out = run.stdout();
    assert_eq!(
        out.lines().count() as u64,
        n,
        "passthrough incomplete\n{}",
        run.explain()
    );
    assert!(out.ends_with(&format!("\n{n}\n")), "{}", run.explain());
    run
}

/// The N of every `line N` in the copy.
fn line_numbers(copy: &str) -> Vec<u64> {
    copy.lines()
        .filter_map(|l| l.strip_prefix("line ")?.parse().ok())
        .collect()
}

#[test]
fn passthrough_is_byte_for_byte_and_the_copy_has_both_streams_and_podvisors_lines() {
    let dir = TempDir::new("logs-copy");
    let log = dir.path().join("side.log");
    // Every byte value on stdout, then lines on both streams in a known order: 50 ms apart,
    // since output on two pipes is ordered by when podvisor reads it.
    // (After podvisor's "child started" is in the copy, so that it cannot land inside the data.)
    let script = "until grep -q 'child started' \"$1/side.log\"; do sleep 0.01; done; \
                  head -c 300000 /dev/urandom > \"$1/sent\"; cat \"$1/sent\"; sleep 0.05; \
                  echo 'to stderr 1' >&2; sleep 0.05; echo 'to stdout 2'; sleep 0.05; \
                  echo 'to stderr 3' >&2; exit 3";
    let run = TestCommand::new()
        .args(["--log-to"])
        .arg(&log)
        .args(["--log-size", "8MiB", "--", "sh", "-c", script, "sh"])
        .arg(dir.path())
        .run();
    run.assert_code(3);
    let sent = std::fs::read(dir.path().join("sent")).unwrap();
    let mut expected = sent.clone();
    expected.extend_from_slice(b"to stdout 2\n");
    assert!(
        run.output.stdout == expected,
        "stdout differs from what the child wrote ({} vs {} bytes)\n{}",
        run.output.stdout.len(),
        expected.len(),
        run.stderr()
    );
    assert!(run.stderr().contains("to stderr 1\n") && run.stderr().contains("to stderr 3\n"));
    let copy = std::fs::read(&log).unwrap();
    let text = String::from_utf8_lossy(&copy);
    let at = |needle: &str| {
        text.find(needle).unwrap_or_else(|| {
            panic!(
                "copy lacks {needle:?}:\n{}",
                &text[text.len().saturating_sub(600)..]
            )
        })
    };
    assert!(at("podvisor: child started") < at("to stderr 1"));
    assert!(at("to stderr 1") < at("to stdout 2"));
    assert!(at("to stdout 2") < at("to stderr 3"));
    assert!(at("to stderr 3") < at("podvisor: child ended (exited with 3)"));
    assert!(at("child ended") < at("podvisor: exit code 3"));
    assert!(
        copy.windows(sent.len()).any(|w| w == sent.as_slice()),
        "the copy lacks the binary output"
    );
}

#[test]
fn without_log_to_the_child_keeps_podvisors_descriptors() {
    let dir = TempDir::new("logs-nocopy");
    let out = dir.path().join("out");
    let file = std::fs::File::create(&out).unwrap();
    let mut cmd = TestCommand::new().args(["--", "readlink", "/proc/self/fd/1"]);
    cmd.command().stdout(file);
    cmd.run().assert_code(0);
    assert_eq!(read(&out).trim(), out.display().to_string());
    // With --log-to it is a pipe.
    let file = std::fs::File::create(&out).unwrap();
    let mut cmd = TestCommand::new()
        .arg("--log-to")
        .arg(dir.path().join("c.log"))
        .args(["--", "readlink", "/proc/self/fd/1"]);
    cmd.command().stdout(file);
    cmd.run().assert_code(0);
    assert!(read(&out).starts_with("pipe:"), "{}", read(&out));
}

#[test]
fn the_copy_is_bounded_and_keeps_the_newest_lines() {
    let dir = TempDir::new("logs-bound");
    let log = dir.path().join("big.log");
    seq_through(TestCommand::new(), &log, "64K", 200000);
    let total = std::fs::metadata(&log).unwrap().len()
        + std::fs::metadata(dir.path().join("big.log.1"))
            .unwrap()
            .len();
    assert!(total <= 64 * 1024 + 200, "copy is {total} bytes");
    let copy = copy_of(&log);
    assert!(
        copy.contains("\n199999\n200000\n"),
        "{}",
        &copy[copy.len() - 300..]
    );
    // Consecutive numbers up to the end: nothing dropped in the kept part.
    let numbers: Vec<u64> = copy.lines().filter_map(|l| l.parse().ok()).collect();
    let last = numbers.len() - 1;
    assert!(
        numbers.windows(2).skip(1).all(|w| w[1] == w[0] + 1),
        "gap in the copy"
    );
    assert_eq!(numbers[last], 200000);
}

#[test]
fn a_flood_skips_what_the_copy_cannot_keep_says_so_and_keeps_the_newest() {
    let dir = TempDir::new("logs-flood");
    let log = dir.path().join("flood.log");
    // 15 MB of lines into a 64 KiB copy, podvisor and the child pinned to one CPU: the copy's
    // writer (nice 19) runs only when the child and the pump leave the CPU, so it falls far
    // behind and the oldest queued output is skipped rather than written.
    let run = seq_through(
        TestCommand::wrapped(&["taskset", "-c", "0"]),
        &log,
        "64K",
        2000000,
    );
    let older = std::fs::read(dir.path().join("flood.log.1")).unwrap_or_default();
    let newer = std::fs::read(&log).unwrap();
    assert!(
        older.len() + newer.len() <= 64 * 1024,
        "the copy is too big"
    );
    let copy = copy_of(&log);
    // The line that says so starts the copy (it is where the copy started over) ...
    let first = copy.lines().next().unwrap_or_default();
    let (skipped, why) = first
        .strip_prefix("podvisor: ")
        .and_then(|l| l.split_once(" bytes of output skipped here: "))
        .unwrap_or_else(|| {
            panic!(
                "no skip at the start of the copy: {first:?}\n{}",
                run.explain()
            )
        });
    assert!(skipped.parse::<u64>().unwrap() > 0, "{first}");
    assert_eq!(why, "more arrived at once than --log-size keeps");
    // ... and whole, consecutive lines follow it, up to the child's last one and podvisor's end.
    let numbers: Vec<u64> = copy.lines().skip(1).map_while(|l| l.parse().ok()).collect();
    assert!(numbers.len() > 1000, "{} lines kept", numbers.len());
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap or a torn line"
    );
    assert_eq!(numbers.last(), Some(&2000000));
    assert!(copy.ends_with("podvisor: child ended (exited with 0)\npodvisor: exit code 0\n"));
}

#[test]
fn a_sigkilled_child_leaves_an_intact_copy() {
    let dir = TempDir::new("logs-kill");
    let log = dir.path().join("k.log");
    let (mut child, shown) = spawn_copying(
        &log,
        "echo $$ > \"$0/pid\"; i=0; while :; do i=$((i+1)); echo line $i; done",
        Some(dir.path()),
    );
    let reader = read_stdout_in_background(&mut child);
    // Let it write a good amount, then kill the writer in mid-stream.
    poll_until(Duration::from_secs(20), "the copy to grow", || {
        (std::fs::metadata(&log).map_or(0, |m| m.len()) > 100_000).then_some(())
    });
    let pid: i32 = read(&dir.path().join("pid")).trim().parse().unwrap();
    support::sigs::kill(pid, nix::libc::SIGKILL);
    let stdout = reader.join().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137), "{shown}");
    let copy = copy_of(&log);
    let numbers = line_numbers(&copy);
    assert!(numbers.len() > 1000, "{} lines", numbers.len());
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap or a torn line in the copy"
    );
    // The passthrough has exactly what the copy has, and the copy ends with the child's end.
    let passed = String::from_utf8_lossy(&stdout);
    let last = format!("line {}\n", numbers.last().unwrap());
    assert!(
        passed.ends_with(&last),
        "passthrough ends differently from the copy"
    );
    assert!(
        copy.contains("podvisor: child ended (killed by SIGKILL)"),
        "{}",
        &copy[copy.len() - 300..]
    );
}

#[test]
fn a_sigkilled_podvisor_leaves_the_copy_up_to_the_kill() {
    let dir = TempDir::new("logs-killpv");
    let log = dir.path().join("k.log");
    let (mut child, shown) = spawn_copying(
        &log,
        "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); echo line $i; done; sleep 60",
        None,
    );
    let reader = read_stdout_in_background(&mut child);
    poll_until(Duration::from_secs(30), "the last line in the copy", || {
        read(&log).contains("line 100000\n").then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let copy = copy_of(&log);
    let numbers = line_numbers(&copy);
    assert_eq!(numbers.last(), Some(&100000), "{shown}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
    drop(reader);
}

#[test]
fn a_full_volume_drops_from_the_copy_not_from_the_passthrough() {
    let dir = TempDir::new("logs-full");
    let mnt = dir.path().join("tiny");
    std::fs::create_dir(&mnt).unwrap();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mount.success(), "mount a tmpfs on {}", mnt.display());
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);
    let log = mnt.join("full.log");
    // 2 MB of numbered lines: 30 times what the volume holds, though --log-size allows it all.
    let run = seq_through(TestCommand::new(), &log, "64MiB", 300000);
    let copy = copy_of(&log);
    assert!(
        copy.contains(
            "podvisor: warning: this copy drops output from here on: No space left on device"
        ),
        "the copy does not say it dropped:\n{}",
        &copy[copy.len().saturating_sub(500)..]
    );
    assert!(run.stderr().contains("drops output"), "{}", run.explain());
}

#[test]
fn a_non_blocking_stdout_gets_everything() {
    let dir = TempDir::new("logs-nonblock");
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    // O_NONBLOCK on the file description podvisor's stdout shares (as a Node.js parent does).
    nix::fcntl::fcntl(
        &write_end,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut cmd = TestCommand::new()
        .arg("--log-to")
        .arg(dir.path().join("nb.log"))
        .args(["--", "seq", "1", "300000"]);
    cmd.command().stdout(Stdio::from(write_end));
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(read_end);
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // A slow reader: the pipe is full most of the time.
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => return all,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    if all.len() % (256 * 1024) < 4096 {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
    });
    let run = cmd.run();
    let all = reader.join().unwrap();
    run.assert_code(0);
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.lines().count(), 300000, "{}", run.explain());
    assert!(text.ends_with("\n300000\n"));
}

#[test]
fn a_closed_stdout_ends_the_child_by_sigpipe_as_without_podvisor() {
    let dir = TempDir::new("logs-pipe");
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let mut cmd = TestCommand::new()
        .arg("--log-to")
        .arg(dir.path().join("p.log"))
        .args(["--", "yes"]);
    cmd.command().stdout(Stdio::from(write_end));
    let run = cmd.run();
    // yes dies of SIGPIPE: 128+13.
    run.assert_code(141);
    assert!(run.elapsed < Duration::from_secs(20), "{}", run.explain());
}

#[test]
fn a_process_outside_the_step_holding_the_pipe_delays_the_exit_by_a_bounded_time() {
    let dir = TempDir::new("logs-held");
    let log = dir.path().join("h.log");
    let (mut child, shown) = spawn_copying(
        &log,
        "echo $$ > \"$0/pid\"; echo started; exec sleep 60",
        Some(dir.path()),
    );
    poll_until(Duration::from_secs(10), "the pid", || {
        read(&dir.path().join("pid")).trim().parse::<i32>().ok()
    });
    let pid: i32 = read(&dir.path().join("pid")).trim().parse().unwrap();
    // This test process opens the child's stdout pipe: a holder podvisor cannot end.
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/fd/1"))
        .unwrap();
    let start = Instant::now();
    support::sigs::kill(pid, nix::libc::SIGTERM);
    let status = child.wait().unwrap();
    let took = start.elapsed();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(143), "{shown}\n{err}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(15),
        "exit took {took:?}\n{err}"
    );
    assert!(err.contains("still open"), "{err}");
    drop(held);
}

#[test]
fn small_writes_take_no_more_room_in_the_stdout_pipe_than_without_podvisor() {
    let dir = TempDir::new("logs-small");
    let log = dir.path().join("s.log");
    // 2000 short lines (about 20 KB) fit in a 64 KiB pipe nobody reads yet, as they would
    // without podvisor; one pipe buffer per line would fill it after 16.
    let (mut child, shown) = spawn_copying(
        &log,
        "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo line $i; done",
        None,
    );
    poll_until(
        Duration::from_secs(20),
        "podvisor to exit with nobody reading",
        || child.try_wait().unwrap(),
    );
    let out = read_stdout_in_background(&mut child).join().unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.lines().count(), 2000, "{shown}");
    assert_eq!(line_numbers(&copy_of(&log)).len(), 2000);
}

#[test]
fn a_terminal_stays_the_childs_and_is_not_copied() {
    let dir = TempDir::new("logs-tty");
    let log = dir.path().join("t.log");
    let mut cmd = support::sigs::podvisor(&["--log-to", &log.to_string_lossy()]);
    cmd.args([
        "--",
        "sh",
        "-c",
        "if [ -t 1 ] && [ -t 2 ]; then echo both-on-the-terminal; fi",
    ]);
    let (mut run, _master) = support::sigs::Supervised::start_on_pty(cmd);
    run.expect(
        "podvisor: warning: stdout is a terminal: COMMAND keeps it, and its stdout is not copied",
    );
    run.expect("both-on-the-terminal");
    let copy = poll_until(Duration::from_secs(10), "the copy's end", || {
        let c = read(&log);
        c.contains("podvisor: exit code 0").then_some(c)
    });
    assert!(!copy.contains("both-on-the-terminal"), "{copy}");
    assert!(
        copy.contains("podvisor: child ended (exited with 0)"),
        "{copy}"
    );
}

#[test]
fn quiet_keeps_podvisors_lines_off_stderr_but_not_out_of_the_copy() {
    let dir = TempDir::new("logs-quiet");
    let log = dir.path().join("q.log");
    let run = TestCommand::new()
        .args(["-q", "--log-to"])
        .arg(&log)
        .args(["--", "sh", "-c", "echo hi; exit 2"])
        .run();
    run.assert_code(2);
    assert_eq!(run.stderr(), "", "{}", run.explain());
    let copy = read(&log);
    assert!(
        copy.contains("podvisor: child started")
            && copy.contains("hi\n")
            && copy.contains("podvisor: child ended (exited with 2)"),
        "{copy}"
    );
}
