//! The local engine: a spool directory whose queues are directories of message files,
//! a few length files, and two locks. [`layout`] names every file and directory (format
//! 1; docs/FORMAT.md is the reference); message file names, a 20-digit key and optional
//! fields, are described in `entry`.
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
//! - A deduplication key K is held by the message whose id is the length of `keys/K`.
//!   keys/ changes only under the producer lock: a push creates the file after renaming
//!   its message into place, and whatever deletes a keyed message or moves it to
//!   failed/ removes the file (if it is the message's) before, holding the lock until
//!   the message is gone. So a key never outlives its message, and a pusher never sees
//!   it free while its message is there. Messages without a key never touch keys/.
//! - Lock order: consumer lock, then producer lock; never the other way.
//!
//! Each concern lives in a file of its own, all adding to one `impl Queue`:
//! [`layout`] (every on-disk name), `access` (paths, directories and entries inside a
//! queue), `lengths` (the length files and the two locks), `rate`, `push` (staging and
//! publishing), `sweep` (leftovers of dead writers), `buckets` (lanes and their buckets),
//! `head` (finding the next ready message), `keys` (deduplication keys), `promote`
//! (delayed messages falling due),
//! `take`, `settle` (what happens to a claim), `read` (peek, show, walk, stats), `clear`,
//! [`fsck`] and [`wait`]; `engine` implements the store's traits with them. Lower files
//! know nothing of higher ones: `layout`, `entry` and `sys` at the bottom, then `access`
//! and `lengths`, then the rest.

use std::cell::RefCell;
use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::io::Errno;

use crate::store::Finding;
use crate::store::error::{Error, Result};
use access::{check_root, open_or_create_root, open_root, open_root_unchecked};
use layout::Format;

mod access;
mod buckets;
mod clear;
mod engine;
mod entry;
pub mod fsck;
mod head;
mod keys;
pub mod layout;
mod lengths;
#[cfg(test)]
mod model;
pub mod netfs;
mod promote;
mod push;
mod rate;
mod read;
mod settle;
mod sweep;
mod sys;
mod take;
pub mod wait;

pub use layout::FORMAT;
pub use push::Staging;
pub use take::Claimed;

/// Receives warnings about entries that are skipped.
pub type Warn = Box<dyn Fn(&str)>;

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
    /// The filesystem refused to open a lock file for writing (EROFS): a read-only
    /// spool. Reading goes on (peek, stats, fsck without repair); nothing is tidied.
    read_only: std::cell::Cell<bool>,
}

impl Queue {
    /// Opens the queue directory `name` of `root`; `Ok(None)` when it does not exist (or
    /// was never completely created).
    ///
    /// A root that is a queue directory, or lies inside one, is refused when the queue is
    /// not found there (the only way a root can be mistaken so): a queue that is found
    /// costs no look at the root's ancestors.
    pub(super) fn open(root: &Path, name: &str, warn: Warn) -> Result<Option<Queue>> {
        let found = match Queue::open_dir_only(root, name, warn, false)? {
            Some(queue) if queue.check_format()? => Some(queue),
            _ => None,
        };
        if found.is_none() {
            open_root(root)?;
        }
        Ok(found)
    }

