//! The whole binary driven with random input (issue 15, item 1): random argv built from every
//! option, random `PODVISOR_*` environments, values with bytes that are not UTF-8, control
//! characters, 1 MB values and 10 000 targets. Every run ends with exit 125 and one
//! `podvisor: error:` line, or does what the README says (here: the command runs, or the wait
//! fails with 124); never a panic (101, 134), a signal, a core or a hang.
//!
//! `cargo test` runs 150 random runs; PODVISOR_SOAK=1 runs 3 000 (PODVISOR_FUZZ_RUNS to choose).

mod support;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use podvisor::config::cli::{self, Cli};
use support::rng::{rounds, Rng};
use support::{podvisor_bin, TempDir};

/// How long one run may take: every wait is bounded by the --timeout we append.
const HANG: Duration = Duration::from_secs(20);

/// Values that are valid somewhere, broken everywhere else, and hostile to log lines.
fn value(rng: &mut Rng, dir: &str) -> Vec<u8> {
    let pool: [&[u8]; 28] = [
        b"5s",
        b"0",
        b"100ms",
        b"1h30m",
        b"-1",
        b"soon\nnext",
        b"TERM",
        b"RTMIN+2147483647",
        b"TERM:QUIT",
        b"PWR:0",
        b"143:0",
        b"3:0",
        b"text",
        b"json",
        b"debug",
        b"yes",
        b"maybe",
        b"127.0.0.1:1",
        b"localhost:99999",
        b"[::1]:80",
        b"http://127.0.0.1:1/#status=200",
        b"tcp://127.0.0.1:1#hold=1s",
        b"https://u:p@x:443/#stauts=200",
        b"file:///nonexistent/x",
        b"\xff\xfe\x1b[2K\r",
        b"",
        b" , ,",
        b"%%%#&&==",
    ];
    match rng.below(8) {
        0 => format!("{dir}/f{}", (rng.below(3) as usize)).into_bytes(),
        // Any byte but NUL, which no argument or variable can hold.
        1 => (0..(rng.below(40) as usize))
            .map(|_| (rng.next() as u8).max(1))
            .collect(),
        _ => rng.pick(&pool).to_vec(),
    }
}

/// Options podvisor takes, and whether each takes a value (from clap itself).
fn options() -> Vec<(String, bool)> {
    Cli::command()
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            Some((long.to_owned(), a.get_action().takes_values()))
        })
        // These would copy the binary around or print help: not fuzzed here; a random
        // --timeout (0 = none, 1h30m) would make a wait on a missing target a legitimate hang.
        .filter(|(l, _)| !["install-to", "help", "version", "timeout"].contains(&l.as_str()))
        .collect()
}

/// One random invocation: argv and environment.
fn random_run(rng: &mut Rng, dir: &str) -> (Vec<OsString>, Vec<(OsString, OsString)>) {
    let opts = options();
    let mut argv: Vec<OsString> = Vec::new();
    for _ in 0..(rng.below(6) as usize) {
        let (long, takes) = rng.pick(&opts).clone();
        argv.push(format!("--{long}").into());
        if takes {
            argv.push(OsString::from_vec(value(rng, dir)));
        }
    }
    if (rng.below(10) as usize) == 0 {
        // Something clap must refuse.
        argv.push(OsString::from_vec(value(rng, dir)));
    }
    let mut env = Vec::new();
    for _ in 0..(rng.below(4) as usize) {
        let (long, _) = rng.pick(&opts).clone();
        let name = if (rng.below(8) as usize) == 0 {
            format!("{}X", cli::env_name(&long))
        } else {
            cli::env_name(&long)
        };
        env.push((name.into(), OsString::from_vec(value(rng, dir))));
    }
    (argv, env)
}

/// The most output of one run the test keeps (the rest is counted and dropped): a run that
/// floods its output fails with the count, instead of filling the test's memory.
const KEPT: usize = 16 << 20;

/// What a reader has taken from a pipe: its first KEPT bytes, how many in all, and whether
/// the pipe has ended (every writer gone).
#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    total: usize,
    ended: bool,
}

/// Reads a pipe to its end in a thread.
fn read_all(mut pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Captured>> {
    let captured = Arc::new(Mutex::new(Captured::default()));
    let shared = Arc::clone(&captured);
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            let mut c = shared.lock().unwrap_or_else(|e| e.into_inner());
            c.total += n;
            let room = KEPT.saturating_sub(c.kept.len()).min(n);
            c.kept.extend_from_slice(&buf[..room]);
        }
        shared.lock().unwrap_or_else(|e| e.into_inner()).ended = true;
    });
    captured
}

