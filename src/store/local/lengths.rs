//! The length files and the two locks.
//!
//! A queue keeps its small numbers as file *lengths*, changed by `ftruncate`, which is
//! journaled metadata: `counter` (the next id; its flock is the producer lock), `head`
//! (a lower bound of the keys in lane 0; its flock is the consumer lock), `lanes` (a bit
//! set of the priority lanes that may hold messages) and `due` (the earliest due time in
//! delayed/, in seconds). Lock order: consumer, then producer; never the other way.

use std::fs::File;
use std::io::{self};

use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;

use super::layout::*;
use super::{Queue, sys};
use crate::store::error::{Error, Result};

/// The producer lock, held while keys are allocated and published.
pub(super) struct Producer {
    pub(super) counter: File,
    /// The counter's length: only the holder of the lock changes it.
    pub(super) length: std::cell::Cell<u64>,
}

/// The consumer lock, held while messages are found and claimed.
pub(super) struct Consumer {
    pub(super) head_file: File,
    pub(super) head: u64,
    pub(super) written: u64,
}

impl Queue {
    /// Opens one of the files whose length is a number (counter, head, lanes, due).
    pub(super) fn open_length_file(&self, rel: &str, create: bool) -> Result<File> {
        let flags = if create {
            OFlags::RDWR | OFlags::CREATE
        } else {
            OFlags::RDWR
        };
        let mode = if create { sys::FILE_MODE } else { 0 }; // openat2 refuses a mode without O_CREAT
        let fd = sys::open_beneath(self.dir(), rel, flags | OFlags::NONBLOCK, mode)
            .map_err(|e| Error::io("open", self.at(rel), e))?;
        self.stat_regular(&fd, rel, "open")?;
        if create {
            rustix::fs::fchmod(&fd, rustix::fs::Mode::from_bits_truncate(sys::FILE_MODE))
                .map_err(|e| Error::io("chmod", self.at(rel), e))?;
        }
        Ok(File::from(fd))
    }

    /// Opens a length file for reading only (the consumption rate, for stats).
    pub(super) fn open_length_file_to_read(&self, rel: &str) -> Result<File> {
        let fd = sys::open_beneath(self.dir(), rel, OFlags::RDONLY | OFlags::NONBLOCK, 0)
            .map_err(|e| Error::io("open", self.at(rel), e))?;
        self.stat_regular(&fd, rel, "open")?;
        Ok(File::from(fd))
    }

    /// Whether the spool was found read-only (see [`Self::lock_length_file`]).
    pub(super) fn is_read_only(&self) -> bool {
        self.read_only.get()
    }

    /// The value of a length file of the queue directory (0 when missing), in one stat.
    /// The counter's length, read without its lock; a missing counter is an error (a
    /// queue is created with one), not an empty queue.
    pub(super) fn counter_length(&self) -> Result<u64> {
        self.stat_length(COUNTER, None)
    }

    pub(super) fn read_length(&self, rel: &str) -> Result<u64> {
        self.stat_length(rel, Some(0))
    }

