//! Interactive use on a pseudo-terminal (as `docker run -it` or Buildkite's PTY): the child's
//! group becomes the terminal's foreground group, so Ctrl-C reaches the child and not podvisor;
//! the terminal is handed back afterwards; `podvisor -- bash` has working job control.

mod support;

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::libc;
use support::poll_until;
use support::sigs::{alive, podvisor, podvisor_sigecho, Supervised};

fn type_keys(master: &OwnedFd, keys: &[u8]) {
    let mut f = std::fs::File::from(master.try_clone().expect("dup master"));
    f.write_all(keys).expect("write to the terminal");
}

fn foreground(master: &OwnedFd) -> i32 {
    nix::unistd::tcgetpgrp(master.as_fd())
        .expect("tcgetpgrp on the master")
        .as_raw()
}

/// Waits until a `sleep` job owns the terminal: keys typed before would reach the shell.
fn sleep_in_foreground(s: &Supervised, master: &OwnedFd) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fg = foreground(master);
        let comm = std::fs::read_to_string(format!("/proc/{fg}/comm")).unwrap_or_default();
        if comm.trim() == "sleep" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sleep in the foreground (group {fg}: {comm:?})\n{}",
            s.explain()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A line of output; an interactive shell may print its prompt in front of it.
fn ends_with(s: &mut Supervised, tail: &str) {
    s.expect_that(&format!("ending in {tail:?}"), |l| l.ends_with(tail));
}

#[test]
fn ctrl_c_reaches_the_interactive_child_and_podvisor_survives() {
    let cmd = podvisor_sigecho(&[], &["--tty", "--exit-on", "SIGUSR2:3"]);
    let (mut s, master) = Supervised::start_on_pty(cmd);
    let echo = s.expect_echo("");
    let fg = s.expect_that("tty-foreground=", |l| l.starts_with("tty-foreground="));
    s.expect("ready");
    assert_eq!(
        fg,
        format!("tty-foreground={}", echo.pgid),
        "the child's group owns the terminal\n{}",
        s.explain()
    );
    assert_ne!(echo.pgid, s.pid(), "{}", s.explain());
    type_keys(&master, b"\x03");
    s.expect("SIGINT");
    // Ctrl-\ and Ctrl-Z go to the child's group too; podvisor neither dies nor stops.
    type_keys(&master, b"\x1c");
    s.expect("SIGQUIT");
    type_keys(&master, b"\x1a");
    s.expect("SIGTSTP");
    let (state, _, _) = support::sigs::proc_stat(s.pid()).expect("podvisor's stat");
    assert!(
        state != 'T' && state != 'Z',
        "podvisor in state {state}\n{}",
        s.explain()
    );
    s.signal(libc::SIGUSR2);
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(3);
    // podvisor saw none of the keyboard's signals: it did not forward them.
    assert!(
        !f.lines.iter().any(|l| l.contains("forwarding SIGINT")),
        "{}",
        f.explain()
    );
}

#[test]
fn the_terminal_is_handed_back_when_the_child_ends() {
    // A leftover that ignores SIGTERM (and the SIGUSR2 that ends the child) keeps podvisor alive (in its cleanup) after the child ends.
    let script = format!(
        "trap '' TERM USR2; sleep 1007 & trap - TERM USR2; exec {} --tty --exit-on SIGUSR2:0",
        support::sigs::sigecho().display()
    );
    let cmd = podvisor(&["--grace-period", "3s", "--sh", &script]);
    let (mut s, master) = Supervised::start_on_pty(cmd);
    let echo = s.expect_echo("");
    s.expect("ready");
    assert_eq!(foreground(&master), echo.pgid, "{}", s.explain());
    s.signal(libc::SIGUSR2);
    s.expect_that("the cleanup line", |l| l.contains("terminating 1 leftover"));
    // podvisor is the session leader here, so its group is its pid.
    poll_until(
        Duration::from_secs(5),
        "the terminal back with podvisor",
        || (foreground(&master) == s.pid()).then_some(()),
    );
    assert!(alive(s.pid()));
    s.finish(Duration::from_secs(20)).assert_code(0);
}

#[test]
fn interactive_bash_has_ctrl_c_and_job_control() {
    let mut cmd = podvisor(&["--", "bash", "--norc", "--noprofile", "-i"]);
    cmd.env("PS1", "$ ").env("TERM", "dumb");
    let (mut s, master) = Supervised::start_on_pty(cmd);
    type_keys(&master, b"echo started; sleep 1008\n");
    ends_with(&mut s, "started");
    sleep_in_foreground(&s, &master);
    type_keys(&master, b"\x03");
    type_keys(&master, b"echo \"status=$?\"\n");
    ends_with(&mut s, "status=130");
    type_keys(&master, b"echo again; sleep 1009\n");
    ends_with(&mut s, "again");
    sleep_in_foreground(&s, &master);
    type_keys(&master, b"\x1a");
    s.expect_that("a Stopped job", |l| l.contains("Stopped"));
    // Back to the foreground (bash gives it the terminal), then interrupted there.
    type_keys(&master, b"fg\n");
    ends_with(&mut s, "sleep 1009");
    sleep_in_foreground(&s, &master);
    type_keys(&master, b"\x03");
    type_keys(&master, b"echo \"after-fg=$?\"\n");
    ends_with(&mut s, "after-fg=130");
    type_keys(&master, b"exit 3\n");
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(3);
}

#[test]
fn no_group_ctrl_c_reaches_the_child_once_and_starts_no_grace_period() {
    // The child shares podvisor's foreground group: the terminal signals both.
    let cmd = podvisor_sigecho(
        &["--no-group", "--grace-period", "1s"],
        &["--exit-on", "SIGUSR2:3"],
    );
    let (mut s, master) = Supervised::start_on_pty(cmd);
    let echo = s.expect_echo("");
    s.expect("ready");
    assert_eq!(echo.pgid, s.pid(), "{}", s.explain());
    type_keys(&master, b"\x03");
    s.expect("SIGINT");
    // A grace period started by that Ctrl-C would SIGKILL the child (137) within 1 s.
    std::thread::sleep(Duration::from_millis(1500));
    s.signal(libc::SIGUSR2);
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(3);
    assert_eq!(f.count("SIGINT"), 1, "{}", f.explain());
}
