//! Taking messages: a take moves each into `claimed/` under a name with a new token,
//! held by this process's flock (pop, run) or by a lease (claim). Claims whose holder
//! died and whose lease ended go back to their place first. Messages expired or out of
//! attempts go to failed/ on the way.

use std::fs::File;

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::OFlags;
use rustix::io::Errno;

use super::entry::Entry;
use super::head::Found;
use super::layout::{self, *};
use super::lengths::Consumer;
use super::sweep::Probe;
use super::{Queue, sys};
use crate::clock::{after, now_ms};
use crate::store::error::{Error, Result};
use crate::store::{Claim, Hold, Payload, TakeOptions};

/// A message taken out of a ready lane by this process: renamed into `claimed/` (and
/// flocked, unless held by a lease alone).
pub struct Claimed {
    pub(super) entry: Entry,
    pub(super) name: String,
    /// Its file, flocked unless it is held by a lease alone.
    pub(super) payload: Payload,
}

impl Queue {
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
        let lanes = self.read_length(LANES)?;
        let mut failed_dir = None;
        // Messages this take moved to failed/ (expired, or out of attempts).
        let mut dead = 0;
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
                    failed_dir = Some(self.state_dir(FAILED)?);
                }
                let to = failed_dir.as_ref().expect("set above");
                // A dead letter holds no key: released first, under the producer lock
                // (taken after the consumer lock, as always).
                let producer = self.release_for(std::iter::once(&entry))?;
                let moved = self.move_entry(
                    bucket.as_fd(),
                    &bucket_rel,
                    &name,
                    to.as_fd(),
                    &failed.name(),
                );
                // Still in its bucket after a failed rename: it holds its key again.
                // Gone (the move returned false): it holds none.
                if producer.is_some() && moved.is_err() {
                    self.restore_key(&entry)?;
                }
                drop(producer);
                dead += u64::from(moved?);
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
                token: Some(layout::token()),
                lease,
                reason: None,
                dedup: entry.dedup.clone(),
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
                payload: Payload::File(file),
            });
        }
        if let Some(k) = skipped {
            c.head = c.head.min(k);
        }
        if !passed.is_empty() {
            let ready = self.open_dir(READY)?;
            for b in passed {
                // Fails, harmlessly, when something is still in it.
                let _ = sys::remove_dir(ready.as_fd(), &bucket_name(b));
            }
        }
        self.save_head(&mut c)?;
        if let Some(dir) = failed_dir {
            sys::fsync(&dir).map_err(|e| Error::io("fsync", self.at(FAILED), e))?;
            // Failed for good, they have left the line: consumed, for stats only.
            let _ = self.count_consumed(dead);
        }
        if matches!(opts.hold, Hold::Lease { .. }) && !taken.is_empty() {
            // A claim outlives this process: make it durable before its token is shown.
            // The journal commit also covers the counter that allocated its id, so the
            // id is never handed out again after a crash.
            sys::fsync(claimed_dir).map_err(|e| Error::io("fsync", self.at(CLAIMED), e))?;
        }
        Ok(taken)
    }

    /// Returns claims whose holder died (flock free) and whose lease, if any, ended.
    pub(super) fn recover_claims(&self, c: &mut Consumer) -> Result<()> {
        let claimed = self.claimed_dir()?;
        let now = now_ms();
        for (name, entry) in self.entries(claimed, CLAIMED)? {
            let rel = format!("{CLAIMED}/{name}");
            if entry.token.is_none() {
                self.warn_once(&rel, "a claim without a token");
                continue;
            }
            if entry.lease.is_some_and(|l| l > now) {
                continue;
            }
            // Held: its pop or run is still running; gone: settled while we looked.
            let Probe::Abandoned(_, st) = self.probe(claimed, &name, &rel)? else {
                continue;
            };
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
    pub(super) fn return_claim(
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
        let back = entry.in_lane(pos);
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
            Err(Errno::NOENT) => Ok(false),
            Err(Errno::EXIST) => {
                self.warn_once(
                    &format!("{CLAIMED}/{name}"),
                    "a message is already waiting in its place",
                );
                Ok(false)
            }
            Err(e) => Err(Error::io(
                "rename",
                self.at(&format!("{CLAIMED}/{name}")),
                e,
            )),
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
        // Keyed messages release their keys first, all under one holding of the producer
        // lock; those then not removed but still in claimed/ hold theirs again.
        let producer = self.release_for(done.iter().map(|m| &m.entry))?;
        let mut count = 0;
        let result = self.remove_claims(claimed, &done, &mut count);
        *removed += count as u64;
        if let (Some(_), Err((errno, _))) = (&producer, &result) {
            // The one whose unlink failed is still there unless it was gone (ENOENT),
            // and then it holds no key; those after it, held by this process's lock, were
            // not touched.
            let from = count + usize::from(*errno == Errno::NOENT);
            for m in &done[from..] {
                self.restore_key(&m.entry)?;
            }
        }
        result.map_err(|(_, e)| e)
    }

    /// Unlinks the claims `done` in order; `count` says how many were. An error comes
    /// with the errno of the unlink that failed.
    fn remove_claims(
        &self,
        claimed: BorrowedFd<'_>,
        done: &[Claimed],
        count: &mut usize,
    ) -> std::result::Result<(), (Errno, Error)> {
        for m in done {
            sys::remove_file(claimed.as_fd(), &m.name).map_err(|e| {
                let error = Error::io("remove", self.at(&format!("{CLAIMED}/{}", m.name)), e)
                    .with_note(format!(
                        "message {} was delivered but not removed: it will be delivered again",
                        m.entry.id
                    ));
                (e, error)
            })?;
            *count += 1;
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
            Error::io("fsync", self.at(CLAIMED), e)
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
}

impl Claim for Claimed {
    fn id(&self) -> u64 {
        self.entry.id
    }

    fn attempts(&self) -> u32 {
        self.entry.attempts
    }

    fn token(&self) -> String {
        layout::format_token(self.entry.id, self.entry.token.as_deref().unwrap_or(""))
    }

    fn payload(&mut self) -> &mut Payload {
        &mut self.payload
    }

    fn priority(&self) -> u8 {
        self.entry.priority
    }

    fn expires(&self) -> Option<u64> {
        self.entry.expires
    }

    fn key(&self) -> Option<&str> {
        self.entry.dedup.as_deref()
    }
}

impl Claimed {
    /// The claim's file opened anew: without this process's lock, for a child process.
    pub(super) fn reopen(&self, queue: &Queue) -> Result<File> {
        let rel = format!("{CLAIMED}/{}", self.name);
        sys::open_beneath(queue.dir(), &rel, OFlags::RDONLY, 0)
            .map(File::from)
            .map_err(|e| Error::io("open", queue.at(&rel), e))
    }
}
