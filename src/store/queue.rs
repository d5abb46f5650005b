//! One queue: a directory of message files, two counters, and two locks.
//!
//! Layout (format 1; docs/FORMAT.md is the reference):
//!
//! ```text
//! QUEUE/format     "spool-queue 1\n", written last when the queue is created
//! QUEUE/counter    its length is the next id to allocate; flock = producer lock
//! QUEUE/head       its length is a lower bound of the ready ids; flock = consumer lock
//! QUEUE/tmp/       messages being written: TOKEN (one) or TOKEN.batch/N (many),
//!                  each flocked by its writer; unlocked ones are orphans
//! QUEUE/ready/BUCKET/ID   waiting messages, BUCKET = ID / 1000
//! QUEUE/claimed/ID.TOKEN  messages taken by a running pop, flocked by it
//! ```
//!
//! Invariants:
//! - An id is allocated and its file renamed into `ready/` while the producer lock is held,
//!   in increasing order; so while the producer lock is held, every allocated id is either
//!   published or abandoned, and a scan of `ready/` sees a consistent set.
//! - The counter is a file *length*: `ftruncate` is journaled metadata, committed no later
//!   than the rename that publishes the message and the directory fsync after it. So every
//!   id that was ever visible is below the durable counter, and ids are never reused, not
//!   after a power cut and not after `clear`.
//! - No ready message has an id below `head` (a hint: after a crash it may be lower, never
//!   higher). Pop opens `ready/BUCKET/HEAD` directly, O(1) in depth; only a miss (a gap, an
//!   empty queue) scans, under both locks, and the scan touches buckets, not messages.
//! - Consumers never delete a message before its bytes were delivered: pop first renames
//!   it into `claimed/` holding an flock on it, writes it out, then unlinks it. A claim
//!   whose flock is free belongs to a dead process and goes back to `ready/`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{OFlags, Stat};
use rustix::io::Errno;

use super::error::{Error, Result};
use super::names::{
    self, BUCKET_SIZE, bucket_name, bucket_of, id_name, parse_bucket, parse_claim, parse_id,
};
use super::sys;

/// The content of a queue's `format` file.
pub const FORMAT: &[u8] = b"spool-queue 1\n";

/// Below this many messages a batch fsyncs each file; above, it flushes the filesystem once.
const SYNCFS_THRESHOLD: usize = 8;
/// How many messages one locked step of a multi-message pop or peek handles.
const CHUNK: usize = 64;

/// Receives warnings about entries that are skipped.
pub type Warn = Box<dyn Fn(&str)>;

/// An open queue.
pub struct Queue {
    name: String,
    path: PathBuf,
    dir: OwnedFd,
    warn: Warn,
    warned: RefCell<HashSet<String>>,
}

/// A message found in `ready/`, opened.
struct Found {
    id: u64,
    bucket: OwnedFd,
    file: File,
    stat: Stat,
}

/// What a search of `ready/` found.
enum Lookup {
    /// The first message at or after the id searched from.
    Found(Found),
    /// None; every id published so far is below `next`.
    Empty { next: u64 },
}

/// A message taken out of `ready/` by this process: renamed into `claimed/` and flocked.
pub struct Claimed {
    id: u64,
    entry: String,
    file: File,
    size: u64,
}

/// A message's metadata, as `list` and `stats` show it.
#[derive(Debug, Clone)]
pub struct Info {
    /// Sequence number.
    pub id: u64,
    /// Payload length in bytes.
    pub size: u64,
    /// Enqueue time (the file's modification time, set when it was written).
    pub enqueued: SystemTime,
}

/// Counts and sizes of a queue.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Waiting messages.
    pub waiting: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Enqueue time of the oldest waiting message.
    pub oldest: Option<SystemTime>,
    /// Messages being delivered by a running pop.
    pub claimed: u64,
    /// The next id to be allocated.
    pub next_id: u64,
}

