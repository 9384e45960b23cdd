//! What the three chaos rigs share (issue 15, item 2): tests/chaos.rs (the namespace pod),
//! tests/chaos_docker.rs and tests/chaos_podman.rs. The victims and how one is found on the
//! host, the tally and its figure line, and the checks that end every round: the exit codes
//! are ones the README lists, the marker is complete JSON agreeing with the step's exit code or
//! absent with its lock free, and nothing of a container is left on the host.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::libc;

use super::docker::{self, Done};
use super::podman;
use super::rng::Rng;

/// What a round SIGKILLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    /// The step (podvisor's child in the command container).
    Step,
    /// The sidecar's program (podvisor's child in the sidecar container).
    SidecarProgram,
    /// The command container's podvisor (the container dies with its PID 1).
    StepPodvisor,
    /// The sidecar container's podvisor.
    SidecarPodvisor,
}

impl Victim {
    pub const ALL: [Victim; 4] = [
        Victim::Step,
        Victim::SidecarProgram,
        Victim::StepPodvisor,
        Victim::SidecarPodvisor,
    ];

    pub fn pick(rng: &mut Rng) -> Victim {
        *rng.pick(&Self::ALL)
    }

    /// Whether it is a container's PID 1 (so the runtime itself can kill it).
    pub fn is_podvisor(self) -> bool {
        matches!(self, Victim::StepPodvisor | Victim::SidecarPodvisor)
    }

    /// Whether it lives in the command container.
    pub fn in_step(self) -> bool {
        matches!(self, Victim::Step | Victim::StepPodvisor)
    }
}

/// How long the ordinary sidecar may take to stop once the command container has ended.
pub const STOP_BOUND: Duration = Duration::from_secs(5);

/// The codes of podvisor's own a container may end with beyond its program's (README, "Exit
/// codes"): 124 the wait failed, 125 podvisor's own error, 137 a program killed by SIGKILL,
/// 143 one stopped by SIGTERM. Docker and podman report a SIGKILLed PID 1 as 137 too.
pub const PODVISOR_CODES: [i32; 4] = [124, 125, 137, 143];

/// Whether `code` is the program's own (`own`) or one of podvisor's.
pub fn listed(code: i32, own: &[i32]) -> bool {
    own.contains(&code) || PODVISOR_CODES.contains(&code)
}

/// The step of every rig: a shell that sleeps `ms`, says so and exits 3.
pub fn step_script(ms: u64) -> String {
    format!(
        "sleep {}.{:03}; echo step-done; exit 3",
        ms / 1000,
        ms % 1000
    )
}

/// podvisor's arguments in the ordinary sidecar: it stops once `marker` is finished; its
/// program makes `ready` and sleeps.
pub fn sidecar_args(marker: &str, ready: &str) -> Vec<String> {
    let touch = format!("touch {ready}; exec sleep 1000");
    [
        "--until-marker",
        marker,
        "--grace-period",
        "2s",
        "--sh",
        &touch,
    ]
    .map(String::from)
    .to_vec()
}

/// podvisor's arguments in the command container: it waits for `ready` (at most `timeout`),
/// leaves `marker`, and runs the step of `step_script(step_ms)`.
pub fn step_args(ready: &str, timeout: &str, marker: &str, step_ms: u64) -> Vec<String> {
    let script = step_script(step_ms);
    [
        "--wait-file",
        ready,
        "--timeout",
        timeout,
        "--marker",
        marker,
        "--sh",
        &script,
    ]
    .map(String::from)
    .to_vec()
}

/// What the rounds of one rig did, for the figure line.
#[derive(Default)]
pub struct Tally {
    pub rounds: usize,
    /// SIGKILLs sent, per victim (in `Victim::ALL`'s order).
    pub injected: [usize; 4],
    /// Of those, sent by the runtime (`docker kill`, `podman kill`) rather than kill(2).
    pub by_runtime: usize,
    /// Victims already gone when their moment came (their container had ended).
    pub missed: usize,
    /// Command containers killed before their podvisor took the marker's lock.
    pub before_lock: usize,
    pub markers: usize,
    pub free_locks: usize,
    /// The slowest sidecar, from the command container's end to its own.
    pub max_stop: Duration,
    /// Exit codes seen, command container and sidecar.
    pub step_codes: BTreeMap<i32, usize>,
    pub sidecar_codes: BTreeMap<i32, usize>,
}