/// What the reader has, once its pipe has ended or `until` has passed (a process that
/// outlived podvisor still holds it: the caller says so instead of waiting for ever).
fn taken(captured: &Option<Arc<Mutex<Captured>>>, until: Instant) -> Captured {
    let Some(c) = captured else {
        return Captured {
            ended: true,
            ..Captured::default()
        };
    };
    loop {
        let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
        if c.ended || Instant::now() > until {
            return std::mem::take(&mut c);
        }
        drop(c);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A folder holding `echo` alone, the PATH of every run: a random value that becomes the
/// COMMAND (a stray argument, `--sh yes`) must not find a program that runs for ever, as `yes`
/// did (24 GB of output before the OOM killer took the test).
fn path_with_echo_alone() -> &'static str {
    static DIR: OnceLock<(TempDir, String)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = TempDir::new("fuzzpath");
        std::os::unix::fs::symlink("/bin/echo", dir.path().join("echo")).expect("link echo");
        let path = dir.path().display().to_string();
        (dir, path)
    });
    path
}

/// podvisor's own lines of `stderr`: all but the `--show-logs` tails' content. Under a header
/// `podvisor: ==> NAME: last N lines of PATH <==` come N lines of the log as they are (README,
/// "The tails"): a random `--show-logs` names a file another run has written (a
/// `--termination-log`, a `--log-to` copy), whose lines are nobody's log lines here.
fn own_lines(stderr: &str) -> Vec<&str> {
    let mut own = Vec::new();
    let mut skip = 0usize;
    for line in stderr.lines() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        let header = line
            .strip_prefix("podvisor: ==> ")
            .and_then(|h| h.strip_suffix(" <=="));
        if let Some((_, counted)) = header.and_then(|h| h.split_once(": last ")) {
            let digits: String = counted.chars().take_while(char::is_ascii_digit).collect();
            skip = digits.parse().unwrap_or(0);
        }
        own.push(line);
    }
    own
}

/// Runs podvisor with `argv` then bounded waits and a harmless command; checks the contract.
fn check(argv: &[OsString], env: &[(OsString, OsString)]) -> i32 {
    check_within(argv, env, "300ms")
}

