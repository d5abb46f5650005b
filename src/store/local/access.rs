//! Access inside one queue directory: paths for messages, the directories of the
//! states, entries opened or moved without following links, the format file, and the
//! queue's creation.
//!
//! Every path is resolved beneath the queue's directory descriptor (see `sys`), and
//! only plain files (regular, one link) are ever read, moved or deleted: anything else
//! is warned about once and left where it is.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags, Stat};
use rustix::io::Errno;

use super::entry::Entry;
use super::layout::{self, Format, *};
use super::lengths::length;
use super::{Queue, sys};
use crate::store::error::{Error, Result};

/// Where a new identity's random bits come from.
const RANDOM_SOURCE: &str = "/dev/urandom";

/// What the identity file of a queue holds.
pub(super) enum Identity {
    /// The identity: 32 lowercase hex digits.
    Valid(String),
    /// Something else: why it is not an identity.
    Invalid(String),
    /// No file: none was made yet.
    Missing,
}

impl Queue {
    pub(super) fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Takes the relay lock: an flock on the queue's directory itself, which nothing else
    /// locks; false when another open file description holds it.
    pub(super) fn lock_relay(&self) -> Result<bool> {
        use rustix::fs::{FlockOperation, flock};
        match flock(self.dir(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
            Err(e) => Err(Error::io("lock", self.path(), e)),
        }
    }

    /// Whether the queue's directory was removed since it was opened (a directory
    /// removed keeps no link, whatever was made again under its name), or is being
    /// removed: its format file, counter or head is gone, files no queue is without (an
    /// `rm -rf` takes them one by one before the directory).
    pub fn is_gone(&self) -> bool {
        sys::stat_fd(self.dir()).is_ok_and(|st| st.st_nlink == 0)
            || [FORMAT_FILE, COUNTER, HEAD]
                .iter()
                .any(|rel| matches!(sys::stat_at(self.dir(), rel), Err(Errno::NOENT)))
    }

    /// A name of this queue that no other has: 32 lowercase hex digits, 128 random bits
    /// kept in the file `identity` of the queue directory, made the first time they are
    /// asked for and read thereafter. A file there that is not exactly such a line is an
    /// error, never replaced.
    pub fn identity(&self) -> Result<String> {
        match self.read_identity()? {
            Identity::Valid(id) => Ok(id),
            Identity::Invalid(why) => Err(Error::invalid(
                "read",
                Some(&self.at(IDENTITY)),
                format!("{why}: left as it is"),
            )),
            Identity::Missing => self.make_identity(),
        }
    }

    /// What the identity file holds.
    pub(super) fn read_identity(&self) -> Result<Identity> {
        let path = self.at(IDENTITY);
        let fd = match sys::open_beneath(self.dir(), IDENTITY, OFlags::RDONLY | OFlags::NONBLOCK, 0)
        {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Identity::Missing),
            Err(e @ (Errno::LOOP | Errno::NXIO)) => {
                return match sys::stat_at(self.dir(), IDENTITY) {
                    Ok(st) => Ok(Identity::Invalid(format!(
                        "{}, not a regular file",
                        sys::describe_entry(&st)
                    ))),
                    Err(_) => Err(Error::io("open", &path, e)),
                };
            }
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let mut file = File::from(fd);
        let st = sys::stat_fd(&file).map_err(|e| Error::io("stat", &path, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Ok(Identity::Invalid(format!(
                "{}, not a regular file",
                sys::describe_entry(&st)
            )));
        }
        let mut buf = [0u8; IDENTITY_LEN + 2];
        let n = crate::store::read_full(&mut file, &mut buf)
            .map_err(|e| Error::io("read", &path, e))?;
        Ok(match layout::parse_identity(&buf[..n]) {
            Some(id) => Identity::Valid(id),
            None => Identity::Invalid(format!(
                "not an identity ({IDENTITY_LEN} lowercase hex digits and a newline)"
            )),
        })
    }

    /// Draws a new identity and puts it in place: written in tmp/, synced, closed, renamed
    /// to `identity` without replacing, the queue directory synced. Another process that
    /// did the same first wins: its identity is read and returned.
    fn make_identity(&self) -> Result<String> {
        let mut bits = [0u8; IDENTITY_LEN / 2];
        File::open(RANDOM_SOURCE)
            .and_then(|mut f| f.read_exact(&mut bits))
            .map_err(|e| Error::io("read", RANDOM_SOURCE, e))?;
        let id: String = bits.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = self.open_dir(TMP)?;
        let (name, mut file) = self.create_locked(&tmp, IDENTITY_TMP_PREFIX, false)?;
        let tmp_path = self.at(&format!("{TMP}/{name}"));
        let placed = file
            .write_all(format!("{id}\n").as_bytes())
            .map_err(|e| Error::io("write", &tmp_path, e))
            .and_then(|()| sys::fdatasync(&file).map_err(|e| Error::io("fsync", &tmp_path, e)))
            .and_then(|()| {
                // A duplicate is closed to collect the error; the original keeps the lock
                // that keeps sweepers away until the rename.
                sys::check_close(&file).map_err(|e| Error::io("close", &tmp_path, e))
            })
            .and_then(
                |()| match sys::rename_noreplace(tmp.as_fd(), &name, self.dir(), IDENTITY) {
                    Ok(()) => Ok(true),
                    Err(Errno::EXIST) => Ok(false),
                    Err(e) => Err(Error::io("rename", &tmp_path, e)),
                },
            );
        if !matches!(placed, Ok(true)) {
            let _ = sys::remove_file(tmp.as_fd(), &name);
        }
        drop(file);
        if !placed? {
            // Another process made it first: the queue's identity is that one.
            return match self.read_identity()? {
                Identity::Valid(id) => Ok(id),
                Identity::Invalid(why) => Err(Error::invalid(
                    "read",
                    Some(&self.at(IDENTITY)),
                    format!("{why}: left as it is"),
                )),
                Identity::Missing => Err(Error::invalid(
                    "read",
                    Some(&self.at(IDENTITY)),
                    "removed while it was being made",
                )),
            };
        }
        sys::fsync(self.dir()).map_err(|e| Error::io("fsync", &self.path, e))?;
        Ok(id)
    }

    pub(super) fn at(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub(super) fn warn_once(&self, rel: &str, what: &str) {
        if self.warned.borrow_mut().insert(rel.to_string()) {
            (self.warn)(&format!("skipping {}: {what}", self.at(rel).display()));
        }
    }

    /// True when the format file is there and ours; false when it is missing. A damaged
    /// one, or one of another format, is an error.
    pub(super) fn check_format(&self) -> Result<bool> {
        match self.read_format()? {
            Format::Ours => Ok(true),
            Format::Missing => Ok(false),
            Format::Damaged(why) => Err(Error::invalid(
                "read",
                Some(&self.at(FORMAT_FILE)),
                format!("{why}; spool fsck --repair restores it"),
            )),
            Format::Other(why) => Err(Error::invalid("read", Some(&self.at(FORMAT_FILE)), why)),
        }
    }

    /// What the format file says.
    pub(super) fn read_format(&self) -> Result<Format> {
        let fd = match sys::open_beneath(
            self.dir(),
            FORMAT_FILE,
            OFlags::RDONLY | OFlags::NONBLOCK,
            0,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Format::Missing),
            Err(e @ (Errno::LOOP | Errno::NXIO)) => {
                return match sys::stat_at(self.dir(), FORMAT_FILE) {
                    Ok(st) => Ok(Format::Damaged(format!(
                        "{}, not a regular file",
                        sys::describe_entry(&st)
                    ))),
                    Err(_) => Err(Error::io("open", self.at(FORMAT_FILE), e)),
                };
            }
            Err(e) => return Err(Error::io("open", self.at(FORMAT_FILE), e)),
        };
        let mut file = File::from(fd);
        let mut buf = [0u8; 64];
        // One read is enough for the small regular file it should be: such a read returns
        // less than asked only at the end of the file. Anything else is looked at closely.
        if let Ok(n) = file.read(&mut buf)
            && &buf[..n] == layout::FORMAT
        {
            return Ok(Format::Ours);
        }
        let st = sys::stat_fd(&file).map_err(|e| Error::io("stat", self.at(FORMAT_FILE), e))?;
        if !sys::is_plain_file(&st) {
            return Ok(Format::Damaged(format!(
                "{}, not a regular file",
                sys::describe_entry(&st)
            )));
        }
        let n = std::io::Seek::rewind(&mut file)
            .and_then(|()| crate::store::read_full(&mut file, &mut buf))
            .map_err(|e| Error::io("read", self.at(FORMAT_FILE), e))?;
        if &buf[..n] == layout::FORMAT {
            return Ok(Format::Ours); // the first read failed, this one did not
        }
        Ok(layout::judge_format(&buf[..n], st.st_size as u64))
    }

    /// Whether the queue, its format file aside, is laid out as this format's queues are:
    /// the counter and the head regular files, the state directories there.
    pub(super) fn has_known_layout(&self) -> bool {
        let is = |rel: &str, kind: FileType| {
            sys::stat_at(self.dir(), rel)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == kind)
        };
        [COUNTER, HEAD]
            .iter()
            .all(|rel| is(rel, FileType::RegularFile))
            && STATE_DIRS.iter().all(|rel| is(rel, FileType::Directory))
    }

    /// Writes the format file in tmp/, synced, and returns tmp/ and its name there.
    fn stage_format(&self) -> Result<(OwnedFd, String)> {
        let tmp = self.open_dir(TMP)?;
        let (name, mut file) = self.create_locked(&tmp, FORMAT_TMP_PREFIX, false)?;
        let tmp_path = self.at(&format!("{TMP}/{name}"));
        file.write_all(layout::FORMAT)
            .map_err(|e| Error::io("write", &tmp_path, e))?;
        sys::fdatasync(&file).map_err(|e| Error::io("fsync", &tmp_path, e))?;
        sys::check_close(&file).map_err(|e| Error::io("close", &tmp_path, e))?;
        Ok((tmp, name))
    }

    /// Puts a new format file in place of a damaged one, which goes to corrupt/ (both
    /// locks held, so that no command works on the queue meanwhile). Returns what was
    /// done, for fsck.
    pub(super) fn restore_format(&self) -> Result<String> {
        let _c = self.lock_consumer()?;
        let _p = self.lock_producer()?;
        let (tmp, name) = self.stage_format()?;
        let tmp_path = self.at(&format!("{TMP}/{name}"));
        let aside = format!("{FORMAT_FILE}.{}", layout::token());
        let corrupt = self.state_dir(CORRUPT)?;
        let moved = match sys::rename_noreplace(self.dir(), FORMAT_FILE, corrupt.as_fd(), &aside) {
            Ok(()) => {
                sys::fsync(&corrupt).map_err(|e| Error::io("fsync", self.at(CORRUPT), e))?;
                true
            }
            Err(Errno::NOENT) => false,
            Err(e) => {
                let _ = sys::remove_file(tmp.as_fd(), &name);
                return Err(Error::io("rename", self.at(FORMAT_FILE), e));
            }
        };
        match sys::rename_noreplace(tmp.as_fd(), &name, self.dir(), FORMAT_FILE) {
            Ok(()) => {}
            // Written meanwhile by a command that found none: the same content.
            Err(Errno::EXIST) => {
                let _ = sys::remove_file(tmp.as_fd(), &name);
            }
            Err(e) => return Err(Error::io("rename", &tmp_path, e)),
        }
        sys::fsync(self.dir()).map_err(|e| Error::io("fsync", &self.path, e))?;
        Ok(if moved {
            format!("moved to {CORRUPT}/{aside}, and written anew")
        } else {
            "written anew".to_string()
        })
    }

    /// Creates the queue's files; safe to run concurrently and again after a crash.
    pub(super) fn initialize(&self) -> Result<()> {
        for sub in STATE_DIRS {
            sys::make_dir(self.dir(), sub).map_err(|e| Error::io("create", self.at(sub), e))?;
        }
        self.open_length_file(RATES, true)?;
        for counter in [COUNTER, HEAD] {
            let file = self.open_length_file(counter, true)?;
            file.lock()
                .map_err(|e| Error::io("lock", self.at(counter), e))?;
            if length(&file).map_err(|e| Error::io("stat", self.at(counter), e))? == 0 {
                sys::set_len(&file, 1).map_err(|e| Error::io("write", self.at(counter), e))?;
            }
        }
        // The format file goes last, published like a message: whoever sees it sees a
        // complete queue.
        let (tmp, name) = self.stage_format()?;
        let tmp_path = self.at(&format!("{TMP}/{name}"));
        match sys::rename_noreplace(tmp.as_fd(), &name, self.dir(), FORMAT_FILE) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let _ = sys::remove_file(tmp.as_fd(), &name);
            }
            Err(e) => return Err(Error::io("rename", &tmp_path, e)),
        }
        for sub in STATE_DIRS {
            let fd = self.open_dir(sub)?;
            sys::fsync(&fd).map_err(|e| Error::io("fsync", self.at(sub), e))?;
        }
        sys::fsync(self.dir()).map_err(|e| Error::io("fsync", &self.path, e))?;
        if !self.check_format()? {
            return Err(Error::invalid(
                "create",
                Some(&self.at(FORMAT_FILE)),
                "format file vanished",
            ));
        }
        Ok(())
    }

    /// The status of the open file `fd` at `rel`, which must be a regular file: anything
    /// else (a FIFO, a device, a directory planted in its place) fails step `step`.
    pub(super) fn stat_regular(&self, fd: impl AsFd, rel: &str, step: &str) -> Result<Stat> {
        let st = sys::stat_fd(fd).map_err(|e| Error::io("stat", self.at(rel), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::invalid(
                step,
                Some(&self.at(rel)),
                "not a regular file",
            ));
        }
        Ok(st)
    }

    pub(super) fn open_dir(&self, rel: &str) -> Result<OwnedFd> {
        sys::open_dir_beneath(self.dir(), rel).map_err(|e| Error::io("open", self.at(rel), e))
    }

    /// Opens a state directory, creating it if this queue predates it.
    pub(super) fn state_dir(&self, rel: &str) -> Result<OwnedFd> {
        match sys::open_dir_beneath(self.dir(), rel) {
            Err(Errno::NOENT) => {
                sys::make_dir(self.dir(), rel).map_err(|e| Error::io("create", self.at(rel), e))?;
                sys::fsync(self.dir()).map_err(|e| Error::io("fsync", &self.path, e))?;
                self.open_dir(rel)
            }
            other => other.map_err(|e| Error::io("open", self.at(rel), e)),
        }
    }

    /// claimed/, opened on first use.
    pub(super) fn claimed_dir(&self) -> Result<BorrowedFd<'_>> {
        if self.claimed.get().is_none() {
            let fd = self.state_dir(CLAIMED)?;
            let _ = self.claimed.set(fd);
        }
        Ok(self.claimed.get().expect("set above").as_fd())
    }

    /// Moves `name` from `from` to `to_name` in `to`, never replacing; `Ok(false)` when
    /// the source is gone (someone else moved it first).
    pub(super) fn move_entry(
        &self,
        from: BorrowedFd<'_>,
        from_rel: &str,
        name: &str,
        to: BorrowedFd<'_>,
        to_name: &str,
    ) -> Result<bool> {
        match sys::rename_noreplace(from, name, to, to_name) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(Error::io(
                "rename",
                self.at(&format!("{from_rel}/{name}")),
                e,
            )),
        }
    }

    /// Whether `name` of `dir` is a plain file (warning about it if not): checked before
    /// moving an entry that is not opened first.
    pub(super) fn is_plain_entry(
        &self,
        dir: BorrowedFd<'_>,
        rel: &str,
        name: &str,
    ) -> Result<bool> {
        match sys::stat_at(dir, name) {
            Ok(st) if sys::is_plain_file(&st) => Ok(true),
            Ok(st) => {
                self.warn_once(&format!("{rel}/{name}"), sys::describe_entry(&st));
                Ok(false)
            }
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(Error::io("stat", self.at(&format!("{rel}/{name}")), e)),
        }
    }

    /// Opens `name` of `dir` (at `rel`, for messages) if it is a plain file: a regular
    /// file with one link, opened without following a symlink or blocking on a FIFO.
    /// Anything else is warned about and `None`, as is a file that is gone.
    pub(super) fn open_plain(
        &self,
        dir: impl AsFd,
        name: &str,
        rel: &str,
    ) -> Result<Option<(File, Stat)>> {
        let fd = match sys::open_beneath(dir.as_fd(), name, OFlags::RDONLY | OFlags::NONBLOCK, 0) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP | Errno::NXIO | Errno::ISDIR) => {
                self.warn_once(rel, "not a regular file");
                return Ok(None);
            }
            Err(e) => return Err(Error::io("open", self.at(rel), e)),
        };
        let stat = sys::stat_fd(&fd).map_err(|e| Error::io("stat", self.at(rel), e))?;
        if !sys::is_plain_file(&stat) {
            self.warn_once(rel, sys::describe_entry(&stat));
            return Ok(None);
        }
        Ok(Some((File::from(fd), stat)))
    }

    /// Reads the names of a directory, parsed; junk is warned about and left out.
    pub(super) fn entries(&self, dir: impl AsFd, rel: &str) -> Result<Vec<(String, Entry)>> {
        let names = sys::read_names(dir).map_err(|e| Error::io("read", self.at(rel), e))?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match Entry::parse(&name) {
                Some(e) => out.push((name, e)),
                None => self.warn_once(&format!("{rel}/{name}"), "not a name spool writes"),
            }
        }
        Ok(out)
    }
}

