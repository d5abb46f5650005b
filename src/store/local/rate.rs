//! The consumption rate, for `stats`: `rate` holds 16 per-minute slots of two
//! little-endian u64 (the minute, the count), updated under the file's own lock.

use rustix::io::Errno;

use super::Queue;
use super::layout::*;
use crate::clock::now_ms;
use crate::store::error::{Error, Result};

impl Queue {
    /// Adds `n` consumed messages to this minute's count (consumer lock held).
    pub(super) fn count_consumed(&self, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        let file = match self.open_length_file(RATE, false) {
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                self.open_length_file(RATE, true)?
            }
            other => other?,
        };
        // Its own lock: acks and pops update it without the consumer lock.
        file.lock()
            .map_err(|e| Error::io("lock", self.at(RATE), e))?;
        let minute = now_ms() / 60_000;
        let slot = (minute % 16) * 16;
        let mut buf = [0u8; 16];
        let got = file
            .read_at(&mut buf, slot)
            .map_err(|e| Error::io("read", self.at(RATE), e))?;
        let (m, mut count) = if got == 16 {
            (
                u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(buf[8..].try_into().expect("8 bytes")),
            )
        } else {
            (0, 0)
        };
        if m != minute {
            count = 0;
        }
        count += n;
        buf[..8].copy_from_slice(&minute.to_le_bytes());
        buf[8..].copy_from_slice(&count.to_le_bytes());
        file.write_all_at(&buf, slot)
            .map_err(|e| Error::io("write", self.at(RATE), e))
    }

    /// Messages consumed over the last few minutes, and the window in seconds.
    pub(super) fn consumed_recently(&self) -> Result<(u64, f64)> {
        use std::os::unix::fs::FileExt;
        const MINUTES: u64 = 5;
        let now = now_ms();
        let minute = now / 60_000;
        let window = (MINUTES - 1) as f64 * 60.0 + (now % 60_000) as f64 / 1000.0;
        let file = match self.open_length_file_to_read(RATE) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                return Ok((0, window));
            }
            Err(e) => return Err(e),
        };
        let mut buf = [0u8; 256];
        let n = file
            .read_at(&mut buf, 0)
            .map_err(|e| Error::io("read", self.at(RATE), e))?;
        let mut total = 0;
        for slot in buf[..n - n % 16].chunks(16) {
            let m = u64::from_le_bytes(slot[..8].try_into().expect("8 bytes"));
            if m <= minute && minute - m < MINUTES {
                total += u64::from_le_bytes(slot[8..].try_into().expect("8 bytes"));
            }
        }
        Ok((total, window))
    }
}
