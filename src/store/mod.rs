//! The storage layer: queues, knowing nothing of the command line. No printing: it
//! returns values and errors, and hands warnings about skipped entries to a callback.
//!
//! The commands reach storage only through the traits of this module: an [`Engine`] is
//! a place where queues live, a [`Queue`] names the operations the commands need (push a
//! batch, take, settle, peek, show, walk, stats, clear, wait for a change), a [`Claim`] is
//! a message taken and held. Their types say nothing of files or connections: a payload
//! is a [`Payload`] (a file, or bytes in memory), a claim's liveness is the engine's
//! (a lock or a lease), and waiting is the engine's [`Waiter`] (inotify, or a database
//! notification). [`local`] is the engine that keeps queues in a spool directory,
//! [`postgres`] the one that keeps them in a PostgreSQL database; an engine is added by implementing these traits, touching no command.

mod error;
pub mod local;
mod payload;
pub mod postgres;
pub mod rate;
pub mod token;

use std::ffi::OsString;
use std::os::fd::BorrowedFd;
use std::time::{Duration, SystemTime};

pub use crate::clock::{LATEST_MS, now_ms};
pub use error::{Error, Result, describe};
pub use payload::{Payload, Sink, read_full};
pub use rate::Rate;

/// A place where queues live: a spool directory, a database.
pub trait Engine {
    /// An open queue of this engine.
    type Queue: Queue;

    /// Opens an existing queue; `Ok(None)` when it does not exist. Creates nothing.
    fn open(&self, name: &str) -> Result<Option<Self::Queue>>;

    /// Opens a queue, creating it (and whatever holds it) when missing.
    fn create(&self, name: &str) -> Result<Self::Queue>;

    /// The names of the queues, sorted.
    fn queues(&self) -> Result<Vec<String>>;

    /// Checks a queue and, with `repair`, mends what it can.
    fn fsck(&self, name: &str, repair: bool) -> Result<Vec<Finding>>;

    /// The environment a command started by `spool run` needs to reach this engine again
    /// (for the local engine, `SPOOL_DIR`).
    fn environment(&self) -> Vec<(&'static str, OsString)>;
}

/// One queue of an engine, open. Every operation a command needs, named for what the
/// user asked.
pub trait Queue {
    /// A message taken by this process and held until it is settled.
    type Claim: Claim;
    /// Messages being pushed, invisible until published.
    type Batch<'q>: Batch
    where
        Self: 'q;
    /// Sleeps until the queue may have changed.
    type Waiter: Waiter;

    /// The queue's name.
    fn name(&self) -> &str;

    /// Starts a push. `many`: more than one message may follow.
    fn stage(&self, many: bool) -> Result<Self::Batch<'_>>;

    /// Takes up to `n` messages, held as `opts` says. Expired messages, and those out of
    /// attempts, become dead letters on the way.
    fn take(&self, n: usize, opts: TakeOptions) -> Result<Vec<Self::Claim>>;

    /// Deletes delivered messages; durable once [`sync_removals`](Self::sync_removals)
    /// returns. Adds to `removed` each one deleted, also when a later one fails.
    fn remove_delivered(&self, done: Vec<Self::Claim>, removed: &mut u64) -> Result<()>;

    /// Makes the deletion of `removed` delivered messages durable.
    fn sync_removals(&self, removed: u64) -> Result<()>;

    /// Returns taken messages that were not delivered, as if never taken.
    fn give_back(&self, undelivered: Vec<Self::Claim>) -> Result<()>;

