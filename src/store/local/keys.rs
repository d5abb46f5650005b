//! Deduplication keys: `keys/KEY`, a length file whose length is the id of the message
//! that holds the key. It is authoritative: a push whose key has a file there adds
//! nothing.
//!
//! Every change to keys/ is made under the producer lock, which serialises the pushers:
//! - A push creates `keys/KEY` *pending* (mode 0400: no write permission) before it
//!   renames its message into place, and syncs keys/ before the renames (the key file
//!   made in tmp/ at its length, then renamed there without replacing); once the
//!   message's directory is synced, it makes the key *held* (mode 0600), still under the
//!   lock. A crash in between leaves a pending key: the next push of that key, holding
//!   the lock, knows its writer is gone, and looks for its message in the queue (a walk,
//!   after a crash only): there, the key is held; not there, the key is free. So a
//!   message in place always has its key, and a batch sent again after a crash (relay)
//!   adds nothing twice. (A lost change of mode leaves the key pending: the same look
//!   settles it.)
//! - Whatever deletes a keyed message or moves it to failed/ first removes `keys/KEY` if
//!   its length is the message's id, syncs keys/, and only then removes or moves the
//!   message, still under the lock: a pusher sees the key held or the message gone, never
//!   the key free with the message still there. If the message then cannot be removed
//!   and is known to be still in place, the key is made again if it is free; if it was
//!   gone (its claim ended, and another consumer may have deleted it since), it is not.
//! - A requeue from failed/ takes the key again if it is free; else the message goes back
//!   holding none, the `k` field dropped from its name.
//!
//! Messages without a key never look at keys/: they cost nothing more.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::entry::Entry;
use super::layout::{self, KEYS, TMP};
use super::lengths::Producer;
use super::{Queue, sys};
use crate::store::error::{Error, Result};

/// The mode of a pending key file: no write permission for its owner.
const PENDING_MODE: u32 = 0o400;
/// The bit whose absence marks a key file pending.
const PENDING_BIT: u32 = 0o200;

/// Whether the key file `st` describes is pending (no write permission for its owner).
pub(super) fn is_pending(st: &rustix::fs::Stat) -> bool {
    st.st_mode & PENDING_BIT == 0
}

