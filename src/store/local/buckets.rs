//! The ready lanes and their buckets: `ready/` (priority 0) and `ready-1` to `ready-9`,
//! each holding directories of at most 1,000 keys, named by key / 1000 in 17 digits.

use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;

use super::layout::{self, bucket_name, bucket_of, lane_dir};
use super::{Queue, sys};
use crate::store::error::{Error, Result};

impl Queue {
    /// Opens bucket `b` of lane `lane`; `None` when it does not exist.
    pub(super) fn open_bucket(&self, lane: u8, b: u64) -> Result<Option<OwnedFd>> {
        let rel = format!("{}/{}", lane_dir(lane), bucket_name(b));
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
        let rel = format!("{}/{}", lane_dir(lane), bucket_name(b));
        sys::make_dir(lane_fd.as_fd(), &bucket_name(b))
            .map_err(|e| Error::io("create", self.at(&rel), e))?;
        sys::fsync(&lane_fd).map_err(|e| Error::io("fsync", self.at(lane_dir(lane)), e))?;
        self.open_dir(&rel)
    }

    /// The sorted bucket numbers of lane `lane` at or above `lower`.
    pub(super) fn buckets(&self, lane: u8, lower: u64) -> Result<Option<(OwnedFd, Vec<u64>)>> {
        let rel = lane_dir(lane);
        let fd = match sys::open_dir_beneath(self.dir(), rel) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(Error::io("open", self.at(rel), e)),
        };
        let mut buckets = Vec::new();
        let names = sys::read_names(
            fd.try_clone()
                .map_err(|e| Error::io("dup", self.at(rel), e))?,
        )
        .map_err(|e| Error::io("read", self.at(rel), e))?;
        for name in names {
            match layout::parse_bucket(&name) {
                Some(b) if b >= bucket_of(lower) => buckets.push(b),
                Some(_) => {}
                None => self.warn_once(&format!("{rel}/{name}"), "not a bucket spool wrote"),
            }
        }
        buckets.sort_unstable();
        Ok(Some((fd, buckets)))
    }
}