    /// Ends one of this process's claims as `verdict` says.
    fn settle(&self, claim: Self::Claim, verdict: Verdict<'_>) -> Result<()>;

    /// The payload of a claim opened anew, for another process to read (it must not
    /// share this process's hold on the claim).
    fn payload_for_child(&self, claim: &Self::Claim) -> Result<Payload>;

    /// Acknowledges the claim of `token`: the message is deleted. Returns its id.
    fn ack(&self, token: &str) -> Result<u64>;

    /// Returns the claim of `token` behind the waiting messages, or delayed by
    /// `delay_ms`. Returns its id.
    fn nack(&self, token: &str, delay_ms: Option<u64>) -> Result<u64>;

    /// Renews the lease of the claim of `token` to `lease_ms` from now. Returns its id.
    fn extend(&self, token: &str, lease_ms: u64) -> Result<u64>;

    /// Moves dead letters back behind the waiting messages, attempts reset (`ids` empty:
    /// all). Returns the ids moved and those not found.
    fn requeue(&self, ids: &[u64]) -> Result<(Vec<u64>, Vec<u64>)>;

    /// Calls `each` with up to `n` waiting messages in the order a take would take them,
    /// taking none; stops when `each` returns false. Returns how many it saw.
    fn peek(&self, n: usize, each: impl FnMut(Message) -> Result<bool>) -> Result<usize>;

    /// A message in any state, by claim token or id.
    fn show(&self, what: &str) -> Result<Option<(Info, Payload)>>;

    /// Calls `each` with the metadata of every message of `states` (ready in take order,
    /// delayed by due time, claimed and failed by id) and a way to open its payload
    /// (`None`: gone meanwhile); stops when `each` returns false.
    fn walk(
        &self,
        states: &[State],
        each: impl FnMut(&Info, &dyn Fn() -> Result<Option<Payload>>) -> Result<bool>,
    ) -> Result<()>;

    /// Counts and sizes.
    fn stats(&self) -> Result<Stats>;

    /// How many messages wait (all priorities).
    fn waiting(&self) -> Result<u64>;

    /// Removes the messages of `states` (ready, delayed, failed); returns how many.
    fn clear(&self, states: &[State]) -> Result<u64>;

    /// When a delayed message may next fall due, or a lease end (unix ms), if known.
    fn next_due(&self) -> Result<Option<u64>>;

    /// A waiter that wakes when this queue may have changed.
    fn waiter(&self) -> Self::Waiter;

    /// A name of this queue that no other queue has, on any host, stable while the queue
    /// exists: the source's part of the keys that `relay` gives what it forwards. At most
    /// 32 characters of [`check_key`]'s.
    fn identity(&self) -> Result<String>;
    /// Takes the lock that the one relay from this queue holds while it runs, for as long
    /// as this handle is open; false when another process holds it.
    fn lock_relay(&self) -> Result<bool>;
    /// Whether the queue was removed since it was opened. Its operations then fail, and a
    /// queue made again under its name is another one, to be opened anew: a command that
    /// waits asks this when an operation fails, and goes back to waiting for the queue.
    fn is_gone(&self) -> bool;
}

/// A message taken by this process.
pub trait Claim {
    /// The message's id.
    fn id(&self) -> u64;
    /// Claims made, this one included.
    fn attempts(&self) -> u32;
    /// The token that ack, nack, extend and show take.
    fn token(&self) -> String;
    /// The payload, positioned at its start.
    fn payload(&mut self) -> &mut Payload;
    /// Its priority, 0-9.
    fn priority(&self) -> u8;
    /// When it expires (unix ms), from `--ttl`.
    fn expires(&self) -> Option<u64>;
    /// Its own deduplication key, from `push --key`, if it has one.
    fn key(&self) -> Option<&str>;
}

/// Messages being pushed: each is written through a [`Sink`], and all are published at
/// once, in order. Dropped unpublished, they leave nothing behind.
pub trait Batch {
    /// Writes one more message with `write`, published with the options of `publish`.
    fn add(&mut self, write: impl FnOnce(&mut Sink<'_>) -> Result<()>) -> Result<()>;
    /// Writes one more message with options of its own and, perhaps, a deduplication key
    /// (checked with [`check_key`] by the caller).
    fn add_with(
        &mut self,
        meta: Meta,
        write: impl FnOnce(&mut Sink<'_>) -> Result<()>,
    ) -> Result<()>;
    /// Makes the messages durable and visible, in the order added. A message whose key
    /// is held by a message still in the queue (ready, delayed or claimed; one added
    /// before it in this batch included) is not published: it is listed in
    /// [`Published::duplicates`], with the id of the message that holds the key.
    fn publish(self, opts: PushOptions) -> Result<Published>;
}

/// Sleeps until a queue may have changed. A waiter also wakes on its own after at most
/// [`POLL_INTERVAL`], so that a change it cannot see is found by looking again.
pub trait Waiter: Default {
    /// Sleeps up to `timeout`, or until the queue may have changed (`watch`), or until
    /// one of `extra` is readable; returns a bit set of the readable ones of `extra`.
    /// `Default::default()` is a waiter that only polls (for a queue not made yet).
    fn wait_also(&mut self, timeout: Duration, extra: &[BorrowedFd<'_>], watch: bool) -> u32;
}

/// The longest a waiter sleeps without looking again, whatever it watches.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A waiting message, for peek.
pub struct Message {
    /// Id.
    pub id: u64,
    /// Payload length.
    pub size: u64,
    /// Claims made so far.
    pub attempts: u32,
    /// The payload, positioned at its start.
    pub payload: Payload,
}

/// What a queue name may be, for the error message.
pub const QUEUE_NAME_RULE: &str =
    "a queue name is 1 to 64 characters of A-Z a-z 0-9 . _ - and does not start with '.'";

/// Checks a queue name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`. The same
/// names on every engine, so that a queue keeps its name when it moves.
pub fn is_valid_queue_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A queue name, or the error that says what a queue name may be.
pub fn check_queue_name(name: &str) -> Result<()> {
    if is_valid_queue_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("invalid queue name {:?}", crate::excerpt::cut(name)),
            None,
            QUEUE_NAME_RULE,
        ))
    }
}

/// What a deduplication key may be, for the error message.
pub const KEY_RULE: &str =
    "a key is 1 to 64 characters of A-Z a-z 0-9 . _ - : @ + = , and does not start with '.'";

/// Checks a deduplication key: 1 to 64 of `A-Z a-z 0-9 . _ - : @ + = ,`, not starting
/// with `.`. The same keys on every engine; the local engine names a file after it.
pub fn is_valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && !key.starts_with('.')
        && key.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'.' | b'_' | b'-' | b':' | b'@' | b'+' | b'=' | b',')
        })
}

