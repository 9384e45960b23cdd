//! The test helper behind every signal test: prints `pid=.. ppid=.. pgid=..`, then `ready`, then
//! one line per signal it receives (`SIGTERM`, `SIGRTMIN+2`), each flushed at once.
//!
//!     sigecho [--name NAME] [--ignore SIG]... [--exit-on SIG:CODE]... [--exit-after N]
//!             [--children N] [--status] [--tty] [--leave-group] [--exit-on-eof] [--raise SIG]
//!             [--default] [--fault segv|abort]
//!
//! --name NAME        prefix every line with `NAME `
//! --ignore SIG       set SIG to SIG_IGN (a child that ignores TERM), never reported
//! --exit-on SIG:CODE exit with CODE once SIG arrived (after its line)
//! --exit-after N     exit 0 after N signal lines
//! --children N       start N copies of itself in this process group, named NAME.c1.. (they
//!                    share --ignore and --exit-on, and print their own lines)
//! --status           print SigBlk and SigIgn of /proc/self/status as found at start
//! --tty              print `tty-foreground=PGID` (the terminal's foreground group on stdin)
//! --leave-group      move back into the parent's process group before `ready`
//! --exit-on-eof      exit 0 once stdin reaches its end
//! --raise SIG        die by SIG (default disposition) instead of doing anything else
//! --default          no reports: every signal at its default action, none blocked (the child
//!                    that dies of, or stops at, whatever it gets), after `ready`
//! --fault KIND       block every signal as podvisor does (signals::block_early), then fault
//!                    for real: `segv` (a read in page 0) or `abort`; the kernel must still kill it
//!
//! Every signal but KILL and STOP (the faults and glibc's 32 and 33 included, with the raw
//! syscalls that glibc's wrappers would filter) is blocked and read with rt_sigtimedwait, so
//! nothing is lost and real-time signals keep their count.

use std::io::{Read, Write};
use std::process::Command;

use nix::libc;
use podvisor::run::signals;

struct Options {
    name: Option<String>,
    ignore: Vec<i32>,
    exit_on: Vec<(i32, i32)>,
    exit_after: Option<usize>,
    children: usize,
    status: bool,
    tty: bool,
    leave_group: bool,
    exit_on_eof: bool,
    raise: Option<i32>,
    default: bool,
    fault: Option<String>,
    /// The options children inherit, as typed.
    inherited: Vec<String>,
}

fn parse_signal(text: &str) -> i32 {
    signals::parse(text).unwrap_or_else(|e| die(&format!("bad signal {text}: {e}")))
}

fn die(msg: &str) -> ! {
    eprintln!("sigecho: {msg}");
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        name: None,
        ignore: Vec::new(),
        exit_on: Vec::new(),
        exit_after: None,
        children: 0,
        status: false,
        tty: false,
        leave_group: false,
        exit_on_eof: false,
        raise: None,
        default: false,
        fault: None,
        inherited: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--name" => o.name = Some(value()),
            "--ignore" => {
                let v = value();
                o.ignore.push(parse_signal(&v));
                o.inherited.extend([a.clone(), v]);
            }
            "--exit-on" => {
                let v = value();
                let (sig, code) = v
                    .split_once(':')
                    .unwrap_or_else(|| die("--exit-on wants SIG:CODE"));
                let code = code.parse().unwrap_or_else(|_| die("bad exit code"));
                o.exit_on.push((parse_signal(sig), code));
                o.inherited.extend([a.clone(), v]);
            }
            "--exit-after" => {
                o.exit_after = Some(value().parse().unwrap_or_else(|_| die("bad count")))
            }
            "--children" => o.children = value().parse().unwrap_or_else(|_| die("bad count")),
            "--status" => o.status = true,
            "--tty" => o.tty = true,
            "--leave-group" => o.leave_group = true,
            "--exit-on-eof" => o.exit_on_eof = true,
            "--raise" => o.raise = Some(parse_signal(&value())),
            "--default" => o.default = true,
            "--fault" => o.fault = Some(value()),
            _ => die(&format!("unknown option {a}")),
        }
    }
    o
}

