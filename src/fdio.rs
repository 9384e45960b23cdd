//! Registering owned kernel objects (timerfd, inotify) with tokio's reactor, and keeping one
//! open past exit.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixDatagram;

use nix::libc;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// An owned fd-backed object, seen through its raw fd for tokio.
pub struct Owned<T: AsFd>(pub T);

impl<T: AsFd> AsRawFd for Owned<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Registers `inner` for readability.
pub fn readable<T: AsFd>(inner: T) -> io::Result<AsyncFd<Owned<T>>> {
    // SAFETY: `Owned` owns the object, so its fd stays open and the same for the AsyncFd's life.
    unsafe { AsyncFd::register_with_interest(Owned(inner), Interest::READABLE) }.map_err(Into::into)
}

/// Keeps the open file behind `fd` alive past podvisor's own exit, so that the kernel does not
/// release it on the exit path.
///
/// Why: the last close of an inotify instance that holds (or recently held) a watch waits for an
/// fsnotify SRCU grace period, 5-15 ms, and at exit that wait sits between the decision to exit
/// and the parent's waitpid seeing it (exit_files runs before exit_notify). Measured here: a
/// process exiting with a live watch takes 7-15 ms to be reaped, without one 0.1 ms.
///
/// How: `fd` and `keep` are sent with SCM_RIGHTS into `keep`'s own queue and never received, so
/// at exit the pair forms an unreachable cycle of in-flight files. Our exit drops only our own
/// references; the kernel's unix-socket garbage collector frees the cycle moments later in a
/// kernel worker, off our exit path (see unix(7), SCM_RIGHTS, and net/unix/garbage.c).
pub fn release_after_exit(fd: BorrowedFd<'_>) -> io::Result<()> {
    let (keep, send) = UnixDatagram::pair()?;
    let fds = [fd.as_raw_fd(), keep.as_raw_fd()];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: byte.len(),
    };
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: the control buffer outlives sendmsg and is large enough (checked) for one cmsghdr
    // carrying two fds; every pointer handed to the kernel points into live locals.
    unsafe {
        let data_len = std::mem::size_of_val(&fds) as u32;
        let space = libc::CMSG_SPACE(data_len) as usize;
        if space > std::mem::size_of_val(&control) {
            return Err(io::Error::other("control buffer too small"));
        }
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(data_len) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
        if libc::sendmsg(send.as_raw_fd(), &msg, libc::MSG_DONTWAIT) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // `keep` stays open until exit: closing it now would let the collector free the cycle while
    // we still use `fd`, dropping the extra reference that is the whole point.
    std::mem::forget(keep);
    Ok(())
}