/// A key, or the error that says what a key may be.
pub fn check_key(key: &str) -> Result<()> {
    if is_valid_key(key) {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("invalid key {:?}", crate::excerpt::cut(key)),
            None,
            KEY_RULE,
        ))
    }
}

/// The id `show` was given (a token has a dot, and is parsed by its engine), or the error
/// that says what `show` takes.
pub fn parse_message_id(what: &str) -> Result<u64> {
    match what.parse() {
        Ok(id) if id > 0 && !what.starts_with('0') => Ok(id),
        _ => Err(Error::invalid(
            format!("message {what:?}"),
            None,
            "expected a message id or a claim token",
        )),
    }
}

/// What a requeue of `ids` returns once `moved` were moved: those, and the ids asked for
/// that were not.
pub(crate) fn moved_and_missing(ids: &[u64], moved: Vec<u64>) -> (Vec<u64>, Vec<u64>) {
    let missing = ids
        .iter()
        .copied()
        .filter(|id| !moved.contains(id))
        .collect();
    (moved, missing)
}

/// One problem that fsck found.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Where: a path, or what names the place in the engine.
    pub place: String,
    /// What is wrong.
    pub problem: String,
    /// What was done about it, when repairing.
    pub repair: Option<String>,
}

/// The states a message can be in, for `list --state` and `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting in a ready lane.
    Ready,
    /// Waiting for its due time.
    Delayed,
    /// Handed out, not yet acknowledged.
    Claimed,
    /// Dead letter.
    Failed,
}

impl State {
    /// All states, in the order `list --state all` shows them.
    pub const ALL: [State; 4] = [State::Ready, State::Delayed, State::Claimed, State::Failed];

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Delayed => "delayed",
            State::Claimed => "claimed",
            State::Failed => "failed",
        }
    }
}

