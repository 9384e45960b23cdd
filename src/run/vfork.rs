//! Starting the step with `clone(CLONE_VM | CLONE_VFORK)`: the child borrows podvisor's memory
//! until its exec, instead of a copy-on-write copy of it.
//!
//! Why not fork (std's `Command` with `pre_exec`): the kernel copies podvisor's page tables,
//! and podvisor then takes a page fault on the first write to each page it shares with the
//! child; std also opens a socket pair to carry an exec error back. Why not `posix_spawn`: its
//! attributes cannot discard a signal that is pending in the child (see `child::command`), and
//! musl's cannot name the signals it reserves (32-34). Here the child takes the same steps as
//! `child::command`'s pre_exec (`child::clean_start`, `child::unblock_all`), and reports an exec
//! failure in the memory it shares with the parent, who is suspended until the exec or the exit.
//!
//! The terminal hand-over keeps the fork path (`child::command`): tcsetpgrp from the child
//! would run while podvisor cannot answer a SIGTTOU-stopped state, and it is the rare case.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::libc;

use crate::run::{child, signals};

/// Everything the child reads, prepared by the parent (the child must not allocate).
struct Args {
    path: CString,
    argv: Vec<*const libc::c_char>,
    envp: *const *const libc::c_char,
    group: bool,
    ignored: u64,
    /// podvisor's CPU set while the child starts, which the child takes back before its exec.
    held: Option<Held>,
    /// errno of the failed step, written by the child; 0 when the exec succeeded.
    error: i32,
}

/// The child's stack while it shares podvisor's memory; a few frames of system calls use it.
const STACK: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK]);

/// Starts `program` with `argv` (argv[0] included) in a clean state: every signal unblocked and
/// at its default disposition, nothing pending that podvisor had not forwarded, its own process
/// group when `group`. Returns its pid; an exec failure comes back as its errno.
pub fn spawn(program: &Path, argv: &[OsString], group: bool, ignored: u64) -> io::Result<i32> {
    let cstr = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let path = cstr(program.as_os_str().as_bytes())?;
    let owned: Vec<CString> = argv
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<io::Result<_>>()?;
    let mut pointers: Vec<*const libc::c_char> = owned.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // From here until the clone returns podvisor runs on this CPU only (see `Held`).
    let held = Held::here();
    let mut args = Args {
        path,
        argv: pointers,
        envp: crate::environ::raw(),
        group,
        ignored,
        held,
        error: 0,
    };
    // Uninitialised on our own stack: no allocation, and only the pages the child touches fault.
    let mut stack = std::mem::MaybeUninit::<Stack>::uninit();
    let everything = signals::raw_sigset(1..=64);
    let mut before = signals::raw_sigset(std::iter::empty());
    // SAFETY: the child runs `child_main` on its own stack with `args`, both alive until clone
    // returns (CLONE_VFORK: after the child's exec or exit). Every signal is blocked around the
    // clone so that the child starts with all of them blocked and no handler of podvisor's (it
    // has none of its own; std's fault handlers stay) can run on the shared memory.
    let pid = unsafe {
        signals::raw_sigprocmask(libc::SIG_SETMASK, &everything, &mut before);
        let top = stack.as_mut_ptr().cast::<u8>().add(STACK).cast();
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut args as *mut Args).cast(),
        );
        let clone_error = io::Error::last_os_error();
        signals::raw_sigprocmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
        if let Some(held) = &args.held {
            held.release();
        }
        if pid < 0 {
            return Err(clone_error);
        }
        pid
    };
    drop(owned);
    if args.error != 0 {
        // The child has exited (127); the reaper collects it like any unknown child.
        return Err(io::Error::from_raw_os_error(args.error));
    }
    Ok(pid)
}

/// The child, between clone and exec: raw system calls on prepared data only.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Args`, alive and untouched while the parent is suspended.
    unsafe {
        let args = &mut *arg.cast::<Args>();
        if let Some(held) = &args.held {
            held.release();
        }
        if let Err(e) = child::clean_start(args.group, args.ignored) {
            args.error = e.raw_os_error().unwrap_or(libc::EINVAL);
            libc::_exit(127);
        }
        child::unblock_all();
        libc::syscall(
            libc::SYS_execve,
            args.path.as_ptr(),
            args.argv.as_ptr(),
            args.envp,
        );
        args.error = errno();
        libc::_exit(127)
    }
}

/// podvisor held to the CPU it runs on while the child starts.
///
/// vfork suspends podvisor until the child's exec, and the child's exec wakes it from the
/// child's CPU. A scheduler that packs wake-ups onto the waker's CPU (this VM's does) then
/// queued podvisor behind its own starting child: traced, in 4% of bench row 4's runs
/// podvisor still waited there when the step wrote its first byte, so the reader it woke could
/// not take that CPU and later signals crossed CPUs. Held to its own CPU, podvisor wakes where
/// it slept. The child takes the whole set back before its exec: the step never sees the
/// narrow one.
struct Held {
    /// podvisor's own set, as it was.
    saved: libc::cpu_set_t,
}

impl Held {
    /// Narrows podvisor to the CPU it runs on; `None`, with nothing changed, when it may run on
    /// one CPU only or a call fails.
    fn here() -> Option<Self> {
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

    /// Gives the calling process its whole set back: podvisor after the clone, the child before
    /// its exec (system calls and stack values only). When `saved` no longer fits (its cpuset
    /// changed meanwhile), every CPU: the kernel keeps those the cpuset allows.
    fn release(&self) {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: sched_setaffinity reads the set it is given; a zeroed set is empty.
        unsafe {
            if libc::sched_setaffinity(0, size, &self.saved) != 0 {
                let mut all: libc::cpu_set_t = std::mem::zeroed();
                for c in 0..size * 8 {
                    libc::CPU_SET(c, &mut all);
                }
                libc::sched_setaffinity(0, size, &all);
            }
        }
    }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}
