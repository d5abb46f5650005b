//! The one wait loop of the commands: `pop`, `peek` and `claim` with `--wait`, and
//! `spool run`, sleep here until their queue may have changed.
//!
//! A [`Watch`] owns the queue (opened again on each look while it does not exist yet)
//! and its [`Waiter`]. Invariant: the waiter watches the queue from the moment it is
//! opened, before the caller first looks into it, so that no push between the look and
//! the sleep is missed. A sleep never outlasts the poll interval, a deadline the caller
//! gives, or the time the queue's next delayed message comes due. A queue removed while
//! watched ([`Queue::is_gone`]) is dropped, and waited for again as one not made yet.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::store::{Engine, POLL_INTERVAL, Queue, Result, Waiter, now_ms};

/// A queue, perhaps not yet created, and what watches it.
pub(super) struct Watch<'a, E: Engine> {
    engine: &'a E,
    name: &'a str,
    /// Whether to watch the queue once it exists (with inotify), or only to look.
    watching: bool,
    queue: Option<E::Queue>,
    waiter: <E::Queue as Queue>::Waiter,
}

impl<'a, E: Engine> Watch<'a, E> {
    /// The queue `name` of `engine`, not opened yet. `watching` false: the caller only
    /// looks (once), and nothing is set up to watch for nothing.
    pub(super) fn new(engine: &'a E, name: &'a str, watching: bool) -> Watch<'a, E> {
        Watch {
            engine,
            name,
            watching,
            queue: None,
            waiter: Default::default(),
        }
    }

    /// The queue, opened (and watched) now if it was missing; `None` while it does not
    /// exist.
    pub(super) fn queue(&mut self) -> Result<Option<&E::Queue>> {
        if self.queue.is_none() {
            self.queue = self.engine.open(self.name)?;
            if let Some(q) = &self.queue
                && self.watching
            {
                // Watch before looking, so that no push between the two is missed.
                self.waiter = q.waiter();
            }
        }
        Ok(self.queue.as_ref())
    }

    /// Looks into the queue with `look`, opening it first if needed; `Ok(None)` while it
    /// does not exist. When the look fails because the queue was removed meanwhile, and
    /// this watch waits, the queue is dropped: the next look waits for it to be made again.
    pub(super) fn attempt<T>(
        &mut self,
        look: impl FnOnce(&E::Queue) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let watching = self.watching;
        let Some(q) = self.queue()? else {
            return Ok(None);
        };
        match look(q) {
            Err(_) if watching && q.is_gone() => {
                self.forget();
                Ok(None)
            }
            other => other,
        }
    }

    /// Whether the queue is open: it existed at the last look.
    pub(super) fn is_open(&self) -> bool {
        self.queue.is_some()
    }

    /// Drops the queue (it was removed) and what watched it.
    pub(super) fn forget(&mut self) {
        self.queue = None;
        self.waiter = Default::default();
    }

    /// Sleeps until the queue may have changed (unless `watch` is false), one of `extra`
    /// is readable, `until` comes, or a delayed message comes due; at least a millisecond,
    /// at most the poll interval. Returns the bit set of the readable `extra`.
    pub(super) fn sleep(
        &mut self,
        until: Option<Instant>,
        extra: &[BorrowedFd<'_>],
        watch: bool,
    ) -> Result<u32> {
        let mut sleep = POLL_INTERVAL;
        if let Some(until) = until {
            sleep = sleep.min(until.saturating_duration_since(Instant::now()));
        }
        let due = match self.queue.as_ref().map(|q| q.next_due()) {
            Some(Err(_)) if self.queue.as_ref().is_some_and(|q| q.is_gone()) => {
                self.forget();
                None
            }
            other => other.transpose()?.flatten(),
        };
        if let Some(due) = due {
            sleep = sleep.min(Duration::from_millis(due.saturating_sub(now_ms())));
        }
        let sleep = sleep.max(Duration::from_millis(1));
        Ok(self.waiter.wait_also(sleep, extra, watch))
    }

    /// The queue, for a caller that is done waiting: the waiter is left open.
    pub(super) fn into_queue(self) -> Option<E::Queue> {
        // Closing a waiter (an inotify descriptor) can take milliseconds in the kernel:
        // leave it to the end of this short-lived process, after the message is delivered.
        std::mem::forget(self.waiter);
        self.queue
    }
}