/// Opens the spool directory `root`; `Ok(None)` when it does not exist. A directory that
/// is a queue directory, or lies inside one, is refused (see [`check_root`]).
pub(super) fn open_root(root: &Path) -> Result<Option<OwnedFd>> {
    match open_dir(root) {
        Ok(fd) => {
            check_root(fd.as_fd(), root, root)?;
            Ok(Some(fd))
        }
        Err(Errno::NOENT) => {
            // Refused the same whether or not it exists yet.
            if let Some((fd, at)) = nearest_existing(root) {
                check_root(fd.as_fd(), &at, root)?;
            }
            Ok(None)
        }
        Err(e) => Err(Error::io("open spool", root, e)),
    }
}

/// Opens the spool directory `root` without [`check_root`]; `Ok(None)` when it does not
/// exist: for a caller that checks only when it does not find its queue.
pub(super) fn open_root_unchecked(root: &Path) -> Result<Option<OwnedFd>> {
    match open_dir(root) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::io("open spool", root, e)),
    }
}

/// The nearest directory above `path` that can be opened, and its path.
fn nearest_existing(path: &Path) -> Option<(OwnedFd, PathBuf)> {
    let mut at = path;
    loop {
        at = match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            Some(_) => Path::new("."),
            None => return None,
        };
        match open_dir(at) {
            Ok(fd) => return Some((fd, at.to_path_buf())),
            Err(Errno::NOENT) => continue,
            Err(_) => return None,
        }
    }
}

