//! Leftovers of writers that died: entries of `tmp/` whose flock is free are orphans,
//! removed under the producer lock (a pusher unlocks its file only once it holds that
//! lock, just before publishing). Names spool does not write are warned about, never
//! deleted.

use std::fs::File;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, OFlags, Stat};

use super::layout::*;
use super::{Queue, sys};
use crate::store::error::{Error, Result};

/// What a probe of an entry that some process may hold found.
pub(super) enum Probe {
    /// Its writer or holder is alive (the flock is held), or it is gone.
    Held,
    /// Nobody holds it and it is still there: its writer or holder died. The file is
    /// open, locked by this process, with its status.
    Abandoned(File, Stat),
}

impl Queue {
    /// Whether the writer or holder of `name` of `dir` (at `rel`) died: opens it without
    /// following links or blocking, and tries its flock. An entry that cannot be opened
    /// counts as held: it is not ours to judge.
    pub(super) fn probe(&self, dir: BorrowedFd<'_>, name: &str, rel: &str) -> Result<Probe> {
        let Ok(fd) = sys::open_beneath(dir, name, OFlags::RDONLY | OFlags::NONBLOCK, 0) else {
            return Ok(Probe::Held);
        };
        let file = File::from(fd);
        if file.try_lock().is_err() {
            return Ok(Probe::Held);
        }
        let st = sys::stat_fd(&file).map_err(|e| Error::io("stat", self.at(rel), e))?;
        if st.st_nlink == 0 {
            return Ok(Probe::Held); // removed or published while we looked
        }
        Ok(Probe::Abandoned(file, st))
    }

    /// The lane ran dry: a good moment to remove what crashed writers left in tmp/, when
    /// there is anything there (only then is the producer lock taken).
    pub(super) fn sweep_tmp_if_any(&self) -> Result<()> {
        let (tmp, names) = self.tmp_names()?;
        if !names.is_empty() {
            // Listed before the lock: what came since is being written, what went since
            // is skipped.
            let _producer = self.lock_producer()?;
            self.sweep_names(&tmp, names)?;
        }
        Ok(())
    }

    /// `tmp/`, open, and the names in it.
    pub(super) fn tmp_names(&self) -> Result<(OwnedFd, Vec<String>)> {
        let tmp = self.open_dir(TMP)?;
        let names = sys::read_names(&tmp).map_err(|e| Error::io("read", self.at(TMP), e))?;
        Ok((tmp, names))
    }

    /// Removes orphans from `tmp/`: entries whose writer died (their flock is free).
    /// Producer lock held: a pusher unlocks its file once it holds that lock, just before
    /// publishing it, so that no published message is ever seen locked.
    pub(super) fn sweep_tmp(&self) -> Result<()> {
        let (tmp, names) = self.tmp_names()?;
        self.sweep_names(&tmp, names)
    }

    /// [`Self::sweep_tmp`] of the entries `names` of `tmp_fd`.
    pub(super) fn sweep_names(&self, tmp_fd: &OwnedFd, names: Vec<String>) -> Result<()> {
        let tmp = tmp_fd.as_fd();
        for name in names {
            let rel = format!("{TMP}/{name}");
            if !is_tmp_name(&name) {
                self.warn_once(&rel, "not a name spool writes");
                continue;
            }
            let is_dir = match sys::stat_at(tmp, &name) {
                Ok(st) if sys::is_plain_file(&st) => false,
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => true,
                Ok(st) => {
                    self.warn_once(&rel, sys::describe_entry(&st));
                    continue;
                }
                Err(_) => continue,
            };
            let Probe::Abandoned(file, _) = self.probe(tmp, &name, &rel)? else {
                continue; // its writer is alive
            };
            if is_dir && name.ends_with(BATCH_SUFFIX) {
                let inner = sys::read_names(
                    sys::open_dir_beneath(file.as_fd(), ".")
                        .map_err(|e| Error::io("open", self.at(&rel), e))?,
                )
                .map_err(|e| Error::io("read", self.at(&rel), e))?;
                for entry in inner {
                    let plain =
                        sys::stat_at(file.as_fd(), &entry).is_ok_and(|st| sys::is_plain_file(&st));
                    if plain && is_batch_entry(&entry) {
                        let _ = sys::remove_file(file.as_fd(), &entry);
                    } else {
                        self.warn_once(&format!("{rel}/{entry}"), "not a name spool writes");
                    }
                }
                let _ = sys::remove_dir(tmp, &name);
            } else if !is_dir {
                let _ = sys::remove_file(tmp, &name);
            } else {
                self.warn_once(&rel, "a directory spool did not write");
            }
        }
        Ok(())
    }
}