/// `check` with another wait deadline.
fn check_within(argv: &[OsString], env: &[(OsString, OsString)], timeout: &str) -> i32 {
    // Relative paths (a marker named `5s`) land in a folder of our own, not the repository.
    let cwd = TempDir::new("fuzzcwd");
    let mut cmd = Command::new(podvisor_bin());
    cmd.current_dir(cwd.path())
        .env_clear()
        .env("PATH", path_with_echo_alone())
        .envs(env.iter().cloned())
        // First, so that a stray argument (which makes the rest its COMMAND's arguments) cannot
        // take them away: no run waits long (random argv has no --timeout, and this flag beats
        // PODVISOR_TIMEOUT); with a COMMAND an until-condition cannot hang.
        .args(["--timeout", timeout])
        .args(argv)
        .args(["--", "echo", "fuzz-step-ran"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("env {env:?} podvisor {argv:?}");
    let start = Instant::now();
    let mut child = cmd.spawn().expect("start podvisor");
    // Output read aside; the child killed (while still ours, never a recycled pid) on a hang.
    let readers = [
        child.stdout.take().map(read_all),
        child.stderr.take().map(read_all),
    ];
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let took = start.elapsed();
    let until = Instant::now() + Duration::from_secs(10);
    let [out_c, err_c] = readers.map(|r| taken(&r, until));
    let (out_bytes, err_bytes) = (out_c.total, err_c.total);
    let held_open = !(out_c.ended && err_c.ended);
    let out = std::process::Output {
        status,
        stdout: out_c.kept,
        stderr: err_c.kept,
    };
    let head = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(4000)]).into_owned();
    assert!(
        out_bytes.max(err_bytes) < KEPT,
        "a flood: {out_bytes} bytes of stdout, {err_bytes} of stderr\n{shown}\nstatus {:?} \
         after {took:?}\nstdout begins: {}\nstderr begins: {}",
        out.status,
        head(&out.stdout),
        head(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let explain = format!(
        "{shown}\nstatus {:?} after {took:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert!(took < HANG, "a hang\n{explain}");
    assert!(
        !held_open,
        "podvisor ended, and 10 s later something still held its output open\n{explain}"
    );
    assert_eq!(out.status.signal(), None, "killed by a signal\n{explain}");
    assert!(!out.status.core_dumped(), "a core\n{explain}");
    let code = out.status.code().unwrap_or(-1);
    // Each line podvisor's: `podvisor: ...`, or with --log-format json one JSON object. The
    // level of an error line, either way.
    let own = own_lines(&stderr);
    let errors = own
        .iter()
        .filter(|line| {
            if let Some(text) = line.strip_prefix("podvisor: ") {
                return text.starts_with("error: ");
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not podvisor's: {line:?} ({e})\n{explain}"));
            assert!(v["message"].is_string(), "{line:?}\n{explain}");
            v["level"] == "ERROR"
        })
        .count();
    match code {
        125 => {
            assert_eq!(
                (own.len(), errors),
                (1, 1),
                "125 with not one error line\n{explain}"
            );
        }
        // The command ran (--map-exit may turn its 0 into something else).
        _ if stdout.contains("fuzz-step-ran") => {}
        // The wait failed; or a stray argument became the COMMAND, not found or not runnable.
        124 | 126 | 127 => assert!(errors >= 1, "{explain}"),
        // A sidecar whose until-condition held before the command could print (a random
        // `--until-marker` or `--until-file` naming a file another run wrote): stopped on
        // request, which is success (README, "Sidecars").
        0 if stderr.contains("until-condition holds") => {}
        // --no-strict with no COMMAND is not generated (COMMAND is always there).
        _ => panic!("exit {code} without the command running\n{explain}"),
    }
    code
}

#[test]
fn random_argv_and_environments_end_in_125_or_a_documented_run() {
    let mut rng = Rng::from_env("PODVISOR_FUZZ_SEED", "fuzz");
    let tmp = TempDir::new("fuzzbin");
    let dir = tmp.path().display().to_string();
    let mut codes = std::collections::BTreeMap::new();
    let started = Instant::now();
    let n = rounds("PODVISOR_FUZZ_RUNS", 150, 3000);
    for _ in 0..n {
        let (argv, env) = random_run(&mut rng, &dir);
        *codes.entry(check(&argv, &env)).or_insert(0) += 1;
    }
    eprintln!(
        "{n} random runs in {:?}, exit codes {codes:?}",
        started.elapsed()
    );
}

/// The longest single argument or variable exec(2) takes: MAX_ARG_STRLEN, 32 pages. A 1 MB
/// value cannot reach any program (E2BIG), so the largest that can is used, and 1 MB in all
/// is reached with several.
const LONGEST_ARG: usize = 32 * 4096 - 1;

#[test]
fn huge_values_and_ten_thousand_targets() {
    let tmp = TempDir::new("fuzzhuge");
    let dir = tmp.path().display().to_string();
    let huge = vec![b'5'; LONGEST_ARG - "PODVISOR_INTERVAL=".len()];
    // The longest duration (5 555... seconds: too long, cut to 100 years), as a flag and as a
    // variable, then the longest that is no duration at all.
    let code = check(
        &["--interval".into(), OsString::from_vec(huge.clone())],
        &[],
    );
    assert_eq!(code, 0);
    let code = check(
        &[],
        &[("PODVISOR_INTERVAL".into(), OsString::from_vec(huge.clone()))],
    );
    assert_eq!(code, 0);
    let mut bad = huge;
    bad[1000] = b'x';
    let code = check(
        &[],
        &[("PODVISOR_INTERVAL".into(), OsString::from_vec(bad))],
    );
    assert_eq!(code, 125);
    // Eight of the longest paths to wait for (1 MB in all; never there: 124).
    let mut argv = Vec::new();
    for n in 0..8 {
        let mut long_path = format!("{dir}/{n}").into_bytes();
        long_path.resize(LONGEST_ARG, b'a');
        argv.push(OsString::from("--wait-file"));
        argv.push(OsString::from_vec(long_path));
    }
    assert_eq!(check(&argv, &[]), 124);
    // The longest variable list: 10 000 targets in one PODVISOR_WAIT_TCP.
    let list: Vec<u8> = std::iter::repeat_n(&b"127.0.0.1:1,"[..], 10_000)
        .flatten()
        .copied()
        .collect();
    let code = check(
        &[],
        &[("PODVISOR_WAIT_TCP".into(), OsString::from_vec(list))],
    );
    assert_eq!(code, 124);
    // 10 000 targets that are all there: the command runs.
    let file = format!("{dir}/there");
    std::fs::write(&file, "").expect("create");
    let mut argv = Vec::new();
    for _ in 0..10_000 {
        argv.push(OsString::from("--wait-file"));
        argv.push(OsString::from(&file));
    }
    // Seen: 0.5-1 s for 10 000 on a busy 2-core machine (inotify instances run out at 128).
    let code = check_within(&argv, &[], "15s");
    assert_eq!(code, 0);
}
