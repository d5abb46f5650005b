//! Push: messages are staged in `tmp/` (one flocked file, or a flocked batch directory
//! of numbered files), made durable, then published in order under the producer lock by
//! no-replace renames into their lane (or into delayed/), after the counter that
//! allocates their ids has moved past them. A crash before a rename leaves a gap, never
//! a reused id; a staged message is never seen by a consumer before it is whole.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::io::Errno;

use super::entry::Entry;
use super::layout::{self, *};
use super::lengths::Producer;
use super::{Queue, sys};
use crate::clock::now_ms;
use crate::store::error::{Error, Result};
use crate::store::{Duplicate, Meta, Published, PushOptions};

/// Below this many messages a batch fsyncs each file; above, it flushes the filesystem once.
const SYNCFS_THRESHOLD: usize = 8;
/// Messages being written, before they are published.
pub struct Staging<'q> {
    pub(super) queue: &'q Queue,
    pub(super) tmp: OwnedFd,
    pub(super) kind: StagingKind,
    pub(super) count: usize,
    /// Files kept open until publish, to fdatasync them when the batch is small.
    pub(super) unsynced: Vec<File>,
    /// Each message's own options and key ([`Staging::add_with`]), by index; `None`: the
    /// options given to publish, no key.
    pub(super) metas: Vec<Option<Meta>>,
}

/// What holds the key of a duplicate.
#[derive(Clone, Copy)]
enum Holder {
    /// A message of the queue, by id.
    Id(u64),
    /// An earlier message of the same batch, by index.
    Earlier(usize),
}

pub(super) enum StagingKind {
    /// One message: `tmp/TOKEN`, flocked through `file`.
    Single { name: String, file: Option<File> },
    /// Many: `tmp/TOKEN.batch/N`, the directory flocked through `dir`.
    Batch { name: String, dir: File },
}

impl Queue {
    /// Starts writing messages. `many` chooses a batch directory (for more than one).
    pub fn stage(&self, many: bool) -> Result<Staging<'_>> {
        let tmp = self.open_dir(TMP)?;
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
            metas: Vec::new(),
        })
    }

    /// Creates `tmp/PREFIX TOKEN` (a file) or `tmp/TOKEN.batch` (a directory) and flocks it.
    /// A sweeper may take an unlocked entry for an orphan in the instant between create
    /// and lock; then it is gone or locked, and we start again with a new name.
    pub(super) fn create_locked(
        &self,
        tmp: &OwnedFd,
        prefix: &str,
        dir: bool,
    ) -> Result<(String, File)> {
        for _ in 0..8 {
            let token = layout::token();
            let (name, lock) = if dir {
                let name = format!("{prefix}{token}.batch");
                sys::make_dir(tmp.as_fd(), &name)
                    .map_err(|e| Error::io("create", self.at(&format!("{TMP}/{name}")), e))?;
                match sys::open_dir_beneath(tmp.as_fd(), &name) {
                    Ok(fd) => (name, File::from(fd)),
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(Error::io("open", self.at(&format!("{TMP}/{name}")), e)),
                }
            } else {
                let name = format!("{prefix}{token}");
                let file = sys::create_exclusive(tmp.as_fd(), &name, false)
                    .map_err(|e| Error::io("create", self.at(&format!("{TMP}/{name}")), e))?;
                (name, file)
            };
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io("lock", self.at(&format!("{TMP}/{name}")), e));
                }
            }
            let st = sys::stat_fd(&lock)
                .map_err(|e| Error::io("stat", self.at(&format!("{TMP}/{name}")), e))?;
            if st.st_nlink == 0 {
                continue;
            }
            return Ok((name, lock));
        }
        Err(Error::invalid(
            "create",
            Some(&self.at(TMP)),
            "temporary files keep vanishing",
        ))
    }
}

