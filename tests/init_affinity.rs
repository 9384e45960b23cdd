//! The step may run on every CPU podvisor was given, and so may podvisor once the step has
//! started: podvisor holds itself to one CPU only while the child starts (run/vfork.rs), and
//! the child takes the whole set back before its exec. On a one-CPU machine nothing is held
//! and these checks hold trivially; the test machines have two.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use nix::libc;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{poll_until, TempDir, TestCommand};

/// `Cpus_allowed_list` of /proc/PID/status (`self` for this test).
fn allowed(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
}

/// Starts `podvisor OPTIONS -- sh` (a step that prints its pid and sleeps), then waits until
/// both podvisor and the step are allowed `want`.
fn both_allowed(mut cmd: TestCommand, options: &[&str], want: &str) {
    cmd = cmd
        .args(options)
        .args(["--", "sh", "-c", "echo $$; exec sleep 30"]);
    let (mut podvisor, shown) = cmd.spawn();
    let mut out = BufReader::new(podvisor.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the step's pid");
    let step = line.trim().to_owned();
    let ours = podvisor.id().to_string();
    // The check: it panics after 5 s unless both are allowed `want`.
    let what = format!("{shown}: podvisor and its step allowed CPUs {want}");
    poll_until(Duration::from_secs(5), &what, || {
        (allowed(&ours)? == want && allowed(&step)? == want).then_some(())
    });
    let _ = kill(Pid::from_raw(podvisor.id() as i32), Signal::SIGTERM);
    let status = podvisor.wait().expect("podvisor's exit");
    assert_eq!(status.code(), Some(143), "{shown}");
}

#[test]
fn the_plain_init_and_its_step_keep_every_cpu() {
    let want = allowed("self").expect("our own CPU list");
    both_allowed(TestCommand::new(), &[], &want);
}

#[test]
fn after_a_wait_the_step_and_podvisor_keep_every_cpu() {
    let dir = TempDir::new("affinity");
    let ready = dir.path().join("ready");
    std::fs::write(&ready, "").expect("the file to wait for");
    let want = allowed("self").expect("our own CPU list");
    let ready = ready.to_string_lossy().into_owned();
    both_allowed(TestCommand::new(), &["--wait-file", &ready], &want);
}

#[test]
fn a_set_narrowed_by_the_caller_stays_narrow() {
    // podvisor started on one CPU (taskset, a cpuset): nothing to hold, and the step gets that
    // one CPU, not more.
    let cpu = std::thread::available_parallelism().map_or(0, |n| n.get() - 1);
    let mut cmd = TestCommand::new();
    // SAFETY: sched_setaffinity on a zeroed set with one bit, in the child before exec.
    unsafe {
        cmd.command().pre_exec(move || {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    both_allowed(cmd, &[], &cpu.to_string());
}
