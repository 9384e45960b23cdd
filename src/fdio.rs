//! Registering owned kernel objects (signalfd, inotify) with tokio's reactor.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

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
