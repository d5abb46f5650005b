//! The queue's rates, for `stats`: `rates` holds two records of a [`Rate`], 32 bytes
//! each: the messages published at offset 0, written under the producer lock, and the
//! messages consumed (popped, acked, failed for good) at offset 32, written under the
//! file's own flock, since acks and fails do not hold the consumer lock. Nothing else
//! waits on that flock: it is taken last and held for one read and one write.
//!
//! The records only feed statistics: they are not synced, an update that fails is
//! skipped by the callers, and a damaged record reads as none.

use std::fs::File;
use std::os::unix::fs::FileExt;

use rustix::io::Errno;

use super::Queue;
use super::layout::*;
use super::lengths::Producer;
use crate::clock::now_ms;
use crate::store::error::{Error, Result};
use crate::store::rate::{RATE_BYTES, Rate};

/// Where each record is in the file.
const PUBLISHED_AT: u64 = 0;
const CONSUMED_AT: u64 = RATE_BYTES as u64;

impl Queue {
    /// Counts `n` messages published (producer lock held, which serialises the writers
    /// of this record).
    pub(super) fn count_published(&self, _producer: &Producer, n: u64) -> Result<()> {
        let file = self.open_rates()?;
        self.update_rate(&file, PUBLISHED_AT, n)
    }

    /// Counts `n` messages consumed.
    pub(super) fn count_consumed(&self, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let file = self.open_rates()?;
        file.lock()
            .map_err(|e| Error::io("lock", self.at(RATES), e))?;
        self.update_rate(&file, CONSUMED_AT, n)
        // Closing the file releases the lock.
    }

    /// The rates of publishing and of consumption, as last written.
    pub(super) fn rates(&self) -> Result<(Rate, Rate)> {
        let file = match self.open_length_file_to_read(RATES) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                return Ok(Default::default());
            }
            Err(e) => return Err(e),
        };
        let mut buf = [0u8; 2 * RATE_BYTES];
        let n = crate::store::read_full(&mut &file, &mut buf)
            .map_err(|e| Error::io("read", self.at(RATES), e))?;
        let buf = &buf[..n];
        Ok((
            Rate::from_bytes(buf.get(..RATE_BYTES).unwrap_or_default()),
            Rate::from_bytes(buf.get(RATE_BYTES..).unwrap_or_default()),
        ))
    }

    fn open_rates(&self) -> Result<File> {
        match self.open_length_file(RATES, false) {
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                self.open_length_file(RATES, true) // a queue made before the file was
            }
            other => other,
        }
    }

    fn update_rate(&self, file: &File, at: u64, n: u64) -> Result<()> {
        let mut buf = [0u8; RATE_BYTES];
        let got = file
            .read_at(&mut buf, at)
            .map_err(|e| Error::io("read", self.at(RATES), e))?;
        let mut rate = Rate::from_bytes(&buf[..got]);
        rate.record(now_ms(), n);
        file.write_all_at(&rate.to_bytes(), at)
            .map_err(|e| Error::io("write", self.at(RATES), e))
    }
}