impl Tally {
    /// Counts a SIGKILL sent to `victim`.
    pub fn injected(&mut self, victim: Victim, by_runtime: bool) {
        self.injected[victim as usize] += 1;
        self.by_runtime += usize::from(by_runtime);
    }

    /// Counts a sidecar stop time (asserting the bound).
    pub fn stopped_after(&mut self, took: Duration, explain: &dyn Fn() -> String) {
        assert!(
            took < STOP_BOUND,
            "the sidecar took {took:?} after the command container\n{}",
            explain()
        );
        self.max_stop = self.max_stop.max(took);
    }

    /// The figure line of a rig (`scripts/reliability` greps `rounds`).
    pub fn report(&self, rig: &str, elapsed: Duration) {
        eprintln!(
            "{rig}: {} rounds in {elapsed:?}; SIGKILLs: step {}, sidecar program {}, step \
             podvisor {}, sidecar podvisor {} ({} of them by the runtime); victim already gone \
             {}; ended with a marker {}, with a free lock and no marker {} (of which killed \
             before the lock existed: {}); slowest sidecar stop {:?} after the command \
             container (bound {STOP_BOUND:?}); exit codes: command {:?}, sidecar {:?}",
            self.rounds,
            self.injected[0],
            self.injected[1],
            self.injected[2],
            self.injected[3],
            self.by_runtime,
            self.missed,
            self.markers,
            self.free_locks,
            self.before_lock,
            self.max_stop,
            self.step_codes,
            self.sidecar_codes,
        );
    }
}

/// Whether nobody holds the lock at `path` (or there is no lock file at all).
pub fn lock_free(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return true;
    };
    // SAFETY: flock on a descriptor we own; closing it (drop) releases what we took.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// `PATH.lock`, the lock beside a marker.
fn lock_of(marker: &Path) -> std::path::PathBuf {
    let mut lock = marker.as_os_str().to_owned();
    lock.push(".lock");
    lock.into()
}

/// Whether the command container died before its podvisor took the marker's lock (in the
/// first milliseconds, often before podvisor even ran): the volume then looks like a
/// container not started yet, which an `--until-marker` sidecar waits for (README, the marker
/// protocol) until it is stopped from outside.
pub fn killed_before_lock(marker: &Path) -> bool {
    !marker.exists() && !lock_of(marker).exists()
}

/// The end of a round on the shared volume: `marker` is complete JSON whose `exit_code` is
/// `step_code` (unless the step's podvisor was killed, maybe after writing it), or absent with
/// its lock free.
pub fn check_marker(
    marker: &Path,
    step_code: Option<i32>,
    step_podvisor_killed: bool,
    tally: &mut Tally,
    explain: &dyn Fn() -> String,
) {
    if marker.exists() {
        let text = fs::read_to_string(marker).unwrap_or_default();
        let m: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("marker is not JSON ({e}): {text:?}\n{}", explain()));
        assert!(
            [
                "exited",
                "signaled",
                "wait_failed",
                "cancelled",
                "spawn_failed"
            ]
            .contains(&m["status"].as_str().unwrap_or("")),
            "{m}\n{}",
            explain()
        );
        if let (Some(code), false) = (step_code, step_podvisor_killed) {
            assert_eq!(
                m["exit_code"].as_i64(),
                Some(i64::from(code)),
                "marker and exit code disagree: {m}\n{}",
                explain()
            );
        }
        tally.markers += 1;
    } else {
        assert!(
            lock_free(&lock_of(marker)),
            "no marker and the lock is held\n{}",
            explain()
        );
        tally.free_locks += 1;
    }
}

