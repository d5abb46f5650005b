//! Thin, checked wrappers over the system calls the queue needs and std lacks. They return
//! rustix's `Errno`, so callers match error numbers directly.
//!
//! Every path inside a queue is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`
//! from the queue's directory descriptor, so a symlink planted anywhere in a queue is never
//! followed; last components are opened with `O_NOFOLLOW`. Files and directories are created
//! with explicit modes (0600, 0700) and then `fchmod`ed, so the umask cannot widen or
//! narrow them.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Stat, fchmod, fstat, linkat,
    mkdirat, openat, openat2, renameat_with, unlinkat,
};
use rustix::io::{Errno, Result};

/// Mode of every file spool creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory spool creates.
pub const DIR_MODE: u32 = 0o700;

static NO_OPENAT2: AtomicBool = AtomicBool::new(false);
static NO_RENAMEAT2: AtomicBool = AtomicBool::new(false);

/// Opens `rel` below `dir` without following any symlink on the way.
pub fn open_beneath(dir: BorrowedFd<'_>, rel: &str, flags: OFlags, mode: u32) -> Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let mode = Mode::from_bits_truncate(mode);
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match openat2(
            dir,
            rel,
            flags,
            mode,
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ) {
            // Kernels before 5.6, and seccomp filters of some containers, refuse it.
            Err(Errno::NOSYS) | Err(Errno::PERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
            // ELOOP from RESOLVE_NO_SYMLINKS is the answer for a planted symlink.
            other => return other,
        }
    }
    // Without openat2: walk the components one by one, each with O_NOFOLLOW.
    let mut parts = rel.split('/').peekable();
    let mut current: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        let at = current.as_ref().map_or(dir, |fd| fd.as_fd());
        if parts.peek().is_none() {
            return openat(at, part, flags, mode);
        }
        let next = openat(
            at,
            part,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )?;
        current = Some(next);
    }
    Err(Errno::INVAL)
}

/// Opens the directory `rel` below `dir` (for reading entries, fsync, or as an anchor).
pub fn open_dir_beneath(dir: BorrowedFd<'_>, rel: &str) -> Result<OwnedFd> {
    open_beneath(dir, rel, OFlags::DIRECTORY | OFlags::RDONLY, 0)
}

/// Creates the file `name` in `dir` exclusively, with mode 0600 whatever the umask.
/// `many`: one of many files this process creates, for which the umask is read once and
/// the `fchmod` skipped when the umask takes nothing from 0600.
pub fn create_exclusive(dir: BorrowedFd<'_>, name: &str, many: bool) -> Result<File> {
    let fd = openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_bits_truncate(FILE_MODE),
    )?;
    if !many || umask_narrows_files() {
        fchmod(&fd, Mode::from_bits_truncate(FILE_MODE))?;
    }
    Ok(File::from(fd))
}

/// Whether the process's umask takes bits from 0600, so that files created with that mode
/// need an `fchmod`: rarely (umask 022 and 077 take none), and a batch of 100,000 messages
/// saves as many system calls. Read once from /proc/self/status, which, unlike umask(2),
/// does not change the umask to read it; when that fails, assume it narrows.
fn umask_narrows_files() -> bool {
    static NARROWS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NARROWS.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .is_none_or(|umask| umask & FILE_MODE != 0)
    })
}

