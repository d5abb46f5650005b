//! One queue: a directory of message files, a few counters, and two locks.
//!
//! Layout (format 1; docs/FORMAT.md is the reference):
//!
//! ```text
//! QUEUE/format     "spool-queue 1\n", written last when the queue is created
//! QUEUE/counter    its length is the next id to allocate; flock = producer lock
//! QUEUE/head       its length is a lower bound of the keys in ready/; flock = consumer lock
//! QUEUE/lanes      its length is a bit set of the priority lanes 1-9 that may hold messages
//! QUEUE/due        its length is the earliest due time (unix seconds) in delayed/, 0 if none
//! QUEUE/rate       consumption counts per minute, for stats (16 slots of two u64)
//! QUEUE/tmp/       messages being written: TOKEN (one) or TOKEN.batch/N (many),
//!                  each flocked by its writer; unlocked ones are orphans
//! QUEUE/ready/BUCKET/NAME     waiting messages of priority 0, BUCKET = key / 1000
//! QUEUE/ready-P/BUCKET/NAME   waiting messages of priority P (1-9)
//! QUEUE/delayed/NAME          messages not visible before their due time (the key)
//! QUEUE/claimed/NAME          messages handed out: flocked by a running pop or run,
//!                             or leased (`l` field) by a claim
//! QUEUE/failed/NAME           dead letters, with their reason (`r` field)
//! ```
//!
//! NAME is described in [`super::entry`]: a 20-digit key and optional fields.
//!
//! Invariants:
//! - A key is allocated from the counter and its file renamed into a ready lane while the
//!   producer lock is held, in increasing order; so under the producer lock every allocated
//!   key is either published or abandoned, and a scan of a lane sees a consistent set.
//! - The counter is a file *length*: `ftruncate` is journaled metadata, committed no later
//!   than the rename that publishes the message and the directory fsync after it. So every
//!   key that was ever visible is below the durable counter, and ids are never reused, not
//!   after a power cut and not after `clear`.
//! - No message in `ready/` has a key below `head` (after a crash it may be lower, never
//!   higher; whatever puts a message back below it lowers it first). Pop opens
//!   `ready/BUCKET/HEAD` directly, O(1) in depth. A miss with the head at or above the
//!   counter is an empty lane, known without a scan; only another miss (a gap, a name
//!   with fields) reads a bucket or scans, the scan under both locks, touching bucket
//!   names, not messages.
//! - Consumers never delete a message before it was delivered: pop renames it into
//!   `claimed/` holding an flock on it, writes it out, then unlinks it. A claim whose flock
//!   is free and whose lease (if any) has passed goes back to its place in `ready/`.
//! - Lock order: consumer lock, then producer lock; never the other way.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{FileType, OFlags, Stat};
use rustix::io::Errno;

use super::entry::Entry;
use super::error::{Error, Result};
use super::names;
use super::sys;

mod fsck;
#[cfg(test)]
mod model;
pub use fsck::Finding;

/// The content of a queue's `format` file.
pub const FORMAT: &[u8] = b"spool-queue 1\n";

/// Below this many messages a batch fsyncs each file; above, it flushes the filesystem once.
const SYNCFS_THRESHOLD: usize = 8;
/// How many messages one locked step of a multi-message peek handles.
const CHUNK: usize = 64;
/// Keys per bucket directory.
const BUCKET_SIZE: u64 = 1000;

/// Receives warnings about entries that are skipped.
pub type Warn = Box<dyn Fn(&str)>;

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The latest time spool schedules anything at: 9999-12-31T23:59:59Z, in unix ms. Later
/// deadlines are held to it, so that names and the `due` length stay in range.
pub const LATEST_MS: u64 = 253_402_300_799_000;

/// `ms` milliseconds after `now`, held to [`LATEST_MS`].
fn after(now: u64, ms: u64) -> u64 {
    now.saturating_add(ms).min(LATEST_MS)
}

fn errno_of(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

/// The directory of priority lane `p`.
pub fn lane_dir(p: u8) -> &'static str {
    const LANES: [&str; 10] = [
        "ready", "ready-1", "ready-2", "ready-3", "ready-4", "ready-5", "ready-6", "ready-7",
        "ready-8", "ready-9",
    ];
    LANES[usize::from(p.min(9))]
}

fn bucket_name(b: u64) -> String {
    format!("{b:017}")
}

