//! The exit-code table as an init sees it: every status 0..=255 passes through, and death by
//! signal N (raised by the child, or a forwarded signal) is 128+N.

mod support;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use nix::libc;
use podvisor::run::signals::name;
use support::sigs::{podvisor, podvisor_sigecho, sigecho, Supervised};

#[test]
fn every_exit_status_passes_through() {
    let bad: Vec<String> = (0..=255)
        .filter_map(|code| {
            let out = podvisor(&["-q", "--sh", &format!("exit {code}")])
                .output()
                .expect("run podvisor");
            (out.status.code() != Some(code)).then(|| {
                format!(
                    "exit {code} -> {:?} ({})",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        })
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn death_by_signal_n_is_128_plus_n() {
    let rt = libc::SIGRTMIN();
    let signals = [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGABRT,
        libc::SIGKILL,
        libc::SIGUSR1,
        libc::SIGSEGV,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGTERM,
        rt,
        rt + 4,
        libc::SIGRTMAX(),
    ];
    for sig in signals {
        let mut cmd = podvisor(&["--"]);
        cmd.arg(sigecho()).args(["--raise", &name(sig)]);
        // No core files from ABRT, QUIT and SEGV.
        // SAFETY: setrlimit in the forked child.
        unsafe {
            cmd.pre_exec(|| {
                let zero = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &zero);
                Ok(())
            });
        }
        let out = cmd.output().expect("run podvisor");
        assert_eq!(
            out.status.code(),
            Some(128 + sig),
            "{}: {:?}\n{}",
            name(sig),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("child ended (killed by {})", name(sig))),
            "{stderr}"
        );
    }
}

#[test]
fn a_forwarded_signal_that_kills_the_child_is_128_plus_n() {
    for (sig, code) in [
        (libc::SIGTERM, 143),
        (libc::SIGINT, 130),
        (libc::SIGHUP, 129),
        (libc::SIGUSR1, 138),
    ] {
        let mut s = Supervised::start(podvisor(&["--sh", "echo ready; exec sleep 1000"]), true);
        s.expect("ready");
        s.signal(sig);
        s.finish(Duration::from_secs(15)).assert_code(code);
    }
}

#[test]
fn exit_on_a_forwarded_signal_keeps_the_childs_own_code() {
    let cmd = podvisor_sigecho(&[], &["--exit-on", "TERM:42"]);
    let mut s = Supervised::start(cmd, true);
    s.expect("ready");
    s.signal(libc::SIGTERM);
    s.finish(Duration::from_secs(15)).assert_code(42);
}
