//! `--log-to PATH`: COMMAND's stdout and stderr still reach podvisor's own, byte for byte, and a
//! copy goes to PATH (bounded, see `rotating`), with podvisor's own lines.
//!
//! Two threads, neither of them the runtime's, so the step's output never waits for podvisor's
//! event loop:
//! - the *pump* polls COMMAND's two pipes; whatever it reads is first written to podvisor's
//!   stdout or stderr (the passthrough: blocking as COMMAND's own write would, EAGAIN on a
//!   non-blocking descriptor waited out with poll), then queued for the copy;
//! - the *writer* empties the queue into PATH. The queue is bounded: when the volume is slow or
//!   full, the copy drops (and says so with a `podvisor:` line in the copy), never the
//!   passthrough.
//!
//! A flood (a child writing faster than the copy is written) costs the child as little as it
//! can: the queue holds at most what the copy keeps (`--log-size`), and when more arrives the
//! oldest queued bytes are skipped, never written, since rotation would discard them anyway; the
//! copy then starts over with a `podvisor:` line saying how much was skipped, and the newest
//! output. From the first flood on, the writer runs at the lowest priority (nice 19), so that
//! on a busy machine it yields the CPU to the child (and falls behind, and skips) rather than
//! the other way round; before that, a line reaches the copy as fast as the machine allows.
//!
//! Without `--log-to` none of this exists and COMMAND inherits podvisor's descriptors. A stream
//! that is a terminal stays COMMAND's own (it keeps its terminal: colours, line editing, window
//! size); that stream is not copied, and a warning says so.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::rotating::Rotating;
use crate::config::size;

/// The most the copy's queue holds (or `--log-size`, when smaller); beyond it, the oldest queued
/// output is skipped.
const QUEUE_BOUND: usize = 4 << 20;
/// One read from a pipe.
const CHUNK: usize = 256 * 1024;
/// After COMMAND's end (and its leftovers'), how long podvisor still reads pipes that a process
/// outside the step holds open before it stops copying and exits.
pub const DRAIN_BOUND: Duration = Duration::from_secs(2);
/// How long the exit waits for the copy to be written to a slow volume.
const CLOSE_BOUND: Duration = Duration::from_secs(2);

/// What the writer writes.
enum Chunk {
    /// COMMAND's output, as read.
    Output(Vec<u8>),
    /// One of podvisor's own lines: starts on a line of its own.
    Own(Vec<u8>),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Output(b) | Chunk::Own(b) => b.len(),
        }
    }
}

/// The queue between the threads that produce the copy and the writer.
#[derive(Default)]
struct Queue {
    chunks: VecDeque<Chunk>,
    /// Bytes in `chunks`, less `front_cut`.
    bytes: usize,
    /// The oldest bytes of the first chunk, skipped (see `skipped`).
    front_cut: usize,
    /// Bytes taken off the head of the queue unwritten, since more was queued than it holds;
    /// not yet reported in the copy. They all come right after what the writer took last.
    skipped: u64,
    /// No more chunks will come.
    closed: bool,
    /// The writer waits for chunks: a push must wake it (a wake-up per chunk while it is busy
    /// writing would be a system call per chunk for nothing).
    idle: bool,
    /// Buffers the writer is done with, for the next chunks: fresh ones of this size are
    /// mmap'ed and page-faulted by the allocator every time (a third of the pump's time).
    free: Vec<Vec<u8>>,
}

/// The most buffers kept for reuse.
const FREE_MAX: usize = 32;

impl Queue {
    /// A buffer for `len` bytes, recycled when one is free.
    fn buffer(&mut self, len: usize) -> Vec<u8> {
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        buf.reserve(len);
        buf
    }

    fn recycle(&mut self, chunk: Chunk) {
        if let Chunk::Output(buf) = chunk {
            if self.free.len() < FREE_MAX {
                self.free.push(buf);
            }
        }
    }
}

/// The copy: its queue and the writer's wake-up.
struct Sink {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// The most the queue holds: `QUEUE_BOUND`, or `--log-size` when smaller.
    cap: usize,
}

