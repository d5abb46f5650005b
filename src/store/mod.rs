//! The storage layer: queues, knowing nothing of the command line. No printing: it
//! returns values and errors, and hands warnings about skipped entries to a callback.
//!
//! This module holds what every engine shares: the options of the operations and the
//! values they return. [`local`] is the engine that keeps queues in a spool directory.

mod error;

use std::time::SystemTime;
pub mod local;

pub use crate::clock::{LATEST_MS, now_ms};
pub use error::{Error, Result, describe};
pub use local::fsck::Finding;
pub use local::wait;
pub use local::{Claimed, FORMAT, Message, Queue, Spool, Staging, read_full};

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
    /// By this process, which holds an flock on it: pop and run. The claim returns at
    /// once if the holder dies; a time limit is the holder's to enforce.
    Process,
    /// By a lease alone: `claim`. Returns when the lease ends, unless acked.
    Lease { lease_ms: u64 },
}

/// What to take and how.
#[derive(Debug, Clone, Copy)]
pub struct TakeOptions {
    /// How the taken messages are held.
    pub hold: Hold,
    /// Messages already claimed this many times go to failed/ instead.
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
    /// Enqueue time (the file's modification time, set when it was written).
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
    /// Messages consumed (popped or acked) in the last `window` seconds.
    pub consumed: u64,
    /// The window `consumed` covers, in seconds.
    pub window: f64,
}

/// How pushed messages are published.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushOptions {
    /// Priority 0-9.
    pub priority: u8,
    /// Not visible before this time (unix ms).
    pub due: Option<u64>,
    /// Moves to failed/ if not consumed by this time (unix ms).
    pub expires: Option<u64>,
}

/// Ids published by one push: consecutive runs (first, count).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    /// Runs of consecutive ids, in publishing order.
    pub runs: Vec<(u64, u64)>,
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

/// How one of this process's claims ends.
#[derive(Debug, Clone, Copy)]
pub enum Settle<'a> {
    /// Done: delete it.
    Ack,
    /// Try again after a delay (0: at once, behind the waiting ones).
    Retry {
        /// Milliseconds.
        delay_ms: u64,
    },
    /// Give up: move it to failed/ with a reason word.
    Fail {
        /// `a-z 0-9 -`.
        reason: &'a str,
    },
}