fn bucket_of(key: u64) -> u64 {
    key / BUCKET_SIZE
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

/// An open queue.
pub struct Queue {
    name: String,
    path: PathBuf,
    dir: OwnedFd,
    /// claimed/, opened once: every take and settle uses it.
    claimed: std::cell::OnceCell<OwnedFd>,
    /// What this process's last look at delayed/ saw: the `due` hint it left (seconds)
    /// and the exact earliest due time (ms). The hint is only to the second and may be
    /// early; while it is unchanged, the exact time says when to look again.
    due_seen: std::cell::Cell<Option<(u64, u64)>>,
    warn: Warn,
    warned: RefCell<HashSet<String>>,
}

/// A message found in a ready lane, opened.
struct Found {
    lane: u8,
    bucket: OwnedFd,
    name: String,
    entry: Entry,
    file: File,
    stat: Stat,
}

/// What a look at one key of lane 0 found.
enum Exact {
    /// The message under that key.
    Found(Box<Found>),
    /// No message under that key.
    Absent,
    /// That key, and every key after it, was never allocated; with its bucket, if open.
    Unallocated(Option<OwnedFd>),
}

/// What a search of a lane found.
enum Lookup {
    /// The first message at or after the key searched from.
    Found(Box<Found>),
    /// None; every key published so far is below `next`.
    Empty { next: u64 },
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

/// A message taken out of a ready lane by this process: renamed into `claimed/` (and
/// flocked, unless held by a lease alone).
pub struct Claimed {
    entry: Entry,
    name: String,
    file: File,
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

/// The producer lock, held while keys are allocated and published.
struct Producer {
    counter: File,
    /// The counter's length: only the holder of the lock changes it.
    length: std::cell::Cell<u64>,
}

/// The consumer lock, held while messages are found and claimed.
struct Consumer {
    head_file: File,
    head: u64,
    written: u64,
}

/// Messages being written, before they are published.
pub struct Staging<'q> {
    queue: &'q Queue,
    tmp: OwnedFd,
    kind: StagingKind,
    count: usize,
    /// Files kept open until publish, to fdatasync them when the batch is small.
    unsynced: Vec<File>,
}

enum StagingKind {
    /// One message: `tmp/TOKEN`, flocked through `file`.
    Single { name: String, file: Option<File> },
    /// Many: `tmp/TOKEN.batch/N`, the directory flocked through `dir`.
    Batch { name: String, dir: File },
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
    fn add(&mut self, id: u64) {
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

/// A claim token as users see it: `ID.HEX`.
pub fn format_token(id: u64, hex: &str) -> String {
    format!("{id}.{hex}")
}

/// Splits a token into id and hex part.
pub fn parse_token(token: &str) -> Option<(u64, &str)> {
    let (id, hex) = token.split_once('.')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id.starts_with('0') {
        return None;
    }
    if hex.is_empty()
        || hex.len() > 32
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    Some((id.parse().ok()?, hex))
}

impl Queue {
    /// Opens the queue directory `name` of `root`; `Ok(None)` when it does not exist (or
    /// was never completely created).
    pub(super) fn open(root: &Path, name: &str, warn: Warn) -> Result<Option<Queue>> {
        let path = root.join(name);
        let root_fd = match rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(Error::io("open spool", root, e)),
        };
        let dir = match sys::open_dir_beneath(root_fd.as_fd(), name) {
            Ok(fd) => fd,
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(Error::io("open queue", &path, e)),
        };
        let queue = Queue::from_dir(name, path, dir, warn);
        if !queue.check_format()? {
            return Ok(None);
        }
        Ok(Some(queue))
    }

    /// Opens the queue `name` of `root`, creating the root and the queue as needed.
    pub(super) fn create(root: &Path, name: &str, warn: Warn) -> Result<Queue> {
        let path = root.join(name);
        let root_fd = open_or_create_root(root)?;
        // Usually it exists: open first, create only when that fails.
        let dir = match sys::open_dir_beneath(root_fd.as_fd(), name) {
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => {
                let created = sys::make_dir(root_fd.as_fd(), name)
                    .map_err(|e| Error::io("create queue", &path, e))?;
                if created {
                    sys::fsync(&root_fd).map_err(|e| Error::io("fsync", root, e))?;
                }
                sys::open_dir_beneath(root_fd.as_fd(), name)
            }
            other => other,
        }
        .map_err(|e| Error::io("open queue", &path, e))?;
        let queue = Queue::from_dir(name, path, dir, warn);
        if !queue.check_format()? {
            queue.initialize()?;
        }
        Ok(queue)
    }

    fn from_dir(name: &str, path: PathBuf, dir: OwnedFd, warn: Warn) -> Queue {
        Queue {
            name: name.to_string(),
            path,
            dir,
            claimed: std::cell::OnceCell::new(),
            due_seen: std::cell::Cell::new(None),
            warn,
            warned: RefCell::new(HashSet::new()),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    fn warn_once(&self, rel: &str, what: &str) {
        if self.warned.borrow_mut().insert(rel.to_string()) {
            (self.warn)(&format!("skipping {}: {what}", self.at(rel).display()));
        }
    }

    /// True when the format file is there and ours; false when it is missing.
    fn check_format(&self) -> Result<bool> {
        let fd = match sys::open_beneath(self.dir(), "format", OFlags::RDONLY | OFlags::NONBLOCK, 0)
        {
            Ok(fd) => fd,
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(Error::io("open", self.at("format"), e)),
        };
        let mut file = File::from(fd);
        let mut buf = [0u8; 64];
        // One read is enough for the small regular file it should be: such a read returns
        // less than asked only at the end of the file. Anything else is looked at closely.
        if let Ok(n) = file.read(&mut buf)
            && &buf[..n] == FORMAT
        {
            return Ok(true);
        }
        let st = sys::stat_fd(&file).map_err(|e| Error::io("stat", self.at("format"), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::invalid(
                "read",
                Some(&self.at("format")),
                "not a regular file",
            ));
        }
        let n = std::io::Seek::rewind(&mut file)
            .and_then(|()| read_full(&mut file, &mut buf))
            .map_err(|e| Error::io("read", self.at("format"), e))?;
        if &buf[..n] == FORMAT {
            Ok(true)
        } else {
            Err(Error::invalid(
                "read",
                Some(&self.at("format")),
                format!(
                    "unsupported queue format {:?} (this spool reads {:?})",
                    String::from_utf8_lossy(&buf[..n]).trim_end(),
                    String::from_utf8_lossy(FORMAT).trim_end()
                ),
            ))
        }
    }

    /// Creates the queue's files; safe to run concurrently and again after a crash.
    fn initialize(&self) -> Result<()> {
        for sub in ["tmp", "ready", "delayed", "claimed", "failed"] {
            sys::make_dir(self.dir(), sub).map_err(|e| Error::io("create", self.at(sub), e))?;
        }
        self.open_length_file("rate", true)?;
        for counter in ["counter", "head"] {
            let file = self.open_length_file(counter, true)?;
            file.lock()
                .map_err(|e| Error::io("lock", self.at(counter), e))?;
            if length(&file).map_err(|e| Error::io("stat", self.at(counter), e))? == 0 {
                sys::set_len(&file, 1).map_err(|e| Error::io("write", self.at(counter), e))?;
            }
        }
        // The format file goes last, published like a message: whoever sees it sees a
        // complete queue.
        let tmp = self.open_dir("tmp")?;
        let (name, mut file) = self.create_locked(&tmp, "format.", false)?;
        let tmp_path = self.at(&format!("tmp/{name}"));
        file.write_all(FORMAT)
            .map_err(|e| Error::io("write", &tmp_path, e))?;
        sys::fdatasync(&file).map_err(|e| Error::io("fsync", &tmp_path, e))?;
        sys::check_close(&file).map_err(|e| Error::io("close", &tmp_path, e))?;
        match sys::rename_noreplace(tmp.as_fd(), &name, self.dir(), "format") {
            Ok(()) => {}
            Err(e) if errno_of(&e) == Some(Errno::EXIST) => {
                let _ = sys::remove_file(tmp.as_fd(), &name);
            }
            Err(e) => return Err(Error::io("rename", &tmp_path, e)),
        }
        for sub in ["tmp", "ready", "delayed", "claimed", "failed"] {
            let fd = self.open_dir(sub)?;
            sys::fsync(&fd).map_err(|e| Error::io("fsync", self.at(sub), e))?;
        }
        sys::fsync(self.dir()).map_err(|e| Error::io("fsync", &self.path, e))?;
        if !self.check_format()? {
            return Err(Error::invalid(
                "create",
                Some(&self.at("format")),
                "format file vanished",
            ));
        }
        Ok(())
    }

    fn open_dir(&self, rel: &str) -> Result<OwnedFd> {
        sys::open_dir_beneath(self.dir(), rel).map_err(|e| Error::io("open", self.at(rel), e))
    }

    /// Opens a state directory, creating it if this queue predates it.
    fn state_dir(&self, rel: &str) -> Result<OwnedFd> {
        match sys::open_dir_beneath(self.dir(), rel) {
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => {
                sys::make_dir(self.dir(), rel).map_err(|e| Error::io("create", self.at(rel), e))?;
                sys::fsync(self.dir()).map_err(|e| Error::io("fsync", &self.path, e))?;
                self.open_dir(rel)
            }
            other => other.map_err(|e| Error::io("open", self.at(rel), e)),
        }
    }

    /// claimed/, opened on first use.
    fn claimed_dir(&self) -> Result<BorrowedFd<'_>> {
        if self.claimed.get().is_none() {
            let fd = self.state_dir("claimed")?;
            let _ = self.claimed.set(fd);
        }
        Ok(self.claimed.get().expect("set above").as_fd())
    }

    /// Opens one of the files whose length is a number (counter, head, lanes, due).
    fn open_length_file(&self, rel: &str, create: bool) -> Result<File> {
        let flags = if create {
            OFlags::RDWR | OFlags::CREATE
        } else {
            OFlags::RDWR
        };
        let mode = if create { sys::FILE_MODE } else { 0 }; // openat2 refuses a mode without O_CREAT
        let fd = sys::open_beneath(self.dir(), rel, flags | OFlags::NONBLOCK, mode)
            .map_err(|e| Error::io("open", self.at(rel), e))?;
        let st = sys::stat_fd(&fd).map_err(|e| Error::io("stat", self.at(rel), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::invalid(
                "open",
                Some(&self.at(rel)),
                "not a regular file",
            ));
        }
        if create {
            rustix::fs::fchmod(&fd, rustix::fs::Mode::from_bits_truncate(sys::FILE_MODE))
                .map_err(|e| Error::io("chmod", self.at(rel), e))?;
        }
        Ok(File::from(fd))
    }

    /// The value of a length file of the queue directory (0 when missing), in one stat.
    /// The counter's length, read without its lock; a missing counter is an error (a
    /// queue is created with one), not an empty queue.
    fn counter_length(&self) -> Result<u64> {
        self.stat_length("counter", None)
    }

    fn read_length(&self, rel: &str) -> Result<u64> {
        self.stat_length(rel, Some(0))
    }

    /// The length of the length file `rel`, in one stat; `missing` is its value when it
    /// does not exist (`None`: that is an error).
    fn stat_length(&self, rel: &str, missing: Option<u64>) -> Result<u64> {
        match sys::stat_at(self.dir(), rel) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                Ok(st.st_size as u64)
            }
            Ok(_) => Err(Error::invalid(
                "stat",
                Some(&self.at(rel)),
                "not a regular file",
            )),
            Err(e) => match missing {
                Some(value) if errno_of(&e) == Some(Errno::NOENT) => Ok(value),
                _ => Err(Error::io("stat", self.at(rel), e)),
            },
        }
    }

    fn write_length(&self, rel: &str, value: u64) -> Result<()> {
        let f = self.open_length_file(rel, true)?;
        sys::set_len(&f, value).map_err(|e| Error::io("write", self.at(rel), e))
    }

    /// Opens the length file `rel` (counter, head) and locks it; returns it and its
    /// length, read under the lock. Its type is checked then too: opened `O_NONBLOCK`, a
    /// FIFO or a device in its place neither blocks the open nor takes the lock for long.
    fn lock_length_file(&self, rel: &str) -> Result<(File, u64)> {
        let fd = sys::open_beneath(self.dir(), rel, OFlags::RDWR | OFlags::NONBLOCK, 0)
            .map_err(|e| Error::io("open", self.at(rel), e))?;
        let file = File::from(fd);
        file.lock()
            .map_err(|e| Error::io("lock", self.at(rel), e))?;
        let st = sys::stat_fd(&file).map_err(|e| Error::io("stat", self.at(rel), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::invalid(
                "open",
                Some(&self.at(rel)),
                "not a regular file",
            ));
        }
        Ok((file, st.st_size as u64))
    }

    fn lock_producer(&self) -> Result<Producer> {
        let (counter, length) = self.lock_length_file("counter")?;
        Ok(Producer {
            counter,
            length: std::cell::Cell::new(length),
        })
    }

    fn next_key(&self, p: &Producer) -> Result<u64> {
        Ok(p.length.get().max(1))
    }

    fn set_next_key(&self, p: &Producer, next: u64) -> Result<()> {
        sys::set_len(&p.counter, next).map_err(|e| Error::io("write", self.at("counter"), e))?;
        p.length.set(next);
        Ok(())
    }

    /// The next key to allocate (producer lock held): the counter's, unless the counter is
    /// behind the head, which a sound queue never is (a restored or damaged one may be).
    /// Keys below the head would go where no consumer looks: allocation starts at the head.
    fn free_key(&self, p: &Producer) -> Result<u64> {
        let next = self.next_key(p)?;
        let head = self.read_length("head")?;
        if next < head {
            (self.warn)(&format!(
                "{}: counter was behind the head; skipping ahead",
                self.at("counter").display()
            ));
            return Ok(head);
        }
        Ok(next)
    }

    /// Allocates one key (producer lock held).
    fn allocate(&self, p: &Producer) -> Result<u64> {
        let key = self.free_key(p)?;
        self.set_next_key(p, key + 1)?;
        Ok(key)
    }

    fn lock_consumer(&self) -> Result<Consumer> {
        let (head_file, head) = self.lock_length_file("head")?;
        Ok(Consumer {
            head_file,
            head,
            written: head,
        })
    }

    fn save_head(&self, c: &mut Consumer) -> Result<()> {
        if c.head != c.written {
            sys::set_len(&c.head_file, c.head)
                .map_err(|e| Error::io("write", self.at("head"), e))?;
            c.written = c.head;
        }
        Ok(())
    }

    /// Marks priority lane `p` as possibly non-empty (producer lock held).
    fn mark_lane(&self, p: u8) -> Result<()> {
        if p == 0 {
            return Ok(());
        }
        let lanes = self.read_length("lanes")?;
        let bit = 1u64 << p;
        if lanes & bit == 0 {
            self.write_length("lanes", lanes | bit)?;
        }
        Ok(())
    }

    /// Lowers the due hint to `due_ms` if it is earlier (producer lock held).
    fn mark_due(&self, due_ms: u64) -> Result<()> {
        let secs = (due_ms / 1000).max(1);
        let current = self.read_length("due")?;
        if current == 0 || secs < current {
            self.write_length("due", secs)?;
        }
        Ok(())
    }

    /// When a delayed message may next be due (unix ms), if any: the hint, or later the
    /// exact time this process saw when it last looked.
    pub fn next_due(&self) -> Result<Option<u64>> {
        let hint = match self.read_length("due")? {
            0 => return Ok(None),
            s => s,
        };
        Ok(Some(match self.due_seen.get() {
            Some((seen_hint, exact)) if seen_hint == hint => exact,
            _ => hint * 1000,
        }))
    }

    /// Adds `n` consumed messages to this minute's count (consumer lock held).
    fn count_consumed(&self, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        let file = match self.open_length_file("rate", false) {
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                self.open_length_file("rate", true)?
            }
            other => other?,
        };
        // Its own lock: acks and pops update it without the consumer lock.
        file.lock()
            .map_err(|e| Error::io("lock", self.at("rate"), e))?;
        let minute = now_ms() / 60_000;
        let slot = (minute % 16) * 16;
        let mut buf = [0u8; 16];
        let got = file
            .read_at(&mut buf, slot)
            .map_err(|e| Error::io("read", self.at("rate"), e))?;
        let (m, mut count) = if got == 16 {
            (
                u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(buf[8..].try_into().expect("8 bytes")),
            )
        } else {
            (0, 0)
        };
        if m != minute {
            count = 0;
        }
        count += n;
        buf[..8].copy_from_slice(&minute.to_le_bytes());
        buf[8..].copy_from_slice(&count.to_le_bytes());
        file.write_all_at(&buf, slot)
            .map_err(|e| Error::io("write", self.at("rate"), e))
    }

    /// Messages consumed over the last few minutes, and the window in seconds.
    fn consumed_recently(&self) -> Result<(u64, f64)> {
        use std::os::unix::fs::FileExt;
        const MINUTES: u64 = 5;
        let now = now_ms();
        let minute = now / 60_000;
        let window = (MINUTES - 1) as f64 * 60.0 + (now % 60_000) as f64 / 1000.0;
        let file = match self.open_length_file("rate", false) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                return Ok((0, window));
            }
            Err(e) => return Err(e),
        };
        let mut buf = [0u8; 256];
        let n = file
            .read_at(&mut buf, 0)
            .map_err(|e| Error::io("read", self.at("rate"), e))?;
        let mut total = 0;
        for slot in buf[..n - n % 16].chunks(16) {
            let m = u64::from_le_bytes(slot[..8].try_into().expect("8 bytes"));
            if m <= minute && minute - m < MINUTES {
                total += u64::from_le_bytes(slot[8..].try_into().expect("8 bytes"));
            }
        }
        Ok((total, window))
    }

    // ----- push -----

    /// Starts writing messages. `many` chooses a batch directory (for more than one).
    pub fn stage(&self, many: bool) -> Result<Staging<'_>> {
        let tmp = self.open_dir("tmp")?;
        let kind = if many {
            let (name, dir) = self.create_locked(&tmp, "", true)?;
            StagingKind::Batch { name, dir }
        } else {
            StagingKind::Single {
                name: String::new(),
                file: None,
            }
        };
        Ok(Staging {
            queue: self,
            tmp,
            kind,
            count: 0,
            unsynced: Vec::new(),
        })
    }

    /// Creates `tmp/PREFIX TOKEN` (a file) or `tmp/TOKEN.batch` (a directory) and flocks it.
    /// A sweeper may take an unlocked entry for an orphan in the instant between create
    /// and lock; then it is gone or locked, and we start again with a new name.
    fn create_locked(&self, tmp: &OwnedFd, prefix: &str, dir: bool) -> Result<(String, File)> {
        for _ in 0..8 {
            let token = names::token();
            let (name, lock) = if dir {
                let name = format!("{prefix}{token}.batch");
                sys::make_dir(tmp.as_fd(), &name)
                    .map_err(|e| Error::io("create", self.at(&format!("tmp/{name}")), e))?;
                match sys::open_dir_beneath(tmp.as_fd(), &name) {
                    Ok(fd) => (name, File::from(fd)),
                    Err(e) if errno_of(&e) == Some(Errno::NOENT) => continue,
                    Err(e) => return Err(Error::io("open", self.at(&format!("tmp/{name}")), e)),
                }
            } else {
                let name = format!("{prefix}{token}");
                let file = sys::create_exclusive(tmp.as_fd(), &name, false)
                    .map_err(|e| Error::io("create", self.at(&format!("tmp/{name}")), e))?;
                (name, file)
            };
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io("lock", self.at(&format!("tmp/{name}")), e));
                }
            }
            let st = sys::stat_fd(&lock)
                .map_err(|e| Error::io("stat", self.at(&format!("tmp/{name}")), e))?;
            if st.st_nlink == 0 {
                continue;
            }
            return Ok((name, lock));
        }
        Err(Error::invalid(
            "create",
            Some(&self.at("tmp")),
            "temporary files keep vanishing",
        ))
    }

    /// The lane ran dry: a good moment to remove what crashed writers left in tmp/, when
    /// there is anything there (only then is the producer lock taken).
    fn sweep_tmp_if_any(&self) -> Result<()> {
        let (tmp, names) = self.tmp_names()?;
        if !names.is_empty() {
            // Listed before the lock: what came since is being written, what went since
            // is skipped.
            let _producer = self.lock_producer()?;
            self.sweep_names(&tmp, names)?;
        }
        Ok(())
    }

    /// `tmp/`, open, and the names in it.
    fn tmp_names(&self) -> Result<(OwnedFd, Vec<String>)> {
        let tmp = self.open_dir("tmp")?;
        let names = sys::read_names(&tmp).map_err(|e| Error::io("read", self.at("tmp"), e))?;
        Ok((tmp, names))
    }

    /// Removes orphans from `tmp/`: entries whose writer died (their flock is free).
    /// Producer lock held: a pusher unlocks its file once it holds that lock, just before
    /// publishing it, so that no published message is ever seen locked.
    fn sweep_tmp(&self) -> Result<()> {
        let (tmp, names) = self.tmp_names()?;
        self.sweep_names(&tmp, names)
    }

    /// [`Self::sweep_tmp`] of the entries `names` of `tmp_fd`.
    fn sweep_names(&self, tmp_fd: &OwnedFd, names: Vec<String>) -> Result<()> {
        let tmp = tmp_fd.as_fd();
        for name in names {
            let rel = format!("tmp/{name}");
            let hex = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
            let ours = hex(&name)
                || name.strip_prefix("format.").is_some_and(hex)
                || name.strip_suffix(".batch").is_some_and(hex);
            if !ours {
                self.warn_once(&rel, "not a name spool writes");
                continue;
            }
            let is_dir = match sys::stat_at(tmp, &name) {
                Ok(st) if sys::is_plain_file(&st) => false,
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => true,
                Ok(st) => {
                    self.warn_once(&rel, sys::describe_entry(&st));
                    continue;
                }
                Err(_) => continue,
            };
            let Ok(fd) = sys::open_beneath(tmp, &name, OFlags::RDONLY | OFlags::NONBLOCK, 0) else {
                continue;
            };
            let file = File::from(fd);
            if file.try_lock().is_err() {
                continue; // its writer is alive
            }
            let st = sys::stat_fd(&file).map_err(|e| Error::io("stat", self.at(&rel), e))?;
            if st.st_nlink == 0 {
                continue;
            }
            if is_dir && name.ends_with(".batch") {
                let inner = sys::read_names(
                    sys::open_dir_beneath(file.as_fd(), ".")
                        .map_err(|e| Error::io("open", self.at(&rel), e))?,
                )
                .map_err(|e| Error::io("read", self.at(&rel), e))?;
                for entry in inner {
                    let plain =
                        sys::stat_at(file.as_fd(), &entry).is_ok_and(|st| sys::is_plain_file(&st));
                    if plain && entry.bytes().all(|b| b.is_ascii_digit()) {
                        let _ = sys::remove_file(file.as_fd(), &entry);
                    } else {
                        self.warn_once(&format!("{rel}/{entry}"), "not a name spool writes");
                    }
                }
                let _ = sys::remove_dir(tmp, &name);
            } else if !is_dir {
                let _ = sys::remove_file(tmp, &name);
            } else {
                self.warn_once(&rel, "a directory spool did not write");
            }
        }
        Ok(())
    }

    /// Opens bucket `b` of lane `lane`; `None` when it does not exist.
    fn open_bucket(&self, lane: u8, b: u64) -> Result<Option<OwnedFd>> {
        let rel = format!("{}/{}", lane_dir(lane), bucket_name(b));
        match sys::open_dir_beneath(self.dir(), &rel) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => Ok(None),
            Err(e) if matches!(errno_of(&e), Some(Errno::LOOP) | Some(Errno::NOTDIR)) => {
                self.warn_once(&rel, "not a directory spool wrote");
                Ok(None)
            }
            Err(e) => Err(Error::io("open", self.at(&rel), e)),
        }
    }

    /// Opens bucket `b` of lane `lane`, creating the lane and the bucket when missing.
    /// Producer lock held (or consumer lock, for returns: buckets are only removed under it).
    fn make_bucket(&self, lane: u8, b: u64) -> Result<OwnedFd> {
        if let Some(fd) = self.open_bucket(lane, b)? {
            return Ok(fd);
        }
        let lane_fd = self.state_dir(lane_dir(lane))?;
        let rel = format!("{}/{}", lane_dir(lane), bucket_name(b));
        sys::make_dir(lane_fd.as_fd(), &bucket_name(b))
            .map_err(|e| Error::io("create", self.at(&rel), e))?;
        sys::fsync(&lane_fd).map_err(|e| Error::io("fsync", self.at(lane_dir(lane)), e))?;
        self.open_dir(&rel)
    }

    /// Moves `name` from `from` to `to_name` in `to`, never replacing; `Ok(false)` when
    /// the source is gone (someone else moved it first).
    fn move_entry(
        &self,
        from: BorrowedFd<'_>,
        from_rel: &str,
        name: &str,
        to: BorrowedFd<'_>,
        to_name: &str,
    ) -> Result<bool> {
        match sys::rename_noreplace(from, name, to, to_name) {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => Ok(false),
            Err(e) => Err(Error::io(
                "rename",
                self.at(&format!("{from_rel}/{name}")),
                e,
            )),
        }
    }

    // ----- finding messages -----

    /// Opens the ready message `name` in `bucket` if it is a plain file; warns about junk.
    /// Opens the ready message `name` of `bucket` if it is a plain file (warning about
    /// junk). The bucket moves into what is found, or is handed back: no descriptor is
    /// duplicated on the way of a pop.
    fn open_ready(
        &self,
        lane: u8,
        bucket: OwnedFd,
        name: &str,
        entry: Entry,
    ) -> Result<Result<Box<Found>, OwnedFd>> {
        let rel = format!(
            "{}/{}/{name}",
            lane_dir(lane),
            bucket_name(bucket_of(entry.key))
        );
        let Some((file, stat)) = self.open_plain(&bucket, name, &rel)? else {
            return Ok(Err(bucket));
        };
        Ok(Ok(Box::new(Found {
            lane,
            bucket,
            name: name.to_string(),
            entry,
            file,
            stat,
        })))
    }

    /// Whether `name` of `dir` is a plain file (warning about it if not): checked before
    /// moving an entry that is not opened first.
    fn is_plain_entry(&self, dir: BorrowedFd<'_>, rel: &str, name: &str) -> Result<bool> {
        match sys::stat_at(dir, name) {
            Ok(st) if sys::is_plain_file(&st) => Ok(true),
            Ok(st) => {
                self.warn_once(&format!("{rel}/{name}"), sys::describe_entry(&st));
                Ok(false)
            }
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => Ok(false),
            Err(e) => Err(Error::io("stat", self.at(&format!("{rel}/{name}")), e)),
        }
    }

    /// Opens `name` of `dir` (at `rel`, for messages) if it is a plain file: a regular
    /// file with one link, opened without following a symlink or blocking on a FIFO.
    /// Anything else is warned about and `None`, as is a file that is gone.
    fn open_plain(&self, dir: impl AsFd, name: &str, rel: &str) -> Result<Option<(File, Stat)>> {
        let fd = match sys::open_beneath(dir.as_fd(), name, OFlags::RDONLY | OFlags::NONBLOCK, 0) {
            Ok(fd) => fd,
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => return Ok(None),
            Err(e)
                if matches!(
                    errno_of(&e),
                    Some(Errno::LOOP) | Some(Errno::NXIO) | Some(Errno::ISDIR)
                ) =>
            {
                self.warn_once(rel, "not a regular file");
                return Ok(None);
            }
            Err(e) => return Err(Error::io("open", self.at(rel), e)),
        };
        let stat = sys::stat_fd(&fd).map_err(|e| Error::io("stat", self.at(rel), e))?;
        if !sys::is_plain_file(&stat) {
            self.warn_once(rel, sys::describe_entry(&stat));
            return Ok(None);
        }
        Ok(Some((File::from(fd), stat)))
    }

    /// Reads the names of a directory, parsed; junk is warned about and left out.
    fn entries(&self, dir: impl AsFd, rel: &str) -> Result<Vec<(String, Entry)>> {
        let names = sys::read_names(dir).map_err(|e| Error::io("read", self.at(rel), e))?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match Entry::parse(&name) {
                Some(e) => out.push((name, e)),
                None => self.warn_once(&format!("{rel}/{name}"), "not a name spool writes"),
            }
        }
        Ok(out)
    }

    /// The sorted bucket numbers of lane `lane` at or above `lower`.
    fn buckets(&self, lane: u8, lower: u64) -> Result<Option<(OwnedFd, Vec<u64>)>> {
        let rel = lane_dir(lane);
        let fd = match sys::open_dir_beneath(self.dir(), rel) {
            Ok(fd) => fd,
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(Error::io("open", self.at(rel), e)),
        };
        let mut buckets = Vec::new();
        let names = sys::read_names(
            fd.try_clone()
                .map_err(|e| Error::io("dup", self.at(rel), e))?,
        )
        .map_err(|e| Error::io("read", self.at(rel), e))?;
        for name in names {
            match names::parse_bucket(&name) {
                Some(b) if b >= bucket_of(lower) => buckets.push(b),
                Some(_) => {}
                None => self.warn_once(&format!("{rel}/{name}"), "not a bucket spool wrote"),
            }
        }
        buckets.sort_unstable();
        Ok(Some((fd, buckets)))
    }

    /// The message keyed `key` in lane 0, found without a scan: by its plain name, else
    /// in a read of its one bucket (names with fields), unless the counter says that no
    /// key from `key` on was ever allocated.
    fn find_exact(&self, key: u64) -> Result<Exact> {
        // Every key in lane 0 is below the counter. A producer moves the counter before
        // its renames, so a key it allocated is never taken for unallocated.
        let unallocated = || -> Result<bool> { Ok(key >= self.counter_length()?) };
        let Some(bucket) = self.open_bucket(0, bucket_of(key))? else {
            return Ok(if unallocated()? {
                Exact::Unallocated(None)
            } else {
                Exact::Absent
            });
        };
        let plain = Entry::fresh(key);
        let bucket = match self.open_ready(0, bucket, &plain.name(), plain)? {
            Ok(found) => return Ok(Exact::Found(found)),
            Err(bucket) => bucket,
        };
        if unallocated()? {
            return Ok(Exact::Unallocated(Some(bucket)));
        }
        let rel = format!("ready/{}", bucket_name(bucket_of(key)));
        for (name, entry) in self.entries(&bucket, &rel)? {
            if entry.key == key {
                return Ok(match self.open_ready(0, bucket, &name, entry)? {
                    Ok(found) => Exact::Found(found),
                    Err(_) => Exact::Absent,
                });
            }
        }
        Ok(Exact::Absent)
    }

    /// Whether lane 0 may hold anything, by its listings (no lock): any bucket but
    /// BUCKET(from), or any entry in that one. In a sound queue with the head at `from`
    /// and nothing allocated from there on, that bucket is empty and the only one; what
    /// else is there (a counter behind its messages, a bucket emptied by a crash) is left
    /// to the scan, which finds it, or tidies it away.
    /// `bucket`: BUCKET(from), if [`Self::find_exact`] opened it.
    fn lane0_may_hold(&self, from: u64, bucket: Option<&OwnedFd>) -> Result<bool> {
        let Some((_, buckets)) = self.buckets(0, 0)? else {
            return Ok(false);
        };
        for b in buckets {
            if b != bucket_of(from) {
                return Ok(true);
            }
            let opened;
            let bucket = match bucket {
                Some(fd) => fd,
                None => match self.open_bucket(0, b)? {
                    Some(fd) => {
                        opened = fd;
                        &opened
                    }
                    None => continue,
                },
            };
            let rel = format!("ready/{}", bucket_name(b));
            if !self.entries(bucket, &rel)?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Scans lane `lane` for its first message keyed at least `lower`, holding the producer
    /// lock so that no publication is half done. `tidy` removes emptied buckets and, when
    /// the lane is empty, clears its bit and sweeps tmp/.
    fn scan_lane(&self, lane: u8, lower: u64, tidy: bool) -> Result<Lookup> {
        let producer = self.lock_producer()?;
        let next = self.next_key(&producer)?;
        if let Some((lane_fd, buckets)) = self.buckets(lane, lower)? {
            for b in buckets {
                let Some(bucket) = self.open_bucket(lane, b)? else {
                    continue;
                };
                let rel = format!("{}/{}", lane_dir(lane), bucket_name(b));
                let all = self.entries(&bucket, &rel)?;
                let empty = all.is_empty();
                let mut mine: Vec<(String, Entry)> = all
                    .into_iter()
                    .filter(|(name, e)| {
                        let ok = bucket_of(e.key) == b && e.id <= e.key;
                        if !ok {
                            self.warn_once(
                                &format!("{rel}/{name}"),
                                "not a name spool writes here",
                            );
                        }
                        ok && e.key >= lower
                    })
                    .collect();
                mine.sort_unstable_by_key(|(_, e)| e.key);
                let mut bucket = bucket;
                for (name, entry) in mine {
                    match self.open_ready(lane, bucket, &name, entry)? {
                        Ok(found) => return Ok(Lookup::Found(found)),
                        Err(back) => bucket = back,
                    }
                }
                if tidy && empty && b < bucket_of(next) {
                    sys::remove_dir(lane_fd.as_fd(), &bucket_name(b))
                        .map_err(|e| Error::io("remove", self.at(&rel), e))?;
                }
            }
        }
        if tidy {
            if lane > 0 && lower == 0 {
                let lanes = self.read_length("lanes")?;
                if lanes & (1 << lane) != 0 {
                    self.write_length("lanes", lanes & !(1 << lane))?;
                }
            }
            // The lane ran dry: a good moment to remove what crashed writers left in tmp/.
            self.sweep_tmp()?;
        }
        Ok(Lookup::Empty { next })
    }

    /// The first message of lane 0 keyed at least `from`. `head_scan` makes a miss scan
    /// from the lowest key present (the head is only a hint) and tidy up.
    fn find_ready(&self, from: u64, head_scan: bool) -> Result<Lookup> {
        match self.find_exact(from)? {
            Exact::Found(found) => Ok(Lookup::Found(found)),
            // No key from here on was allocated, none below the head is in lane 0 (the
            // head is lowered before anything returns below it), and the listings agree:
            // lane 0 is empty, known without the scan, which would wait for the producer
            // lock. An empty queue polled by consumers costs them a few calls, and its
            // producers nothing.
            Exact::Unallocated(bucket) if !self.lane0_may_hold(from, bucket.as_ref())? => {
                if head_scan {
                    self.sweep_tmp_if_any()?;
                }
                Ok(Lookup::Empty { next: from })
            }
            // A counter behind its messages (a restored or damaged queue) must not hide
            // them: the scan finds them, and the next push skips past them.
            Exact::Unallocated(_) | Exact::Absent => {
                self.scan_lane(0, if head_scan { 0 } else { from }, head_scan)
            }
        }
    }

    /// The next message to hand out: the priority lanes first, then lane 0 from the head.
    /// `lane_from` holds, per priority lane, the key to search from: past what this take
    /// already took or skipped, so that a message it cannot take is not found again.
    fn next_candidate(
        &self,
        c: &mut Consumer,
        first: &mut bool,
        lane_from: &mut [u64; 10],
        lanes: u64,
    ) -> Result<Option<Box<Found>>> {
        for p in (1..=9u8).rev() {
            let from = lane_from[usize::from(p)];
            if lanes & (1 << p) != 0
                && let Lookup::Found(found) = self.scan_lane(p, from, from == 0)?
            {
                lane_from[usize::from(p)] = found.entry.key + 1;
                return Ok(Some(found));
            }
        }
        let head_scan = std::mem::replace(first, false);
        match self.find_ready(c.head, head_scan)? {
            Lookup::Found(found) => {
                if head_scan {
                    c.head = found.entry.key; // nothing waits below it
                }
                Ok(Some(found))
            }
            Lookup::Empty { next } => {
                if head_scan {
                    c.head = next; // whatever comes next is keyed at least `next`
                }
                Ok(None)
            }
        }
    }

    /// Moves due messages from delayed/ to the back of their lane (consumer lock held).
    fn promote_due(&self) -> Result<()> {
        if self.is_due()? {
            let producer = self.lock_producer()?;
            self.promote_due_locked(&producer)?;
        }
        Ok(())
    }

    /// Whether a delayed message may be due now.
    fn is_due(&self) -> Result<bool> {
        Ok(self.next_due()?.is_some_and(|due| due <= now_ms()))
    }

    /// Promotes due messages before keys are allocated for new ones (producer lock held),
    /// so that a message due before a push is ahead of it, whether or not a consumer
    /// looked in between.
    fn promote_before_allocating(&self, producer: &Producer) -> Result<()> {
        if self.is_due()? {
            self.promote_due_locked(producer)?;
        }
        Ok(())
    }

    fn promote_due_locked(&self, producer: &Producer) -> Result<()> {
        let now = now_ms();
        let delayed = self.state_dir("delayed")?;
        let mut due: Vec<(String, Entry)> = Vec::new();
        let mut earliest: Option<u64> = None;
        for (name, entry) in self.entries(&delayed, "delayed")? {
            if !self.is_plain_entry(delayed.as_fd(), "delayed", &name)? {
                continue;
            }
            if entry.key <= now {
                due.push((name, entry));
            } else {
                earliest = Some(earliest.map_or(entry.key, |e| e.min(entry.key)));
            }
        }
        due.sort_unstable_by_key(|(_, e)| (e.key, e.id));
        for (name, entry) in due {
            let seq = self.allocate(producer)?;
            let lane = entry.priority;
            let bucket = self.make_bucket(lane, bucket_of(seq))?;
            let moved = Entry {
                key: seq,
                priority: 0,
                ..entry.clone()
            };
            self.mark_lane(lane)?;
            self.move_entry(
                delayed.as_fd(),
                "delayed",
                &name,
                bucket.as_fd(),
                &moved.name(),
            )?;
        }
        let hint = earliest.map_or(0, |e| (e / 1000).max(1));
        if self.read_length("due")? != hint {
            self.write_length("due", hint)?;
        }
        self.due_seen.set(earliest.map(|e| (hint, e)));
        Ok(())
    }

    // ----- taking and settling -----

    /// Takes up to `n` messages into `claimed/`, each to be acked ([`finish`](Self::finish)),
    /// returned ([`give_back`](Self::give_back)), nacked or failed. Expired messages, and
    /// those out of attempts, go to failed/ on the way.
    pub fn take(&self, n: usize, opts: TakeOptions) -> Result<Vec<Claimed>> {
        let mut c = self.lock_consumer()?;
        self.recover_claims(&mut c)?;
        self.promote_due()?;
        let claimed_dir = self.claimed_dir()?;
        let mut taken = Vec::new();
        let mut first = true;
        let mut lane_from = [0u64; 10];
        // Read once per take: a lane a producer marks meanwhile is seen by the next one.
        let lanes = self.read_length("lanes")?;
        let mut failed_dir = None;
        // Buckets of lane 0 whose last key this take passed: every key of theirs is
        // allocated and below the head, so once emptied they stay empty.
        let mut passed = Vec::new();
        // The lowest key of lane 0 this take passed but left in place: the head must not
        // stay above it, or pop would not look for it again.
        let mut skipped: Option<u64> = None;
        let now = now_ms();
        while taken.len() < n {
            let Some(found) = self.next_candidate(&mut c, &mut first, &mut lane_from, lanes)?
            else {
                break;
            };
            let Found {
                lane,
                bucket,
                name,
                entry,
                file,
                stat: _,
            } = *found;
            let key = entry.key;
            let bucket_rel = format!("{}/{}", lane_dir(lane), bucket_name(bucket_of(key)));
            if lane == 0 {
                c.head = key + 1;
                if c.head % BUCKET_SIZE == 0 {
                    passed.push(bucket_of(key));
                }
            }
            let reason = match (entry.expires, opts.max_attempts) {
                (Some(e), _) if e <= now => Some("expired"),
                (_, Some(max)) if entry.attempts >= max => Some("max-attempts"),
                _ => None,
            };
            if let Some(reason) = reason {
                let failed = Entry {
                    key: entry.id,
                    seq: None,
                    priority: lane,
                    reason: Some(reason.into()),
                    ..entry.clone()
                };
                if failed_dir.is_none() {
                    failed_dir = Some(self.state_dir("failed")?);
                }
                let to = failed_dir.as_ref().expect("set above");
                self.move_entry(
                    bucket.as_fd(),
                    &bucket_rel,
                    &name,
                    to.as_fd(),
                    &failed.name(),
                )?;
                continue;
            }
            let lease = match opts.hold {
                Hold::Process => {
                    let rel = format!("{bucket_rel}/{name}");
                    // Nothing holds a ready message's lock but a foreign process: pushers
                    // unlock before publishing, returns unlock under the consumer lock.
                    let locked = match file.try_lock() {
                        Ok(()) => true,
                        Err(std::fs::TryLockError::WouldBlock) => false,
                        Err(std::fs::TryLockError::Error(e)) => {
                            return Err(Error::io("lock", self.at(&rel), e));
                        }
                    };
                    if !locked {
                        self.warn_once(&rel, "locked by another process");
                        if lane == 0 {
                            skipped = Some(skipped.map_or(key, |k: u64| k.min(key)));
                        }
                        continue;
                    }
                    None
                }
                Hold::Lease { lease_ms } => Some(after(now, lease_ms)),
            };
            let claim = Entry {
                key: entry.id,
                id: entry.id,
                seq: Some(key),
                attempts: entry.attempts.saturating_add(1),
                priority: lane,
                expires: entry.expires,
                token: Some(names::token()),
                lease,
                reason: None,
            };
            let claim_name = claim.name();
            if !self.move_entry(
                bucket.as_fd(),
                &bucket_rel,
                &name,
                claimed_dir.as_fd(),
                &claim_name,
            )? {
                continue;
            }
            taken.push(Claimed {
                entry: claim,
                name: claim_name,
                file,
            });
        }
        if let Some(k) = skipped {
            c.head = c.head.min(k);
        }
        if !passed.is_empty() {
            let ready = self.open_dir("ready")?;
            for b in passed {
                // Fails, harmlessly, when something is still in it.
                let _ = sys::remove_dir(ready.as_fd(), &bucket_name(b));
            }
        }
        self.save_head(&mut c)?;
        if let Some(dir) = failed_dir {
            sys::fsync(&dir).map_err(|e| Error::io("fsync", self.at("failed"), e))?;
        }
        if matches!(opts.hold, Hold::Lease { .. }) && !taken.is_empty() {
            // A claim outlives this process: make it durable before its token is shown.
            // The journal commit also covers the counter that allocated its id, so the
            // id is never handed out again after a crash.
            sys::fsync(claimed_dir).map_err(|e| Error::io("fsync", self.at("claimed"), e))?;
        }
        Ok(taken)
    }

    /// Returns claims whose holder died (flock free) and whose lease, if any, ended.
    fn recover_claims(&self, c: &mut Consumer) -> Result<()> {
        let claimed = self.claimed_dir()?;
        let now = now_ms();
        for (name, entry) in self.entries(claimed, "claimed")? {
            let rel = format!("claimed/{name}");
            if entry.token.is_none() {
                self.warn_once(&rel, "a claim without a token");
                continue;
            }
            if entry.lease.is_some_and(|l| l > now) {
                continue;
            }
            let Ok(fd) =
                sys::open_beneath(claimed.as_fd(), &name, OFlags::RDONLY | OFlags::NONBLOCK, 0)
            else {
                continue;
            };
            let file = File::from(fd);
            if file.try_lock().is_err() {
                continue; // its pop or run is still running
            }
            let st = sys::stat_fd(&file).map_err(|e| Error::io("stat", self.at(&rel), e))?;
            if st.st_nlink == 0 {
                continue; // settled while we looked
            }
            if !sys::is_plain_file(&st) {
                self.warn_once(&rel, sys::describe_entry(&st));
                continue;
            }
            self.return_claim(claimed, &name, &entry, c, true)?;
        }
        Ok(())
    }

    /// Moves a claim back to its place in its lane (consumer lock held).
    /// `mark_lane`: take the producer lock to mark a priority lane (false when the caller
    /// holds that lock and marks lanes itself).
    fn return_claim(
        &self,
        claimed: BorrowedFd<'_>,
        name: &str,
        entry: &Entry,
        c: &mut Consumer,
        mark_lane: bool,
    ) -> Result<bool> {
        let pos = entry.position();
        let lane = entry.priority;
        let bucket = self.make_bucket(lane, bucket_of(pos))?;
        let back = Entry {
            key: pos,
            id: entry.id,
            attempts: entry.attempts,
            expires: entry.expires,
            ..Entry::default()
        };
        if lane > 0 {
            if mark_lane {
                let _p = self.lock_producer()?;
                self.mark_lane(lane)?;
            }
        } else if pos < c.head {
            // Lowered before the rename: after a crash the head is never above a message.
            c.head = pos;
            self.save_head(c)?;
        }
        match sys::rename_noreplace(claimed.as_fd(), name, bucket.as_fd(), &back.name()) {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => Ok(false),
            Err(e) if errno_of(&e) == Some(Errno::EXIST) => {
                self.warn_once(
                    &format!("claimed/{name}"),
                    "a message is already waiting in its place",
                );
                Ok(false)
            }
            Err(e) => Err(Error::io("rename", self.at(&format!("claimed/{name}")), e)),
        }
    }

    /// Deletes delivered messages: unlinks them from `claimed/` and fsyncs it.
    pub fn finish(&self, done: Vec<Claimed>) -> Result<()> {
        let mut removed = 0;
        let result = self.remove_delivered(done, &mut removed);
        let synced = self.sync_removals(removed);
        result.and(synced)
    }

    /// Deletes delivered messages, durably only once `sync_removals` returns: a consumer
    /// that takes many in rounds syncs once at its end instead of once per round. Until
    /// then a power cut can bring them back (delivered twice, never lost). Adds to
    /// `removed` each one removed, also when a later one fails.
    pub fn remove_delivered(&self, done: Vec<Claimed>, removed: &mut u64) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let claimed = self.claimed_dir()?;
        for m in &done {
            sys::remove_file(claimed.as_fd(), &m.name).map_err(|e| {
                Error::io("remove", self.at(&format!("claimed/{}", m.name)), e).with_note(format!(
                    "message {} was delivered but not removed: it will be delivered again",
                    m.entry.id
                ))
            })?;
            *removed += 1;
        }
        Ok(())
    }

    /// Makes the removal of `removed` delivered messages durable, and counts them for
    /// stats.
    pub fn sync_removals(&self, removed: u64) -> Result<()> {
        if removed == 0 {
            return Ok(());
        }
        sys::fsync(self.claimed_dir()?).map_err(|e| {
            Error::io("fsync", self.at("claimed"), e)
                .with_note("the removal of delivered messages may not be durable")
        })?;
        // The count only feeds stats: a full disk must not turn a delivery into an error.
        let _ = self.count_consumed(removed);
        Ok(())
    }

    /// Returns taken messages that were not delivered to their place, as if never taken.
    pub fn give_back(&self, undelivered: Vec<Claimed>) -> Result<()> {
        if undelivered.is_empty() {
            return Ok(());
        }
        let mut c = self.lock_consumer()?;
        let claimed = self.claimed_dir()?;
        let mut result = Ok(());
        for m in undelivered {
            let entry = Entry {
                attempts: m.entry.attempts.saturating_sub(1),
                ..m.entry.clone()
            };
            if let Err(e) = self.return_claim(claimed, &m.name, &entry, &mut c, true) {
                result = result.and(Err(e));
            }
            // Unlocked before the consumer lock is released: a consumer must never find
            // a returned message still locked.
            drop(m);
        }
        self.save_head(&mut c)?;
        result
    }

    /// Puts a claimed message back behind the waiting ones, or in delayed/ for `delay_ms`.
    fn requeue_claim(
        &self,
        claimed: BorrowedFd<'_>,
        name: &str,
        entry: &Entry,
        delay_ms: Option<u64>,
    ) -> Result<bool> {
        let producer = self.lock_producer()?;
        self.promote_before_allocating(&producer)?;
        let lane = entry.priority;
        match delay_ms.filter(|&d| d > 0) {
            Some(d) => {
                let due = after(now_ms(), d);
                let delayed = self.state_dir("delayed")?;
                let to = Entry {
                    key: due,
                    id: entry.id,
                    attempts: entry.attempts,
                    priority: lane,
                    expires: entry.expires,
                    ..Entry::default()
                };
                self.mark_due(due)?; // before the rename: never a hint later than a message
                self.move_entry(
                    claimed.as_fd(),
                    "claimed",
                    name,
                    delayed.as_fd(),
                    &to.name(),
                )
            }
            None => {
                let seq = self.allocate(&producer)?;
                let bucket = self.make_bucket(lane, bucket_of(seq))?;
                let to = Entry {
                    key: seq,
                    id: entry.id,
                    attempts: entry.attempts,
                    expires: entry.expires,
                    ..Entry::default()
                };
                self.mark_lane(lane)?;
                self.move_entry(claimed.as_fd(), "claimed", name, bucket.as_fd(), &to.name())
            }
        }
    }

    /// Moves a claimed message to failed/ with `reason`.
    fn fail_claim(
        &self,
        claimed: BorrowedFd<'_>,
        name: &str,
        entry: &Entry,
        reason: &str,
    ) -> Result<bool> {
        let _p = self.lock_producer()?; // a clear of failed/ sees it whole or not at all
        let failed = self.state_dir("failed")?;
        let to = Entry {
            key: entry.id,
            id: entry.id,
            attempts: entry.attempts,
            priority: entry.priority,
            expires: entry.expires,
            reason: Some(reason.to_string()),
            ..Entry::default()
        };
        let moved =
            self.move_entry(claimed.as_fd(), "claimed", name, failed.as_fd(), &to.name())?;
        sys::fsync(&failed).map_err(|e| Error::io("fsync", self.at("failed"), e))?;
        Ok(moved)
    }

    /// Settles one of this process's claims: retry after `delay_ms`, or fail for good.
    pub fn settle(&self, m: Claimed, outcome: Settle<'_>) -> Result<()> {
        let claimed = self.claimed_dir()?;
        match outcome {
            Settle::Ack => return self.finish(vec![m]),
            Settle::Retry { delay_ms } => {
                self.requeue_claim(claimed, &m.name, &m.entry, Some(delay_ms))?
            }
            Settle::Fail { reason } => self.fail_claim(claimed, &m.name, &m.entry, reason)?,
        };
        Ok(())
    }

    /// Finds the claim of `token` in claimed/.
    fn find_claim(&self, token: &str) -> Result<(BorrowedFd<'_>, String, Entry)> {
        let bad = || {
            Error::invalid(
                format!("token {token:?}"),
                None,
                "not a claim token (they look like 42.9f3a0c1d2e4b5a67)",
            )
        };
        let (id, hex) = parse_token(token).ok_or_else(bad)?;
        let claimed = self.claimed_dir()?;
        let mut other = false;
        for (name, entry) in self.entries(claimed, "claimed")? {
            if entry.id != id {
                continue;
            }
            if entry.token.as_deref() == Some(hex) {
                return Ok((claimed, name, entry));
            }
            other = true;
        }
        let why = if other {
            format!("message {id} was claimed again since: this token is no longer valid")
        } else {
            format!(
                "no claim of message {id} has this token: its lease ended, or it was acked or nacked"
            )
        };
        Err(Error::invalid(format!("token {token}"), None, why))
    }

    /// Acknowledges a claim: the message is deleted.
    pub fn ack(&self, token: &str) -> Result<u64> {
        let (claimed, name, entry) = self.find_claim(token)?;
        match sys::remove_file(claimed.as_fd(), &name) {
            Ok(()) => {}
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => {
                return Err(Error::invalid(
                    format!("token {token}"),
                    None,
                    "the claim ended while acking: nothing was acked",
                ));
            }
            Err(e) => return Err(Error::io("remove", self.at(&format!("claimed/{name}")), e)),
        }
        sys::fsync(claimed).map_err(|e| {
            Error::io("fsync", self.at("claimed"), e).with_note("the ack may not be durable")
        })?;
        let _ = self.count_consumed(1); // stats only: never fails an ack
        Ok(entry.id)
    }

    /// Returns a claimed message behind the waiting ones (after `delay_ms`, if given).
    pub fn nack(&self, token: &str, delay_ms: Option<u64>) -> Result<u64> {
        let (claimed, name, entry) = self.find_claim(token)?;
        if !self.requeue_claim(claimed, &name, &entry, delay_ms)? {
            return Err(Error::invalid(
                format!("token {token}"),
                None,
                "the claim ended while nacking: nothing was done",
            ));
        }
        Ok(entry.id)
    }

    /// Renews a claim's lease to `lease_ms` from now.
    pub fn extend(&self, token: &str, lease_ms: u64) -> Result<u64> {
        let (claimed, name, entry) = self.find_claim(token)?;
        if entry.lease.is_none() {
            return Err(Error::invalid(
                format!("token {token}"),
                None,
                "held by a running process, not by a lease",
            ));
        }
        let renewed = Entry {
            lease: Some(after(now_ms(), lease_ms)),
            ..entry.clone()
        };
        if !self.move_entry(
            claimed.as_fd(),
            "claimed",
            &name,
            claimed.as_fd(),
            &renewed.name(),
        )? {
            return Err(Error::invalid(
                format!("token {token}"),
                None,
                "the claim ended while extending: nothing was done",
            ));
        }
        Ok(entry.id)
    }

    /// Moves failed messages back to the ready lanes, behind the waiting ones, with their
    /// attempts reset. `ids` empty means all. Returns the ids moved and those not found.
    pub fn requeue(&self, ids: &[u64]) -> Result<(Vec<u64>, Vec<u64>)> {
        let _c = self.lock_consumer()?;
        let producer = self.lock_producer()?;
        self.promote_before_allocating(&producer)?;
        let failed = self.state_dir("failed")?;
        let mut entries = self.entries(&failed, "failed")?;
        entries.sort_unstable_by_key(|(_, e)| e.id);
        let mut moved = Vec::new();
        for (name, entry) in entries {
            if !ids.is_empty() && !ids.contains(&entry.id) {
                continue;
            }
            if !self.is_plain_entry(failed.as_fd(), "failed", &name)? {
                continue;
            }
            let seq = self.allocate(&producer)?;
            let lane = entry.priority;
            let bucket = self.make_bucket(lane, bucket_of(seq))?;
            self.mark_lane(lane)?;
            let to = Entry {
                key: seq,
                id: entry.id,
                ..Entry::default()
            };
            if self.move_entry(failed.as_fd(), "failed", &name, bucket.as_fd(), &to.name())? {
                sys::fsync(&bucket).map_err(|e| Error::io("fsync", self.at(lane_dir(lane)), e))?;
                moved.push(entry.id);
            }
        }
        let missing = ids
            .iter()
            .copied()
            .filter(|id| !moved.contains(id))
            .collect();
        Ok((moved, missing))
    }

    // ----- reading without taking -----

    /// Calls `each` with up to `n` waiting messages in the order pop would take them,
    /// without taking them; stops early when `each` returns false.
    pub fn peek(&self, n: usize, mut each: impl FnMut(Message) -> Result<bool>) -> Result<usize> {
        let lanes = {
            let mut c = self.lock_consumer()?;
            self.recover_claims(&mut c)?;
            self.promote_due()?;
            self.save_head(&mut c)?;
            self.read_length("lanes")?
        };
        let now = now_ms();
        let mut seen = 0;
        for lane in (0..=9u8).rev() {
            if lane > 0 && lanes & (1 << lane) == 0 {
                continue;
            }
            let mut cursor: Option<u64> = None;
            while seen < n {
                let mut batch = Vec::new();
                {
                    let mut c = self.lock_consumer()?;
                    while batch.len() < CHUNK.min(n - seen) {
                        let lookup = match (lane, cursor) {
                            (0, None) => self.find_ready(c.head, true)?,
                            (0, Some(from)) => self.find_ready(from, false)?,
                            (_, from) => self.scan_lane(lane, from.unwrap_or(0), false)?,
                        };
                        let Lookup::Found(found) = lookup else { break };
                        if lane == 0 && cursor.is_none() {
                            c.head = found.entry.key;
                        }
                        cursor = Some(found.entry.key + 1);
                        if found.entry.expires.is_some_and(|e| e <= now) {
                            continue;
                        }
                        batch.push(found);
                    }
                    self.save_head(&mut c)?;
                }
                if batch.is_empty() {
                    break;
                }
                for found in batch {
                    seen += 1;
                    let message = Message {
                        id: found.entry.id,
                        size: found.stat.st_size as u64,
                        attempts: found.entry.attempts,
                        file: found.file,
                    };
                    if !each(message)? {
                        return Ok(seen);
                    }
                }
            }
        }
        Ok(seen)
    }

    /// Opens a message in any state by claim token or id.
    pub fn show(&self, what: &str) -> Result<Option<(Info, File)>> {
        if what.contains('.') {
            let (claimed, name, entry) = self.find_claim(what)?;
            return self.open_entry(claimed, "claimed", State::Claimed, &name, &entry);
        }
        let id: u64 = match what.parse() {
            Ok(id) if id > 0 && !what.starts_with('0') => id,
            _ => {
                return Err(Error::invalid(
                    format!("message {what:?}"),
                    None,
                    "expected a message id or a claim token",
                ));
            }
        };
        // A fresh message sits under its id in lane 0: try that first.
        if let Exact::Found(found) = self.find_exact(id)?
            && found.entry.id == id
        {
            let info = self.info(State::Ready, &found.entry, 0, &found.stat);
            return Ok(Some((info, found.file)));
        }
        let mut result = None;
        self.walk(&State::ALL, |info, open| {
            if info.id == id {
                result = open()?.map(|f| (info.clone(), f));
                return Ok(result.is_none());
            }
            Ok(true)
        })?;
        Ok(result)
    }

    fn open_entry(
        &self,
        dir: impl AsFd,
        rel: &str,
        state: State,
        name: &str,
        entry: &Entry,
    ) -> Result<Option<(Info, File)>> {
        let Some((file, st)) = self.open_plain(dir, name, &format!("{rel}/{name}"))? else {
            return Ok(None);
        };
        Ok(Some((self.info(state, entry, entry.priority, &st), file)))
    }

    fn info(&self, state: State, entry: &Entry, lane: u8, st: &Stat) -> Info {
        Info {
            state,
            id: entry.id,
            size: st.st_size as u64,
            enqueued: mtime(st),
            attempts: entry.attempts,
            priority: if state == State::Ready {
                lane
            } else {
                entry.priority
            },
            until: match state {
                State::Delayed => Some(entry.key),
                State::Claimed => entry.lease,
                _ => None,
            },
            expires: entry.expires,
            reason: entry.reason.clone(),
        }
    }

    /// Calls `f` with each message of `states`: ready in the order pop takes them (by
    /// priority, then position), delayed by due time, claimed and failed by id. Lock-free;
    /// memory is one bucket's names, whatever the depth. `f` returns false to stop.
    pub fn walk(
        &self,
        states: &[State],
        mut f: impl FnMut(&Info, &dyn Fn() -> Result<Option<File>>) -> Result<bool>,
    ) -> Result<()> {
        for &state in states {
            match state {
                State::Ready => {
                    for lane in (0..=9u8).rev() {
                        let Some((_, buckets)) = self.buckets(lane, 0)? else {
                            continue;
                        };
                        for b in buckets {
                            let Some(bucket) = self.open_bucket(lane, b)? else {
                                continue;
                            };
                            let rel = format!("{}/{}", lane_dir(lane), bucket_name(b));
                            let mut entries = self.entries(&bucket, &rel)?;
                            entries.retain(|(_, e)| bucket_of(e.key) == b);
                            entries.sort_unstable_by_key(|(_, e)| e.key);
                            if !self.walk_entries(
                                &bucket,
                                &rel,
                                State::Ready,
                                lane,
                                entries,
                                &mut f,
                            )? {
                                return Ok(());
                            }
                        }
                    }
                }
                other => {
                    let rel = other.as_str();
                    let dir = match sys::open_dir_beneath(self.dir(), rel) {
                        Ok(fd) => fd,
                        Err(e) if errno_of(&e) == Some(Errno::NOENT) => continue,
                        Err(e) => return Err(Error::io("open", self.at(rel), e)),
                    };
                    let mut entries = self.entries(&dir, rel)?;
                    entries.sort_unstable_by_key(|(_, e)| (e.key, e.id));
                    if !self.walk_entries(&dir, rel, other, 0, entries, &mut f)? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    fn walk_entries(
        &self,
        dir: &OwnedFd,
        rel: &str,
        state: State,
        lane: u8,
        entries: Vec<(String, Entry)>,
        f: &mut impl FnMut(&Info, &dyn Fn() -> Result<Option<File>>) -> Result<bool>,
    ) -> Result<bool> {
        for (name, entry) in entries {
            let st = match sys::stat_at(dir.as_fd(), &name) {
                Ok(st) => st,
                Err(e) if errno_of(&e) == Some(Errno::NOENT) => continue, // taken meanwhile
                Err(e) => return Err(Error::io("stat", self.at(&format!("{rel}/{name}")), e)),
            };
            if !sys::is_plain_file(&st) {
                self.warn_once(&format!("{rel}/{name}"), sys::describe_entry(&st));
                continue;
            }
            let info = self.info(state, &entry, lane, &st);
            let open = || -> Result<Option<File>> {
                Ok(self
                    .open_entry(dir, rel, state, &name, &entry)?
                    .map(|(_, file)| file))
            };
            if !f(&info, &open)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        self.walk(&State::ALL, |info, _| {
            match info.state {
                State::Ready => {
                    s.ready += 1;
                    s.bytes += info.size;
                    s.oldest = Some(s.oldest.map_or(info.enqueued, |o| o.min(info.enqueued)));
                }
                State::Delayed => s.delayed += 1,
                State::Claimed => s.claimed += 1,
                State::Failed => s.failed += 1,
            }
            Ok(true)
        })?;
        s.next_id = self.read_length("counter")?.max(1);
        (s.consumed, s.window) = self.consumed_recently()?;
        Ok(s)
    }

    /// Counts the waiting messages (all priorities).
    pub fn waiting(&self) -> Result<u64> {
        let mut n = 0;
        self.walk(&[State::Ready], |_, _| {
            n += 1;
            Ok(true)
        })?;
        Ok(n)
    }

    // ----- clear -----

    /// Removes every message of `states` (ready, delayed, failed); returns how many.
    /// Pushes that finished publishing before it began are cleared; later ones are kept;
    /// none is half-removed. Claims in progress are left alone.
    pub fn clear(&self, states: &[State]) -> Result<u64> {
        let mut c = self.lock_consumer()?;
        self.recover_claims(&mut c)?;
        let next = {
            let p = self.lock_producer()?;
            self.next_key(&p)?
        };
        let mut removed = 0u64;
        let mut first_error: Option<Error> = None;
        let mut remove_in =
            |q: &Queue, dir: &OwnedFd, rel: &str, keep: &dyn Fn(&Entry) -> bool| -> Result<bool> {
                // Whether every entry not kept is gone.
                let mut all = true;
                for (name, entry) in q.entries(dir, rel)? {
                    if keep(&entry) {
                        continue;
                    }
                    let path = format!("{rel}/{name}");
                    match sys::stat_at(dir.as_fd(), &name) {
                        Ok(st) if sys::is_plain_file(&st) => {}
                        Ok(st) => {
                            q.warn_once(&path, sys::describe_entry(&st));
                            continue;
                        }
                        Err(e) if errno_of(&e) == Some(Errno::NOENT) => continue,
                        Err(e) => return Err(Error::io("stat", q.at(&path), e)),
                    }
                    match sys::remove_file(dir.as_fd(), &name) {
                        Ok(()) => removed += 1,
                        Err(e) if errno_of(&e) == Some(Errno::NOENT) => {}
                        Err(e) => {
                            all = false;
                            first_error.get_or_insert(Error::io("remove", q.at(&path), e));
                        }
                    }
                }
                sys::fsync(dir).map_err(|e| Error::io("fsync", q.at(rel), e))?;
                Ok(all)
            };
        for &state in states {
            match state {
                State::Ready => {
                    let mut lane0_cleared = true;
                    for lane in 0..=9u8 {
                        let Some((lane_fd, buckets)) = self.buckets(lane, 0)? else {
                            continue;
                        };
                        for b in buckets {
                            if b > bucket_of(next) {
                                continue;
                            }
                            let Some(bucket) = self.open_bucket(lane, b)? else {
                                continue;
                            };
                            let rel = format!("{}/{}", lane_dir(lane), bucket_name(b));
                            let all = remove_in(self, &bucket, &rel, &|e: &Entry| e.key >= next)?;
                            lane0_cleared &= lane > 0 || all;
                            if all && b < bucket_of(next) {
                                sys::remove_dir(lane_fd.as_fd(), &bucket_name(b))
                                    .map_err(|e| Error::io("remove", self.at(&rel), e))?;
                            }
                        }
                        sys::fsync(&lane_fd)
                            .map_err(|e| Error::io("fsync", self.at(lane_dir(lane)), e))?;
                    }
                    // The head passes the cleared keys only if all of lane 0 went: pop
                    // trusts that nothing waits below it.
                    if lane0_cleared {
                        c.head = c.head.max(next);
                    }
                }
                State::Delayed | State::Failed => {
                    let rel = state.as_str();
                    let Ok(dir) = sys::open_dir_beneath(self.dir(), rel) else {
                        continue;
                    };
                    // Whatever moves into delayed/ or failed/ does so under the producer
                    // lock: holding it, clear sees a still directory and takes all of it.
                    let _p = self.lock_producer()?;
                    remove_in(self, &dir, rel, &|_: &Entry| false)?;
                }
                State::Claimed => {}
            }
        }
        {
            let _p = self.lock_producer()?;
            self.sweep_tmp()?;
        }
        self.save_head(&mut c)?;
        match first_error {
            Some(e) => Err(e.with_note(format!("{removed} messages were removed"))),
            None => Ok(removed),
        }
    }
}

/// A waiting message opened for reading.
pub struct Message {
    /// Id.
    pub id: u64,
    /// Payload length.
    pub size: u64,
    /// Claims made so far.
    pub attempts: u32,
    /// The open file, positioned at the start.
    pub file: File,
}

impl Claimed {
    /// Id.
    pub fn id(&self) -> u64 {
        self.entry.id
    }
    /// Claims made, this one included.
    pub fn attempts(&self) -> u32 {
        self.entry.attempts
    }
    /// The claim token, as users give it to ack, nack, extend and show.
    pub fn token(&self) -> String {
        format_token(self.entry.id, self.entry.token.as_deref().unwrap_or(""))
    }
    /// The open file.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }
    /// The file name in claimed/, to open the message again (a new open file, without
    /// this process's lock: what a child process should be given).
    pub fn reopen(&self, queue: &Queue) -> Result<File> {
        let rel = format!("claimed/{}", self.name);
        sys::open_beneath(queue.dir(), &rel, OFlags::RDONLY, 0)
            .map(File::from)
            .map_err(|e| Error::io("open", queue.at(&rel), e))
    }
}

impl Staging<'_> {
    /// Writes one more message with `write`, which gets the open temporary file and its
    /// path (for errors).
    pub fn add(&mut self, write: impl FnOnce(&mut File, &Path) -> Result<()>) -> Result<()> {
        // Nothing is published before `publish`: whatever fails here pushed nothing.
        self.add_inner(write)
            .map_err(|e| e.with_note("nothing was pushed"))
    }

    fn add_inner(&mut self, write: impl FnOnce(&mut File, &Path) -> Result<()>) -> Result<()> {
        let q = self.queue;
        let (rel, mut file, single) = match &mut self.kind {
            StagingKind::Single { name, .. } => {
                if !name.is_empty() {
                    return Err(Error::invalid(
                        "push",
                        Some(q.path()),
                        "one message per single staging",
                    ));
                }
                let (n, lock) = q.create_locked(&self.tmp, "", false)?;
                // Its name is recorded before writing, so that a failed write is cleaned
                // up too; the file joins it once written.
                *name = n;
                (format!("tmp/{name}"), lock, true)
            }
            StagingKind::Batch { name, dir } => {
                let entry = self.count.to_string();
                let file = sys::create_exclusive(dir.as_fd(), &entry, true)
                    .map_err(|e| Error::io("create", q.at(&format!("tmp/{name}/{entry}")), e))?;
                (format!("tmp/{name}/{entry}"), file, false)
            }
        };
        self.count += 1;
        let path = q.at(&rel);
        write(&mut file, &path)?;
        if single {
            // A single message is synced now, and its flock kept until publish.
            sys::fdatasync(&file).map_err(|e| Error::io("fsync", &path, e))?;
            sys::check_close(&file).map_err(|e| Error::io("close", &path, e))?;
            if let StagingKind::Single { file: slot, .. } = &mut self.kind {
                *slot = Some(file);
            }
        } else if self.unsynced.len() < SYNCFS_THRESHOLD {
            self.unsynced.push(file);
        } else {
            sys::close_checked(file.into()).map_err(|e| Error::io("close", &path, e))?;
        }
        Ok(())
    }

    /// Makes every staged message durable, then publishes them in order under one
    /// producer lock, and fsyncs the directories they went to.
    pub fn publish(mut self, opts: PushOptions) -> Result<Published> {
        let q = self.queue;
        let mut published = Published::default();
        if self.count == 0 {
            self.discard();
            return Ok(published);
        }
        // Data first: a small batch fsyncs each file, a large one the whole filesystem.
        if let StagingKind::Batch { name, .. } = &self.kind {
            let small = self.count <= SYNCFS_THRESHOLD;
            for (i, file) in self.unsynced.drain(..).enumerate() {
                let path = q.at(&format!("tmp/{name}/{i}"));
                if small {
                    sys::fdatasync(&file).map_err(|e| Error::io("fsync", &path, e))?;
                }
                sys::close_checked(file.into()).map_err(|e| Error::io("close", &path, e))?;
            }
            if !small {
                sys::syncfs(&self.tmp).map_err(|e| Error::io("sync", q.path(), e))?;
            }
        }
        let (src_dir, src_prefix): (BorrowedFd<'_>, String) = match &self.kind {
            StagingKind::Single { .. } => (self.tmp.as_fd(), String::from("tmp")),
            StagingKind::Batch { name, dir } => (dir.as_fd(), format!("tmp/{name}")),
        };
        let src_name = |i: usize| -> String {
            match &self.kind {
                StagingKind::Single { name, .. } => name.clone(),
                StagingKind::Batch { .. } => i.to_string(),
            }
        };
        let delayed = opts.due.filter(|&d| d > now_ms());
        let lane = opts.priority.min(9);
        let mut touched: Vec<(String, OwnedFd)> = Vec::new();
        let renamed = (|| -> Result<()> {
            let producer = q.lock_producer()?;
            q.promote_before_allocating(&producer)?;
            // Marked before the messages appear, so that a consumer that sees them also
            // knows where to look (it then waits on the producer lock for the rest).
            // Likewise the due hint, before the rename: a hint that is too early costs a
            // look, one that is too late would hide the message.
            match delayed {
                None => q.mark_lane(lane)?,
                Some(due) => q.mark_due(due)?,
            }
            let mut i = 0;
            let mut next = q.free_key(&producer)?;
            let mut reserved = next; // the counter: ids below it are allocated
            while i < self.count {
                // Ids are allocated before the renames make them visible, the batch's all
                // at once: a crash before a rename leaves a gap, never a reused id.
                if next == reserved {
                    reserved = next + (self.count - i) as u64;
                    q.set_next_key(&producer, reserved)?;
                }
                let id = next;
                next += 1;
                let (rel, target) = match delayed {
                    Some(due) => {
                        let entry = Entry {
                            key: due,
                            id,
                            priority: lane,
                            expires: opts.expires,
                            ..Entry::default()
                        };
                        ("delayed".to_string(), entry.name())
                    }
                    None => {
                        let entry = Entry {
                            expires: opts.expires,
                            ..Entry::fresh(id)
                        };
                        (
                            format!("{}/{}", lane_dir(lane), bucket_name(bucket_of(id))),
                            entry.name(),
                        )
                    }
                };
                if touched.last().is_none_or(|(r, _)| *r != rel) {
                    let fd = match delayed {
                        Some(_) => q.state_dir("delayed")?,
                        None => {
                            match q.open_bucket(lane, bucket_of(id))? {
                                Some(fd) => fd,
                                None => {
                                    let fd = q.make_bucket(lane, bucket_of(id))?;
                                    q.sweep_tmp()?; // a new bucket: a good moment
                                    fd
                                }
                            }
                        }
                    };
                    touched.push((rel.clone(), fd));
                }
                let dir = &touched.last().expect("pushed above").1;
                let src = src_name(i);
                // Sweepers hold the producer lock too, and the sweep is behind us: the
                // temporary file needs its own lock no more, and a published message must
                // never be seen locked.
                if let StagingKind::Single {
                    file: Some(file), ..
                } = &self.kind
                {
                    file.unlock()
                        .map_err(|e| Error::io("unlock", q.at(&format!("tmp/{src}")), e))?;
                }
                match sys::rename_noreplace(src_dir, &src, dir.as_fd(), &target) {
                    Ok(()) => {
                        published.add(id);
                        i += 1;
                    }
                    Err(e) if errno_of(&e) == Some(Errno::EXIST) => {
                        // The counter is behind a message (restored or damaged spool):
                        // never overwrite, move past it.
                        (q.warn)(&format!(
                            "{}: counter was behind message {id}; skipping ahead",
                            q.at("counter").display()
                        ));
                    }
                    Err(e) => {
                        return Err(Error::io("rename", q.at(&format!("{src_prefix}/{src}")), e));
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = renamed {
            let note = match published.len() {
                0 => "nothing was pushed".to_string(),
                n => format!(
                    "{n} of {} messages were published and may be visible",
                    self.count
                ),
            };
            self.discard();
            return Err(e.with_note(note));
        }
        // Everything was renamed away: only an empty batch directory is left to remove.
        self.count = 0;
        if let StagingKind::Single { name, .. } = &mut self.kind {
            name.clear(); // published: nothing of it is left in tmp/
        }
        self.discard();
        for (rel, fd) in &touched {
            sys::fsync(fd).map_err(|e| {
                Error::io("fsync", q.at(rel), e)
                    .with_note("the message may have been published: check before pushing it again")
            })?;
        }
        Ok(published)
    }

    /// Removes what is left of the staging area.
    fn discard(&mut self) {
        self.unsynced.clear();
        match &mut self.kind {
            StagingKind::Single { name, file } => {
                // Unlinked before its lock goes, so that no sweeper sees it half-removed.
                if !name.is_empty() {
                    let _ = sys::remove_file(self.tmp.as_fd(), name);
                    name.clear();
                }
                *file = None;
            }
            StagingKind::Batch { name, dir } => {
                for i in 0..self.count {
                    let _ = sys::remove_file(dir.as_fd(), &i.to_string());
                }
                let _ = sys::remove_dir(self.tmp.as_fd(), name);
            }
        }
        self.count = 0;
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        self.discard();
    }
}

/// The length of a file: the value of a counter.
fn length(file: &File) -> io::Result<u64> {
    Ok(sys::stat_fd(file)?.st_size as u64)
}

/// Reads until `buf` is full or the end of the file; returns how much was read.
pub fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn mtime(st: &Stat) -> SystemTime {
    if st.st_mtime >= 0 {
        UNIX_EPOCH + Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32)
    } else {
        UNIX_EPOCH
    }
}

/// Opens the root directory, creating it (and missing parents) with mode 0700 and
/// fsyncing each parent, so that the queue's directory entry survives a power cut.
fn open_or_create_root(root: &Path) -> Result<OwnedFd> {
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
    };
    match open(root) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(Error::io("open spool", root, e)),
    }
    let mut missing = vec![root.to_path_buf()];
    let mut parent_fd = loop {
        let top = missing.last().expect("nonempty");
        let parent = match top.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match open(&parent) {
            Ok(fd) => break fd,
            Err(Errno::NOENT) => missing.push(parent),
            Err(e) => return Err(Error::io("open", &parent, e)),
        }
    };
    while let Some(dir) = missing.pop() {
        let name = dir
            .file_name()
            .ok_or_else(|| Error::invalid("create spool", Some(root), "not a directory name"))?;
        let name = name
            .to_str()
            .ok_or_else(|| Error::invalid("create spool", Some(root), "path is not UTF-8"))?;
        sys::make_dir(parent_fd.as_fd(), name).map_err(|e| Error::io("create spool", &dir, e))?;
        sys::fsync(&parent_fd)
            .map_err(|e| Error::io("fsync", dir.parent().unwrap_or(Path::new(".")), e))?;
        parent_fd = open(&dir).map_err(|e| Error::io("open spool", &dir, e))?;
    }
    Ok(parent_fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Spool;
    use std::cell::RefCell;
    use std::rc::Rc;

    const POP: TakeOptions = TakeOptions {
        hold: Hold::Process,
        max_attempts: None,
    };

    fn spool() -> (tempfile::TempDir, Spool, Rc<RefCell<Vec<String>>>) {
        let dir = tempfile::tempdir().unwrap();
        let warnings = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&warnings);
        let spool = Spool::new(dir.path().join("spool"), move |m| {
            sink.borrow_mut().push(m.to_string())
        });
        (dir, spool, warnings)
    }

    fn push(q: &Queue, messages: &[&[u8]]) -> Vec<u64> {
        let mut staging = q.stage(messages.len() > 1).unwrap();
        for m in messages {
            staging
                .add(|f, p| f.write_all(m).map_err(|e| Error::io("write", p, e)))
                .unwrap();
        }
        staging
            .publish(PushOptions::default())
            .unwrap()
            .ids()
            .collect()
    }

    fn pop_all(q: &Queue) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut taken = q.take(1, POP).unwrap();
            let Some(m) = taken.first_mut() else {
                return out;
            };
            let mut buf = Vec::new();
            m.file().read_to_end(&mut buf).unwrap();
            out.push(buf);
            q.finish(taken).unwrap();
        }
    }

    #[test]
    fn ids_increase_across_batches_and_clear() {
        let (_d, spool, _) = spool();
        let q = spool.create("q").unwrap();
        assert_eq!(push(&q, &[b"a"]), vec![1]);
        assert_eq!(push(&q, &[b"b", b"c", b"d"]), vec![2, 3, 4]);
        assert_eq!(q.clear(&[State::Ready, State::Delayed]).unwrap(), 4);
        assert_eq!(push(&q, &[b"e"]), vec![5]);
        assert_eq!(pop_all(&q), vec![b"e".to_vec()]);
    }

    #[test]
    fn large_batches_cross_buckets_in_order() {
        let (_d, spool, _) = spool();
        let q = spool.create("q").unwrap();
        let payloads: Vec<Vec<u8>> = (0..2500).map(|i| format!("m{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let ids = push(&q, &refs);
        assert_eq!(ids, (1..=2500).collect::<Vec<_>>());
        assert_eq!(q.stats().unwrap().ready, 2500);
        assert_eq!(pop_all(&q), payloads);
        // Passed buckets are removed; the one the counter is in may stay.
        let buckets = std::fs::read_dir(q.path().join("ready")).unwrap().count();
        assert!(buckets <= 1, "{buckets} buckets left");
    }

    #[test]
    fn a_dropped_claim_returns_to_its_place() {
        let (_d, spool, _) = spool();
        let q = spool.create("q").unwrap();
        push(&q, &[b"one", b"two"]);
        let taken = q.take(1, POP).unwrap();
        assert_eq!(taken[0].id(), 1);
        // The process "dies": its flock goes with the file, the claim stays on disk.
        drop(taken);
        assert_eq!(
            std::fs::read_dir(q.path().join("claimed")).unwrap().count(),
            1
        );
        assert_eq!(pop_all(&q), vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn a_live_claim_is_not_recovered() {
        let (_d, spool, _) = spool();
        let q = spool.create("q").unwrap();
        push(&q, &[b"one", b"two"]);
        let held = q.take(1, POP).unwrap();
        let next = q.take(1, POP).unwrap();
        assert_eq!(next[0].id(), 2);
        q.give_back(held).unwrap();
        q.give_back(next).unwrap();
        assert_eq!(pop_all(&q), vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn gaps_are_skipped_and_the_head_heals() {
        let (_d, spool, _) = spool();
        let q = spool.create("q").unwrap();
        push(&q, &[b"a", b"b", b"c"]);
        std::fs::remove_file(
            q.path()
                .join("ready/00000000000000000/00000000000000000001"),
        )
        .unwrap();
        // A head file reset to 1 (as after a crash) must not hide anything either.
        assert_eq!(pop_all(&q), vec![b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn junk_is_skipped_with_a_warning() {
        let (_d, spool, warnings) = spool();
        let q = spool.create("q").unwrap();
        push(&q, &[b"a", b"b"]);
        let bucket = q.path().join("ready").join(bucket_name(0));
        let id_name = |id: u64| Entry::fresh(id).name();
        std::fs::write(bucket.join("junk"), b"x").unwrap();
        std::fs::remove_file(bucket.join(id_name(1))).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", bucket.join(id_name(1))).unwrap();
        assert_eq!(pop_all(&q), vec![b"b".to_vec()]);
        assert!(bucket.join("junk").exists());
        assert!(std::fs::symlink_metadata(bucket.join(id_name(1))).is_ok());
        let w = warnings.borrow();
        assert!(w.iter().any(|m| m.contains("junk")), "{w:?}");
        assert!(w.iter().any(|m| m.contains(&id_name(1))), "{w:?}");
    }

    #[test]
    fn counter_behind_a_message_never_overwrites_it() {
        let (_d, spool, warnings) = spool();
        let q = spool.create("q").unwrap();
        push(&q, &[b"a", b"b"]);
        let counter = std::fs::OpenOptions::new()
            .write(true)
            .open(q.path().join("counter"))
            .unwrap();
        counter.set_len(1).unwrap();
        assert_eq!(push(&q, &[b"c"]), vec![3]);
        assert_eq!(
            pop_all(&q),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert!(!warnings.borrow().is_empty());
    }
}