/// A process's arguments.
fn argv(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The host pid of the podvisor run as `exe` (its argv[0], as in a container) with `flag`
/// (`--marker`, `--until-marker`; as `FLAG VALUE` or `FLAG=VALUE`) naming `marker`: a
/// container's PID 1 found from outside, by a marker path no other test uses. The `docker run`
/// or `podman` client that started it has other argv[0].
pub fn podvisor_with(exe: &str, flag: &str, marker: &str) -> Option<i32> {
    all_pids().into_iter().find(|&pid| {
        let args = argv(pid);
        args.first().is_some_and(|a| a == exe)
            && args.windows(2).any(|w| {
                (w[0] == flag && w[1] == marker)
                    || w[0].strip_prefix(flag).and_then(|v| v.strip_prefix('=')) == Some(marker)
            })
    })
}

/// The first child of `pid`, if it has one (of any of its threads: a child belongs to the
/// thread that forked it).
pub fn first_child(pid: i32) -> Option<i32> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find_map(|t| {
            fs::read_to_string(t.path().join("children"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

/// SIGKILL to `pid`.
pub fn sigkill(pid: i32) {
    // SAFETY: kill(2) on a pid the caller has just found in its own pod.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Polls `find` until it gives a victim, or `gone` says there will be none (its container has
/// ended), or 5 s: a victim whose moment comes before it exists is killed as soon as it does.
pub fn victim_pid(
    mut find: impl FnMut() -> Option<i32>,
    mut gone: impl FnMut() -> bool,
) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = find() {
            return Some(pid);
        }
        if gone() || Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The host processes of containers `ids` (full IDs) still there: any whose cgroup or command
/// line names one (the container's own processes, its runtime shim or conmon).
pub fn leftovers(ids: &[String]) -> Vec<String> {
    let mine = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&p| p != mine)
        .filter_map(|pid| {
            let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let line = argv(pid).join(" ");
            ids.iter()
                .any(|id| cgroup.contains(id.as_str()) || line.contains(id.as_str()))
                .then(|| format!("{pid}: {line}"))
        })
        .collect()
}

/// Asserts that nothing of containers `ids` is left on the host, giving the runtime 5 s to
/// tear them down.
pub fn assert_nothing_left(ids: &[String], explain: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = leftovers(ids);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = leftovers(ids);
    }
    assert!(
        left.is_empty(),
        "processes left on the host: {left:?}\n{}",
        explain()
    );
}

/// The container runtime of a pod.
#[derive(Clone, Copy)]
pub enum Runtime {
    Docker,
    /// podman with the tests' private store (tests/support/podman.rs).
    Podman,
}

impl Runtime {
    /// Its command line, bounded: the subcommands used here (`inspect -f`, `kill --signal`,
    /// `wait`, `stop -t`) are the same in both.
    fn run(self, args: &[&str], timeout: Duration) -> Done {
        match self {
            Runtime::Docker => docker::docker(args, timeout),
            Runtime::Podman => podman::podman(args, timeout),
        }
    }

    /// How a container ended: its exit code and when, in ns since the epoch.
    fn ended(self, name: &str) -> (i32, i128) {
        match self {
            Runtime::Docker => {
                let e = docker::ended(name);
                (e.code, e.finished_ns)
            }
            Runtime::Podman => {
                let e = podman::ended(name);
                (e.code, e.finished_ns)
            }
        }
    }
}

/// One round in a Docker or podman pod, from the moment both containers are being started:
/// the SIGKILL, then every check of its end.
pub struct InPod<'a> {
    pub runtime: Runtime,
    /// podvisor as the containers run it (argv[0] of their PID 1).
    pub exe: &'a str,
    /// The step's marker as the containers see it, and on this machine.
    pub marker: &'a str,
    pub host_marker: &'a Path,
    /// The containers' names.
    pub step: &'a str,
    pub sidecar: &'a str,
    pub victim: Victim,
    /// Whether a podvisor victim is killed by the runtime (`kill --signal KILL`), not kill(2).
    pub by_runtime: bool,
}

impl InPod<'_> {
    /// A victim, and for a container's PID 1 whether the runtime kills it.
    pub fn pick(rng: &mut Rng) -> (Victim, bool) {
        let victim = Victim::pick(rng);
        (victim, victim.is_podvisor() && rng.below(2) == 0)
    }

    fn exited(&self, name: &str) -> bool {
        let state = self.runtime.run(
            &["inspect", "-f", "{{.State.Status}}", name],
            Duration::from_secs(30),
        );
        state.ok() && state.stdout.trim() == "exited"
    }

    /// SIGKILLs the victim now, or as soon as it exists; whether it could (not when its
    /// container has ended first).
    pub fn inject(&self, tally: &mut Tally) -> bool {
        let (name, flag) = if self.victim.in_step() {
            (self.step, "--marker")
        } else {
            (self.sidecar, "--until-marker")
        };
        // The runtime is asked at most every 200 ms whether the container has ended.
        let mut asked: Option<Instant> = None;
        let pid = victim_pid(
            || {
                let podvisor = podvisor_with(self.exe, flag, self.marker)?;
                if self.victim.is_podvisor() {
                    Some(podvisor)
                } else {
                    first_child(podvisor)
                }
            },
            || {
                if asked.is_some_and(|t| t.elapsed() < Duration::from_millis(200)) {
                    return false;
                }
                asked = Some(Instant::now());
                self.exited(name)
            },
        );
        let injected = match pid {
            Some(_) if self.by_runtime => self
                .runtime
                .run(&["kill", "--signal", "KILL", name], Duration::from_secs(30))
                .ok(),
            Some(pid) => {
                sigkill(pid);
                true
            }
            None => false,
        };
        if injected {
            tally.injected(self.victim, self.by_runtime);
        } else {
            tally.missed += 1;
        }
        injected
    }

    /// Waits for both containers and checks the round's end: exit codes the README lists (3
    /// is the step's own), the sidecar stopped within STOP_BOUND of the command container (or
    /// by `stop` when that died before its lock existed), the marker. The containers' ends.
    pub fn end(
        &self,
        injected: bool,
        tally: &mut Tally,
        explain: &dyn Fn() -> String,
    ) -> [(i32, i128); 2] {
        let waited = self
            .runtime
            .run(&["wait", self.step], Duration::from_secs(60));
        assert!(waited.ok(), "the command container hangs\n{}", explain());
        let before_lock = killed_before_lock(self.host_marker);
        if before_lock {
            // Nothing on the volume: to the sidecar a container not started yet. It waits
            // until it is stopped (`stop`: the image's STOPSIGNAL), a stop request: exit 0.
            tally.before_lock += 1;
            assert_eq!(
                (self.victim, injected),
                (Victim::StepPodvisor, true),
                "the command container ended before its lock existed, yet its podvisor was \
                 not killed\n{}",
                explain()
            );
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                !self.exited(self.sidecar),
                "the sidecar stopped for a container that never ran\n{}",
                explain()
            );
            self.runtime
                .run(&["stop", "-t", "10", self.sidecar], Duration::from_secs(60));
        }
        let waited = self.runtime.run(
            &["wait", self.sidecar],
            STOP_BOUND + Duration::from_secs(10),
        );
        assert!(waited.ok(), "the sidecar did not stop\n{}", explain());
        let (c, s) = (
            self.runtime.ended(self.step),
            self.runtime.ended(self.sidecar),
        );
        *tally.step_codes.entry(c.0).or_default() += 1;
        *tally.sidecar_codes.entry(s.0).or_default() += 1;
        assert!(
            listed(c.0, &[3]),
            "command container: exit {}\n{}",
            c.0,
            explain()
        );
        assert!(listed(s.0, &[0]), "sidecar: exit {}\n{}", s.0, explain());
        if before_lock {
            assert_eq!(s.0, 0, "the sidecar stopped from outside\n{}", explain());
        } else if s.1 >= c.1 {
            tally.stopped_after(Duration::from_nanos((s.1 - c.1) as u64), explain);
        }
        if s.0 == 0 && !before_lock {
            // Stopped by its until-condition, and for the right reason: the marker, or the
            // lock its dead owner left free (README, `--until-marker`).
            let why = if self.host_marker.exists() {
                "finished (marker written)"
            } else {
                "finished without a marker"
            };
            let logs = self
                .runtime
                .run(&["logs", self.sidecar], Duration::from_secs(60));
            assert!(
                logs.stdout.contains(why) || logs.stderr.contains(why),
                "the sidecar's log does not say {why:?}\n{}",
                explain()
            );
        }
        check_marker(
            self.host_marker,
            Some(c.0),
            injected && self.victim == Victim::StepPodvisor,
            tally,
            explain,
        );
        [c, s]
    }
}
