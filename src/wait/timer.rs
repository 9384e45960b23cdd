//! The sleep between a target's attempts, on a timerfd of its own.
//!
//! tokio's timer wheel wakes a 100 ms sleep twice (at the 64 ms slot of its second level, then
//! again for the rest), rounds every deadline up to a whole millisecond, and a new deadline
//! earlier than the runtime's next wake-up costs an extra eventfd write and epoll round: three
//! wake-ups and four system calls per attempt, against a C poller's one `clock_nanosleep`
//! (bench row 5). A timerfd armed at the absolute due time wakes once, to the nanosecond: two
//! system calls per sleep (arm, epoll).
//! Where no timerfd can be made, tokio's sleep is the fallback.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::libc;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::fdio::{self, Owned};

/// One target's sleep.
pub struct Timer {
    fd: Option<AsyncFd<Owned<OwnedFd>>>,
}

impl Timer {
    /// A timerfd, or tokio's timer if the kernel refuses one.
    pub fn new() -> Self {
        // SAFETY: timerfd_create(2) with constants; the fd is owned from here on.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        let fd = (fd >= 0)
            // SAFETY: a fresh fd that nothing else owns.
            .then(|| unsafe { OwnedFd::from_raw_fd(fd) })
            .and_then(|fd| fdio::readable(fd).ok());
        Self { fd }
    }

    /// Returns at `due` (at once if it has passed).
    pub async fn sleep_until(&mut self, due: Instant) {
        let Some(fd) = &self.fd else {
            return tokio::time::sleep_until(due).await;
        };
        loop {
            if arm(fd.as_raw_fd(), due).is_err() {
                return tokio::time::sleep_until(due).await;
            }
            let Ok(mut guard) = fd.readable().await else {
                return tokio::time::sleep_until(due).await;
            };
            // Not read: arming sets a timerfd's count back to zero (timerfd_setup), and epoll
            // (edge-triggered) reports each expiry anew, so the read(2) would only cost a call.
            // The clock says whether this readiness is the due time's, not an older one (armed
            // again then, so that a lost expiry cannot leave this sleep without a wake-up).
            guard.clear_ready();
            if Instant::now() >= due {
                return;
            }
        }
    }
}

/// Arms `fd` for the absolute CLOCK_MONOTONIC time of `due`.
fn arm(fd: i32, due: Instant) -> io::Result<()> {
    // tokio's Instant is opaque: place `due` on CLOCK_MONOTONIC by its distance from now.
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let from_now = due.saturating_duration_since(Instant::now());
    // SAFETY: clock_gettime into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let total = u128::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000
        + u128::try_from(now.tv_nsec).unwrap_or(0)
        + from_now.as_nanos()
        // Never zero: an all-zero it_value disarms the timer instead of firing it.
        + 1;
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (total / 1_000_000_000).min(i64::MAX as u128) as _,
            tv_nsec: (total % 1_000_000_000) as _,
        },
    };
    // SAFETY: a valid itimerspec; no old value asked for.
    let rc =
        unsafe { libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sleeps_until_the_due_time_again_and_again() {
        let mut timer = Timer::new();
        for ms in [20u64, 5, 0, 30] {
            let start = Instant::now();
            let due = start + Duration::from_millis(ms);
            timer.sleep_until(due).await;
            let now = Instant::now();
            assert!(now >= due, "woke {:?} early", due - now);
            assert!(
                now - start < Duration::from_millis(ms + 1000),
                "{:?}",
                now - start
            );
        }
        // A due time in the past returns at once.
        let start = Instant::now();
        timer.sleep_until(start - Duration::from_millis(5)).await;
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