impl Sink {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A buffer for a chunk of `len` bytes of COMMAND's output (see `push`).
    fn buffer(&self, len: usize) -> Vec<u8> {
        self.lock().buffer(len)
    }

    /// Queues a copy of COMMAND's `output` (in a recycled buffer). Never blocks on the volume.
    fn push_output(&self, output: &[u8]) {
        let mut buf = self.buffer(output.len());
        buf.extend_from_slice(output);
        self.push(Chunk::Output(buf));
    }

    /// Queues `chunk`; when the queue would hold more than `cap`, the oldest queued bytes are
    /// skipped (counted, never written). Never blocks on the volume.
    fn push(&self, mut chunk: Chunk) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        if chunk.len() > self.cap {
            // Only its newest part can stay.
            let cut = chunk.len() - self.cap;
            match &mut chunk {
                Chunk::Output(b) | Chunk::Own(b) => {
                    b.drain(..cut);
                }
            }
            q.skipped += cut as u64;
        }
        while q.bytes + chunk.len() > self.cap {
            let over = q.bytes + chunk.len() - self.cap;
            let Some(left) = q.chunks.front().map(|c| c.len() - q.front_cut) else {
                break;
            };
            // Only as much as the new chunk needs: the rest of the oldest chunk stays.
            let cut = left.min(over);
            q.bytes -= cut;
            q.skipped += cut as u64;
            if cut == left {
                q.front_cut = 0;
                if let Some(old) = q.chunks.pop_front() {
                    q.recycle(old);
                }
            } else {
                q.front_cut += cut;
            }
        }
        q.bytes += chunk.len();
        q.chunks.push_back(chunk);
        let wake = q.idle;
        drop(q);
        if wake {
            self.ready.notify_one();
        }
    }
}

/// The running copy: set once by `start`, read by the log writer and the pump.
static SINK: OnceLock<Arc<Sink>> = OnceLock::new();
/// The threads to wait for at the end.
static THREADS: Mutex<Threads> = Mutex::new(Threads {
    pump: None,
    writer: None,
});

struct Threads {
    /// The running pump, if any.
    pump: Option<Pump>,
    /// The writer's "done" channel.
    writer: Option<mpsc::Receiver<()>>,
}

/// The caller's side of the pump thread.
struct Pump {
    /// A byte asks the pump to catch up; closing it tells the pump to finish.
    control: OwnedFd,
    /// One message per catch-up done.
    caught_up: mpsc::Receiver<()>,
    /// Closed when the pump has finished.
    done: mpsc::Receiver<()>,
}

fn threads() -> MutexGuard<'static, Threads> {
    THREADS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the copy at `path` (bounded by `size` bytes): from now on podvisor's own lines go to
/// it too.
pub fn start(path: &Path, size: u64) -> io::Result<()> {
    // A fresh volume is empty: `/workspace/logs/` may not exist yet.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = Rotating::create(path, size)?;
    let sink = Arc::new(Sink {
        queue: Mutex::new(Queue::default()),
        ready: Condvar::new(),
        cap: usize::try_from(size).unwrap_or(usize::MAX).min(QUEUE_BOUND),
    });
    if SINK.set(sink.clone()).is_err() {
        return Err(io::Error::other("the copy was already started"));
    }
    let (done, wait) = mpsc::channel();
    let shown = path.to_owned();
    crate::threads::spawn("log-writer", None, move || {
        writer(&sink, file, &shown);
        let _ = done.send(());
    })?;
    threads().writer = Some(wait);
    tracing::debug!(
        "copying the output to {} (at most {})",
        path.display(),
        size::show(size)
    );
    Ok(())
}

/// Whether `--log-to` is in effect.
pub fn active() -> bool {
    SINK.get().is_some()
}

/// A line podvisor wrote to its stderr (the log writer calls this): into the copy too.
pub fn tee_own(line: &[u8]) {
    if let Some(sink) = SINK.get() {
        sink.push(Chunk::Own(line.to_vec()));
    }
}

/// A line for the copy only.
pub fn note(line: &str) {
    tee_own(format!("podvisor: {line}\n").as_bytes());
}

