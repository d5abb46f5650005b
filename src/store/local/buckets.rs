//! The ready lanes and their buckets: `ready/` (priority 0) and `ready-1` to `ready-9`,
//! each holding directories of at most 1,000 keys, named by key / 1000 in 17 digits.

use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;

use super::layout::{self, *};
use super::{Queue, sys};
use crate::store::error::{Error, Result};

impl Queue {
    /// Opens bucket `b` of lane `lane`; `None` when it does not exist.
    pub(super) fn open_bucket(&self, lane: u8, b: u64) -> Result<Option<OwnedFd>> {
        let rel = bucket_rel(lane, b);
        match sys::open_dir_beneath(self.dir(), &rel) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR) => {
                self.warn_once(&rel, "not a directory spool wrote");
                Ok(None)
            }
            Err(e) => Err(Error::io("open", self.at(&rel), e)),
        }
    }

    /// Opens bucket `b` of lane `lane`, creating the lane and the bucket when missing.
    /// Producer lock held (or consumer lock, for returns: buckets are only removed under it).
    pub(super) fn make_bucket(&self, lane: u8, b: u64) -> Result<OwnedFd> {
        if let Some(fd) = self.open_bucket(lane, b)? {
            return Ok(fd);
        }
        let lane_fd = self.state_dir(lane_dir(lane))?;
        let rel = bucket_rel(lane, b);
        sys::make_dir(lane_fd.as_fd(), &bucket_name(b))
            .map_err(|e| Error::io("create", self.at(&rel), e))?;
        sys::fsync(&lane_fd).map_err(|e| Error::io("fsync", self.at(lane_dir(lane)), e))?;
        self.open_dir(&rel)
    }

    /// Starts a walk over the buckets of lane `lane` holding keys at or above `lower`, in
    /// key order; `None` when the lane does not exist. Names that are not buckets are
    /// warned about and passed over. Memory is the bucket numbers, never the messages.
    pub(super) fn lane_walk(&self, lane: u8, lower: u64) -> Result<Option<LaneWalk>> {
        let rel = lane_dir(lane);
        let dir = match sys::open_dir_beneath(self.dir(), rel) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(Error::io("open", self.at(rel), e)),
        };
        let mut numbers = Vec::new();
        let names = sys::read_names(&dir).map_err(|e| Error::io("read", self.at(rel), e))?;
        for name in names {
            match layout::parse_bucket(&name) {
                Some(b) if b >= bucket_of(lower) => numbers.push(b),
                Some(_) => {}
                None => self.warn_once(&format!("{rel}/{name}"), "not a bucket spool wrote"),
            }
        }
        numbers.sort_unstable();
        Ok(Some(LaneWalk {
            lane,
            dir,
            numbers: numbers.into_iter(),
        }))
    }

    /// The next bucket of `walk` that can be opened (one removed meanwhile is passed over).
    pub(super) fn next_bucket(&self, walk: &mut LaneWalk) -> Result<Option<Bucket>> {
        for number in walk.numbers.by_ref() {
            if let Some(fd) = self.open_bucket(walk.lane, number)? {
                return Ok(Some(Bucket {
                    number,
                    fd,
                    rel: bucket_rel(walk.lane, number),
                }));
            }
        }
        Ok(None)
    }

    /// Removes the bucket of `walk` numbered `number`, which was found empty; one that is
    /// not empty any more stays.
    pub(super) fn remove_bucket(&self, walk: &LaneWalk, number: u64) -> Result<()> {
        sys::remove_dir(walk.dir.as_fd(), &bucket_name(number))
            .map_err(|e| Error::io("remove", self.at(&bucket_rel(walk.lane, number)), e))?;
        Ok(())
    }
}

/// A walk over the buckets of one lane, in key order (see [`Queue::lane_walk`]).
pub(super) struct LaneWalk {
    /// The lane.
    pub(super) lane: u8,
    /// The lane's directory.
    pub(super) dir: OwnedFd,
    /// The bucket numbers not yet walked, ascending.
    pub(super) numbers: std::vec::IntoIter<u64>,
}

/// A bucket of a lane, open.
pub(super) struct Bucket {
    /// Its number: key / 1000.
    pub(super) number: u64,
    /// Its directory.
    pub(super) fd: OwnedFd,
    /// Its path relative to the queue directory.
    pub(super) rel: String,
}
