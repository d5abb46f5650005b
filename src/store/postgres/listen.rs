//! Waking a waiting command by LISTEN/NOTIFY: [`notify`] for the writers, [`Waiter`] for
//! `--wait` and `run`.
//!
//! One channel, `spool`, for every queue of the database; the payload is the queue's
//! name. A channel per queue would put the queue's name in an identifier, which the
//! server cuts at 63 bytes (a queue name may have 64 characters, and two long names would
//! then share a channel). Every change that can make a message available to a taker (a
//! push; a nack, a give-back, a requeue) calls [`notify`] inside its transaction: the
//! server delivers the notification when the transaction commits, and drops it when it
//! rolls back, so a waiter is never woken before the change is visible.
//!
//! The waiter cannot block in the client: it must also wake for the caller's other
//! descriptors (run's signals and its commands' output). So it listens on a thread of its
//! own with a connection of its own, which writes to an eventfd; the waiter polls that
//! eventfd with the caller's descriptors. Invariants:
//!
//! - The thread and its connection start at the first sleep that watches the queue, not
//!   when the waiter is made: a command that finds what it wants at its first look opens
//!   no second connection.
//! - No lost wake-up: once `LISTEN` has taken effect, the thread signals once, so the
//!   caller looks again with the listener in place; a change made between the caller's
//!   last look and the `LISTEN` is seen by that look, any later one is notified.
//! - Polling stays the backstop: the waiter wakes after at most [`POLL_INTERVAL`]
//!   whatever it hears. If the listener cannot connect or `LISTEN`, or loses its
//!   connection, the waiter only polls, silently: a wait never fails because of LISTEN.
//! - The thread ends within a second of the waiter being dropped (nothing else then
//!   holds the eventfd), or with the process.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use postgres::GenericClient;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};

use super::connect::Settings;
use crate::store::{self, POLL_INTERVAL};

/// The channel of every notification of spool (a plain identifier: never quoted).
pub(crate) const CHANNEL: &str = "spool";

/// How often the listening thread checks whether its waiter is still there.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Tells the waiters of `queue` that it may have changed, when the transaction of
/// `client` commits (at once outside a transaction). Call it inside the transaction that
/// makes a message available to a taker. (A push notifies in the statement that moves the
/// queue's counter: push.rs.)
#[allow(dead_code, reason = "for nack, give-back and requeue, still to come")]
pub(crate) fn notify(
    client: &mut impl GenericClient,
    queue: &str,
) -> std::result::Result<(), postgres::Error> {
    // A typed statement: one round trip, with no statement prepared first.
    client
        .execute_typed(
            "SELECT pg_notify($1, $2)",
            &[(&CHANNEL, Type::TEXT), (&queue, Type::TEXT)],
        )
        .map(drop)
}

/// A waiter of one queue: polls, and listens once it first sleeps.
#[derive(Default)]
pub struct Waiter {
    /// What the listening thread needs, until it is started.
    start: Option<(Settings, String)>,
    /// The eventfd the listening thread writes to, once started.
    signal: Option<Arc<OwnedFd>>,
}

impl Waiter {
    /// A waiter of `queue` that will listen with a connection made from `settings`.
    pub(super) fn new(settings: &Settings, queue: &str) -> Waiter {
        Waiter {
            start: Some((settings.clone(), queue.to_string())),
            signal: None,
        }
    }

    /// Starts the listening thread, if not yet; without an eventfd or a thread, the
    /// waiter only polls.
    fn start(&mut self) {
        let Some((settings, queue)) = self.start.take() else {
            return;
        };
        let Ok(fd) = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK) else {
            return;
        };
        let signal = Arc::new(fd);
        let theirs = Arc::clone(&signal);
        let spawned = std::thread::Builder::new()
            .name("spool-listen".into())
            .spawn(move || listen(&settings, &queue, &theirs));
        if spawned.is_ok() {
            self.signal = Some(signal);
        }
    }
}

impl store::Waiter for Waiter {
    fn wait_also(&mut self, timeout: Duration, extra: &[BorrowedFd<'_>], watch: bool) -> u32 {
        if watch {
            self.start();
        }
        let timeout = timeout.min(POLL_INTERVAL);
        let mut fds: Vec<PollFd<'_>> = extra
            .iter()
            .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
            .collect();
        // Not watching the queue: its signal is left for the next sleep that does.
        if let Some(signal) = self.signal.as_deref().filter(|_| watch) {
            fds.push(PollFd::new(signal, PollFlags::IN));
        }
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        // Interrupted by a signal (SIGCHLD for run): the caller looks again.
        if poll(&mut fds, Some(&ts)).is_err() {
            return 0;
        }
        let ready = fds
            .iter()
            .take(extra.len())
            .enumerate()
            .filter(|(_, fd)| !fd.revents().is_empty())
            .fold(0, |bits, (i, _)| bits | (1 << i));
        drop(fds);
        if let Some(signal) = self.signal.as_deref().filter(|_| watch) {
            // Reset the eventfd: how many notifications came does not matter.
            let mut count = [0u8; 8];
            let _ = rustix::io::read(signal, &mut count);
        }
        ready
    }
}

/// The listening thread: connects, LISTENs, signals once, then signals each notification
/// naming `queue`, until the waiter is gone or the connection fails.
fn listen(settings: &Settings, queue: &str, signal: &Arc<OwnedFd>) {
    let Ok(mut client) = settings.connect() else {
        return;
    };
    // CHANNEL is a constant identifier; LISTEN takes no parameters.
    if client.batch_execute(&format!("LISTEN {CHANNEL}")).is_err() {
        return;
    }
    // Listening now: the caller looks again, so nothing committed before is missed.
    wake(signal);
    while Arc::strong_count(signal) > 1 {
        let heard = client.notifications().timeout_iter(CHECK_INTERVAL).next();
        match heard {
            Ok(Some(n)) if n.channel() == CHANNEL && n.payload() == queue => wake(signal),
            Ok(Some(_)) => {}
            Ok(None) if client.is_closed() => return,
            Ok(None) => {}
            Err(_) => return,
        }
    }
}

/// Makes the eventfd readable (a full counter is readable already).
fn wake(signal: &OwnedFd) {
    let _ = rustix::io::write(signal, &1u64.to_ne_bytes());
}
