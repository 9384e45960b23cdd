//! Where podvisor runs while its step starts, and where it sleeps once the step runs.
//!
//! Both answer this VM kind's scheduler (Linux 6.18-fc: `sched_vcpu_pack`), which queues a
//! woken task behind the running one on the waker's CPU when the two fit there, and otherwise
//! wakes it on its own CPU; waking a halted vCPU costs 30-40 µs (bench/notes.md, seventh pass).
//!
//! - **Held while the step starts.** vfork suspends podvisor until the child's exec, and the
//!   exec wakes it from the child's CPU: packed there, podvisor was queued behind its own
//!   starting child (8 of 200 traced bench row 4 runs), and the step's first reader could not
//!   take that CPU. Held to its own CPU, podvisor wakes where it slept. The child takes the
//!   whole set back before its exec: the step never sees the narrow one.
//! - **Beside the step afterwards.** The exec itself moves the child to the idlest CPU (the
//!   kernel's exec balancing), away from podvisor. Left there, podvisor slept alone while the
//!   step and its reader shared the other CPU, and a forwarded signal then woke podvisor on its
//!   CPU and the step back on the other: two wake-ups of a halted vCPU. Moved beside the step,
//!   podvisor is woken there and hands the signal over on one CPU. It is a young process's
//!   matter (the fit test weighs start-up utilisation that decays within 100 ms); later it
//!   changes nothing, and it costs one migration at the start.

use nix::libc;

/// podvisor held to the CPU it runs on while the child starts.
pub(crate) struct Held {
    /// podvisor's own set, as it was.
    saved: libc::cpu_set_t,
}

impl Held {
    /// Narrows podvisor to the CPU it runs on; `None`, with nothing changed, when it may run on
    /// one CPU only or a call fails.
    pub(crate) fn here() -> Option<Self> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: zeroed cpu_set_t values are empty sets; every pointer is to a live local.
        unsafe {
            let mut saved: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size, &mut saved) != 0 || libc::CPU_COUNT(&saved) < 2 {
                return None;
            }
            let cpu = usize::try_from(libc::sched_getcpu()).ok()?;
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            (libc::sched_setaffinity(0, size, &one) == 0).then_some(Self { saved })
        }
    }

    /// podvisor once the clone has returned: moved to the CPU its started step runs on (when
    /// there is one and it can be read), then given its whole set back.
    pub(crate) fn settle(&self, step: Option<i32>) {
        if let Some(cpu) = step.and_then(cpu_of) {
            let size = std::mem::size_of::<libc::cpu_set_t>();
            // SAFETY: as in `here`. A failure leaves podvisor where it is.
            unsafe {
                if usize::try_from(libc::sched_getcpu()).ok() != Some(cpu) {
                    let mut one: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut one);
                    libc::sched_setaffinity(0, size, &one);
                }
            }
        }
        self.release();
    }

    /// Gives the calling process its whole set back: podvisor after the clone, the child before
    /// its exec (system calls and stack values only). When `saved` no longer fits (its cpuset
    /// changed meanwhile), every CPU: the kernel keeps those the cpuset allows.
    pub(crate) fn release(&self) {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: sched_setaffinity reads the set it is given; a set of all ones bits is every
        // CPU, written in place (cpu_set_t is plain bits).
        unsafe {
            if libc::sched_setaffinity(0, size, &self.saved) != 0 {
                let mut all: libc::cpu_set_t = std::mem::zeroed();
                std::ptr::write_bytes(&mut all, 0xff, 1);
                libc::sched_setaffinity(0, size, &all);
            }
        }
    }
}