/// One of COMMAND's pipes.
struct Stream {
    /// Our end.
    read: OwnedFd,
    /// The podvisor descriptor it passes through to (1 or 2).
    dest: RawFd,
    /// `dest` is a pipe: pass through with tee(2).
    tee: bool,
}

/// COMMAND's end of the pipes, while it is being spawned.
pub struct Capture {
    /// COMMAND's stdout then stderr.
    streams: Vec<Stream>,
}

/// Whether `--log-to` asks for COMMAND's output (so its spawn must set pipes).
pub fn wanted() -> bool {
    SINK.get().is_some()
}

/// Prepares pipes for COMMAND's stdout and stderr (those that are not a terminal) and sets them
/// on `cmd`; `None` without `--log-to`.
pub fn capture(cmd: &mut Command) -> Option<Capture> {
    SINK.get()?;
    let mut streams = Vec::new();
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        let name = if fd == libc::STDOUT_FILENO {
            "stdout"
        } else {
            "stderr"
        };
        // SAFETY: 1 and 2 stay open for podvisor's whole life.
        let ours = unsafe { BorrowedFd::borrow_raw(fd) };
        if nix::unistd::isatty(ours).unwrap_or(false) {
            tracing::warn!("{name} is a terminal: COMMAND keeps it, and its {name} is not copied");
            continue;
        }
        let (read, write) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("cannot make a pipe for COMMAND's {name} ({e}): it is not copied");
                continue;
            }
        };
        // Fewer wake-ups per megabyte; refused above /proc/sys/fs/pipe-max-size, which is fine.
        let _ = nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        // Our end only (COMMAND's stays blocking): a catch-up reads until the pipe is empty.
        if let Err(e) = nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK)) {
            tracing::warn!("cannot make a pipe for COMMAND's {name} ({e}): it is not copied");
            continue;
        }
        if fd == libc::STDOUT_FILENO {
            cmd.stdout(Stdio::from(write));
        } else {
            cmd.stderr(Stdio::from(write));
        }
        let tee = nix::sys::stat::fstat(ours)
            .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFIFO);
        if tee {
            grow_pipe(ours);
        }
        streams.push(Stream {
            read,
            dest: fd,
            tee,
        });
    }
    Some(Capture { streams })
}

impl Capture {
    /// Starts the pump once COMMAND runs (the caller drops its copies of the write ends, with
    /// the `Command`, so that COMMAND's exit closes the pipes).
    pub fn start(self) {
        let Some(sink) = SINK.get().cloned() else {
            return;
        };
        if self.streams.is_empty() {
            return;
        }
        let (control_read, control) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("cannot start copying the output: {e}");
                return;
            }
        };
        let (done_tx, done) = mpsc::channel();
        let (ack, caught_up) = mpsc::channel();
        let streams = self.streams;
        let spawned = crate::threads::spawn("log-pump", None, move || {
            pump(streams, &control_read, &ack, &sink);
            drop(done_tx);
        });
        match spawned {
            Ok(_) => {
                threads().pump = Some(Pump {
                    control,
                    caught_up,
                    done,
                })
            }
            Err(e) => tracing::warn!("cannot start copying the output: {e}"),
        }
    }
}

/// How long `catch_up` waits for the pump.
const CATCH_UP_BOUND: Duration = Duration::from_millis(500);

/// Right after COMMAND's end, before podvisor logs it: the pump passes through and queues what
/// is in the pipes now, so that the copy has COMMAND's last output before "child ended".
pub fn catch_up() {
    let t = threads();
    let Some(pump) = t.pump.as_ref() else { return };
    // A late answer to an earlier request that timed out must not stand for this one.
    while pump.caught_up.try_recv().is_ok() {}
    if nix::unistd::write(&pump.control, b"c").is_ok() {
        let _ = pump.caught_up.recv_timeout(CATCH_UP_BOUND);
    }
}

