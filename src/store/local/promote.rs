//! Delayed messages falling due: moved from delayed/ to the back of their lane under
//! the producer lock, before any key is allocated for a newer push, so that a message
//! due before a push is ahead of it. The `due` length file is a hint (seconds, never
//! later than the earliest due time).

use std::os::fd::AsFd;

use super::Queue;
use super::entry::Entry;
use super::layout::*;
use super::lengths::Producer;
use crate::clock::now_ms;
use crate::store::error::Result;

impl Queue {
    /// When a delayed message may next be due (unix ms), if any: the hint, or later the
    /// exact time this process saw when it last looked.
    pub fn next_due(&self) -> Result<Option<u64>> {
        let hint = match self.read_length(DUE)? {
            0 => return Ok(None),
            s => s,
        };
        Ok(Some(match self.due_seen.get() {
            Some((seen_hint, exact)) if seen_hint == hint => exact,
            _ => hint * 1000,
        }))
    }

    /// Moves due messages from delayed/ to the back of their lane (consumer lock held).
    pub(super) fn promote_due(&self) -> Result<()> {
        if self.is_due()? {
            let producer = self.lock_producer()?;
            self.promote_due_locked(&producer)?;
        }
        Ok(())
    }

    /// Whether a delayed message may be due now.
    pub(super) fn is_due(&self) -> Result<bool> {
        Ok(self.next_due()?.is_some_and(|due| due <= now_ms()))
    }

    /// Promotes due messages before keys are allocated for new ones (producer lock held),
    /// so that a message due before a push is ahead of it, whether or not a consumer
    /// looked in between.
    pub(super) fn promote_before_allocating(&self, producer: &Producer) -> Result<()> {
        if self.is_due()? {
            self.promote_due_locked(producer)?;
        }
        Ok(())
    }

    pub(super) fn promote_due_locked(&self, producer: &Producer) -> Result<()> {
        let now = now_ms();
        let delayed = self.state_dir(DELAYED)?;
        let mut due: Vec<(String, Entry)> = Vec::new();
        let mut earliest: Option<u64> = None;
        for (name, entry) in self.entries(&delayed, DELAYED)? {
            if !self.is_plain_entry(delayed.as_fd(), DELAYED, &name)? {
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
                DELAYED,
                &name,
                bucket.as_fd(),
                &moved.name(),
            )?;
        }
        let hint = earliest.map_or(0, |e| (e / 1000).max(1));
        if self.read_length(DUE)? != hint {
            self.write_length(DUE, hint)?;
        }
        self.due_seen.set(earliest.map(|e| (hint, e)));
        Ok(())
    }
}