/// Prints one line with the name prefix and flushes it (one write: lines of several processes
/// sharing a pipe never interleave).
fn say(name: &Option<String>, text: &str) {
    let line = match name {
        Some(n) => format!("{n} {text}\n"),
        None => format!("{text}\n"),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// /proc/self/status as it was before Rust's runtime started (it ignores SIGPIPE before main).
static mut EARLY_STATUS: [u8; 8192] = [0; 8192];
static mut EARLY_LEN: usize = 0;

extern "C" fn capture_status() {
    // SAFETY: runs once from .init_array, before main and before any thread; plain syscalls.
    unsafe {
        let fd = libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY);
        if fd >= 0 {
            let buf = std::ptr::addr_of_mut!(EARLY_STATUS);
            let n = libc::read(fd, buf.cast(), 8192);
            if n > 0 {
                EARLY_LEN = n as usize;
            }
            libc::close(fd);
        }
    }
}

#[used]
#[link_section = ".init_array"]
static CAPTURE_STATUS: extern "C" fn() = capture_status;

fn status_lines() -> Vec<String> {
    // SAFETY: written once before main, only read afterwards.
    let text = unsafe {
        let buf = &*std::ptr::addr_of!(EARLY_STATUS);
        String::from_utf8_lossy(&buf[..EARLY_LEN]).into_owned()
    };
    text.lines()
        .filter(|l| l.starts_with("SigBlk:") || l.starts_with("SigIgn:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn main() {
    // Read before anything here changed it: this is what podvisor handed over.
    let status = status_lines();
    let o = options();
    if let Some(sig) = o.raise {
        // SAFETY: plain libc calls on this process's own signal state.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
        }
        die("still alive after raise");
    }

    if let Some(kind) = &o.fault {
        fault(kind);
    }
    if o.default {
        default_until_killed(&o.name);
    }

    // SAFETY: signal-state changes of this single-threaded process, before any thread exists.
    let set = unsafe {
        for &sig in &o.ignore {
            libc::signal(sig, libc::SIG_IGN);
        }
        let set = signals::raw_sigset(
            (1..=64)
                .filter(|s| ![libc::SIGKILL, libc::SIGSTOP].contains(s) && !o.ignore.contains(s)),
        );
        sigprocmask(libc::SIG_BLOCK, &set);
        set
    };

    // SAFETY: getters and setpgid on ourselves.
    let (pid, ppid) = unsafe { (libc::getpid(), libc::getppid()) };
    if o.leave_group {
        // SAFETY: setpgid on ourselves, into our parent's group.
        if unsafe { libc::setpgid(0, libc::getpgid(ppid)) } != 0 {
            die(&format!(
                "cannot leave the group: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    // SAFETY: a getter.
    let pgid = unsafe { libc::getpgid(0) };
    say(&o.name, &format!("pid={pid} ppid={ppid} pgid={pgid}"));
    if o.status {
        for line in &status {
            say(&o.name, line);
        }
    }
    if o.tty {
        // SAFETY: a getter on stdin.
        let fg = unsafe { libc::tcgetpgrp(libc::STDIN_FILENO) };
        say(&o.name, &format!("tty-foreground={fg}"));
    }

    let exe = std::env::current_exe().unwrap_or_else(|e| die(&format!("current_exe: {e}")));
    // Never waited for: they are the step's group members, and outlive us in some tests.
    #[allow(clippy::zombie_processes)]
    for n in 1..=o.children {
        let name = format!(
            "{}c{n}",
            o.name.as_ref().map_or(String::new(), |n| format!("{n}."))
        );
        Command::new(&exe)
            .arg("--name")
            .arg(&name)
            .args(&o.inherited)
            .spawn()
            .unwrap_or_else(|e| die(&format!("cannot start a child: {e}")));
    }

    if o.exit_on_eof {
        std::thread::spawn(|| {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
    }
    say(&o.name, "ready");

    let mut seen = 0;
    loop {
        // SAFETY: waits on the blocked set; siginfo is written by the kernel. The raw syscall:
        // glibc's sigwaitinfo may leave out its own signals 32 and 33.
        let signo = unsafe {
            let mut info = std::mem::zeroed::<libc::siginfo_t>();
            libc::syscall(
                libc::SYS_rt_sigtimedwait,
                &set as *const libc::sigset_t,
                &mut info as *mut libc::siginfo_t,
                std::ptr::null::<libc::timespec>(),
                8usize,
            ) as i32
        };
        if signo < 0 {
            continue; // EINTR
        }
        say(&o.name, &signals::name(signo));
        seen += 1;
        if let Some(&(_, code)) = o.exit_on.iter().find(|(s, _)| *s == signo) {
            std::process::exit(code);
        }
        if o.exit_after == Some(seen) {
            std::process::exit(0);
        }
    }
}

/// rt_sigprocmask itself: glibc's wrappers drop 32 and 33 from the set.
///
/// # Safety
/// Changes the calling thread's mask.
unsafe fn sigprocmask(how: i32, set: &libc::sigset_t) {
    libc::syscall(
        libc::SYS_rt_sigprocmask,
        how,
        set as *const libc::sigset_t,
        std::ptr::null_mut::<libc::sigset_t>(),
        8usize,
    );
}

/// `--default`: every signal at SIG_DFL and unblocked, `ready`, then sleep until one ends us.
fn default_until_killed(name: &Option<String>) -> ! {
    for signo in 1..=64 {
        signals::set_default(signo);
    }
    // SAFETY: unblocks everything in this single-threaded process; getters.
    let (pid, ppid, pgid) = unsafe {
        sigprocmask(libc::SIG_SETMASK, &signals::raw_sigset([]));
        (libc::getpid(), libc::getppid(), libc::getpgid(0))
    };
    say(name, &format!("pid={pid} ppid={ppid} pgid={pgid}"));
    say(name, "ready");
    loop {
        // SAFETY: pause(2) only sleeps.
        unsafe { libc::pause() };
    }
}

/// `--fault KIND`: podvisor's own mask, then a genuine fault, which the kernel delivers anyway.
fn fault(kind: &str) -> ! {
    if let Err(e) = signals::block_early() {
        die(&format!("block_early: {e}"));
    }
    match kind {
        // SAFETY: deliberately reads the unmapped page at 0 to raise a real SIGSEGV (not a
        // null pointer: debug builds check read_volatile's pointer and panic instead).
        "segv" => unsafe {
            std::ptr::read_volatile(16 as *const u8);
        },
        "abort" => std::process::abort(),
        _ => die("--fault wants segv or abort"),
    }
    die("still alive after the fault")
}