/// After COMMAND's end (and its leftovers'): reads what is left in the pipes (until every
/// writer closed them, at most `DRAIN_BOUND`), so that nothing COMMAND wrote is lost from the
/// passthrough.
pub fn drain() {
    let pump = threads().pump.take();
    if let Some(pump) = pump {
        drop(pump.control);
        // The pump keeps its own deadline; this bound is for a passthrough that cannot be
        // written at all (a reader of podvisor's stdout that stopped reading).
        if let Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) =
            pump.done.recv_timeout(DRAIN_BOUND * 2)
        {
            // Ok(()) is never sent: Disconnected is the pump's end.
            tracing::warn!("the output could not be passed through within {DRAIN_BOUND:?}");
        }
    }
}

/// Writes what is queued and closes the copy (at most `CLOSE_BOUND`).
pub fn close() {
    let Some(sink) = SINK.get() else { return };
    sink.lock().closed = true;
    sink.ready.notify_one();
    let writer = threads().writer.take();
    if let Some(done) = writer {
        let _ = done.recv_timeout(CLOSE_BOUND);
    }
}

/// The most one catch-up reads from a stream (a writer that never stops must not hold it).
const CATCH_UP_MAX: usize = 4 << 20;

/// The pump: pipes -> passthrough -> queue, until both pipes are at their end, or `DRAIN_BOUND`
/// after `control` closed; a byte on `control` asks for a catch-up, answered on `ack`.
fn pump(mut streams: Vec<Stream>, control: &OwnedFd, ack: &mpsc::Sender<()>, sink: &Sink) {
    let mut buf = vec![0u8; CHUNK];
    let mut deadline: Option<Instant> = None;
    while !streams.is_empty() {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    tracing::warn!(
                        "COMMAND's output is still open {DRAIN_BOUND:?} after its end (a process outside the step holds it): not read any further"
                    );
                    return;
                }
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds: Vec<PollFd> = streams
            .iter()
            .map(|s| PollFd::new(s.read.as_fd(), PollFlags::POLLIN))
            .collect();
        if deadline.is_none() {
            fds.push(PollFd::new(control.as_fd(), PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!("cannot poll COMMAND's output: {e}");
                return;
            }
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut catch_up = false;
        if deadline.is_none() && ready.last() == Some(&true) {
            let mut byte = [0u8; 16];
            match nix::unistd::read(control, &mut byte) {
                Ok(0) => deadline = Some(Instant::now() + DRAIN_BOUND),
                Ok(_) => catch_up = true,
                Err(_) => {}
            }
        }
        // `ready` has one entry per stream as they were at the poll.
        let mut i = 0;
        for was_ready in ready
            .iter()
            .take(streams.len())
            .copied()
            .collect::<Vec<_>>()
        {
            let limit = match (catch_up, was_ready) {
                (true, _) => CATCH_UP_MAX,
                // Each stream emptied in turn: what one stream holds stays together.
                (false, true) => CATCH_UP_MAX,
                (false, false) => 0,
            };
            if limit == 0 || copy_some(&mut streams[i], &mut buf, limit, sink) {
                i += 1;
            } else {
                streams.remove(i);
            }
        }
        if catch_up {
            let _ = ack.send(());
        }
    }
}

/// Reads from one stream until it is empty (or `limit` bytes were read), passes it through and
/// queues it; false at the stream's end.
fn copy_some(stream: &mut Stream, buf: &mut [u8], limit: usize, sink: &Sink) -> bool {
    let (fd, dest) = (&stream.read, &stream.dest);
    let mut done = 0;
    while done < limit {
        // A pipe as podvisor's stdout (the container runtime's, usually): tee(2) duplicates what
        // is in COMMAND's pipe into it without copying a byte, and one read consumes the same
        // bytes for the copy. Else (a file, a socket) read, then write.
        // Only for bulk: tee(2) moves whole pipe buffers, and a small one (a line) would take a
        // page slot of the destination that plain writes share; 16 lines would fill a 64 KiB
        // pipe.
        let avail = if stream.tee { available(fd) } else { 0 };
        let bulk = avail >= TEE_MIN;
        let teed = match if bulk {
            tee(fd, *dest, avail.min(buf.len()))
        } else {
            Tee::Unsupported
        } {
            Tee::Done(n) => Some(n),
            Tee::Empty => return true,
            Tee::End => return false,
            Tee::Broken(e) => {
                tracing::debug!("passthrough to fd {dest} failed ({e}): closing it");
                return false;
            }
            Tee::Unsupported => {
                stream.tee &= !bulk;
                None
            }
        };
        if let Some(n) = teed {
            // The bytes are in the pipe (tee saw them); only this thread reads it, straight
            // into the chunk that is queued.
            let mut chunk = sink.buffer(n);
            while chunk.len() < n {
                let left = n - chunk.len();
                let spare = chunk.spare_capacity_mut();
                let want = spare.len().min(left);
                // SAFETY: read(2) writes at most `want` bytes into the spare capacity, and
                // exactly the `k` it returns are then counted as initialised.
                let k = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
                match k {
                    0 => break,
                    // SAFETY: see above; 0 < k <= want.
                    k if k > 0 => unsafe { chunk.set_len(chunk.len() + k as usize) },
                    _ if Errno::last() == Errno::EINTR => {}
                    _ => break,
                }
            }
            sink.push(Chunk::Output(chunk));
            done += n;
            if n >= avail {
                // All that was there: poll says when more comes (no read for EAGAIN).
                return true;
            }
            continue;
        }
        match nix::unistd::read(fd, buf) {
            Ok(0) => return false,
            Ok(n) => {
                done += n;
                let result = pass_through(*dest, &buf[..n]);
                sink.push_output(&buf[..n]);
                if let Err(e) = result {
                    // As if COMMAND wrote there itself: it gets EPIPE (or SIGPIPE) at its next
                    // write once the pipe is closed.
                    tracing::debug!("passthrough to fd {dest} failed ({e}): closing it");
                    return false;
                }
                if n < buf.len() {
                    // A pipe gives all it holds: it is empty now.
                    return true;
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return true,
            Err(e) => {
                tracing::debug!("reading COMMAND's output failed: {e}");
                return false;
            }
        }
    }
    true
}

/// Makes podvisor's stdout or stderr pipe (the container runtime's) hold `PASS_PIPE` bytes when
/// it holds less: the passthrough then moves a flood in a few tee(2) calls and wake-ups per
/// MiB instead of one per 64 KiB (the default size), for podvisor and for the reader alike.
/// Only grown, never shrunk; refused above /proc/sys/fs/pipe-max-size, which is fine.
fn grow_pipe(fd: BorrowedFd) {
    let size = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETPIPE_SZ).unwrap_or(0);
    if (size as usize) < PASS_PIPE {
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PASS_PIPE as _));
    }
}