/// Creates the directory `name` (one component, any bytes) in `dir` with mode 0700
/// whatever the umask. Returns false when it already existed.
pub fn make_dir(dir: BorrowedFd<'_>, name: impl rustix::path::Arg + Copy) -> Result<bool> {
    match mkdirat(dir, name, Mode::from_bits_truncate(DIR_MODE)) {
        Ok(()) => {
            let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match openat(dir, name, flags, Mode::empty()) {
                Ok(fd) => fchmod(&fd, Mode::from_bits_truncate(DIR_MODE))?,
                // Removed already (a sweeper took a new batch directory for an orphan
                // before its writer could lock it): the caller's open sees that too.
                Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
            Ok(true)
        }
        Err(Errno::EXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Moves `old` in `old_dir` to `new` in `new_dir`, failing with EEXIST rather than replacing.
///
/// Uses `renameat2(RENAME_NOREPLACE)`; where the filesystem refuses it (EINVAL, as FUSE
/// does), falls back to `link` + `unlink`, which is just as safe against replacing.
pub fn rename_noreplace(
    old_dir: BorrowedFd<'_>,
    old: &str,
    new_dir: BorrowedFd<'_>,
    new: &str,
) -> Result<()> {
    if !NO_RENAMEAT2.load(Ordering::Relaxed) {
        match renameat_with(old_dir, old, new_dir, new, RenameFlags::NOREPLACE) {
            Err(Errno::INVAL) | Err(Errno::NOSYS) => NO_RENAMEAT2.store(true, Ordering::Relaxed),
            other => return other,
        }
    }
    linkat(old_dir, old, new_dir, new, AtFlags::empty())?;
    unlinkat(old_dir, old, AtFlags::empty())?;
    Ok(())
}

/// Removes the file `name` from `dir`.
pub fn remove_file(dir: BorrowedFd<'_>, name: &str) -> Result<()> {
    unlinkat(dir, name, AtFlags::empty())
}

/// Removes the directory `name` from `dir`; false when it was not empty or already gone.
pub fn remove_dir(dir: BorrowedFd<'_>, name: &str) -> Result<bool> {
    match unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) => Ok(true),
        Err(Errno::NOTEMPTY) | Err(Errno::EXIST) | Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `fstatat` without following a final symlink.
pub fn stat_at(dir: BorrowedFd<'_>, name: &str) -> Result<Stat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
}

/// `fstat`.
pub fn stat_fd(fd: impl AsFd) -> Result<Stat> {
    fstat(fd)
}

/// Whether a stat describes a regular file with exactly one link: the only kind of entry
/// spool ever reads, moves or deletes.
pub fn is_plain_file(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_nlink == 1
}

/// What is wrong with an entry that is not a plain file, for a warning.
pub fn describe_entry(st: &Stat) -> &'static str {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => "a file with more than one link",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        FileType::Unknown => "of unknown type",
    }
}

/// Reads every entry name of the directory `fd`, from its start, except `.` and `..`.
/// Names that are not UTF-8 are returned lossily (they are never ours).
pub fn read_names(fd: impl AsFd) -> Result<Vec<String>> {
    let fd = fd.as_fd();
    // `fd` may have been read before: start over.
    rustix::fs::seek(fd, rustix::fs::SeekFrom::Start(0))?;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 16 * 1024]; // on the stack: no allocation
    let mut dir = rustix::fs::RawDir::new(fd, &mut buf);
    let mut names = Vec::new();
    while let Some(entry) = dir.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// `fsync` of a directory (or file) descriptor.
pub fn fsync(fd: impl AsFd) -> Result<()> {
    rustix::fs::fsync(fd)
}

/// `fdatasync`.
pub fn fdatasync(fd: impl AsFd) -> Result<()> {
    rustix::fs::fdatasync(fd)
}

/// `syncfs`: flushes the whole filesystem that holds `fd`.
pub fn syncfs(fd: impl AsFd) -> Result<()> {
    rustix::fs::syncfs(fd)
}

/// `ftruncate`: the counters of a queue are file lengths.
pub fn set_len(fd: impl AsFd, len: u64) -> Result<()> {
    rustix::fs::ftruncate(fd, len)
}

/// Closes a file and reports the error `close` returns, which `drop` would swallow.
///
/// The descriptor is duplicated first and the duplicate closed, so that a file whose
/// lock must outlive this check (a temporary file not yet published) keeps it: `close`
/// still runs the filesystem's flush, which is where NFS reports deferred write errors.
pub fn check_close(file: &File) -> Result<()> {
    let dup = rustix::io::fcntl_dupfd_cloexec(file, 0)?;
    close_checked(dup)
}

/// Closes `fd`, returning the error of `close(2)`; `OwnedFd`'s drop discards it.
#[allow(unsafe_code)]
pub fn close_checked(fd: OwnedFd) -> Result<()> {
    use std::os::fd::IntoRawFd;
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` comes from an `OwnedFd` we consumed, so nothing else owns or uses it,
    // and it is closed exactly once here. close(2) releases it even when it reports an error.
    unsafe { rustix::io::try_close(raw) }
}
