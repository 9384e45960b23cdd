//! Every thread podvisor starts keeps the signals it reads blocked, from its first instruction
//! on, before its creator goes on.
//!
//! podvisor reads its signals in one place (the pump, or the plain init's loop) and keeps them
//! blocked in every other thread (run/signals.rs). But the libc unblocks its own internal
//! signals in a thread it starts: glibc 32 in every new thread and 33 too in some (the first
//! one, as seen in /proc), musl 33 and 34 in its first one and in the thread that creates it.
//! The kernel hands a signal sent to podvisor to any thread that has it unblocked, and there it
//! takes its default action: `kill -33` killed the static build running `--log-to` (its copy
//! threads kept 33 unblocked for life), and as PID 1, which the kernel does not let such a
//! signal kill, it vanished unforwarded (a pump thread that first ran after the step had
//! started took it before it could block it).
//!
//! So each thread blocks them again as its first act, its creator waits until it has, and the
//! creator re-blocks its own; what was pending before the first thread is read off the queue and
//! kept for the pump (`signals::keep_pending`), so no new thread can take it. What remains is a
//! libc-internal signal sent in the microseconds while a thread starts, as with any signal sent
//! before `block_early` at exec.

use std::io;
use std::sync::mpsc;

use nix::libc;

use crate::run::signals;

/// Starts `body` on a named std thread (`stack` bytes, or std's default).
pub fn spawn<F>(name: &str, stack: Option<usize>, body: F) -> io::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    signals::keep_pending();
    let (blocked, wait) = mpsc::channel();
    let mut builder = std::thread::Builder::new().name(name.into());
    if let Some(bytes) = stack {
        builder = builder.stack_size(bytes);
    }
    builder.spawn(move || {
        on_start();
        let _ = blocked.send(());
        body();
    })?;
    settle(&wait)
}

/// Starts `body` on a thread of libc's (its default stack, 128 KiB with musl, touched pages
/// only), detached. Not std's `thread::spawn`: that also names the thread and sets up an
/// alternate signal stack for its overflow handler, 6 more system calls at every start
/// (bench row 1). For the signal pump, which is sent to by its handle.
pub fn start_raw(body: Box<dyn FnOnce() + Send>) -> io::Result<libc::pthread_t> {
    struct Start {
        body: Box<dyn FnOnce() + Send>,
        blocked: mpsc::Sender<()>,
    }
    extern "C" fn run(arg: *mut libc::c_void) -> *mut libc::c_void {
        on_start();
        // SAFETY: `arg` is the Box leaked below, handed to this thread alone.
        let start = unsafe { Box::from_raw(arg.cast::<Start>()) };
        let _ = start.blocked.send(());
        (start.body)();
        std::ptr::null_mut()
    }
    signals::keep_pending();
    let (blocked, wait) = mpsc::channel();
    let arg = Box::into_raw(Box::new(Start { body, blocked }));
    // SAFETY: a zeroed pthread_t is only an out-parameter; `run` takes ownership of `arg`.
    let thread = unsafe {
        let mut thread: libc::pthread_t = std::mem::zeroed();
        let rc = libc::pthread_create(&mut thread, std::ptr::null(), run, arg.cast());
        if rc != 0 {
            drop(Box::from_raw(arg));
            return Err(io::Error::from_raw_os_error(rc));
        }
        // Never joined: it runs as long as the process.
        libc::pthread_detach(thread);
        thread
    };
    settle(&wait)?;
    Ok(thread)
}

/// The first act of every thread podvisor starts, tokio's blocking threads included
/// (`on_thread_start`, see [`runtime`]).
fn on_start() {
    let _ = signals::block_handled();
}

/// The creator's side: its own set blocked again (musl's first thread creation unblocked 33 and
/// 34 in it), then the wait until the new thread has blocked its own.
fn settle(wait: &mpsc::Receiver<()>) -> io::Result<()> {
    signals::block_handled()?;
    // A thread that died before saying so has blocked nothing, but it runs nothing either.
    let _ = wait.recv();
    Ok(())
}

/// A current-thread runtime (with the I/O driver when `io`, always with time) whose blocking
/// threads (name lookups) block podvisor's signals first, as every other thread does.
pub fn runtime(io: bool) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if io {
        builder.enable_io();
    }
    builder.enable_time().on_thread_start(on_start).build()
}