/// The producer lock, held while ids are allocated and published.
struct Producer {
    counter: File,
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

fn errno_of(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
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
        let created = sys::make_dir(root_fd.as_fd(), name)
            .map_err(|e| Error::io("create queue", &path, e))?;
        if created {
            sys::fsync(&root_fd).map_err(|e| Error::io("fsync", root, e))?;
        }
        let dir = sys::open_dir_beneath(root_fd.as_fd(), name)
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
        let fd = match sys::open_beneath(self.dir(), "format", OFlags::RDONLY, 0) {
            Ok(fd) => fd,
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(Error::io("open", self.at("format"), e)),
        };
        let mut buf = [0u8; 64];
        let mut file = File::from(fd);
        let n =
            read_full(&mut file, &mut buf).map_err(|e| Error::io("read", self.at("format"), e))?;
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
        for sub in ["tmp", "ready", "claimed"] {
            sys::make_dir(self.dir(), sub).map_err(|e| Error::io("create", self.at(sub), e))?;
        }
        for counter in ["counter", "head"] {
            let fd = sys::open_beneath(
                self.dir(),
                counter,
                OFlags::RDWR | OFlags::CREATE,
                sys::FILE_MODE,
            )
            .map_err(|e| Error::io("create", self.at(counter), e))?;
            rustix::fs::fchmod(&fd, rustix::fs::Mode::from_bits_truncate(sys::FILE_MODE))
                .map_err(|e| Error::io("chmod", self.at(counter), e))?;
            let file = File::from(fd);
            file.lock()
                .map_err(|e| Error::io("lock", self.at(counter), e))?;
            let len = sys::stat_fd(&file)
                .map_err(|e| Error::io("stat", self.at(counter), e))?
                .st_size;
            if len == 0 {
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
        for sub in ["tmp", "ready", "claimed"] {
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

    fn open_counter(&self, rel: &str) -> Result<File> {
        sys::open_beneath(self.dir(), rel, OFlags::RDWR, 0)
            .map(File::from)
            .map_err(|e| Error::io("open", self.at(rel), e))
    }

    fn lock_producer(&self) -> Result<Producer> {
        let counter = self.open_counter("counter")?;
        counter
            .lock()
            .map_err(|e| Error::io("lock", self.at("counter"), e))?;
        Ok(Producer { counter })
    }

    fn next_id(&self, p: &Producer) -> Result<u64> {
        let len = sys::stat_fd(&p.counter)
            .map_err(|e| Error::io("stat", self.at("counter"), e))?
            .st_size;
        Ok((len as u64).max(1))
    }

    fn set_next_id(&self, p: &Producer, next: u64) -> Result<()> {
        sys::set_len(&p.counter, next).map_err(|e| Error::io("write", self.at("counter"), e))
    }

    fn lock_consumer(&self) -> Result<Consumer> {
        let head_file = self.open_counter("head")?;
        head_file
            .lock()
            .map_err(|e| Error::io("lock", self.at("head"), e))?;
        let head = sys::stat_fd(&head_file)
            .map_err(|e| Error::io("stat", self.at("head"), e))?
            .st_size as u64;
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

    /// Creates `tmp/TOKEN` (a file) or `tmp/TOKEN.batch` (a directory) and flocks it.
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
                let file = sys::create_exclusive(tmp.as_fd(), &name)
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

    /// Removes orphans from `tmp/`: entries whose writer died (their flock is free).
    fn sweep_tmp(&self, tmp: BorrowedFd<'_>) -> Result<()> {
        let names = sys::read_names(
            sys::open_dir_beneath(tmp, ".").map_err(|e| Error::io("open", self.at("tmp"), e))?,
        )
        .map_err(|e| Error::io("read", self.at("tmp"), e))?;
        for name in names {
            let rel = format!("tmp/{name}");
            match sys::stat_at(tmp, &name) {
                Ok(st)
                    if sys::is_plain_file(&st)
                        || rustix::fs::FileType::from_raw_mode(st.st_mode)
                            == rustix::fs::FileType::Directory => {}
                Ok(st) => {
                    self.warn_once(&rel, sys::describe_entry(&st));
                    continue;
                }
                Err(_) => continue,
            }
            let fd = match sys::open_beneath(tmp, &name, OFlags::RDONLY | OFlags::NONBLOCK, 0) {
                Ok(fd) => fd,
                Err(e) if errno_of(&e) == Some(Errno::NOENT) => continue,
                Err(_) => {
                    self.warn_once(&rel, "not a file or directory spool wrote");
                    continue;
                }
            };
            let file = File::from(fd);
            if file.try_lock().is_err() {
                continue; // alive, or not ours to judge
            }
            let st = sys::stat_fd(&file).map_err(|e| Error::io("stat", self.at(&rel), e))?;
            if st.st_nlink == 0 {
                continue;
            }
            let is_dir =
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
            if is_dir && name.ends_with(".batch") {
                let inner = sys::read_names(
                    sys::open_dir_beneath(file.as_fd(), ".")
                        .map_err(|e| Error::io("open", self.at(&rel), e))?,
                )
                .map_err(|e| Error::io("read", self.at(&rel), e))?;
                for entry in inner {
                    if entry.bytes().all(|b| b.is_ascii_digit()) {
                        let _ = sys::remove_file(file.as_fd(), &entry);
                    }
                }
                let _ = sys::remove_dir(tmp, &name);
            } else if sys::is_plain_file(&st) {
                let _ = sys::remove_file(tmp, &name);
            } else {
                self.warn_once(&rel, sys::describe_entry(&st));
            }
        }
        Ok(())
    }

    // ----- pop and peek -----

    /// Opens bucket `b` of `ready/`; `None` when it does not exist.
    fn open_bucket(&self, b: u64) -> Result<Option<OwnedFd>> {
        let rel = format!("ready/{}", bucket_name(b));
        match sys::open_dir_beneath(self.dir(), &rel) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if errno_of(&e) == Some(Errno::NOENT) => Ok(None),
            Err(e) if errno_of(&e) == Some(Errno::LOOP) || errno_of(&e) == Some(Errno::NOTDIR) => {
                self.warn_once(&rel, "not a directory spool wrote");
                Ok(None)
            }
            Err(e) => Err(Error::io("open", self.at(&rel), e)),
        }
    }

    /// Opens message `id` in `bucket` if it is there and a plain file; warns about junk.
    fn open_message(&self, bucket: &OwnedFd, id: u64) -> Result<Option<Found>> {
        let name = id_name(id);
        let rel = names::ready_path(id);
        let fd =
            match sys::open_beneath(bucket.as_fd(), &name, OFlags::RDONLY | OFlags::NONBLOCK, 0) {
                Ok(fd) => fd,
                Err(e) if errno_of(&e) == Some(Errno::NOENT) => return Ok(None),
                Err(e)
                    if matches!(
                        errno_of(&e),
                        Some(Errno::LOOP) | Some(Errno::NXIO) | Some(Errno::ISDIR)
                    ) =>
                {
                    self.warn_once(&rel, "not a regular file");
                    return Ok(None);
                }
                Err(e) => return Err(Error::io("open", self.at(&rel), e)),
            };
        let stat = sys::stat_fd(&fd).map_err(|e| Error::io("stat", self.at(&rel), e))?;
        if !sys::is_plain_file(&stat) {
            self.warn_once(&rel, sys::describe_entry(&stat));
            return Ok(None);
        }
        let bucket = bucket
            .try_clone()
            .map_err(|e| Error::io("dup", self.at(&rel), e))?;
        Ok(Some(Found {
            id,
            bucket,
            file: File::from(fd),
            stat,
        }))
    }

    /// Finds the first ready message with an id of at least `from`.
    ///
    /// The fast path opens `ready/BUCKET/from` directly. On a miss it scans, holding the
    /// producer lock so that no publication is half done: the buckets in order, and in the
    /// first bucket that has any message, its names. `head_scan` makes the scan start at
    /// the lowest id present (the head is only a hint) and removes emptied buckets.
    fn find_ready(&self, from: u64, head_scan: bool) -> Result<Lookup> {
        if let Some(bucket) = self.open_bucket(bucket_of(from))?
            && let Some(found) = self.open_message(&bucket, from)?
        {
            return Ok(Lookup::Found(found));
        }
        let producer = self.lock_producer()?;
        let next = self.next_id(&producer)?;
        let lower = if head_scan { 0 } else { from };
        let ready = self.open_dir("ready")?;
        let mut buckets = Vec::new();
        let names = sys::read_names(
            ready
                .try_clone()
                .map_err(|e| Error::io("dup", self.at("ready"), e))?,
        )
        .map_err(|e| Error::io("read", self.at("ready"), e))?;
        for name in names {
            match parse_bucket(&name) {
                Some(b) if b >= bucket_of(lower) => buckets.push(b),
                Some(_) => {}
                None => self.warn_once(&format!("ready/{name}"), "not a bucket spool wrote"),
            }
        }
        buckets.sort_unstable();
        for b in buckets {
            let Some(bucket) = self.open_bucket(b)? else {
                continue;
            };
            let rel = format!("ready/{}", bucket_name(b));
            let mut ids = Vec::new();
            let mut entries = 0usize;
            let names = sys::read_names(
                bucket
                    .try_clone()
                    .map_err(|e| Error::io("dup", self.at(&rel), e))?,
            )
            .map_err(|e| Error::io("read", self.at(&rel), e))?;
            for name in names {
                entries += 1;
                match parse_id(&name) {
                    Some(id) if bucket_of(id) == b => {
                        if id >= lower {
                            ids.push(id)
                        }
                    }
                    _ => self.warn_once(&format!("{rel}/{name}"), "not a message file spool wrote"),
                }
            }
            ids.sort_unstable();
            for id in ids {
                if let Some(found) = self.open_message(&bucket, id)? {
                    return Ok(Lookup::Found(found));
                }
            }
            if head_scan && entries == 0 && b < bucket_of(next) {
                sys::remove_dir(ready.as_fd(), &bucket_name(b))
                    .map_err(|e| Error::io("remove", self.at(&rel), e))?;
            }
        }
        // The queue ran dry: a good moment to remove what crashed writers left in tmp/.
        let tmp = self.open_dir("tmp")?;
        self.sweep_tmp(tmp.as_fd())?;
        Ok(Lookup::Empty { next })
    }

    /// Returns claims whose holder died (their flock is free) to `ready/`.
    fn recover_claims(&self, c: &mut Consumer) -> Result<()> {
        let claimed = self.open_dir("claimed")?;
        let names = sys::read_names(
            claimed
                .try_clone()
                .map_err(|e| Error::io("dup", self.at("claimed"), e))?,
        )
        .map_err(|e| Error::io("read", self.at("claimed"), e))?;
        for name in names {
            let rel = format!("claimed/{name}");
            let Some(id) = parse_claim(&name) else {
                self.warn_once(&rel, "not a claim spool wrote");
                continue;
            };
            let fd = match sys::open_beneath(
                claimed.as_fd(),
                &name,
                OFlags::RDONLY | OFlags::NONBLOCK,
                0,
            ) {
                Ok(fd) => fd,
                Err(e) if errno_of(&e) == Some(Errno::NOENT) => continue,
                Err(_) => {
                    self.warn_once(&rel, "not a regular file");
                    continue;
                }
            };
            let file = File::from(fd);
            if file.try_lock().is_err() {
                continue; // its pop is still running
            }
            let st = sys::stat_fd(&file).map_err(|e| Error::io("stat", self.at(&rel), e))?;
            if st.st_nlink == 0 {
                continue; // delivered and removed while we looked
            }
            if !sys::is_plain_file(&st) {
                self.warn_once(&rel, sys::describe_entry(&st));
                continue;
            }
            self.return_to_ready(&claimed, &name, id, c)?;
        }
        Ok(())
    }

    /// Moves `claimed/NAME` back to `ready/` under its own id, ahead of the head.
    fn return_to_ready(
        &self,
        claimed: &OwnedFd,
        name: &str,
        id: u64,
        c: &mut Consumer,
    ) -> Result<()> {
        let rel = format!("claimed/{name}");
        let bucket = match self.open_bucket(bucket_of(id))? {
            Some(fd) => fd,
            None => {
                let ready = self.open_dir("ready")?;
                sys::make_dir(ready.as_fd(), &bucket_name(bucket_of(id)))
                    .map_err(|e| Error::io("create", self.at(&names::ready_path(id)), e))?;
                self.open_dir(&format!("ready/{}", bucket_name(bucket_of(id))))?
            }
        };
        match sys::rename_noreplace(claimed.as_fd(), name, bucket.as_fd(), &id_name(id)) {
            Ok(()) => {
                c.head = c.head.min(id);
                Ok(())
            }
            Err(e) if errno_of(&e) == Some(Errno::EXIST) => {
                self.warn_once(&rel, "a message with its id is already waiting");
                Ok(())
            }
            Err(e) => Err(Error::io("rename", self.at(&rel), e)),
        }
    }

    /// Takes up to `n` messages: each is moved to `claimed/` and flocked by this process,
    /// to be [`finish`](Self::finish)ed once delivered or [`give_back`](Self::give_back)ed.
    pub fn take(&self, n: usize) -> Result<Vec<Claimed>> {
        let mut c = self.lock_consumer()?;
        self.recover_claims(&mut c)?;
        let claimed_dir = self.open_dir("claimed")?;
        let mut taken = Vec::new();
        let mut first = true;
        while taken.len() < n {
            let found = match self.find_ready(c.head, first)? {
                Lookup::Found(found) => found,
                Lookup::Empty { next } => {
                    if first {
                        // The scan saw every bucket: whatever comes next gets an id >= next.
                        c.head = next;
                    }
                    break;
                }
            };
            first = false;
            let id = found.id;
            match found.file.try_lock() {
                Ok(()) => {}
                Err(_) => {
                    self.warn_once(&names::ready_path(id), "locked by another process");
                    c.head = id + 1;
                    continue;
                }
            }
            let entry = format!("{}.{}", id_name(id), names::token());
            sys::rename_noreplace(
                found.bucket.as_fd(),
                &id_name(id),
                claimed_dir.as_fd(),
                &entry,
            )
            .map_err(|e| Error::io("rename", self.at(&names::ready_path(id)), e))?;
            c.head = id + 1;
            if c.head % BUCKET_SIZE == 0 {
                // Every id of that bucket is allocated and below the head: it stays empty.
                let ready = self.open_dir("ready")?;
                sys::remove_dir(ready.as_fd(), &bucket_name(bucket_of(id)))
                    .map_err(|e| Error::io("remove", self.at(&names::ready_path(id)), e))?;
            }
            taken.push(Claimed {
                id,
                entry,
                file: found.file,
                size: found.stat.st_size as u64,
            });
        }
        self.save_head(&mut c)?;
        Ok(taken)
    }

    /// Deletes delivered messages: unlinks them from `claimed/` and fsyncs it.
    pub fn finish(&self, done: Vec<Claimed>) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let claimed = self.open_dir("claimed")?;
        for m in &done {
            sys::remove_file(claimed.as_fd(), &m.entry).map_err(|e| {
                Error::io("remove", self.at(&format!("claimed/{}", m.entry)), e).with_note(format!(
                    "message {} was delivered but not removed: it will be delivered again",
                    m.id
                ))
            })?;
        }
        sys::fsync(&claimed).map_err(|e| {
            Error::io("fsync", self.at("claimed"), e)
                .with_note("the removal of delivered messages may not be durable")
        })?;
        Ok(())
    }

    /// Returns taken messages that were not delivered to `ready/`, in their place.
    pub fn give_back(&self, undelivered: Vec<Claimed>) -> Result<()> {
        if undelivered.is_empty() {
            return Ok(());
        }
        let mut c = self.lock_consumer()?;
        let claimed = self.open_dir("claimed")?;
        let mut result = Ok(());
        for m in &undelivered {
            if let Err(e) = self.return_to_ready(&claimed, &m.entry, m.id, &mut c) {
                result = result.and(Err(e));
            }
        }
        self.save_head(&mut c)?;
        result
    }

    /// Opens up to `n` waiting messages in order, from the head, without taking them.
    pub fn peek(&self, n: usize, mut each: impl FnMut(Message) -> Result<bool>) -> Result<usize> {
        let mut cursor = None;
        let mut seen = 0;
        while seen < n {
            let mut batch = Vec::new();
            {
                let mut c = self.lock_consumer()?;
                if cursor.is_none() {
                    self.recover_claims(&mut c)?;
                }
                let mut from = cursor.unwrap_or(c.head);
                while batch.len() < CHUNK.min(n - seen) {
                    let head_scan = cursor.is_none() && batch.is_empty();
                    let found = match self.find_ready(from, head_scan)? {
                        Lookup::Found(found) => found,
                        Lookup::Empty { next } => {
                            if head_scan {
                                c.head = next;
                            }
                            break;
                        }
                    };
                    if head_scan {
                        // Nothing waits below the first message found.
                        c.head = found.id;
                    }
                    from = found.id + 1;
                    batch.push(found);
                }
                self.save_head(&mut c)?;
                cursor = Some(from);
            }
            if batch.is_empty() {
                break;
            }
            for found in batch {
                seen += 1;
                let message = Message {
                    id: found.id,
                    size: found.stat.st_size as u64,
                    file: found.file,
                };
                if !each(message)? {
                    return Ok(seen);
                }
            }
        }
        Ok(seen)
    }

    // ----- inspection -----

    /// Calls `f` with each waiting message in order, scanning the directories without any
    /// lock: memory is one bucket's names, whatever the depth.
    pub fn walk(
        &self,
        mut f: impl FnMut(&Info, &dyn Fn() -> Result<Option<File>>) -> Result<bool>,
    ) -> Result<()> {
        let ready = self.open_dir("ready")?;
        let mut buckets = Vec::new();
        for name in sys::read_names(ready).map_err(|e| Error::io("read", self.at("ready"), e))? {
            match parse_bucket(&name) {
                Some(b) => buckets.push(b),
                None => self.warn_once(&format!("ready/{name}"), "not a bucket spool wrote"),
            }
        }
        buckets.sort_unstable();
        for b in buckets {
            let Some(bucket) = self.open_bucket(b)? else {
                continue;
            };
            let rel = format!("ready/{}", bucket_name(b));
            let mut ids = Vec::new();
            let names = sys::read_names(
                bucket
                    .try_clone()
                    .map_err(|e| Error::io("dup", self.at(&rel), e))?,
            )
            .map_err(|e| Error::io("read", self.at(&rel), e))?;
            for name in names {
                match parse_id(&name) {
                    Some(id) if bucket_of(id) == b => ids.push(id),
                    _ => self.warn_once(&format!("{rel}/{name}"), "not a message file spool wrote"),
                }
            }
            ids.sort_unstable();
            for id in ids {
                let st = match sys::stat_at(bucket.as_fd(), &id_name(id)) {
                    Ok(st) => st,
                    Err(e) if errno_of(&e) == Some(Errno::NOENT) => continue, // popped meanwhile
                    Err(e) => return Err(Error::io("stat", self.at(&names::ready_path(id)), e)),
                };
                if !sys::is_plain_file(&st) {
                    self.warn_once(&names::ready_path(id), sys::describe_entry(&st));
                    continue;
                }
                let info = Info {
                    id,
                    size: st.st_size as u64,
                    enqueued: mtime(&st),
                };
                let open = || -> Result<Option<File>> {
                    Ok(self.open_message(&bucket, id)?.map(|f| f.file))
                };
                if !f(&info, &open)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        self.walk(|info, _| {
            s.waiting += 1;
            s.bytes += info.size;
            s.oldest = Some(s.oldest.map_or(info.enqueued, |o| o.min(info.enqueued)));
            Ok(true)
        })?;
        let claimed = self.open_dir("claimed")?;
        let mut n = 0;
        sys::for_each_name(claimed, |name| {
            if name.to_str().ok().and_then(parse_claim).is_some() {
                n += 1;
            }
            Ok(())
        })
        .map_err(|e| Error::io("read", self.at("claimed"), e))?;
        s.claimed = n;
        let counter = self.open_counter("counter")?;
        s.next_id = (sys::stat_fd(&counter)
            .map_err(|e| Error::io("stat", self.at("counter"), e))?
            .st_size as u64)
            .max(1);
        Ok(s)
    }

    // ----- clear -----

    /// Removes every waiting message; returns how many. Pushes that finished publishing
    /// before it began are cleared; later ones are kept; none is half-removed.
    pub fn clear(&self) -> Result<u64> {
        let mut c = self.lock_consumer()?;
        self.recover_claims(&mut c)?;
        let next = {
            let p = self.lock_producer()?;
            self.next_id(&p)?
        };
        let ready = self.open_dir("ready")?;
        let mut buckets = Vec::new();
        for name in sys::read_names(
            ready
                .try_clone()
                .map_err(|e| Error::io("dup", self.at("ready"), e))?,
        )
        .map_err(|e| Error::io("read", self.at("ready"), e))?
        {
            match parse_bucket(&name) {
                Some(b) if b <= bucket_of(next) => buckets.push(b),
                Some(_) => {}
                None => self.warn_once(&format!("ready/{name}"), "not a bucket spool wrote"),
            }
        }
        buckets.sort_unstable();
        let mut removed = 0u64;
        let mut first_error = None;
        for b in buckets {
            let Some(bucket) = self.open_bucket(b)? else {
                continue;
            };
            let rel = format!("ready/{}", bucket_name(b));
            let names = sys::read_names(
                bucket
                    .try_clone()
                    .map_err(|e| Error::io("dup", self.at(&rel), e))?,
            )
            .map_err(|e| Error::io("read", self.at(&rel), e))?;
            for name in names {
                let id = match parse_id(&name) {
                    Some(id) if bucket_of(id) == b => id,
                    _ => {
                        self.warn_once(&format!("{rel}/{name}"), "not a message file spool wrote");
                        continue;
                    }
                };
                if id >= next {
                    continue;
                }
                match sys::stat_at(bucket.as_fd(), &name) {
                    Ok(st) if sys::is_plain_file(&st) => {}
                    Ok(st) => {
                        self.warn_once(&names::ready_path(id), sys::describe_entry(&st));
                        continue;
                    }
                    Err(e) if errno_of(&e) == Some(Errno::NOENT) => continue,
                    Err(e) => return Err(Error::io("stat", self.at(&names::ready_path(id)), e)),
                }
                match sys::remove_file(bucket.as_fd(), &name) {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        first_error.get_or_insert(Error::io(
                            "remove",
                            self.at(&names::ready_path(id)),
                            e,
                        ));
                    }
                }
            }
            sys::fsync(&bucket).map_err(|e| Error::io("fsync", self.at(&rel), e))?;
            if b < bucket_of(next) {
                sys::remove_dir(ready.as_fd(), &bucket_name(b))
                    .map_err(|e| Error::io("remove", self.at(&rel), e))?;
            }
        }
        sys::fsync(&ready).map_err(|e| Error::io("fsync", self.at("ready"), e))?;
        let tmp = self.open_dir("tmp")?;
        self.sweep_tmp(tmp.as_fd())?;
        c.head = c.head.max(next);
        self.save_head(&mut c)?;
        match first_error {
            Some(e) => Err(e.with_note(format!("{removed} messages were removed"))),
            None => Ok(removed),
        }
    }
}

/// A waiting message opened for reading.
pub struct Message {
    /// Sequence number.
    pub id: u64,
    /// Payload length.
    pub size: u64,
    /// The open file, positioned at the start.
    pub file: File,
}

impl Claimed {
    /// Sequence number.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Payload length.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The open file.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }
}

impl Staging<'_> {
    /// Writes one more message with `write`, which gets the open temporary file and its
    /// path (for errors).
    pub fn add(&mut self, write: impl FnOnce(&mut File, &Path) -> Result<()>) -> Result<()> {
        let q = self.queue;
        let (rel, mut file, keep_lock) = match &mut self.kind {
            StagingKind::Single { name, file } => {
                if file.is_some() {
                    return Err(Error::invalid(
                        "push",
                        Some(q.path()),
                        "one message per single staging",
                    ));
                }
                let (n, lock) = q.create_locked(&self.tmp, "", false)?;
                *name = n;
                (format!("tmp/{name}"), lock, true)
            }
            StagingKind::Batch { name, dir, .. } => {
                let entry = self.count.to_string();
                let file = sys::create_exclusive(dir.as_fd(), &entry)
                    .map_err(|e| Error::io("create", q.at(&format!("tmp/{name}/{entry}")), e))?;
                (format!("tmp/{name}/{entry}"), file, false)
            }
        };
        let path = q.at(&rel);
        write(&mut file, &path)?;
        self.count += 1;
        if keep_lock {
            // A single message is synced now, and its fd (and flock) kept until publish.
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

    /// How many messages are staged.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Makes every staged message durable, then publishes them in order under one
    /// producer lock, and fsyncs the directories they went to.
    pub fn publish(mut self) -> Result<Published> {
        let q = self.queue;
        let mut published = Published::default();
        if self.count == 0 {
            self.discard();
            return Ok(published);
        }
        // Data first: a small batch fsyncs each file, a large one the whole filesystem.
        if let StagingKind::Batch { name, .. } = &self.kind {
            if self.count <= SYNCFS_THRESHOLD {
                for (i, file) in self.unsynced.drain(..).enumerate() {
                    let path = q.at(&format!("tmp/{name}/{i}"));
                    sys::fdatasync(&file).map_err(|e| Error::io("fsync", &path, e))?;
                    sys::close_checked(file.into()).map_err(|e| Error::io("close", &path, e))?;
                }
            } else {
                for (i, file) in self.unsynced.drain(..).enumerate() {
                    let path = q.at(&format!("tmp/{name}/{i}"));
                    sys::close_checked(file.into()).map_err(|e| Error::io("close", &path, e))?;
                }
                sys::syncfs(&self.tmp).map_err(|e| Error::io("sync", q.path(), e))?;
            }
        }
        let (src_dir, src_prefix): (BorrowedFd<'_>, String) = match &self.kind {
            StagingKind::Single { .. } => (self.tmp.as_fd(), String::from("tmp")),
            StagingKind::Batch { name, dir, .. } => (dir.as_fd(), format!("tmp/{name}")),
        };
        let src_name = |i: usize| -> String {
            match &self.kind {
                StagingKind::Single { name, .. } => name.clone(),
                StagingKind::Batch { .. } => i.to_string(),
            }
        };
        let mut touched: Vec<(u64, OwnedFd)> = Vec::new();
        let renamed = (|| -> Result<()> {
            let producer = q.lock_producer()?;
            let mut id = q.next_id(&producer)?;
            let mut i = 0;
            while i < self.count {
                let b = bucket_of(id);
                if touched.last().is_none_or(|(tb, _)| *tb != b) {
                    let fd = match q.open_bucket(b)? {
                        Some(fd) => fd,
                        None => {
                            let ready = q.open_dir("ready")?;
                            let rel = format!("ready/{}", bucket_name(b));
                            sys::make_dir(ready.as_fd(), &bucket_name(b))
                                .map_err(|e| Error::io("create", q.at(&rel), e))?;
                            sys::fsync(&ready).map_err(|e| Error::io("fsync", q.at("ready"), e))?;
                            q.sweep_tmp(self.tmp.as_fd())?;
                            q.open_dir(&rel)?
                        }
                    };
                    touched.push((b, fd));
                }
                // The id is allocated before the rename makes it visible: a crash between
                // the two leaves a gap, never a reused id.
                q.set_next_id(&producer, id + 1)?;
                let bucket = &touched.last().expect("pushed above").1;
                let src = src_name(i);
                match sys::rename_noreplace(src_dir, &src, bucket.as_fd(), &id_name(id)) {
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
                id += 1;
            }
            Ok(())
        })();
        let published_note = |p: &Published| -> String {
            match p.runs.first() {
                None => "nothing was pushed".to_string(),
                Some(_) => format!(
                    "{} of {} messages were published and may be visible",
                    p.len(),
                    self.count
                ),
            }
        };
        if let Err(e) = renamed {
            let note = published_note(&published);
            self.discard();
            return Err(e.with_note(note));
        }
        // Everything was renamed away: only an empty batch directory is left to remove.
        self.count = 0;
        if let StagingKind::Single { file, .. } = &mut self.kind {
            *file = None;
        }
        self.discard();
        for (b, fd) in &touched {
            sys::fsync(fd).map_err(|e| {
                Error::io("fsync", q.at(&format!("ready/{}", bucket_name(*b))), e)
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
                if file.take().is_some() && !name.is_empty() {
                    let _ = sys::remove_file(self.tmp.as_fd(), name);
                }
            }
            StagingKind::Batch { name, dir, .. } => {
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

/// Reads until `buf` is full or the end of the file.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
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
    let secs = st.st_mtime;
    let nanos = st.st_mtime_nsec as u32;
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + std::time::Duration::new(secs as u64, nanos)
    } else {
        SystemTime::UNIX_EPOCH
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
        staging.publish().unwrap().ids().collect()
    }

    fn pop_all(q: &Queue) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut taken = q.take(1).unwrap();
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
        assert_eq!(q.clear().unwrap(), 4);
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
        assert_eq!(q.stats().unwrap().waiting, 2500);
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
        let taken = q.take(1).unwrap();
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
        let held = q.take(1).unwrap();
        let next = q.take(1).unwrap();
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
        std::fs::remove_file(q.path().join(names::ready_path(1))).unwrap();
        // A head file reset to 1 (as after a crash) must not hide anything either.
        assert_eq!(pop_all(&q), vec![b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn junk_is_skipped_with_a_warning() {
        let (_d, spool, warnings) = spool();
        let q = spool.create("q").unwrap();
        push(&q, &[b"a", b"b"]);
        let bucket = q.path().join("ready").join(bucket_name(0));
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
