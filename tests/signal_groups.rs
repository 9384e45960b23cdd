//! Process groups: the child leads its own group and forwarded signals reach all of it;
//! --no-group signals only the direct child and leaves it in podvisor's group.

mod support;

use std::time::Duration;

use nix::libc;
use support::sigs::{podvisor_sigecho, Supervised};

#[test]
fn grandchildren_in_the_group_receive_forwarded_signals() {
    let cmd = podvisor_sigecho(&[], &["--children", "2", "--exit-on", "SIGUSR2:0"]);
    let mut s = Supervised::start(cmd, true);
    let [main, c1, c2] = <[_; 3]>::try_from(s.expect_echoes(2)).expect("three sigechos");
    s.expect_all(&["ready", "c1 ready", "c2 ready"]);
    assert_eq!(main.pgid, main.pid, "{}", s.explain());
    assert_ne!(main.pgid, s.pid(), "{}", s.explain());
    assert_eq!(c1.pgid, main.pgid, "{}", s.explain());
    assert_eq!(c2.pgid, main.pgid, "{}", s.explain());
    s.signal(libc::SIGUSR1);
    s.expect_all(&["SIGUSR1", "c1 SIGUSR1", "c2 SIGUSR1"]);
    s.signal(libc::SIGHUP);
    s.expect_all(&["SIGHUP", "c1 SIGHUP", "c2 SIGHUP"]);
    s.signal(libc::SIGUSR2);
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(0);
    for line in ["SIGUSR1", "c1 SIGUSR1", "c2 SIGUSR1"] {
        assert_eq!(f.count(line), 1, "{line}\n{}", f.explain());
    }
}

#[test]
fn no_group_signals_only_the_direct_child() {
    let cmd = podvisor_sigecho(
        &["--no-group", "--grace-period", "5s"],
        &[
            "--children",
            "1",
            "--exit-on",
            "SIGUSR2:4",
            "--exit-on",
            "SIGTERM:0",
        ],
    );
    let mut s = Supervised::start(cmd, true);
    let [main, c1] = <[_; 2]>::try_from(s.expect_echoes(1)).expect("two sigechos");
    s.expect_all(&["ready", "c1 ready"]);
    // podvisor was started leading its own group; the child stays in it.
    assert_eq!(main.pgid, s.pid(), "{}", s.explain());
    assert_eq!(c1.pgid, s.pid(), "{}", s.explain());
    s.signal(libc::SIGUSR1);
    s.expect("SIGUSR1");
    s.signal(libc::SIGUSR2);
    // The main child exits 4; c1 is a leftover, terminated by podvisor afterwards.
    let f = s.finish(Duration::from_secs(15));
    f.assert_code(4);
    assert_eq!(f.count("c1 SIGUSR1"), 0, "{}", f.explain());
    assert_eq!(f.count("c1 SIGUSR2"), 0, "{}", f.explain());
    assert_eq!(
        f.count("c1 SIGTERM"),
        1,
        "leftover terminated\n{}",
        f.explain()
    );
}
