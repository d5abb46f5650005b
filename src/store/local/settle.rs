//! What happens to a claim after the take: ack (deleted), nack or retry (back behind the
//! waiting ones, or delayed), extend (a new lease), fail (to failed/ with a reason),
//! and requeue (failed messages back to the ready lanes). Tokens fence stale claims: a
//! token from an earlier claim of the same message finds nothing.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::io::Errno;

use super::entry::Entry;
use super::layout::{self, *};
use super::take::Claimed;
use super::{Queue, sys};
use crate::clock::{LATEST_MS, after, now_ms};
use crate::store::Verdict;
use crate::store::error::{Error, Result};

impl Queue {
    /// Puts a claimed message back behind the waiting ones, or in delayed/ until `due`
    /// (unix ms).
    pub(super) fn retry_claim(
        &self,
        claimed: BorrowedFd<'_>,
        name: &str,
        entry: &Entry,
        due: Option<u64>,
    ) -> Result<bool> {
        let producer = self.lock_producer()?;
        self.promote_before_allocating(&producer)?;
        let lane = entry.priority;
        match due {
            Some(due) => {
                let due = due.min(LATEST_MS);
                let delayed = self.state_dir(DELAYED)?;
                let to = Entry {
                    key: due,
                    id: entry.id,
                    attempts: entry.attempts,
                    priority: lane,
                    expires: entry.expires,
                    dedup: entry.dedup.clone(),
                    ..Entry::default()
                };
                self.mark_due(due)?; // before the rename: never a hint later than a message
                self.move_entry(claimed.as_fd(), CLAIMED, name, delayed.as_fd(), &to.name())
            }
            None => {
                let seq = self.allocate(&producer)?;
                let bucket = self.make_bucket(lane, bucket_of(seq))?;
                let to = entry.in_lane(seq);
                self.mark_lane(lane)?;
                self.move_entry(claimed.as_fd(), CLAIMED, name, bucket.as_fd(), &to.name())
            }
        }
    }

    /// Moves a claimed message to failed/ with `reason`.
    pub(super) fn fail_claim(
        &self,
        claimed: BorrowedFd<'_>,
        name: &str,
        entry: &Entry,
        reason: &str,
    ) -> Result<bool> {
        let producer = self.lock_producer()?; // a clear of failed/ sees it whole or not at all
        let failed = self.state_dir(FAILED)?;
        let to = Entry {
            key: entry.id,
            id: entry.id,
            attempts: entry.attempts,
            priority: entry.priority,
            expires: entry.expires,
            reason: Some(reason.to_string()),
            dedup: entry.dedup.clone(),
            ..Entry::default()
        };
        // A dead letter holds no key: released first (the producer lock is held).
        self.release_keys(std::iter::once(entry))?;
        let moved =
            match self.move_entry(claimed.as_fd(), CLAIMED, name, failed.as_fd(), &to.name()) {
                Ok(moved) => moved,
                Err(e) => {
                    // Not moved, and still in claimed/: it holds its key again.
                    self.restore_key(entry)?;
                    return Err(e);
                }
            };
        // Not moved because it was gone: its claim ended and it went back to the queue,
        // where another consumer may have taken and deleted it since. It holds no key
        // now; making keys/K again could leave a key naming no message.
        sys::fsync(&failed).map_err(|e| Error::io("fsync", self.at(FAILED), e))?;
        drop(producer); // pushes never wait on the stats' lock
        if moved {
            let _ = self.count_consumed(1); // stats only: failed for good is consumed
        }
        Ok(moved)
    }

    /// Settles one of this process's claims as `verdict` says: ack, retry, or fail for good.
    pub fn settle(&self, m: Claimed, verdict: Verdict<'_>) -> Result<()> {
        let claimed = self.claimed_dir()?;
        match verdict {
            Verdict::Ack => return self.finish(vec![m]),
            Verdict::Retry { due_ms } => {
                let due = Some(due_ms).filter(|&due| due > now_ms());
                self.retry_claim(claimed, &m.name, &m.entry, due)?
            }
            Verdict::Fail { reason } => self.fail_claim(claimed, &m.name, &m.entry, reason)?,
        };
        Ok(())
    }