/// What podvisor's stdout or stderr pipe is grown to (see `grow_pipe`).
const PASS_PIPE: usize = 1 << 20;

/// The least in COMMAND's pipe for tee(2) to be used.
const TEE_MIN: usize = 32 * 1024;

/// Bytes waiting in a pipe (FIONREAD; 0 when it cannot tell).
fn available(fd: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc == 0 {
        n.max(0) as usize
    } else {
        0
    }
}

/// What one tee(2) did.
enum Tee {
    /// Duplicated this many bytes into the destination.
    Done(usize),
    /// COMMAND's pipe is empty for now.
    Empty,
    /// COMMAND's pipe is at its end.
    End,
    /// The destination is gone (EPIPE and the like).
    Broken(Errno),
    /// The destination is not a pipe: read and write instead.
    Unsupported,
}

/// tee(2) from COMMAND's pipe to `dest`, waiting out a full non-blocking `dest` with poll.
fn tee(from: &OwnedFd, dest: RawFd, len: usize) -> Tee {
    loop {
        // SAFETY: tee(2) on two open descriptors; no memory is passed.
        let n = unsafe { libc::tee(from.as_raw_fd(), dest, len, 0) };
        if n > 0 {
            return Tee::Done(n as usize);
        }
        if n == 0 {
            return Tee::End;
        }
        match Errno::last() {
            Errno::EINTR => {}
            Errno::EINVAL => return Tee::Unsupported,
            Errno::EAGAIN => {
                // Our end is non-blocking: EAGAIN is an empty pipe, or a full `dest` that is
                // non-blocking too (shared with another process).
                // SAFETY: `dest` is podvisor's stdout or stderr, open for its whole life.
                let out = unsafe { BorrowedFd::borrow_raw(dest) };
                let mut fds = [
                    PollFd::new(from.as_fd(), PollFlags::POLLIN),
                    PollFd::new(out, PollFlags::POLLOUT),
                ];
                let _ = nix::poll::poll(&mut fds, PollTimeout::ZERO);
                let has = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                if !has(&fds[0]) {
                    return Tee::Empty;
                }
                if !has(&fds[1]) {
                    let mut wait = [PollFd::new(out, PollFlags::POLLOUT)];
                    let _ = nix::poll::poll(&mut wait, PollTimeout::NONE);
                }
            }
            e => return Tee::Broken(e),
        }
    }
}