    /// The length of the length file `rel`, in one stat; `missing` is its value when it
    /// does not exist (`None`: that is an error).
    pub(super) fn stat_length(&self, rel: &str, missing: Option<u64>) -> Result<u64> {
        match sys::stat_at(self.dir(), rel) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                Ok(st.st_size as u64)
            }
            Ok(_) => Err(Error::invalid(
                "stat",
                Some(&self.at(rel)),
                "not a regular file",
            )),
            Err(e) => match missing {
                Some(value) if e == Errno::NOENT => Ok(value),
                _ => Err(Error::io("stat", self.at(rel), e)),
            },
        }
    }

    pub(super) fn write_length(&self, rel: &str, value: u64) -> Result<()> {
        let f = self.open_length_file(rel, true)?;
        sys::set_len(&f, value).map_err(|e| Error::io("write", self.at(rel), e))
    }

    /// Opens the length file `rel` (counter, head) and locks it; returns it and its
    /// length, read under the lock. Its type is checked then too: opened `O_NONBLOCK`, a
    /// FIFO or a device in its place neither blocks the open nor takes the lock for long.
    /// On a read-only filesystem the file is opened for reading (an flock needs no more),
    /// and the queue is marked read-only: whatever then tries to write fails, as it must.
    pub(super) fn lock_length_file(&self, rel: &str) -> Result<(File, u64)> {
        let open = |flags| sys::open_beneath(self.dir(), rel, flags | OFlags::NONBLOCK, 0);
        let fd = match open(OFlags::RDWR) {
            Err(Errno::ROFS) => {
                self.read_only.set(true);
                open(OFlags::RDONLY)
            }
            other => other,
        }
        .map_err(|e| Error::io("open", self.at(rel), e))?;
        let file = File::from(fd);
        file.lock()
            .map_err(|e| Error::io("lock", self.at(rel), e))?;
        let st = self.stat_regular(&file, rel, "open")?;
        Ok((file, st.st_size as u64))
    }

    pub(super) fn lock_producer(&self) -> Result<Producer> {
        let (counter, length) = self.lock_length_file(COUNTER)?;
        Ok(Producer {
            counter,
            length: std::cell::Cell::new(length),
        })
    }

    pub(super) fn next_key(&self, p: &Producer) -> Result<u64> {
        Ok(p.length.get().max(1))
    }

    pub(super) fn set_next_key(&self, p: &Producer, next: u64) -> Result<()> {
        sys::set_len(&p.counter, next).map_err(|e| Error::io("write", self.at(COUNTER), e))?;
        p.length.set(next);
        Ok(())
    }

    /// The next key to allocate (producer lock held): the counter's, unless the counter is
    /// behind the head, which a sound queue never is (a restored or damaged one may be).
    /// Keys below the head would go where no consumer looks: allocation starts at the head.
    pub(super) fn free_key(&self, p: &Producer) -> Result<u64> {
        let next = self.next_key(p)?;
        let head = self.read_length(HEAD)?;
        if next < head {
            (self.warn)(&format!(
                "{}: counter was behind the head; skipping ahead",
                self.at(COUNTER).display()
            ));
            return Ok(head);
        }
        Ok(next)
    }

    /// Allocates one key (producer lock held).
    pub(super) fn allocate(&self, p: &Producer) -> Result<u64> {
        let key = self.free_key(p)?;
        self.set_next_key(p, key + 1)?;
        Ok(key)
    }

    pub(super) fn lock_consumer(&self) -> Result<Consumer> {
        let (head_file, head) = self.lock_length_file(HEAD)?;
        Ok(Consumer {
            head_file,
            head,
            written: head,
        })
    }

    /// Writes the head, if it moved; on a read-only spool it is left as it is (the head
    /// is a hint: a take from a lower one finds the same messages).
    pub(super) fn save_head(&self, c: &mut Consumer) -> Result<()> {
        if c.head != c.written && !self.read_only.get() {
            sys::set_len(&c.head_file, c.head).map_err(|e| Error::io("write", self.at(HEAD), e))?;
            c.written = c.head;
        }
        Ok(())
    }

    /// Marks priority lane `p` as possibly non-empty (producer lock held).
    pub(super) fn mark_lane(&self, p: u8) -> Result<()> {
        if p == 0 {
            return Ok(());
        }
        let lanes = self.read_length(LANES)?;
        let bit = 1u64 << p;
        if lanes & bit == 0 {
            self.write_length(LANES, lanes | bit)?;
        }
        Ok(())
    }

    /// Lowers the due hint to `due_ms` if it is earlier (producer lock held).
    pub(super) fn mark_due(&self, due_ms: u64) -> Result<()> {
        let secs = (due_ms / 1000).max(1);
        let current = self.read_length(DUE)?;
        if current == 0 || secs < current {
            self.write_length(DUE, secs)?;
        }
        Ok(())
    }
}

/// The length of a file: the value of a counter.
pub(super) fn length(file: &File) -> io::Result<u64> {
    Ok(sys::stat_fd(file)?.st_size as u64)
}
