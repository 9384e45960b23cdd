//! The waited-for child of every latency row: the first thing it does is read CLOCK_MONOTONIC,
//! then it writes the nanoseconds (8 bytes, native endian) to stdout and exits 0.
//!
//! No libc, no start files, statically linked without a dynamic loader: it starts in a few
//! microseconds after exec and its peak RSS is a few pages, so a wrapper running it shows its own
//! peak RSS in wait4's rusage (ru_maxrss is the maximum over the process and its reaped children).
//!
//! `stamp launch PROGRAM [ARG]...` is the launcher of the peak-RSS runs: it forks, the child
//! execs PROGRAM, and it writes the child's ru_maxrss (KiB) and wait status (8 bytes each) to
//! fd 3. It exists because ru_maxrss also counts the memory a process had before its exec: a
//! process forked from the runner (2 MiB resident) would carry the runner's peak into the
//! wrapper's figure; forked from this launcher, it carries a few pages.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

// The kernel enters with rsp 16-byte aligned; a call leaves it as a C function expects.
global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call stamp_main",
    "ud2",
);

const SYS_WRITE: usize = 1;
const SYS_CLOSE: usize = 3;
const SYS_FORK: usize = 57;
const SYS_EXECVE: usize = 59;
const SYS_WAIT4: usize = 61;
const SYS_CLOCK_GETTIME: usize = 228;
const SYS_EXIT_GROUP: usize = 231;
const CLOCK_MONOTONIC: usize = 1;

/// A raw x86_64 system call with up to three arguments.
///
/// # Safety
/// The arguments must be valid for system call `n`.
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    // SAFETY: the caller's promise; the fourth argument is unused by these calls.
    unsafe { syscall4(n, a, b, c, 0) }
}

/// Whether the NUL-terminated string at `p` is `launch`.
///
/// # Safety
/// `p` must point to a NUL-terminated string.
unsafe fn is_launch(p: *const u8) -> bool {
    let want = b"launch\0";
    for (i, &w) in want.iter().enumerate() {
        // SAFETY: the string is NUL-terminated and we stop at the first mismatch or its end.
        if unsafe { *p.add(i) } != w {
            return false;
        }
    }
    true
}

/// Forks, execs `argv` in the child, reports its rusage peak and status on fd 3.
///
/// # Safety
/// `argv` and `envp` must be the process's own NULL-terminated vectors.
unsafe fn launch(argv: *const *const u8, envp: *const *const u8) -> ! {
    // SAFETY: fork, execve, close and wait4 with valid pointers; the rusage buffer is large
    // enough (struct rusage is 144 bytes on x86_64).
    unsafe {
        let pid = syscall3(SYS_FORK, 0, 0, 0);
        if pid == 0 {
            syscall3(SYS_CLOSE, 3, 0, 0);
            syscall3(SYS_EXECVE, *argv as usize, argv as usize, envp as usize);
            syscall3(SYS_EXIT_GROUP, 127, 0, 0);
        }
        let mut status: i32 = 0;
        let mut rusage = [0i64; 18];
        let rc = syscall4(
            SYS_WAIT4,
            pid as usize,
            &mut status as *mut i32 as usize,
            0,
            rusage.as_mut_ptr() as usize,
        );
        // ru_maxrss follows ru_utime and ru_stime (two timevals).
        let report = [rusage[4], if rc == pid { status as i64 } else { -1 }];
        syscall3(SYS_WRITE, 3, report.as_ptr() as usize, 16);
        syscall3(SYS_EXIT_GROUP, 0, 0, 0);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}

/// A raw x86_64 system call with four arguments.
///
/// # Safety
/// The arguments must be valid for system call `n`.
unsafe fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: as in syscall3; the fourth argument goes in r10.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Entered from `_start` with the initial stack: argc, argv..., NULL, envp..., NULL.
#[no_mangle]
extern "C" fn stamp_main(sp: *const usize) -> ! {
    // SAFETY: the kernel's initial stack layout.
    unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        if argc >= 3 && is_launch(*argv.add(1)) {
            launch(argv.add(2), argv.add(argc + 1));
        }
    }
    let mut ts = [0i64; 2];
    // SAFETY: ts is a valid struct timespec; bytes lives across the write.
    unsafe {
        syscall3(
            SYS_CLOCK_GETTIME,
            CLOCK_MONOTONIC,
            ts.as_mut_ptr() as usize,
            0,
        );
        let ns = (ts[0] as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ts[1] as u64);
        let bytes = ns.to_ne_bytes();
        syscall3(SYS_WRITE, 1, bytes.as_ptr() as usize, bytes.len());
        syscall3(SYS_EXIT_GROUP, 0, 0, 0);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: exit_group takes a plain status.
    unsafe { syscall3(SYS_EXIT_GROUP, 101, 0, 0) };
    #[allow(clippy::empty_loop)]
    loop {}
}