    /// Finds the claim of `token` in claimed/.
    pub(super) fn find_claim(&self, token: &str) -> Result<(BorrowedFd<'_>, String, Entry)> {
        let bad = || {
            Error::invalid(
                format!("token {token:?}"),
                None,
                "not a claim token (they look like 42.9f3a0c1d2e4b5a67)",
            )
        };
        let (id, hex) = layout::parse_token(token).ok_or_else(bad)?;
        let claimed = self.claimed_dir()?;
        let mut other = false;
        for (name, entry) in self.entries(claimed, CLAIMED)? {
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

    /// Finds the claim of `token` for ack, nack, extend or show (step `step`), which must be a
    /// plain file: anything else planted under a claim's name (a symbolic link, a FIFO, a
    /// file with another link) is refused and left where it is.
    pub(super) fn find_plain_claim(
        &self,
        token: &str,
        step: &str,
    ) -> Result<(BorrowedFd<'_>, String, Entry)> {
        let (claimed, name, entry) = self.find_claim(token)?;
        let rel = format!("{CLAIMED}/{name}");
        match sys::stat_at(claimed, &name) {
            Ok(st) if sys::is_plain_file(&st) => Ok((claimed, name, entry)),
            Ok(st) => Err(Error::invalid(
                step,
                Some(&self.at(&rel)),
                format!(
                    "{}, not a message file: left where it is",
                    sys::describe_entry(&st)
                ),
            )),
            Err(Errno::NOENT) => Err(Error::invalid(
                format!("token {token}"),
                None,
                format!("the claim ended while {step}ing: nothing was done"),
            )),
            Err(e) => Err(Error::io("stat", self.at(&rel), e)),
        }
    }

    /// Acknowledges a claim: the message is deleted.
    pub fn ack(&self, token: &str) -> Result<u64> {
        let (claimed, name, entry) = self.find_plain_claim(token, "ack")?;
        // A keyed message: its key is released first, under the producer lock.
        let producer = self.release_for(std::iter::once(&entry))?;
        let removed = sys::remove_file(claimed.as_fd(), &name);
        // Still in claimed/ after a failed unlink: it holds its key again. Gone (ENOENT):
        // its claim ended and it went back to the queue, where another consumer may have
        // taken and deleted it since; it holds no key now.
        if let (Some(_), Err(e)) = (&producer, &removed)
            && *e != Errno::NOENT
        {
            self.restore_key(&entry)?;
        }
        drop(producer);
        match removed {
            Ok(()) => {}
            Err(Errno::NOENT) => {
                return Err(Error::invalid(
                    format!("token {token}"),
                    None,
                    "the claim ended while acking: nothing was acked",
                ));
            }
            Err(e) => {
                return Err(Error::io(
                    "remove",
                    self.at(&format!("{CLAIMED}/{name}")),
                    e,
                ));
            }
        }
        sys::fsync(claimed).map_err(|e| {
            Error::io("fsync", self.at(CLAIMED), e).with_note("the ack may not be durable")
        })?;
        let _ = self.count_consumed(1); // stats only: never fails an ack
        Ok(entry.id)
    }

    /// Returns a claimed message behind the waiting ones (after `delay_ms`, if given).
    pub fn nack(&self, token: &str, delay_ms: Option<u64>) -> Result<u64> {
        let (claimed, name, entry) = self.find_plain_claim(token, "nack")?;
        let due = delay_ms.filter(|&d| d > 0).map(|d| after(now_ms(), d));
        if !self.retry_claim(claimed, &name, &entry, due)? {
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
        let (claimed, name, entry) = self.find_plain_claim(token, "extend")?;
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
            CLAIMED,
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
        let failed = self.state_dir(FAILED)?;
        let mut entries = self.entries(&failed, FAILED)?;
        entries.sort_unstable_by_key(|(_, e)| e.id);
        let mut moved = Vec::new();
        let mut keys = None;
        for (name, entry) in entries {
            if !ids.is_empty() && !ids.contains(&entry.id) {
                continue;
            }
            if !self.is_plain_entry(failed.as_fd(), FAILED, &name)? {
                continue;
            }
            let seq = self.allocate(&producer)?;
            let lane = entry.priority;
            let bucket = self.make_bucket(lane, bucket_of(seq))?;
            self.mark_lane(lane)?;
            // Its key again, if no other message took it meanwhile; else it goes back
            // without one, its `k` field dropped (the producer lock keeps the answer
            // true until the key file is made).
            let dedup = match &entry.dedup {
                Some(key) => {
                    if keys.is_none() {
                        keys = Some(self.keys_dir()?);
                    }
                    let dir = keys.as_ref().expect("set above");
                    match self.key_holder(dir.as_fd(), key)? {
                        Some(holder) if holder != entry.id => None,
                        _ => Some(key.clone()),
                    }
                }
                None => None,
            };
            let to = Entry {
                key: seq,
                id: entry.id,
                dedup,
                ..Entry::default()
            };
            // As a push does: its key pending and synced before it appears, held once
            // its bucket is synced (a key it holds already stays as it is).
            let pending = match (&to.dedup, &keys) {
                (Some(key), Some(dir)) if self.pend_key(dir.as_fd(), key, entry.id)? => {
                    self.sync_keys(dir)?;
                    Some((key, dir))
                }
                _ => None,
            };
            if self.move_entry(failed.as_fd(), FAILED, &name, bucket.as_fd(), &to.name())? {
                sys::fsync(&bucket).map_err(|e| Error::io("fsync", self.at(lane_dir(lane)), e))?;
                moved.push(entry.id);
                if let Some((key, dir)) = pending {
                    self.settle_key(dir.as_fd(), key, entry.id)?;
                }
            } else if let Some((key, dir)) = pending {
                self.drop_pending_key(dir.as_fd(), key, entry.id)?;
            }
        }
        Ok(crate::store::moved_and_missing(ids, moved))
    }
}
