//! Waiting for a queue to change: inotify where it works, polling where it does not.
//!
//! Every push changes the length of `counter`, every take the length of `head`, and every
//! return, nack or ack moves a name out of `claimed/`: watching those three sees every
//! event that can make a message available. inotify sees nothing of what other machines
//! do on NFS, and may be unavailable (no more watches, other systems), so a waiter also
//! wakes on its own at a bounded interval and looks again.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

use super::layout::{CLAIMED, WATCHED_LENGTHS};

use crate::store::POLL_INTERVAL;

/// Watches one queue.
pub struct Waiter {
    inotify: Option<OwnedFd>,
}

impl Waiter {
    /// Watches the queue at `dir`. Never fails: without inotify it polls.
    pub fn new(dir: &Path) -> Waiter {
        let watch = || -> rustix::io::Result<OwnedFd> {
            let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
            for length in WATCHED_LENGTHS {
                inotify::add_watch(&fd, dir.join(length), WatchFlags::MODIFY)?;
            }
            inotify::add_watch(
                &fd,
                dir.join(CLAIMED),
                WatchFlags::MOVED_FROM | WatchFlags::DELETE,
            )?;
            Ok(fd)
        };
        Waiter {
            inotify: watch().ok(),
        }
    }

    /// A waiter that only polls (the queue does not exist yet).
    pub fn polling() -> Waiter {
        Waiter { inotify: None }
    }

    /// Sleeps until the queue may have changed, or `timeout` (at most the poll interval).
    pub fn wait(&mut self, timeout: Duration) {
        self.wait_also(timeout, &[], true);
    }

    /// Like [`wait`](Self::wait), also waking when one of `extra` is readable; returns a
    /// bit set of the readable ones. `watch` false ignores the queue (waits on `extra`).
    pub fn wait_also(&mut self, timeout: Duration, extra: &[BorrowedFd<'_>], watch: bool) -> u32 {
        let mut timeout = timeout.min(POLL_INTERVAL);
        if self.inotify.is_none() && watch {
            // Polling: look again often, but not in a busy loop.
            timeout = timeout.min(Duration::from_millis(50));
        }
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds: Vec<PollFd<'_>> = extra
            .iter()
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        if let Some(fd) = self.inotify.as_ref().filter(|_| watch) {
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        if fds.is_empty() {
            std::thread::sleep(timeout);
            return 0;
        }
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => {
                let mut ready = 0;
                for (i, fd) in fds.iter().take(extra.len()).enumerate() {
                    if !fd.revents().is_empty() {
                        ready |= 1 << i;
                    }
                }
                drop(fds);
                if let Some(fd) = &self.inotify {
                    // Drain the events: their content does not matter, only that they came.
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = rustix::io::read(fd, &mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                }
                ready
            }
            Ok(_) => 0,
            // A signal (SIGCHLD for `spool run`): return at once, the caller looks again.
            Err(rustix::io::Errno::INTR) => 0,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                0
            }
        }
    }
}
