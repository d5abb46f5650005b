//! Deduplication keys: `keys/KEY`, a length file whose length is the id of the message
//! that holds the key. It is authoritative: a push whose key has a file there adds
//! nothing.
//!
//! Every change to keys/ is made under the producer lock, which serialises the pushers:
//! - A push creates `keys/KEY` *after* renaming its message into place and syncing the
//!   message's directory (the key file made in tmp/ at its length, then renamed there
//!   without replacing), and syncs keys/ before it returns. A crash in between leaves a
//!   message that holds no key (a later push may add a second one), never a key without
//!   its message.
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

use rustix::fs::FileType;
use rustix::io::Errno;

use super::entry::Entry;
use super::layout::{self, KEYS, TMP};
use super::lengths::Producer;
use super::{Queue, sys};
use crate::store::error::{Error, Result};

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
    pub(super) fn key_holder(&self, keys: BorrowedFd<'_>, key: &str) -> Result<Option<u64>> {
        let rel = format!("{KEYS}/{key}");
        match sys::stat_at(keys, key) {
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

    /// Creates `keys/KEY` with length `id` (producer lock held); false when it exists.
    /// The file is made in tmp/ at its length, then renamed into keys/ without replacing,
    /// so that it never appears with another length: a crash leaves an orphan in tmp/
    /// (swept), never a key file naming no message. Not synced: the caller syncs keys/
    /// once for all it created.
    pub(super) fn hold_key(&self, keys: BorrowedFd<'_>, key: &str, id: u64) -> Result<bool> {
        let tmp = self.open_dir(TMP)?;
        let name = layout::token();
        let staged = format!("{TMP}/{name}");
        let file = sys::create_exclusive(tmp.as_fd(), &name, false)
            .map_err(|e| Error::io("create", self.at(&staged), e))?;
        let sized = sys::set_len(&file, id)
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
