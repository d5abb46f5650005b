//! Network filesystems, told by `statfs`'s `f_type`. spool's guarantees rest on two
//! things that hold on one machine only: `flock` locks (the producer and consumer locks,
//! a running pop's hold on its message) and inotify (the instant wake-up of a waiting
//! consumer). On a filesystem that other hosts change, neither sees what another host
//! does: two hosts can take the same message at once, and a waiting consumer wakes only
//! at its poll interval. So spool refuses to create a spool directory or a queue there
//! unless `SPOOL_ALLOW_NETWORK_FS=1` says the user knows; `stats` and `fsck` mention it.
//!
//! The list: NFS, SMB/CIFS (the three magics of the kernel's two clients), FUSE (sshfs,
//! s3fs, glusterfs, rclone; also local FUSE filesystems such as ntfs-3g, which the
//! variable lets through), 9p, Ceph, AFS (kAFS and OpenAFS), Coda, NCP, Lustre, GPFS,
//! BeeGFS, OrangeFS, and the shared-disk cluster filesystems GFS2 and OCFS2, which
//! several hosts mount at once. The check is one `fstatfs`, on the creating path only:
//! a push to an existing queue, a pop, a take never make it.

use std::os::fd::AsFd;

/// The environment variable that allows a spool on a network filesystem.
pub const ALLOW_VARIABLE: &str = "SPOOL_ALLOW_NETWORK_FS";

/// `f_type` values (linux/magic.h and the filesystems' own headers) and their names.
const NETWORK: [(u32, &str); 17] = [
    (0x6969, "nfs"),
    (0x517b, "smb"),
    (0xff53_4d42, "cifs"),
    (0xfe53_4d42, "smb2"),
    (0x6573_5546, "fuse"),
    (0x0102_1997, "9p"),
    (0x00c3_6400, "ceph"),
    (0x5346_414f, "afs"),
    (0x6b41_4653, "afs"),
    (0x7375_7245, "coda"),
    (0x564c, "ncpfs"),
    (0x0bd0_0bd0, "lustre"),
    (0x4750_4653, "gpfs"),
    (0x1983_0326, "beegfs"),
    (0x2003_0528, "orangefs"),
    (0x0116_1970, "gfs2"),
    (0x7461_636f, "ocfs2"),
];

/// The name of the network filesystem of type `f_type`; `None` for a local one.
pub fn network_fs_name(f_type: u64) -> Option<&'static str> {
    // f_type is a signed word of 32 or 64 bits: its low 32 bits are the magic.
    let magic = f_type as u32;
    NETWORK.iter().find(|(m, _)| *m == magic).map(|(_, n)| *n)
}

/// The network filesystem that holds `fd`, if it is one (`None` also when `fstatfs`
/// fails: nothing is refused for want of an answer).
pub fn network_fs_of(fd: impl AsFd) -> Option<&'static str> {
    let st = rustix::fs::fstatfs(fd).ok()?;
    network_fs_name(st.f_type as u64)
}

/// What holds and what does not on a network filesystem, for errors and warnings.
pub fn caveat(name: &str) -> String {
    format!(
        "on a network filesystem ({name}): flock locks and inotify wake-ups do not hold across hosts"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_filesystems_are_told_from_local_ones() {
        for (magic, name) in [
            (0x6969_u64, "nfs"),
            (0xff53_4d42, "cifs"),
            (0xfe53_4d42, "smb2"),
            (0x6573_5546, "fuse"),
            (0x0102_1997, "9p"),
            (0x00c3_6400, "ceph"),
        ] {
            assert_eq!(network_fs_name(magic), Some(name), "{magic:#x}");
        }
        // As a 32-bit signed f_type reads the CIFS magic.
        assert_eq!(
            network_fs_name(0xff53_4d42_u32 as i32 as i64 as u64),
            Some("cifs")
        );
        for local in [
            0xef53_u64,  // ext2/3/4
            0x5846_5342, // xfs
            0x0102_1994, // tmpfs
            0x9123_683e, // btrfs
            0x794c_7630, // overlayfs
            0x2fc1_2fc1, // zfs
            0x9fa0,      // proc
        ] {
            assert_eq!(network_fs_name(local), None, "{local:#x}");
        }
    }
}