fn open_dir(p: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
}

/// Refuses a spool directory `root` that is a queue directory or lies inside one (as
/// `--dir QUEUE` or `--dir QUEUE/ready` would be): spool would build queues among the
/// queue's own files. `dir` is the root, or the nearest existing directory above it
/// (`at`) when the root is to be created.
///
/// A queue directory is a directory with a format file. The check costs a system call or
/// two: `format` in `dir` itself, then the directory's real path (through /proc, so
/// `..` and symbolic links are resolved); of its ancestors, only those holding a
/// directory named as a queue's own (`ready`, `tmp`, `claimed`, ...) are looked into.
pub(super) fn check_root(dir: BorrowedFd<'_>, at: &Path, root: &Path) -> Result<()> {
    let is_queue = |st: rustix::io::Result<Stat>| {
        st.is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
    };
    let real = real_path(dir).unwrap_or_else(|| std::path::absolute(at).unwrap_or_default());
    let spool_of = |queue: &Path| match queue.parent() {
        Some(parent) => format!(" (its spool directory is {})", parent.display()),
        None => String::new(),
    };
    if is_queue(sys::stat_at(dir, FORMAT_FILE)) {
        let cause = if at == root {
            format!(
                "is a queue directory, not a directory of queues{}",
                spool_of(&real)
            )
        } else {
            format!(
                "lies inside the queue directory {}{}",
                real.display(),
                spool_of(&real)
            )
        };
        return Err(Error::invalid("spool directory", Some(root), cause));
    }
    for queue in real.ancestors().skip(1) {
        let inner = real
            .strip_prefix(queue)
            .ok()
            .and_then(|rest| rest.components().next())
            .and_then(|c| c.as_os_str().to_str());
        if !inner.is_some_and(layout::is_queue_dir_entry) {
            continue;
        }
        if is_queue(rustix::fs::statat(
            rustix::fs::CWD,
            queue.join(FORMAT_FILE),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )) {
            return Err(Error::invalid(
                "spool directory",
                Some(root),
                format!(
                    "lies inside the queue directory {}{}",
                    queue.display(),
                    spool_of(queue)
                ),
            ));
        }
    }
    Ok(())
}

