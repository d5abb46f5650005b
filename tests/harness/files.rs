//! Files the tests look at from outside spool: permission bits, the names in a
//! directory, witnesses (files outside a spool that must stay untouched, not even read),
//! and mounts made by a test (tmpfs, read-only bind mounts, bindfs, loop-mounted xfs
//! and ext4 images), always cleaned up, also when the test fails.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use super::{group_alive, kill_group, kill_group_and_wait};

/// Asserts that the directory `dir` holds nothing (or does not exist).
#[track_caller]
pub fn assert_empty(dir: &Path, context: &str) {
    let names = names_in(dir);
    assert!(
        names.is_empty(),
        "{context}: {} holds {names:?}",
        dir.display()
    );
}

/// Asserts that a queue directory keeps nothing in `tmp/` and `claimed/`, as after a
/// queue was drained: no partial write and no claim left behind.
#[track_caller]
pub fn assert_no_leftovers(queue_dir: &Path, context: &str) {
    assert_empty(&queue_dir.join("tmp"), context);
    assert_empty(&queue_dir.join("claimed"), context);
}

/// The permission bits of `path` (not following a final symlink).
pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The names in directory `dir`, sorted; empty when it does not exist.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("read dir")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    };
    names.sort();
    names
}

/// A file or directory outside the spool, with what it looked like, to prove that spool
/// never read, wrote or removed it. Its access time is set before its modification time,
/// so that even a `relatime` mount records a read.
pub struct Witness {
    /// Where.
    pub path: PathBuf,
    content: Option<Vec<u8>>,
    atime: (i64, i64),
    mtime: (i64, i64),
    ino: u64,
}

impl Witness {
    /// A new file with `content`.
    pub fn file(path: PathBuf, content: &[u8]) -> Witness {
        fs::write(&path, content).expect("write witness");
        Witness::arm(path, Some(content.to_vec()))
    }

    /// A new directory holding one file.
    pub fn dir(path: PathBuf) -> Witness {
        fs::create_dir(&path).expect("create witness dir");
        fs::write(
            path.join("inside"),
            b"inside a directory outside the spool\n",
        )
        .expect("write witness");
        Witness::arm(path, None)
    }

    fn arm(path: PathBuf, content: Option<Vec<u8>>) -> Witness {
        let past = SystemTime::now() - Duration::from_secs(86_400);
        let later = past + Duration::from_secs(3600);
        let f = File::open(&path).expect("open witness");
        f.set_times(fs::FileTimes::new().set_accessed(past).set_modified(later))
            .expect("set witness times");
        let m = fs::symlink_metadata(&path).expect("stat witness");
        Witness {
            atime: (m.atime(), m.atime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
            ino: m.ino(),
            path,
            content,
        }
    }

    /// Whether it is exactly as it was: there, same inode, content, access and
    /// modification times.
    pub fn check(&self) -> Result<(), String> {
        let m = fs::symlink_metadata(&self.path)
            .map_err(|e| format!("{} is gone: {e}", self.path.display()))?;
        if m.ino() != self.ino {
            return Err(format!("{} was replaced", self.path.display()));
        }
        if (m.mtime(), m.mtime_nsec()) != self.mtime {
            return Err(format!("{} was modified", self.path.display()));
        }
        if (m.atime(), m.atime_nsec()) != self.atime {
            return Err(format!(
                "{} was read (its access time changed)",
                self.path.display()
            ));
        }
        match &self.content {
            Some(c) => {
                // Compare without reading through the file's own atime: O_NOATIME as root.
                let got = read_noatime(&self.path);
                if got.as_deref() != Some(c.as_slice()) {
                    return Err(format!("{} changed content", self.path.display()));
                }
            }
            None => {
                // Not read with readdir, which would change the directory's access time.
                let inside = fs::symlink_metadata(self.path.join("inside"));
                if m.nlink() != 2 || !inside.is_ok_and(|i| i.len() == 37) {
                    return Err(format!("{} changed entries", self.path.display()));
                }
            }
        }
        Ok(())
    }
}

/// Reads a file without changing its access time (`O_NOATIME`, allowed to its owner and
/// to root); `None` when that is not possible.
fn read_noatime(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOATIME.bits() as i32)
        .open(path)
        .ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// A mount made by a test: unmounted (and its loop device detached, its workload's
/// process group killed first) when dropped, also when the test fails.
pub struct Mount {
    /// The mount point.
    pub dir: PathBuf,
    device: Option<String>,
    fstype: String,
    mounted: bool,
    /// Process groups to kill before unmounting.
    pub groups: Vec<i32>,
}

fn sh(argv: &[&str]) -> Result<String, String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Mount {
    /// Mounts a tmpfs with `options` (e.g. `size=256k`) on the new directory `dir`.
    pub fn tmpfs(dir: &Path, options: &str) -> Result<Mount, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let d = dir.to_str().expect("UTF-8 path");
        sh(&["mount", "-t", "tmpfs", "-o", options, "tmpfs", d])?;
        Ok(Mount {
            dir: dir.to_path_buf(),
            device: None,
            fstype: "tmpfs".into(),
            mounted: true,
            groups: Vec::new(),
        })
    }

