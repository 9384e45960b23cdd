//! Processes at the system-call level: posix_spawn, wait4 with rusage, pipes, the monotonic
//! clock. std's Command is not used for measured runs: it adds its own pipe and bookkeeping, and
//! its wait hides the rusage.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

extern "C" {
    static environ: *const *mut libc::c_char;
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the stamp child reads.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Where a spawned process's stdin, stdout and stderr go (fds of the runner, dup'ed onto 0, 1, 2).
pub struct Io<'a> {
    pub stdin: &'a dyn AsRawFd,
    pub stdout: &'a dyn AsRawFd,
    pub stderr: &'a dyn AsRawFd,
    /// An extra fd passed as fd 3 (the launcher's report).
    pub fd3: Option<&'a dyn AsRawFd>,
}

/// /dev/null, for whatever a tool prints.
pub fn null() -> io::Result<File> {
    File::options().read(true).write(true).open("/dev/null")
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what}: {}",
            io::Error::from_raw_os_error(rc)
        )))
    }
}

/// Spawns `argv` (argv[0] an absolute path) in a process group of its own, with an empty
/// signal mask, the runner's environment and `io` as its standard fds.
pub fn spawn<S: AsRef<OsStr>>(argv: &[S], io: &Io<'_>) -> io::Result<i32> {
    let args = argv
        .iter()
        .map(|a| cstring(a.as_ref()))
        .collect::<io::Result<Vec<_>>>()?;
    let mut ptrs: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr() as *mut _).collect();
    ptrs.push(std::ptr::null_mut());
    // SAFETY: every pointer handed to posix_spawn lives until it returns; the attribute and file
    // action objects are initialised before use and destroyed after.
    unsafe {
        let mut actions = std::mem::zeroed::<libc::posix_spawn_file_actions_t>();
        let mut attr = std::mem::zeroed::<libc::posix_spawnattr_t>();
        check(
            libc::posix_spawn_file_actions_init(&mut actions),
            "file actions",
        )?;
        check(libc::posix_spawnattr_init(&mut attr), "spawn attributes")?;
        let mut empty = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut empty);
        for (fd, target) in [(io.stdin, 0), (io.stdout, 1), (io.stderr, 2)] {
            libc::posix_spawn_file_actions_adddup2(&mut actions, fd.as_raw_fd(), target);
        }
        if let Some(fd) = io.fd3 {
            libc::posix_spawn_file_actions_adddup2(&mut actions, fd.as_raw_fd(), 3);
        }
        libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        libc::posix_spawnattr_setpgroup(&mut attr, 0);
        libc::posix_spawnattr_setflags(
            &mut attr,
            (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETPGROUP) as libc::c_short,
        );
        let mut pid = 0;
        let rc = libc::posix_spawn(&mut pid, ptrs[0], &actions, &attr, ptrs.as_ptr(), environ);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        check(rc, &format!("spawning {}", args[0].to_string_lossy()))?;
        Ok(pid)
    }
}

/// How a process ended, with its resource usage (its own plus its reaped descendants').
pub struct Exit {
    /// The wait status.
    pub status: i32,
    /// rusage from wait4.
    pub rusage: libc::rusage,
    /// CLOCK_MONOTONIC when wait4 returned.
    pub at: u64,
}

impl Exit {
    /// The exit code, or 128+N for a signal.
    pub fn code(&self) -> i32 {
        if libc::WIFEXITED(self.status) {
            libc::WEXITSTATUS(self.status)
        } else {
            128 + libc::WTERMSIG(self.status)
        }
    }

    /// User plus system CPU time, in milliseconds.
    pub fn cpu_ms(&self) -> f64 {
        let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
        tv(self.rusage.ru_utime) + tv(self.rusage.ru_stime)
    }
}

/// Blocks until `pid` ends.
pub fn wait(pid: i32) -> io::Result<Exit> {
    let mut status = 0;
    // SAFETY: rusage is plain data written by the kernel.
    let mut rusage = unsafe { std::mem::zeroed::<libc::rusage>() };
    loop {
        // SAFETY: status and rusage are valid for writing.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        let at = now_ns();
        if rc == pid {
            return Ok(Exit { status, rusage, at });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Kills what is left of a failed run (the tool's whole group) and reaps the tool.
pub fn abandon(pid: i32) {
    // SAFETY: kill(2) on a group the runner created.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = wait(pid);
}

/// A pipe; both ends close-on-exec (spawn dups the child's end onto a standard fd).
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe {
        Ok((
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        ))
    }
}

/// Waits up to `timeout` for `fd` to be readable.
pub fn readable(fd: &impl AsRawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reads exactly `buf.len()` bytes, failing after `timeout` (or at end of file).
pub fn read_within(file: &mut File, buf: &mut [u8], timeout: Duration) -> io::Result<()> {
    let deadline = now_ns() + timeout.as_nanos() as u64;
    let mut got = 0;
    while got < buf.len() {
        let left = Duration::from_nanos(deadline.saturating_sub(now_ns()));
        if !readable(file, left)? {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"));
        }
        match file.read(&mut buf[got..])? {
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed early")),
            n => got += n,
        }
    }
    Ok(())
}

/// Reads the stamp child's CLOCK_MONOTONIC nanoseconds.
pub fn read_stamp(file: &mut File, timeout: Duration) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    read_within(file, &mut buf, timeout)?;
    Ok(u64::from_ne_bytes(buf))
}

/// Sleeps on the monotonic clock until `at` (nanoseconds).
pub fn sleep_until(at: u64) {
    let left = at.saturating_sub(now_ns());
    if left > 0 {
        std::thread::sleep(Duration::from_nanos(left));
    }
}

/// A TCP socket bound to 127.0.0.1:`port` but not listening yet: connects to it are refused
/// until [`listen`] is called, so the moment it becomes ready is one system call.
pub fn bound_socket(port: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket calls on a fresh fd; addr is a valid sockaddr_in.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        if libc::bind(
            fd.as_raw_fd(),
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

/// Makes a bound socket accept connections.
pub fn listen(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: listen(2) on a socket we own.
    if unsafe { libc::listen(fd.as_raw_fd(), 128) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A loopback port that is free now (bound, read, released).
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `n` distinct free ports: all held at once while choosing, so none repeats.
pub fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// Sends `signo` to `pid`.
pub fn kill(pid: i32, signo: i32) -> io::Result<()> {
    // SAFETY: kill(2) with plain numbers.
    if unsafe { libc::kill(pid, signo) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