/// How a message is taken.
#[derive(Debug, Clone, Copy)]
pub enum Hold {
    /// By this process, for as long as it lives: pop and run. The claim returns at once
    /// if the holder dies (the local engine holds an flock on the message, PostgreSQL's
    /// an advisory lock of the holder's session); a time limit
    /// is the holder's to enforce.
    Process,
    /// By a lease alone: `claim`. Returns when the lease ends, unless acked.
    Lease { lease_ms: u64 },
}

/// What to take and how.
#[derive(Debug, Clone, Copy)]
pub struct TakeOptions {
    /// How the taken messages are held.
    pub hold: Hold,
    /// Messages already claimed this many times become dead letters instead.
    pub max_attempts: Option<u32>,
}

/// A message's metadata, as `list` and `stats` show it.
#[derive(Debug, Clone)]
pub struct Info {
    /// Its state.
    pub state: State,
    /// Sequence number.
    pub id: u64,
    /// Payload length in bytes.
    pub size: u64,
    /// Enqueue time (in the local engine, the file's modification time, set when it was
    /// written).
    pub enqueued: SystemTime,
    /// Claims made so far.
    pub attempts: u32,
    /// Priority 0-9.
    pub priority: u8,
    /// Due time (delayed), lease deadline (claimed), in unix ms.
    pub until: Option<u64>,
    /// Expiry (unix ms).
    pub expires: Option<u64>,
    /// Why it failed.
    pub reason: Option<String>,
    /// Its deduplication key.
    pub key: Option<String>,
}

/// Counts and sizes of a queue.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Waiting messages (all priorities).
    pub ready: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Enqueue time of the oldest waiting message.
    pub oldest: Option<SystemTime>,
    /// Messages waiting for their due time.
    pub delayed: u64,
    /// Messages handed out and not yet acknowledged.
    pub claimed: u64,
    /// Dead letters.
    pub failed: u64,
    /// The next id to be allocated.
    pub next_id: u64,
    /// The rate of publishing (λ), as last recorded.
    pub published: Rate,
    /// The rate of consumption (R: popped, acked or failed for good), as last recorded.
    pub consumed: Rate,
}

/// How pushed messages are published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// Priority 0-9.
    pub priority: u8,
    /// Not visible before this time (unix ms).
    pub due: Option<u64>,
    /// Becomes a dead letter if not consumed by this time (unix ms).
    pub expires: Option<u64>,
}

/// One message's own options, for a batch whose messages differ (relay, `push --key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Priority, delay, expiry.
    pub opts: PushOptions,
    /// Deduplication key: while a message with this key is in the queue (ready, delayed
    /// or claimed), another is not added.
    pub key: Option<String>,
}

/// A message of a batch that was not added: its key was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    /// Its place in the batch, from 0.
    pub index: usize,
    /// The id of the message in the queue that holds its key.
    pub id: u64,
}

/// Ids published by one push: consecutive runs (first, count); and the messages that
/// were not, being duplicates.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    /// Runs of consecutive ids, in publishing order.
    pub runs: Vec<(u64, u64)>,
    /// Messages whose key was held, in batch order.
    pub duplicates: Vec<Duplicate>,
}

impl Published {
    pub(crate) fn add(&mut self, id: u64) {
        match self.runs.last_mut() {
            Some((first, count)) if *first + *count == id => *count += 1,
            _ => self.runs.push((id, 1)),
        }
    }

    /// Every published id, in order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs
            .iter()
            .flat_map(|&(first, count)| first..first + count)
    }

    /// How many messages were published.
    pub fn len(&self) -> u64 {
        self.runs.iter().map(|r| r.1).sum()
    }

    /// Whether nothing was published.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// How one of this process's claims ends: the verdict that [`Queue::settle`] carries out.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<'a> {
    /// Done: delete it.
    Ack,
    /// Try again at a time the caller chose, so that it can say when: a time not after
    /// now is at once, behind the waiting ones.
    Retry {
        /// Unix milliseconds.
        due_ms: u64,
    },
    /// Give up: make it a dead letter, with a reason word.
    Fail {
        /// `a-z 0-9 -`.
        reason: &'a str,
    },
}