impl Staging<'_> {
    /// Writes one more message with `write`, which gets the open temporary file and its
    /// path (for errors).
    pub fn add(&mut self, write: impl FnOnce(&mut File, &Path) -> Result<()>) -> Result<()> {
        self.add_with(None, write)
    }

    /// Writes one more message with options and a key of its own (`None`: those of
    /// publish, no key).
    pub fn add_with(
        &mut self,
        meta: Option<Meta>,
        write: impl FnOnce(&mut File, &Path) -> Result<()>,
    ) -> Result<()> {
        // Nothing is published before `publish`: whatever fails here pushed nothing.
        let index = self.count;
        self.add_inner(write)
            .map_err(|e| e.with_note("nothing was pushed"))?;
        if meta.is_some() {
            self.metas.resize(index, None);
            self.metas.push(meta);
        }
        Ok(())
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
                (format!("{TMP}/{name}"), lock, true)
            }
            StagingKind::Batch { name, dir } => {
                let entry = self.count.to_string();
                let file = sys::create_exclusive(dir.as_fd(), &entry, true)
                    .map_err(|e| Error::io("create", q.at(&format!("{TMP}/{name}/{entry}")), e))?;
                (format!("{TMP}/{name}/{entry}"), file, false)
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
    /// producer lock, and fsyncs the directories they went to (and keys/). A message
    /// whose key is held (by a message in the queue, or an earlier one of this push) is
    /// not published and gets no id: it is listed in the duplicates.
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
                let path = q.at(&format!("{TMP}/{name}/{i}"));
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
            StagingKind::Single { .. } => (self.tmp.as_fd(), String::from(TMP)),
            StagingKind::Batch { name, dir } => (dir.as_fd(), format!("{TMP}/{name}")),
        };
        let src_name = |i: usize| -> String {
            match &self.kind {
                StagingKind::Single { name, .. } => name.clone(),
                StagingKind::Batch { .. } => i.to_string(),
            }
        };
        // Each message's own options (add_with), else the push's.
        let now = now_ms();
        let meta_of = |i: usize| -> (PushOptions, Option<&str>) {
            match self.metas.get(i) {
                Some(Some(Meta { opts, key })) => (*opts, key.as_deref()),
                _ => (opts, None),
            }
        };
        let delayed_of = |o: &PushOptions| o.due.filter(|&d| d > now);
        let keyed = self.metas.iter().flatten().any(|m| m.key.is_some());
        // Per message of a push with keys: the id it got, once renamed into place.
        let mut ids: Vec<Option<u64>> = vec![None; if keyed { self.count } else { 0 }];
        // Duplicates: (index, the id holding the key, or the earlier message of this batch).
        let mut dups: Vec<(usize, Holder)> = Vec::new();
        // Per message of a push with keys: the id its pending key names.
        let mut planned: Vec<Option<u64>> = Vec::new();
        let mut touched: Vec<(String, OwnedFd)> = Vec::new();
        // Whether the messages' directories were synced already (a push with keys).
        let mut dirs_synced = false;
        // Held past the closure: a failed push removes its pending keys still under it.
        let mut lock: Option<Producer> = None;
        let renamed = (|| -> Result<()> {
            let producer = &*lock.insert(q.lock_producer()?);
            q.promote_before_allocating(producer)?;
            if keyed {
                // Under the producer lock, which every change to keys/ holds: a key seen
                // free stays free until this push has taken it.
                let keys = q.open_keys()?;
                if let Some(dir) = &keys {
                    // Pending keys of a push cut short, all settled in one look.
                    let all: Vec<&str> = (0..self.count).filter_map(|i| meta_of(i).1).collect();
                    q.settle_pending(dir.as_fd(), &all)?;
                }
                let mut first_of: std::collections::HashMap<&str, usize> =
                    std::collections::HashMap::new();
                for i in 0..self.count {
                    let Some(key) = meta_of(i).1 else { continue };
                    if let Some(&earlier) = first_of.get(key) {
                        dups.push((i, Holder::Earlier(earlier)));
                    } else if let Some(id) = match &keys {
                        Some(dir) => q.key_holder(dir.as_fd(), key)?,
                        None => None,
                    } {
                        dups.push((i, Holder::Id(id)));
                    } else {
                        first_of.insert(key, i);
                    }
                }
            }
            let is_dup = |i: usize| dups.iter().any(|&(d, _)| d == i);
            // Marked before the messages appear, so that a consumer that sees them also
            // knows where to look (it then waits on the producer lock for the rest).
            // Likewise the due hint, before the rename: a hint that is too early costs a
            // look, one that is too late would hide the message.
            let mut lanes_marked = 0u16;
            let mut due_marked: Option<u64> = None;
            for i in 0..self.count {
                if is_dup(i) {
                    continue;
                }
                let (o, _) = meta_of(i);
                match delayed_of(&o) {
                    None => {
                        let lane = o.priority.min(9);
                        if lanes_marked & (1 << lane) == 0 {
                            q.mark_lane(lane)?;
                            lanes_marked |= 1 << lane;
                        }
                    }
                    Some(due) => {
                        if due_marked.is_none_or(|d| due < d) {
                            q.mark_due(due)?;
                            due_marked = Some(due);
                        }
                    }
                }
            }
            // The keys of the messages renamed into place, made held once all of them are.
            let mut to_hold: Vec<(&str, u64)> = Vec::new();
            let mut remaining = self.count - dups.len();
            let mut i = 0;
            let mut next = q.free_key(producer)?;
            let mut reserved = next; // the counter: ids below it are allocated
            // The keys first, pending, at the ids their messages will get, and synced:
            // no message of this push appears without its key (see keys.rs).
            let keys_fd = if keyed {
                let keys = q.keys_dir()?;
                let mut id = next;
                for j in 0..self.count {
                    if is_dup(j) {
                        planned.push(None);
                        continue;
                    }
                    match meta_of(j).1 {
                        Some(key) => {
                            if !q.pend_key(keys.as_fd(), key, id)? {
                                return Err(Error::invalid(
                                    "push",
                                    Some(&q.at(&format!("{KEYS}/{key}"))),
                                    "appeared while the producer lock was held",
                                ));
                            }
                            planned.push(Some(id));
                        }
                        None => planned.push(None),
                    }
                    id += 1;
                }
                q.sync_keys(&keys)?;
                Some(keys)
            } else {
                None
            };
            while i < self.count {
                if is_dup(i) {
                    // Never published: its staged file goes, and it gets no id.
                    if let StagingKind::Batch { dir, .. } = &self.kind {
                        let _ = sys::remove_file(dir.as_fd(), &i.to_string());
                    }
                    i += 1;
                    continue;
                }
                // Ids are allocated before the renames make them visible, the batch's all
                // at once: a crash before a rename leaves a gap, never a reused id.
                if next == reserved {
                    reserved = next + remaining as u64;
                    q.set_next_key(producer, reserved)?;
                }
                let id = next;
                next += 1;
                let (o, key) = meta_of(i);
                // The counter was behind a message (below): the key follows the id.
                if let (Some(key), Some(keys), Some(Some(was))) =
                    (key, &keys_fd, planned.get(i).copied())
                    && was != id
                {
                    q.drop_pending_key(keys.as_fd(), key, was)?;
                    if !q.pend_key(keys.as_fd(), key, id)? {
                        return Err(Error::invalid(
                            "push",
                            Some(&q.at(&format!("{KEYS}/{key}"))),
                            "appeared while the producer lock was held",
                        ));
                    }
                    // Before the sync, so that a failed sync removes this key, not the old.
                    planned[i] = Some(id);
                    q.sync_keys(keys)?;
                }
                let lane = o.priority.min(9);
                let (rel, target) = match delayed_of(&o) {
                    Some(due) => {
                        let entry = Entry {
                            key: due,
                            id,
                            priority: lane,
                            expires: o.expires,
                            dedup: key.map(str::to_string),
                            ..Entry::default()
                        };
                        (DELAYED.to_string(), entry.name())
                    }
                    None => {
                        let entry = Entry {
                            expires: o.expires,
                            dedup: key.map(str::to_string),
                            ..Entry::fresh(id)
                        };
                        (
                            format!("{}/{}", lane_dir(lane), bucket_name(bucket_of(id))),
                            entry.name(),
                        )
                    }
                };
                // Mostly the previous message's directory; messages with options of their
                // own may go back to one opened before.
                let at = match touched
                    .last()
                    .filter(|(r, _)| *r == rel)
                    .map(|_| touched.len() - 1)
                    .or_else(|| touched.iter().position(|(r, _)| *r == rel))
                {
                    Some(at) => at,
                    None => {
                        let fd = match delayed_of(&o) {
                            Some(_) => q.state_dir(DELAYED)?,
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
                        touched.len() - 1
                    }
                };
                let dir = &touched[at].1;
                let src = src_name(i);
                // Sweepers hold the producer lock too, and the sweep is behind us: the
                // temporary file needs its own lock no more, and a published message must
                // never be seen locked.
                if let StagingKind::Single {
                    file: Some(file), ..
                } = &self.kind
                {
                    file.unlock()
                        .map_err(|e| Error::io("unlock", q.at(&format!("{TMP}/{src}")), e))?;
                }
                match sys::rename_noreplace(src_dir, &src, dir.as_fd(), &target) {
                    Ok(()) => {
                        published.add(id);
                        if let Some(slot) = ids.get_mut(i) {
                            *slot = Some(id);
                        }
                        remaining -= 1;
                        i += 1;
                        if let Some(key) = key {
                            to_hold.push((key, id));
                        }
                    }
                    Err(Errno::EXIST) => {
                        // The counter is behind a message (restored or damaged spool):
                        // never overwrite, move past it.
                        (q.warn)(&format!(
                            "{}: counter was behind message {id}; skipping ahead",
                            q.at(COUNTER).display()
                        ));
                    }
                    Err(e) => {
                        return Err(Error::io("rename", q.at(&format!("{src_prefix}/{src}")), e));
                    }
                }
            }
            if let Some(keys) = &keys_fd {
                // The messages' directories synced, their keys are made held: a key
                // already held by a message in place. (A change of mode lost in a crash
                // leaves the key pending, which the next push of it settles.) Still under
                // the producer lock: whatever deletes a keyed message takes it to release
                // the key.
                for (rel, fd) in &touched {
                    sys::fsync(fd).map_err(|e| Error::io("fsync", q.at(rel), e))?;
                }
                dirs_synced = true;
                for (key, id) in to_hold {
                    q.settle_key(keys.as_fd(), key, id)?;
                }
            }
            // The count only feeds stats: it never fails a push.
            let _ = q.count_published(producer, published.len());
            Ok(())
        })();
        if renamed.is_err() && lock.is_some() {
            // The pending keys of messages that did not appear go, while the producer lock
            // is still held: an id planned but not yet allocated (the counter not moved
            // past it) may be given again by the next push, whose key of the same name
            // must not be taken for this one's.
            if let Ok(Some(keys)) = q.open_keys() {
                for (i, was) in planned.iter().enumerate() {
                    if let (Some(was), None, Some(key)) =
                        (was, ids.get(i).copied().flatten(), meta_of(i).1)
                    {
                        let _ = q.drop_pending_key(keys.as_fd(), key, *was);
                    }
                }
            }
        }
        drop(lock);
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
        // Everything was renamed away, or removed (duplicates of a batch): only an empty
        // batch directory is left to remove; a single duplicate is still in tmp/.
        self.count = 0;
        if let StagingKind::Single { name, .. } = &mut self.kind
            && !published.is_empty()
        {
            name.clear(); // published: nothing of it is left in tmp/
        }
        self.discard();
        let synced = touched
            .iter()
            .filter(|_| !dirs_synced)
            .map(|(rel, fd)| (q.at(rel), fd));
        for (path, fd) in synced {
            sys::fsync(fd).map_err(|e| {
                Error::io("fsync", path, e)
                    .with_note("the message may have been published: check before pushing it again")
            })?;
        }
        published.duplicates = dups
            .into_iter()
            .filter_map(|(index, holder)| {
                let id = match holder {
                    Holder::Id(id) => Some(id),
                    Holder::Earlier(earlier) => ids.get(earlier).copied().flatten(),
                };
                id.map(|id| Duplicate { index, id })
            })
            .collect();
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
