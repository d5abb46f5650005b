//! Clear: removes the messages of some states, all or nothing per message, never a
//! claim in progress, and never a push that was not yet published when it began.

use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;

use super::buckets::Bucket;
use super::entry::Entry;
use super::layout::*;
use super::{Queue, sys};
use crate::store::State;
use crate::store::error::{Error, Result};

impl Queue {
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
        // `locked`: the caller holds the producer lock; else it is taken here when a
        // message to remove holds a key.
        let mut remove_in = |q: &Queue,
                             dir: &OwnedFd,
                             rel: &str,
                             keep: &dyn Fn(&Entry) -> bool,
                             locked: bool|
         -> Result<bool> {
            // Whether every entry not kept is gone.
            let mut all = true;
            let mut doomed = Vec::new();
            for (name, entry) in q.entries(dir, rel)? {
                if keep(&entry) {
                    continue;
                }
                let path = format!("{rel}/{name}");
                match sys::stat_at(dir.as_fd(), &name) {
                    Ok(st) if sys::is_plain_file(&st) => doomed.push((name, entry)),
                    Ok(st) => q.warn_once(&path, sys::describe_entry(&st)),
                    Err(Errno::NOENT) => {}
                    Err(e) => return Err(Error::io("stat", q.at(&path), e)),
                }
            }
            // Keys first, then the messages, under the producer lock.
            let _producer = match locked {
                true => {
                    q.release_keys(doomed.iter().map(|(_, e)| e))?;
                    None
                }
                false => q.release_for(doomed.iter().map(|(_, e)| e))?,
            };
            for (name, entry) in &doomed {
                let path = format!("{rel}/{name}");
                match sys::remove_file(dir.as_fd(), name) {
                    Ok(()) => removed += 1,
                    Err(Errno::NOENT) => {}
                    Err(e) => {
                        all = false;
                        first_error.get_or_insert(Error::io("remove", q.at(&path), e));
                        q.restore_key(entry)?; // still there: it holds its key again
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
                        let Some(mut walk) = self.lane_walk(lane, 0)? else {
                            continue;
                        };
                        // Buckets above the counter's hold only pushes that began later.
                        walk.numbers = walk
                            .numbers
                            .filter(|&b| b <= bucket_of(next))
                            .collect::<Vec<_>>()
                            .into_iter();
                        while let Some(Bucket { number, fd, rel }) = self.next_bucket(&mut walk)? {
                            let all =
                                remove_in(self, &fd, &rel, &|e: &Entry| e.key >= next, false)?;
                            lane0_cleared &= lane > 0 || all;
                            if all && number < bucket_of(next) {
                                self.remove_bucket(&walk, number)?;
                            }
                        }
                        sys::fsync(&walk.dir)
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
                    remove_in(self, &dir, rel, &|_: &Entry| false, true)?;
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