impl Queue {
    /// keys/, if there is one.
    pub(super) fn open_keys(&self) -> Result<Option<OwnedFd>> {
        match sys::open_dir_beneath(self.dir(), KEYS) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io("open", self.at(KEYS), e)),
        }
    }

    /// The id of the message holding `key`, if any (producer lock held, for an answer
    /// that stays true). Anything but a regular file under the key's name is an error.
    /// A pending key (its push was cut short) is settled first: held if its message is in
    /// the queue, else removed.
    pub(super) fn key_holder(&self, keys: BorrowedFd<'_>, key: &str) -> Result<Option<u64>> {
        let rel = format!("{KEYS}/{key}");
        match sys::stat_at(keys, key) {
            Ok(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    && is_pending(&st) =>
            {
                let id = st.st_size as u64;
                if self.holds_key(id, key)? {
                    self.settle_key(keys, key, id)?;
                    Ok(Some(id))
                } else {
                    match sys::remove_file(keys, key) {
                        Ok(()) | Err(Errno::NOENT) => Ok(None),
                        Err(e) => Err(Error::io("remove", self.at(&rel), e)),
                    }
                }
            }
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                Ok(Some(st.st_size as u64))
            }
            Ok(st) => Err(Error::invalid(
                "stat",
                Some(&self.at(&rel)),
                format!(
                    "{}, not a key file: spool fsck --repair moves it aside",
                    sys::describe_entry(&st)
                ),
            )),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io("stat", self.at(&rel), e)),
        }
    }

    /// Settles, at once, the pending key files among `keys/K` for each of `keys` (producer
    /// lock held): held if its message is in the queue, else removed. One pair of walks
    /// for them all, however many (a batch sent again after a crash), none when no key
    /// file is pending.
    pub(super) fn settle_pending(&self, dir: BorrowedFd<'_>, keys: &[&str]) -> Result<()> {
        use crate::store::State;
        let mut pending: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for &key in keys {
            if let Ok(st) = sys::stat_at(dir, key)
                && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                && is_pending(&st)
            {
                pending.insert(key, st.st_size as u64);
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let mut found: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let orders = [
            [State::Ready, State::Delayed, State::Claimed],
            [State::Claimed, State::Delayed, State::Ready],
        ];
        for order in orders {
            if found.len() == pending.len() {
                break;
            }
            self.walk(&order, |info, _| {
                if let Some(key) = info.key.as_deref()
                    && let Some((&k, &id)) = pending.get_key_value(key)
                    && id == info.id
                {
                    found.insert(k);
                }
                Ok(found.len() < pending.len())
            })?;
        }
        for (&key, &id) in &pending {
            if found.contains(key) {
                self.settle_key(dir, key, id)?;
            } else {
                self.drop_pending_key(dir, key, id)?;
            }
        }
        Ok(())
    }

    /// Whether message `id` is in the queue (ready, delayed or claimed) with `key`: a walk,
    /// for a pending key only. Consumers move messages meanwhile (the producer lock held
    /// here cannot keep them out): a message not seen is looked for again, the states in
    /// the other order, so that a move either way between two looks is seen.
    pub(super) fn holds_key(&self, id: u64, key: &str) -> Result<bool> {
        use crate::store::State;
        let orders = [
            [State::Ready, State::Delayed, State::Claimed],
            [State::Claimed, State::Delayed, State::Ready],
        ];
        for order in orders {
            let mut found = false;
            self.walk(&order, |info, _| {
                found = info.id == id && info.key.as_deref() == Some(key);
                Ok(!found)
            })?;
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Makes the pending key file `keys/KEY` of message `id` held (mode 0600). Gone
    /// meanwhile, or another's: nothing to do.
    pub(super) fn settle_key(&self, keys: BorrowedFd<'_>, key: &str, id: u64) -> Result<()> {
        let rel = format!("{KEYS}/{key}");
        let fd = match sys::open_beneath(keys, key, OFlags::RDONLY | OFlags::NONBLOCK, 0) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(Error::io("open", self.at(&rel), e)),
        };
        let st = sys::stat_fd(&fd).map_err(|e| Error::io("stat", self.at(&rel), e))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && st.st_size as u64 == id
            && is_pending(&st)
        {
            rustix::fs::fchmod(&fd, Mode::from_bits_truncate(sys::FILE_MODE))
                .map_err(|e| Error::io("chmod", self.at(&rel), e))?;
        }
        Ok(())
    }

    /// Removes `keys/KEY` if it is a regular file of length `id` (producer lock held).
    pub(super) fn drop_pending_key(&self, keys: BorrowedFd<'_>, key: &str, id: u64) -> Result<()> {
        let rel = format!("{KEYS}/{key}");
        match sys::stat_at(keys, key) {
            Ok(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    && st.st_size as u64 == id => {}
            Ok(_) | Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(Error::io("stat", self.at(&rel), e)),
        }
        match sys::remove_file(keys, key) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io("remove", self.at(&rel), e)),
        }
    }

    /// Creates `keys/KEY` with length `id` (producer lock held); false when it exists.
    /// The file is made in tmp/ at its length, then renamed into keys/ without replacing,
    /// so that it never appears with another length: a crash leaves an orphan in tmp/
    /// (swept), never a key file naming no message. Not synced: the caller syncs keys/
    /// once for all it created.
    pub(super) fn hold_key(&self, keys: BorrowedFd<'_>, key: &str, id: u64) -> Result<bool> {
        self.make_key(keys, key, id, false)
    }

    /// Creates `keys/KEY` pending (mode 0400) with length `id`, for a message about to be
    /// renamed into place (producer lock held); false when it exists.
    pub(super) fn pend_key(&self, keys: BorrowedFd<'_>, key: &str, id: u64) -> Result<bool> {
        self.make_key(keys, key, id, true)
    }

    fn make_key(&self, keys: BorrowedFd<'_>, key: &str, id: u64, pending: bool) -> Result<bool> {
        let tmp = self.open_dir(TMP)?;
        let name = layout::token();
        let staged = format!("{TMP}/{name}");
        let file = sys::create_exclusive(tmp.as_fd(), &name, false)
            .map_err(|e| Error::io("create", self.at(&staged), e))?;
        let sized = sys::set_len(&file, id)
            .and_then(|()| {
                if pending {
                    rustix::fs::fchmod(&file, Mode::from_bits_truncate(PENDING_MODE))
                } else {
                    Ok(())
                }
            })
            .map_err(|e| Error::io("write", self.at(&staged), e))
            .and_then(|()| {
                sys::close_checked(file.into()).map_err(|e| Error::io("close", self.at(&staged), e))
            });
        let placed =
            sized.and_then(
                |()| match sys::rename_noreplace(tmp.as_fd(), &name, keys, key) {
                    Ok(()) => Ok(true),
                    Err(Errno::EXIST) => Ok(false),
                    Err(e) => Err(Error::io("rename", self.at(&staged), e)),
                },
            );
        if !matches!(placed, Ok(true)) {
            // Left behind, it would be swept as an orphan: removed now all the same.
            let _ = sys::remove_file(tmp.as_fd(), &name);
        }
        placed
    }

    /// Syncs keys/.
    pub(super) fn sync_keys(&self, keys: impl AsFd) -> Result<()> {
        sys::fsync(keys).map_err(|e| Error::io("fsync", self.at(KEYS), e))
    }

    /// Takes the producer lock and releases the keys of `entries` when any of them has
    /// one; `None`, at no cost, when none has. The message files are to be removed or
    /// moved to failed/ while the lock returned is held.
    pub(super) fn release_for<'e>(
        &self,
        entries: impl Iterator<Item = &'e Entry> + Clone,
    ) -> Result<Option<Producer>> {
        if !entries.clone().any(|e| e.dedup.is_some()) {
            return Ok(None);
        }
        let producer = self.lock_producer()?;
        self.release_keys(entries)?;
        Ok(Some(producer))
    }

    /// Removes `keys/KEY` of each keyed entry whose length is the entry's id, then syncs
    /// keys/ (producer lock held). A key held by another message stays.
    pub(super) fn release_keys<'e>(&self, entries: impl Iterator<Item = &'e Entry>) -> Result<()> {
        let mut keys = None;
        let mut removed = false;
        for entry in entries {
            let Some(key) = &entry.dedup else { continue };
            if keys.is_none() {
                match self.open_keys()? {
                    Some(fd) => keys = Some(fd),
                    None => return Ok(()), // no key was ever held
                }
            }
            let dir = keys.as_ref().expect("set above").as_fd();
            let rel = format!("{KEYS}/{key}");
            match sys::stat_at(dir, key) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                    if st.st_size as u64 != entry.id {
                        continue;
                    }
                }
                Ok(st) => {
                    self.warn_once(&rel, sys::describe_entry(&st));
                    continue;
                }
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(Error::io("stat", self.at(&rel), e)),
            }
            match sys::remove_file(dir, key) {
                Ok(()) => removed = true,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(Error::io("remove", self.at(&rel), e)),
            }
        }
        if removed && let Some(fd) = &keys {
            self.sync_keys(fd)?;
        }
        Ok(())
    }

    /// Makes the key of `entry` held by it again, if it is free (producer lock held): its
    /// message could not be removed after its key was released, and is known to be still
    /// in place (never after ENOENT: a message gone meanwhile may be deleted for good).
    pub(super) fn restore_key(&self, entry: &Entry) -> Result<()> {
        let Some(key) = &entry.dedup else {
            return Ok(());
        };
        let keys = self.keys_dir()?;
        if self.hold_key(keys.as_fd(), key, entry.id)? {
            self.sync_keys(&keys)?;
        }
        Ok(())
    }

    /// The key files' directory, made if missing (mode 0700, the queue directory synced).
    pub(super) fn keys_dir(&self) -> Result<OwnedFd> {
        self.state_dir(KEYS)
    }
}