/// Writes all of `buf` to `dest`, waiting out EAGAIN (a non-blocking descriptor shared with
/// another process) with poll.
fn pass_through(dest: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    // SAFETY: `dest` is podvisor's stdout or stderr, open for its whole life.
    let fd = unsafe { BorrowedFd::borrow_raw(dest) };
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut pfd = [PollFd::new(fd, PollFlags::POLLOUT)];
                match nix::poll::poll(&mut pfd, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Drops reported in the copy, and the episode in progress.
struct Drops {
    /// Bytes dropped and not yet reported.
    bytes: u64,
    /// Why, for the report.
    why: String,
    /// The "dropping" line of this episode made it into the copy.
    announced: bool,
}

/// Queued at once, this much output is a flood (a child writing faster than the copy keeps up).
const FLOOD: u64 = 256 * 1024;

/// The writer's lowest priority, so that a flood's copy takes CPU only when the child does not
/// want it: it falls behind and skips instead (setpriority(2) on a thread id sets that
/// thread's nice value, see sched(7)). For good: without CAP_SYS_NICE it cannot be raised
/// again.
fn lower_priority() {
    // SAFETY: plain system calls; a failure only leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// The writer: queue -> PATH, reporting drops in the copy.
fn writer(sink: &Sink, mut file: Rotating, path: &Path) {
    let mut drops = Drops {
        bytes: 0,
        why: String::new(),
        announced: false,
    };
    let mut warned = false;
    let mut used: Vec<Chunk> = Vec::new();
    let keep = file.bound();
    let mut flooded = false;
    loop {
        let (mut chunks, mut skipped, closed) = {
            let mut q = sink.lock();
            for chunk in used.drain(..) {
                q.recycle(chunk);
            }
            while q.chunks.is_empty() && !q.closed && q.skipped == 0 {
                q.idle = true;
                q = sink.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            q.idle = false;
            let mut chunks = std::mem::take(&mut q.chunks);
            q.bytes = 0;
            let cut = std::mem::take(&mut q.front_cut);
            if let Some(Chunk::Output(b) | Chunk::Own(b)) = chunks.front_mut() {
                b.drain(..cut);
            }
            (chunks, std::mem::take(&mut q.skipped), q.closed)
        };
        let queued: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let flood = skipped > 0 || queued >= FLOOD;
        if flood && !flooded {
            // From the first flood on, the child's CPU comes first (see `lower_priority`);
            // a line-rate child's copy keeps the normal priority and its latency.
            flooded = true;
            lower_priority();
        }
        if skipped > 0 && skipped + queued >= keep {
            // More arrived at once than the copy keeps: written in full, it would have
            // rotated out everything the copy holds, and the skipped bytes with it. The copy
            // starts over: the line that says so, then the newest output, as much as the bound
            // holds (PATH.1 starts with the line, PATH has the rest).
            skipped += keep_newest(&mut chunks, keep.saturating_sub(NOTE_MAX), &mut used);
            // On failure the copy goes on where it was: only bigger than needed.
            if file.restart().is_ok() {
                // Whatever was missing before is gone from the copy with it.
                drops.bytes = 0;
                drops.announced = false;
            }
            let _ = file.write_line(&format!(
                "podvisor: {skipped} bytes of output skipped here: more arrived at once than --log-size keeps"
            ));
        } else if skipped > 0 {
            // A queue of QUEUE_BOUND below a larger --log-size: the volume cannot keep up.
            if drops.bytes == 0 {
                drops.why = "the volume is too slow".into();
            }
            drops.bytes += skipped;
        }
        for chunk in chunks {
            if drops.bytes > 0 && drops.announced {
                // Writes work again: say how much is missing here.
                let line = format!(
                    "podvisor: warning: {} bytes of output missing here ({})",
                    drops.bytes, drops.why
                );
                if file.write_line(&line).is_ok() {
                    drops.bytes = 0;
                    drops.announced = false;
                }
            }
            let result = match &chunk {
                Chunk::Output(b) => file.write(b),
                Chunk::Own(b) => file.write_line(String::from_utf8_lossy(b).trim_end_matches('\n')),
            };
            used.push(chunk);
            if let Err((e, lost)) = result {
                drops.bytes += lost as u64;
                drops.why = e.to_string();
                if !drops.announced {
                    drops.announced = announce(&mut file, &e);
                }
                if !warned {
                    warned = true;
                    // Not through tracing: that would queue more for this very copy.
                    eprintln_quiet(&format!(
                        "podvisor: warning: the copy at {} drops output: {e}",
                        path.display()
                    ));
                }
            }
        }
        if drops.bytes > 0 && !drops.announced && skipped > 0 {
            drops.announced = announce(&mut file, &io::Error::other(drops.why.clone()));
        }
        if closed {
            if drops.bytes > 0 {
                let line = format!(
                    "podvisor: warning: {} bytes of output dropped from this copy at the end ({})",
                    drops.bytes, drops.why
                );
                if file.write_line(&line).is_err() && file.make_room(line.len() as u64) {
                    let _ = file.write_line(&line);
                }
            }
            return;
        }
        if flood {
            // While the flood lasts, a batch at most every FLOOD_PAUSE: what comes meanwhile is
            // mostly skipped, not written (rotation would discard it), and the CPU and memory
            // bandwidth stay the child's.
            let q = sink.lock();
            let _ = sink
                .ready
                .wait_timeout_while(q, FLOOD_PAUSE, |q| !q.closed)
                .map_err(PoisonError::into_inner);
        }
    }
}

/// How long the writer waits between batches during a flood.
const FLOOD_PAUSE: Duration = Duration::from_millis(2);

/// The longest "skipped" line (a 20-digit count).
const NOTE_MAX: u64 = 128;

/// Takes the oldest chunks (and the oldest part of one) off `chunks` so that at most `room`
/// bytes are left, starting at a line's start when one starts near the cut; returns the bytes
/// taken. Whole chunks taken go to `used` for reuse.
fn keep_newest(chunks: &mut VecDeque<Chunk>, room: u64, used: &mut Vec<Chunk>) -> u64 {
    let mut total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let mut taken = 0;
    while total > room {
        let Some(front) = chunks.front_mut() else {
            break;
        };
        let over = (total - room) as usize;
        if front.len() <= over {
            total -= front.len() as u64;
            taken += front.len() as u64;
            if let Some(c) = chunks.pop_front() {
                used.push(c);
            }
            continue;
        }
        let (Chunk::Output(b) | Chunk::Own(b)) = front;
        // A torn first line helps no reader: up to the next line within a page.
        let line = b[over..]
            .iter()
            .take(4096)
            .position(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        let cut = (over + line).min(b.len());
        b.drain(..cut);
        taken += cut as u64;
        total -= cut as u64;
    }
    taken
}

/// Writes the "dropping" line, making room for it on a full volume; whether it made it.
fn announce(file: &mut Rotating, e: &io::Error) -> bool {
    let line = format!("podvisor: warning: this copy drops output from here on: {e}");
    if file.write_line(&line).is_ok() {
        return true;
    }
    file.make_room(line.len() as u64 + 1) && file.write_line(&line).is_ok()
}

/// A line on stderr that may fail silently (stderr may be gone).
fn eprintln_quiet(line: &str) {
    use std::io::Write;
    // One line whatever the path holds, as the log formatter makes every line.
    let _ = writeln!(io::stderr(), "{}", crate::logging::escaped(line));
}
