//! Reading without taking: peek (what pop would take, in its order), show (one message
//! in any state), walk (every message of some states, lock-free, one bucket's names in
//! memory at a time), stats and the count of waiting messages.

use std::fs::File;

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::Stat;
use rustix::io::Errno;

use super::buckets::Bucket;
use super::entry::Entry;
use super::head::{Exact, Lookup};
use super::layout::*;
use super::{Queue, sys};
use crate::clock::now_ms;
use crate::store::error::{Error, Result};
use crate::store::{Info, Message, Payload, State, Stats};

/// How many messages one locked step of a multi-message peek handles.
const CHUNK: usize = 64;
impl Queue {
    /// Calls `each` with up to `n` waiting messages in the order pop would take them,
    /// without taking them; stops early when `each` returns false.
    ///
    /// Like a take, it first returns abandoned claims and promotes due messages; on a
    /// read-only spool, which nothing can change, it shows the ready lanes as they are.
    pub fn peek(&self, n: usize, mut each: impl FnMut(Message) -> Result<bool>) -> Result<usize> {
        let lanes = {
            let mut c = self.lock_consumer()?;
            if !self.is_read_only() {
                self.recover_claims(&mut c)?;
                self.promote_due()?;
            }
            self.save_head(&mut c)?;
            self.read_length(LANES)?
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
                        payload: Payload::File(found.file),
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
            let (claimed, name, entry) = self.find_plain_claim(what, "show")?;
            return self.open_entry(claimed, CLAIMED, State::Claimed, &name, &entry);
        }
        let id = crate::store::parse_message_id(what)?;
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

    pub(super) fn open_entry(
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

    pub(super) fn info(&self, state: State, entry: &Entry, lane: u8, st: &Stat) -> Info {
        Info {
            key: entry.dedup.clone(),
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
                        let Some(mut walk) = self.lane_walk(lane, 0)? else {
                            continue;
                        };
                        while let Some(Bucket { number, fd, rel }) = self.next_bucket(&mut walk)? {
                            let mut entries = self.entries(&fd, &rel)?;
                            entries.retain(|(_, e)| bucket_of(e.key) == number);
                            entries.sort_unstable_by_key(|(_, e)| e.key);
                            if !self.walk_entries(&fd, &rel, State::Ready, lane, entries, &mut f)? {
                                return Ok(());
                            }
                        }
                    }
                }
                other => {
                    let rel = other.as_str();
                    let dir = match sys::open_dir_beneath(self.dir(), rel) {
                        Ok(fd) => fd,
                        Err(Errno::NOENT) => continue,
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

    pub(super) fn walk_entries(
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
                Err(Errno::NOENT) => continue, // taken meanwhile
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
        s.next_id = self.read_length(COUNTER)?.max(1);
        // The rates only feed statistics: a rates file that cannot be read is no rate.
        (s.published, s.consumed) = self.rates().unwrap_or_default();
        if let Some(fs) = super::netfs::network_fs_of(self.dir()) {
            (self.warn)(&format!(
                "{}: {}",
                self.path.display(),
                super::netfs::caveat(fs)
            ));
        }
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
}

fn mtime(st: &Stat) -> std::time::SystemTime {
    crate::clock::from_stat(st.st_mtime, st.st_mtime_nsec as i64)
}
