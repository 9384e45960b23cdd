//! Test helper: runs a command on which the kernel refuses flock(2), the way a file system
//! without flock support does (ENOLCK), so that podvisor's marker-only fallback can be tested
//! on local file systems that all have flock.
//!
//!     noflock COMMAND [ARGS]...
//!
//! With `NOFLOCK_REFUSE=signalfd` in the environment it refuses signalfd4(2) (ENOMEM) instead,
//! for podvisor's own error after start-up (tests/shutdown.rs).
//!
//! It sets no_new_privs (required to install a filter without CAP_SYS_ADMIN, and harmless as
//! root), installs a seccomp filter that fails every flock with ENOLCK and allows every other
//! system call, then execs COMMAND. The filter is inherited by every child and survives exec.

use std::ffi::CString;
use std::os::unix::ffi::OsStringExt;

use nix::libc;

/// linux/audit.h: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE (not exported by libc).
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump_eq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

fn die(what: &str) -> ! {
    eprintln!("noflock: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(127);
}

fn main() {
    let args: Vec<CString> = std::env::args_os()
        .skip(1)
        .map(|a| CString::new(a.into_vec()).expect("no NUL in arguments"))
        .collect();
    if args.is_empty() {
        eprintln!("usage: noflock COMMAND [ARGS]...");
        std::process::exit(2);
    }
    if !cfg!(target_arch = "x86_64") {
        // The syscall number below is x86_64's; elsewhere the filter would refuse nothing.
        eprintln!("noflock: only built for x86_64");
        std::process::exit(127);
    }
    // Offsets in struct seccomp_data: nr (int) at 0, arch (u32) at 4.
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let (refused, errno) = match std::env::var("NOFLOCK_REFUSE").as_deref() {
        Ok("signalfd") => (libc::SYS_signalfd4, libc::ENOMEM),
        _ => (libc::SYS_flock, libc::ENOLCK),
    };
    let mut filter = [
        stmt(load, 4),
        // Another ABI (i386 via int 0x80) has other numbers: leave it alone.
        jump_eq(AUDIT_ARCH_X86_64, 0, 3),
        stmt(load, 0),
        jump_eq(refused as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | errno as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: prctl with plain integers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        die("PR_SET_NO_NEW_PRIVS");
    }
    // SAFETY: prog points at `filter`, which outlives the call; the kernel copies it.
    if unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    } != 0
    {
        die("PR_SET_SECCOMP");
    }
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: argv is a NULL-terminated array of C strings that live across the call.
    unsafe { libc::execvp(argv[0], argv.as_ptr()) };
    die(&format!("exec {}", args[0].to_string_lossy()));
}
