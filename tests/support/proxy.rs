//! Fake mesh and proxy sidecars (tests/support/bin/fakeproxy.rs) for the shutdown-call tests.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::libc;

use super::sigs::{kill, Finished, Supervised};

/// The fakeproxy helper, built once per test binary.
pub fn fakeproxy() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| super::build_example("fakeproxy"))
        .clone()
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    super::wait::free_port(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A running fakeproxy, its request lines read as they come.
pub struct FakeProxy(pub Supervised);

impl FakeProxy {
    /// `fakeproxy ARGS`, once it listens.
    pub fn start(args: &[&str]) -> Self {
        let mut cmd = Command::new(fakeproxy());
        cmd.args(args);
        Self::start_command(cmd)
    }

    /// `ip netns exec NS fakeproxy ARGS` (a pod's network), once it listens.
    pub fn start_in(ns: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(fakeproxy()).args(args);
        Self::start_command(cmd)
    }

    fn start_command(cmd: Command) -> Self {
        let mut proxy = Supervised::start(cmd, true);
        proxy.expect("listening");
        Self(proxy)
    }

    /// Ends it (it may have exited already) and returns everything it recorded.
    pub fn stop(self) -> Finished {
        kill(self.0.pid(), libc::SIGKILL);
        self.0.finish(Duration::from_secs(10))
    }

    /// Waits for it to exit by itself (on its shutdown call).
    pub fn finish(self, timeout: Duration) -> Finished {
        self.0.finish(timeout)
    }
}

/// The requests a finished fakeproxy recorded that start with `prefix` (`POST /quitquitquit`).
pub fn requests<'a>(proxy: &'a Finished, prefix: &str) -> Vec<&'a str> {
    proxy
        .lines
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with(prefix))
        .collect()
}