/// The CPU podvisor's child `pid` last ran on: field 39 of /proc/PID/stat, read without
/// allocating. `None` unless the entry names podvisor as the parent: a /proc mounted for
/// another PID namespace (`unshare --pid` without `--mount-proc`) shows someone else there.
fn cpu_of(pid: i32) -> Option<usize> {
    let path = stat_path(u32::try_from(pid).ok()?);
    let mut stat = [0u8; 1024];
    // SAFETY: `path` is NUL-terminated; read writes at most `stat.len()` bytes into it.
    let len = unsafe {
        // The raw call: musl's `openat` is one more function outside the hot text.
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        ) as libc::c_int;
        if fd < 0 {
            return None;
        }
        let len = libc::read(fd, stat.as_mut_ptr().cast(), stat.len());
        libc::close(fd);
        usize::try_from(len).ok()?
    };
    parse_stat(stat.get(..len)?, std::process::id())
}

/// `/proc/PID/stat`, NUL-terminated, built without the formatting machinery (it would sit
/// outside the plain init's hot text: scripts/hot-text).
fn stat_path(pid: u32) -> [u8; 32] {
    let mut digits = [0u8; 10];
    let mut n = pid;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut path = [0u8; 32];
    path[..6].copy_from_slice(b"/proc/");
    for (i, d) in digits[..len].iter().rev().enumerate() {
        path[6 + i] = *d;
    }
    path[6 + len..6 + len + 5].copy_from_slice(b"/stat");
    path
}

/// `processor` (field 39) of a /proc/PID/stat line whose `ppid` (field 4) is `parent`.
fn parse_stat(stat: &[u8], parent: u32) -> Option<usize> {
    // The command name (field 2) may hold spaces and parentheses; the last ')' ends it.
    // Fields are read by hand: `str::split` and `parse` would add code past the plain init's
    // hot text and with it a 64 KiB window of resident memory (bench row 1's peak RSS).
    let close = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat.get(close + 2..)?.split(|&b| b == b' ');
    let ppid = number(fields.nth(1)?)?;
    let cpu = number(fields.nth(34)?)?;
    (ppid == u64::from(parent)).then_some(usize::try_from(cpu).ok()?)
}

/// A decimal number of at most 18 digits, nothing else.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::{cpu_of, number, parse_stat, stat_path};
    use nix::libc;

    /// A line as Linux 6.18 writes it (52 fields), CPU 1, parent 4763.
    const LINE: &[u8] = b"4764 (a) b) (c) S 4763 4764 4761 0 -1 4194560 113 0 0 0 0 0 0 0 20 0 \
1 0 24639 2392064 112 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 \
0 0\n";

    #[test]
    fn the_cpu_of_a_child_of_ours() {
        assert_eq!(parse_stat(LINE, 4763), Some(1));
    }

    #[test]
    fn nothing_when_the_parent_is_someone_else() {
        assert_eq!(parse_stat(LINE, 1), None);
    }

    #[test]
    fn numbers_are_digits_only() {
        assert_eq!(number(b"0"), Some(0));
        assert_eq!(number(b"4763"), Some(4763));
        assert_eq!(number(b"999999999999999999"), Some(999_999_999_999_999_999));
        for bad in [
            &b""[..],
            b"-1",
            b"1a",
            b" 1",
            b"1\n",
            b"1234567890123456789",
        ] {
            assert_eq!(number(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn stat_paths() {
        assert!(stat_path(0).starts_with(b"/proc/0/stat\0"));
        assert!(stat_path(4_294_967_295).starts_with(b"/proc/4294967295/stat\0"));
    }

    /// Against the real /proc: a child of this test process is found on a CPU it may use; a
    /// process that is not our child is not.
    #[test]
    fn cpu_of_a_real_child_and_of_a_stranger() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .expect("sleep");
        // SAFETY: sysconf reads a number.
        let cpus = usize::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) })
            .expect("the number of CPUs");
        let pid = i32::try_from(child.id()).expect("a pid");
        let cpu = cpu_of(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(cpu.is_some_and(|c| c < cpus), "{cpu:?} of {cpus} CPUs");
        assert_eq!(cpu_of(1), None, "pid 1 is not our child");
    }

    #[test]
    fn nothing_from_a_cut_line() {
        assert_eq!(parse_stat(&LINE[..60], 4763), None);
        assert_eq!(parse_stat(b"", 4763), None);
    }
}