    /// Opens the directory of the queue `name` of `root`, whatever its format file says;
    /// `Ok(None)` when there is no such directory. `check_root`: refuse a root that is a
    /// queue directory or lies inside one (see [`access::check_root`]).
    fn open_dir_only(
        root: &Path,
        name: &str,
        warn: Warn,
        check_root: bool,
    ) -> Result<Option<Queue>> {
        let path = root.join(name);
        let root_fd = if check_root {
            open_root(root)?
        } else {
            open_root_unchecked(root)?
        };
        let Some(root_fd) = root_fd else {
            return Ok(None);
        };
        let dir = match sys::open_dir_beneath(root_fd.as_fd(), name) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(Error::io("open queue", &path, e)),
        };
        Ok(Some(Queue::from_dir(name, path, dir, warn)))
    }

    /// Opens the queue `name` of `root`, creating the root and the queue as needed; on a
    /// network filesystem, only when `network_fs` allows it (see [`netfs`]).
    pub(super) fn create(root: &Path, name: &str, warn: Warn, network_fs: bool) -> Result<Queue> {
        let path = root.join(name);
        let root_fd = open_or_create_root(root, network_fs)?;
        // Usually it exists: open first, create only when that fails.
        let dir = match sys::open_dir_beneath(root_fd.as_fd(), name) {
            Err(Errno::NOENT) => {
                check_root(root_fd.as_fd(), root, root)?;
                refuse_network_fs(root_fd.as_fd(), "create queue", &path, network_fs)?;
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
            check_root(root_fd.as_fd(), root, root)?;
            refuse_network_fs(queue.dir(), "create queue", queue.path(), network_fs)?;
            queue.initialize()?;
        }
        Ok(queue)
    }

    pub(super) fn from_dir(name: &str, path: PathBuf, dir: OwnedFd, warn: Warn) -> Queue {
        Queue {
            name: name.to_string(),
            path,
            dir,
            claimed: std::cell::OnceCell::new(),
            due_seen: std::cell::Cell::new(None),
            warn,
            warned: RefCell::new(HashSet::new()),
            read_only: std::cell::Cell::new(false),
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
}

/// Refuses to create anything (`what` at `path`) on a network filesystem, the one that
/// holds `fd`, unless `allowed`.
pub(super) fn refuse_network_fs(
    fd: std::os::fd::BorrowedFd<'_>,
    what: &str,
    path: &Path,
    allowed: bool,
) -> Result<()> {
    match netfs::network_fs_of(fd) {
        Some(fs) if !allowed => Err(Error::invalid(
            what,
            Some(path),
            format!(
                "{}; set {}=1 to use it anyway",
                netfs::caveat(fs),
                netfs::ALLOW_VARIABLE
            ),
        )),
        _ => Ok(()),
    }
}

/// A spool: the root directory under which each queue is a directory.
#[derive(Clone)]
pub struct Spool {
    root: PathBuf,
    warn: Rc<dyn Fn(&str)>,
    network_fs: bool,
}

impl Spool {
    /// A spool rooted at `root`; `warn` receives one line per skipped entry.
    pub fn new(root: impl Into<PathBuf>, warn: impl Fn(&str) + 'static) -> Spool {
        Spool {
            root: root.into(),
            warn: Rc::new(warn),
            network_fs: false,
        }
    }

    /// Allows (or not) creating the root and queues on a network filesystem, where locks
    /// and wake-ups do not hold across hosts (see [`netfs`]).
    pub fn allow_network_fs(mut self, allow: bool) -> Spool {
        self.network_fs = allow;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn warner(&self) -> Warn {
        let warn = Rc::clone(&self.warn);
        Box::new(move |m| warn(m))
    }

    /// Opens an existing queue; `Ok(None)` when it does not exist. Creates nothing.
    pub fn open(&self, name: &str) -> Result<Option<Queue>> {
        crate::store::check_queue_name(name)?;
        Queue::open(&self.root, name, self.warner())
    }

    /// Opens a queue, creating the root and the queue when missing.
    pub fn create(&self, name: &str) -> Result<Queue> {
        crate::store::check_queue_name(name)?;
        Queue::create(&self.root, name, self.warner(), self.network_fs)
    }

    /// Checks a queue (and mends it, with `repair`). A queue directory whose format file
    /// is missing is reported, and completed when repairing. A damaged format file is
    /// reported, and written anew when repairing if the rest of the queue is laid out as
    /// this format's queues are; one of another format is an error.
    pub fn fsck(&self, name: &str, repair: bool) -> Result<Vec<Finding>> {
        crate::store::check_queue_name(name)?;
        let mut findings = Vec::new();
        let path = self.root.join(name);
        let opened = Queue::open_dir_only(&self.root, name, self.warner(), true)?;
        let format = match &opened {
            Some(q) => q.read_format()?,
            None => Format::Missing,
        };
        let queue = match (opened, format) {
            (Some(q), Format::Ours) => q,
            (Some(q), Format::Damaged(why)) => {
                let place = q.at(layout::FORMAT_FILE).display().to_string();
                if !q.has_known_layout() {
                    findings.push(Finding {
                        place,
                        problem: format!(
                            "{why}; not repaired: its counter, head or state directories are not as this spool makes them"
                        ),
                        repair: None,
                    });
                    return Ok(findings);
                }
                let repaired = if repair {
                    Some(q.restore_format()?)
                } else {
                    None
                };
                findings.push(Finding {
                    place,
                    problem: why,
                    repair: repaired,
                });
                q
            }
            (Some(q), Format::Other(why)) => {
                return Err(Error::invalid(
                    "read",
                    Some(&q.at(layout::FORMAT_FILE)),
                    why,
                ));
            }
            (_, _) => {
                if std::fs::symlink_metadata(&path).is_err() {
                    return Err(Error::invalid("fsck", Some(&path), "no such queue"));
                }
                findings.push(Finding {
                    place: path.join(layout::FORMAT_FILE).display().to_string(),
                    problem: "is missing: the queue was never completely created".into(),
                    repair: repair.then(|| "created".to_string()),
                });
                if !repair {
                    return Ok(findings);
                }
                self.create(name)?
            }
        };
        findings.extend(queue.fsck(repair)?);
        if let Some(fs) = netfs::network_fs_of(queue.dir()) {
            let caveat = netfs::caveat(fs);
            if self.network_fs {
                (self.warn)(&format!("{}: {caveat}", queue.path().display()));
            } else {
                findings.push(Finding {
                    place: queue.path().display().to_string(),
                    problem: format!("is {caveat} (set {}=1 to accept it)", netfs::ALLOW_VARIABLE),
                    repair: None,
                });
            }
        }
        Ok(findings)
    }

    /// The names of the queues of this spool, sorted.
    pub fn queues(&self) -> Result<Vec<String>> {
        if open_root(&self.root)?.is_none() {
            return Ok(Vec::new());
        }
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read spool", &self.root, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read spool", &self.root, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !layout::is_valid_queue_name(&name) {
                continue;
            }
            let format = entry.path().join("format");
            match std::fs::symlink_metadata(&format) {
                Ok(m) if m.file_type().is_file() && entry.file_type().is_ok_and(|t| t.is_dir()) => {
                    names.push(name)
                }
                _ => {}
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests;