/// The path of the directory `dir` as the kernel knows it, `..` and symbolic links
/// resolved; `None` without /proc.
fn real_path(dir: BorrowedFd<'_>) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStringExt;
    let link = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let target = rustix::fs::readlinkat(rustix::fs::CWD, link, Vec::new()).ok()?;
    let path = PathBuf::from(std::ffi::OsString::from_vec(target.into_bytes()));
    path.is_absolute().then_some(path)
}

/// Opens the root directory, creating it (and missing parents) with mode 0700 and
/// fsyncing each parent, so that the queue's directory entry survives a power cut.
/// Nothing is created inside a queue directory (see [`check_root`]), nor on a network
/// filesystem unless `network_fs` allows it.
pub(super) fn open_or_create_root(root: &Path, network_fs: bool) -> Result<OwnedFd> {
    let open = open_dir;
    // An existing root is checked by the caller, and only if it creates a queue there.
    if let Some(fd) = open_root_unchecked(root)? {
        return Ok(fd);
    }
    let mut missing = vec![root.to_path_buf()];
    let mut parent_fd = loop {
        let top = missing.last().expect("nonempty");
        let parent = match top.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match open(&parent) {
            Ok(fd) => {
                check_root(fd.as_fd(), &parent, root)?;
                super::refuse_network_fs(fd.as_fd(), "create spool", root, network_fs)?;
                break fd;
            }
            Err(Errno::NOENT) => missing.push(parent),
            Err(e) => return Err(Error::io("open", &parent, e)),
        }
    };
    while let Some(dir) = missing.pop() {
        let name = dir
            .file_name()
            .ok_or_else(|| Error::invalid("create spool", Some(root), "not a directory name"))?;
        sys::make_dir(parent_fd.as_fd(), name).map_err(|e| Error::io("create spool", &dir, e))?;
        sys::fsync(&parent_fd)
            .map_err(|e| Error::io("fsync", dir.parent().unwrap_or(Path::new(".")), e))?;
        parent_fd = open(&dir).map_err(|e| Error::io("open spool", &dir, e))?;
    }
    Ok(parent_fd)
}