    /// Mounts `source` again, read-only, on the new directory `dir` (a bind mount made
    /// read-only by a remount: the files stay writable at `source`).
    pub fn bind_read_only(source: &Path, dir: &Path) -> Result<Mount, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (s, d) = (
            source.to_str().expect("UTF-8 path"),
            dir.to_str().expect("UTF-8 path"),
        );
        sh(&["mount", "--bind", s, d])?;
        let m = Mount {
            dir: dir.to_path_buf(),
            device: None,
            fstype: "bind".into(),
            mounted: true,
            groups: Vec::new(),
        };
        sh(&["mount", "-o", "remount,bind,ro", d])?;
        Ok(m)
    }

    /// Mounts `source` again on the new directory `dir` through bindfs, a FUSE
    /// filesystem (the caller checks that bindfs is installed).
    pub fn bindfs(source: &Path, dir: &Path) -> Result<Mount, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (s, d) = (
            source.to_str().expect("UTF-8 path"),
            dir.to_str().expect("UTF-8 path"),
        );
        sh(&["bindfs", s, d])?;
        Ok(Mount {
            dir: dir.to_path_buf(),
            device: None,
            fstype: "fuse".into(),
            mounted: true,
            groups: Vec::new(),
        })
    }

    /// Makes a sparse image of `size` at `image`, formats it as `fstype` (xfs or ext4),
    /// attaches it to a loop device and mounts it on the new directory `dir`.
    pub fn image(image: &Path, size: &str, fstype: &str, dir: &Path) -> Result<Mount, String> {
        let img = image.to_str().expect("UTF-8 path");
        sh(&["truncate", "-s", size, img])?;
        match fstype {
            "xfs" => sh(&["mkfs.xfs", "-q", "-f", img])?,
            "ext4" => sh(&["mkfs.ext4", "-q", "-F", img])?,
            other => return Err(format!("unknown filesystem {other}")),
        };
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let device = sh(&["losetup", "-f", "--show", img])?;
        let mut m = Mount {
            dir: dir.to_path_buf(),
            device: Some(device),
            fstype: fstype.into(),
            mounted: false,
            groups: Vec::new(),
        };
        m.mount()?;
        Ok(m)
    }

    /// Mounts the loop device again (after [`Mount::unmount`]).
    pub fn mount(&mut self) -> Result<(), String> {
        let dev = self.device.clone().expect("a loop device");
        let d = self.dir.to_str().expect("UTF-8 path");
        sh(&["mount", "-t", &self.fstype, &dev, d])?;
        self.mounted = true;
        Ok(())
    }

    /// Kills the registered process groups, then unmounts (retrying while busy).
    pub fn unmount(&mut self) -> Result<(), String> {
        for g in std::mem::take(&mut self.groups) {
            kill_group_and_wait(g);
        }
        if !self.mounted {
            return Ok(());
        }
        let d = self.dir.to_str().expect("UTF-8 path").to_string();
        let mut last = String::new();
        for _ in 0..100 {
            match sh(&["umount", &d]) {
                Ok(_) => {
                    self.mounted = false;
                    return Ok(());
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(last)
    }

    /// Simulates a power cut: `xfs_io -x -c shutdown` (no flush) on the mount point.
    pub fn shutdown(&self) -> Result<(), String> {
        let d = self.dir.to_str().expect("UTF-8 path");
        sh(&["xfs_io", "-x", "-c", "shutdown", d]).map(|_| ())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        for g in std::mem::take(&mut self.groups) {
            for _ in 0..200 {
                if !group_alive(g) {
                    break;
                }
                kill_group(g);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if self.mounted {
            let d = self.dir.to_string_lossy().into_owned();
            let mut done = false;
            for _ in 0..40 {
                if sh(&["umount", &d]).is_ok() {
                    done = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !done {
                let _ = sh(&["umount", "-l", &d]);
            }
        }
        if let Some(dev) = self.device.take() {
            let _ = sh(&["losetup", "-d", &dev]);
        }
    }
}
