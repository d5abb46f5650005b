//! Finding the next message to hand out: priority lanes first, then lane 0 from its
//! head. A look at lane 0 opens `ready/BUCKET/HEAD` directly (O(1) in depth); a miss
//! with nothing allocated from the head on, and listings that agree, is an empty lane
//! without a scan; any other miss scans bucket names under the producer lock.

use std::fs::File;
use std::os::fd::OwnedFd;

use rustix::fs::Stat;

use super::Queue;
use super::buckets::Bucket;
use super::entry::Entry;
use super::layout::*;
use super::lengths::Consumer;
use crate::store::error::Result;

/// A message found in a ready lane, opened.
pub(super) struct Found {
    pub(super) lane: u8,
    pub(super) bucket: OwnedFd,
    pub(super) name: String,
    pub(super) entry: Entry,
    pub(super) file: File,
    pub(super) stat: Stat,
}

/// What a look at one key of lane 0 found.
pub(super) enum Exact {
    /// The message under that key.
    Found(Box<Found>),
    /// No message under that key.
    Absent,
    /// That key, and every key after it, was never allocated; with its bucket, if open.
    Unallocated(Option<OwnedFd>),
}

/// What a search of a lane found.
pub(super) enum Lookup {
    /// The first message at or after the key searched from.
    Found(Box<Found>),
    /// None; every key published so far is below `next`.
    Empty { next: u64 },
}

impl Queue {
    /// Opens the ready message `name` in `bucket` if it is a plain file; warns about junk.
    /// Opens the ready message `name` of `bucket` if it is a plain file (warning about
    /// junk). The bucket moves into what is found, or is handed back: no descriptor is
    /// duplicated on the way of a pop.
    pub(super) fn open_ready(
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

    /// The message keyed `key` in lane 0, found without a scan: by its plain name, else
    /// in a read of its one bucket (names with fields), unless the counter says that no
    /// key from `key` on was ever allocated.
    pub(super) fn find_exact(&self, key: u64) -> Result<Exact> {
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
        let rel = format!("{READY}/{}", bucket_name(bucket_of(key)));
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
    pub(super) fn lane0_may_hold(&self, from: u64, bucket: Option<&OwnedFd>) -> Result<bool> {
        let Some(walk) = self.lane_walk(0, 0)? else {
            return Ok(false);
        };
        for b in walk.numbers {
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
            if !self.entries(bucket, &bucket_rel(0, b))?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Scans lane `lane` for its first message keyed at least `lower`, holding the producer
    /// lock so that no publication is half done. `tidy` removes emptied buckets and, when
    /// the lane is empty, clears its bit and sweeps tmp/.
    pub(super) fn scan_lane(&self, lane: u8, lower: u64, tidy: bool) -> Result<Lookup> {
        let producer = self.lock_producer()?;
        let next = self.next_key(&producer)?;
        if let Some(mut walk) = self.lane_walk(lane, lower)? {
            while let Some(Bucket { number: b, fd, rel }) = self.next_bucket(&mut walk)? {
                let all = self.entries(&fd, &rel)?;
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
                let mut bucket = fd;
                for (name, entry) in mine {
                    match self.open_ready(lane, bucket, &name, entry)? {
                        Ok(found) => return Ok(Lookup::Found(found)),
                        Err(back) => bucket = back,
                    }
                }
                if tidy && empty && b < bucket_of(next) && !self.is_read_only() {
                    self.remove_bucket(&walk, b)?;
                }
            }
        }
        if tidy && !self.is_read_only() {
            if lane > 0 && lower == 0 {
                let lanes = self.read_length(LANES)?;
                if lanes & (1 << lane) != 0 {
                    self.write_length(LANES, lanes & !(1 << lane))?;
                }
            }
            // The lane ran dry: a good moment to remove what crashed writers left in tmp/.
            self.sweep_tmp()?;
        }
        Ok(Lookup::Empty { next })
    }

    /// The first message of lane 0 keyed at least `from`. `head_scan` makes a miss scan
    /// from the lowest key present (the head is only a hint) and tidy up.
    pub(super) fn find_ready(&self, from: u64, head_scan: bool) -> Result<Lookup> {
        match self.find_exact(from)? {
            Exact::Found(found) => Ok(Lookup::Found(found)),
            // No key from here on was allocated, none below the head is in lane 0 (the
            // head is lowered before anything returns below it), and the listings agree:
            // lane 0 is empty, known without the scan, which would wait for the producer
            // lock. An empty queue polled by consumers costs them a few calls, and its
            // producers nothing.
            Exact::Unallocated(bucket) if !self.lane0_may_hold(from, bucket.as_ref())? => {
                if head_scan && !self.is_read_only() {
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
    pub(super) fn next_candidate(
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
}
